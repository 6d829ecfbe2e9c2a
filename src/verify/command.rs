//! The `verify` command: one SSH connection and one exec per host, all hosts in
//! parallel; the exec runs the probe script with the facts gather inside it (while the
//! pings are in flight), then everything is evaluated on the workstation.
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use miette::IntoDiagnostic as _;

use crate::facts::{self, GatherParams, HostFacts};
use crate::fanout;
use crate::host_error::HostError;
use crate::hosts::Connected;
use crate::inventory::Inventory;
use crate::playbook::Playbooks;
use crate::session::{Session, SessionOptions};
use crate::topology::Mesh;
use crate::ui::{Progress, StatsReport};

use super::evaluate::{HostOutput, evaluate};
use super::expectation::{Expectation, FirewallEvidence, NodeName, PortState};
use super::from_mesh::{self, HostKeys};
use super::probe::{self, NodeProbe};
use super::report::Report;
use super::script::{MARKER, probe_script_with};

/// How long one host's probe exec may take (the probe itself needs about 5 s).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(120);

/// What runs on one host: its node name, the combined probe + gather script, the
/// listen port the firewall evidence is about.
#[derive(Debug, Clone)]
pub struct HostJob {
    /// Node name.
    pub node: NodeName,
    /// The script fed to `sh -s`.
    pub script: String,
    /// The node's WireGuard UDP port.
    pub listen_port: u16,
}

/// The expectation and each host's job, built from a loaded inventory.
#[derive(Debug, Clone)]
pub struct VerifyPlan {
    /// What the mesh should look like (keys filled in after the probe).
    pub expectation: Expectation,
    /// One job per present node, name order.
    pub jobs: Vec<HostJob>,
}

impl VerifyPlan {
    /// Maps the mesh and renders every host's script.
    pub fn new(inventory: &Inventory, mesh: &Mesh) -> miette::Result<VerifyPlan> {
        let expectation = from_mesh::expectation(inventory, mesh).into_diagnostic()?;
        let settings = &mesh.settings;
        let mut jobs = Vec::with_capacity(mesh.nodes.len());
        for spec in &mesh.nodes {
            let node = spec.name.clone();
            let peers: Vec<String> = mesh
                .peers(spec)
                .iter()
                .map(|p| p.name.to_string())
                .collect();
            let params = GatherParams::new(
                settings.interface.as_str(),
                settings.config_dir.as_str(),
                spec.listen_port,
                &peers,
            )
            .into_diagnostic()?;
            let gather = facts::gather_script(&params);
            let script = probe_script_with(&expectation, &node, Some(&gather)).into_diagnostic()?;
            jobs.push(HostJob {
                node,
                script,
                listen_port: spec.listen_port,
            });
        }
        Ok(VerifyPlan { expectation, jobs })
    }
}

/// A connected host, or why it is not.
pub type Connection = Result<Connected, HostError>;

/// Output format of `meshup verify`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum VerifyFormat {
    /// Human-readable matrix.
    #[default]
    Text,
    /// Machine-readable results.
    Json,
    /// Graphviz graph of the mesh.
    Dot,
    /// Prometheus metrics for node_exporter's textfile collector.
    Prometheus,
}

/// Options of `meshup verify`.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Where and how to run; `--limit` probes only those hosts (towards every peer).
    pub session: SessionOptions,
    /// Output format.
    pub format: VerifyFormat,
    /// Print `--stats`.
    pub stats: bool,
}

/// Runs every job on its host (`sessions` by node name; a missing or failed session
/// makes the host unreachable), at most `parallel` at once. `on_done` is called after
/// each host. Never fails: a host's failure is its [`HostOutput::Failed`].
pub async fn probe_all(
    jobs: &[HostJob],
    sessions: &BTreeMap<NodeName, Connection>,
    parallel: usize,
    timeout: Duration,
    on_done: &(dyn Fn() + Sync),
) -> BTreeMap<NodeName, HostOutput> {
    let results = fanout::run(jobs.iter().collect(), parallel, |job| async move {
        let out = match sessions.get(&job.node) {
            None => HostOutput::Failed(HostError::NotConnected.to_string()),
            Some(Err(e)) => HostOutput::Failed(e.to_string()),
            Some(Ok(session)) => run_one(session.as_ref(), job, timeout).await,
        };
        on_done();
        Ok::<_, std::convert::Infallible>(out)
    })
    .await;
    results
        .into_iter()
        .map(|(job, out)| {
            let out = match out {
                Ok(o) => o,
                Err(never) => match never {},
            };
            (job.node.clone(), out)
        })
        .collect()
}

async fn run_one(
    session: &dyn crate::transport::Session,
    job: &HostJob,
    timeout: Duration,
) -> HostOutput {
    match session.exec("sh -s", job.script.as_bytes(), timeout).await {
        Err(e) => HostOutput::Failed(e.to_string()),
        Ok(out) => {
            let stdout = out.stdout_str();
            if stdout.contains(&format!("{MARKER}begin ")) {
                HostOutput::Output(stdout)
            } else {
                let stderr = out.stderr_str();
                let reason = stderr
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .unwrap_or("no output");
                HostOutput::Failed(format!(
                    "probe did not run (exit {}): {reason}",
                    out.status
                        .map_or_else(|| "none".to_owned(), |s| s.to_string())
                ))
            }
        }
    }
}

/// Everything `verify` concluded, plus the evidence it came from.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The report (matrix, diagnoses).
    pub report: Report,
    /// The expectation with the keys the hosts reported.
    pub expectation: Expectation,
    /// Firewall evidence per node.
    pub firewall: BTreeMap<NodeName, FirewallEvidence>,
}

/// Joins the hosts' outputs with the plan: parses probes and facts, fills in keys,
/// derives firewall evidence, evaluates, and adds the MTU findings. Pure.
pub fn assemble(
    plan: &VerifyPlan,
    mesh: &Mesh,
    playbooks: &Playbooks,
    outputs: &BTreeMap<NodeName, HostOutput>,
) -> miette::Result<Verdict> {
    let mut probes: BTreeMap<NodeName, NodeProbe> = BTreeMap::new();
    let mut keys: BTreeMap<NodeName, HostKeys> = BTreeMap::new();
    let mut firewall = BTreeMap::new();
    for job in &plan.jobs {
        let Some(HostOutput::Output(text)) = outputs.get(&job.node) else {
            continue;
        };
        let probe = probe::parse(text).ok();
        let host_facts: Option<HostFacts> = facts::parse(text).ok();
        keys.insert(
            job.node.clone(),
            HostKeys::from_host(probe.as_ref(), host_facts.as_ref()),
        );
        let evidence = match &host_facts {
            Some(f) if f.complete => {
                from_mesh::firewall_evidence(playbooks, &f.firewall, job.listen_port)
            }
            _ => FirewallEvidence {
                state: PortState::Unknown,
                firewall: "unknown (facts incomplete)".to_owned(),
            },
        };
        firewall.insert(job.node.clone(), evidence);
        if let Some(p) = probe {
            probes.insert(job.node.clone(), p);
        }
    }
    let mut expectation = plan.expectation.clone();
    from_mesh::fill_keys(&mut expectation, &keys);
    let mut report = evaluate(&expectation, outputs, &firewall);
    report
        .node_diagnoses
        .extend(from_mesh::mtu_findings(mesh, &probes));
    Ok(Verdict {
        report,
        expectation,
        firewall,
    })
}

/// `meshup verify`: exit 0 only when every pair is healthy.
pub fn run(options: &VerifyOptions) -> Result<ExitCode, miette::Report> {
    let mut report = StatsReport::new();
    let t = Instant::now();
    let session = Session::open(&options.session)?;
    let mesh = &session.mesh;
    if mesh.nodes.is_empty() {
        return Err(miette::miette!(
            "{}: no present node to verify",
            session.path().display()
        ));
    }
    let mut plan = VerifyPlan::new(&session.inventory, mesh)?;
    plan.jobs.retain(|job| session.in_limit(&job.node));
    report.phase("load", t);

    let nodes: Vec<_> = plan
        .jobs
        .iter()
        .filter_map(|job| session.inventory.node(&job.node))
        .collect();
    let progress = Progress::new(nodes.iter().map(|n| n.name.as_str()), session.verbose);
    let outputs = session.block_on(async {
        let t = Instant::now();
        let sessions = session.connect(nodes, &progress).await;
        report.phase("connect", t);
        for job in &plan.jobs {
            progress.set(job.node.as_str(), "probing");
        }
        let t = Instant::now();
        let outputs = probe_all(
            &plan.jobs,
            &sessions,
            session.parallel,
            PROBE_TIMEOUT,
            &|| {},
        )
        .await;
        report.phase("probe", t);
        // Sessions close here, before the report is printed.
        drop(sessions);
        outputs
    });
    progress.clear();

    let t = Instant::now();
    let verdict = assemble(&plan, mesh, &session.playbooks, &outputs)?;
    let text = match options.format {
        VerifyFormat::Text => verdict.report.render_text(),
        VerifyFormat::Json => {
            let mut json = verdict.report.render_json();
            json.push('\n');
            json
        }
        VerifyFormat::Dot => verdict.report.render_dot(),
        VerifyFormat::Prometheus => super::prometheus::render(&verdict.report),
    };
    report.phase("evaluate", t);
    print!("{text}");

    if options.stats {
        let n = plan.jobs.len();
        let secs = |name| format!("{:.2} s", report.get(name).as_secs_f64());
        let headline = format!(
            "verify: {n} hosts, {} pairs, wall {:.2} s: load {}, connect {}, probe {}, evaluate {}",
            n * n.saturating_sub(1),
            report.wall().as_secs_f64(),
            secs("load"),
            secs("connect"),
            secs("probe"),
            secs("evaluate"),
        );
        eprint!("{}", report.render(&headline, &session.stats));
    }
    Ok(if verdict.report.all_healthy() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
