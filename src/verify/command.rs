//! The `verify` command: one SSH connection and one exec per host, all hosts in
//! parallel; the exec runs the probe script, then everything is evaluated on the
//! workstation. Only when a pair fails does a second exec run the facts gather on the
//! hosts of the failing pairs: their firewall evidence names what blocks a port, and the
//! digests of their preshared keys (files and live, hashed on the host) name two sides
//! that hold different ones. (The
//! gather is ~20 sections and a few hundred processes per host; run on every host, it
//! was half the CPU a 50-host verify cost.)
use std::collections::{BTreeMap, BTreeSet};
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

use super::evaluate::{HostOutput, evaluate_with_psks};
use super::evidence::PairStatus;
use super::expectation::{Expectation, FirewallEvidence, NodeName, PortState};
use super::from_mesh::{self, HostKeys};
use super::probe::{self, NodeProbe};
use super::report::Report;
use super::script::{MARKER, host_probe_script};
use super::secrets::PskEvidence;

/// How long one host's probe exec may take (the probe itself needs about 5 s).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(120);

/// What runs on one host: its node name, the probe script, the facts gather (run only
/// when one of the host's pairs fails), the listen port the firewall evidence is about.
#[derive(Debug, Clone)]
pub struct HostJob {
    /// Node name.
    pub node: NodeName,
    /// The probe fed to `sh -s`.
    pub script: String,
    /// The facts gather fed to `sh -s` in the second exec.
    pub gather: String,
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
            // Per-peer preshared key files only matter when the mesh uses them.
            let peers: Vec<String> = if settings.preshared_keys {
                mesh.peers(spec)
                    .iter()
                    .map(|p| p.name.to_string())
                    .collect()
            } else {
                Vec::new()
            };
            let params = GatherParams::new(
                settings.interface.as_str(),
                settings.config_dir.as_str(),
                spec.listen_port,
                &peers,
            )
            .into_diagnostic()?
            .with_live_psks();
            let gather = facts::gather_script(&params);
            let mut script = host_probe_script(&expectation, &node, settings.config_dir.as_str())
                .into_diagnostic()?;
            if let Some(exit) = super::exit::script(mesh, spec) {
                script.push_str(&exit);
            }
            jobs.push(HostJob {
                node,
                script,
                gather,
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
    /// Text output: the full N×N matrix even above [`super::report::MATRIX_MAX_NODES`].
    pub matrix: bool,
}

/// Runs every job's probe on its host (`sessions` by node name; a missing or failed
/// session makes the host unreachable), at most `parallel` at once. `on_done` is called
/// after each host. Never fails: a host's failure is its [`HostOutput::Failed`].
pub async fn probe_all(
    jobs: &[HostJob],
    sessions: &BTreeMap<NodeName, Connection>,
    parallel: usize,
    timeout: Duration,
    on_done: &(dyn Fn() + Sync),
) -> BTreeMap<NodeName, HostOutput> {
    run_all(jobs, sessions, parallel, timeout, on_done, Script::Probe).await
}

/// Runs the facts gather of each job in `jobs` (see [`hosts_needing_facts`]) on its
/// host, at most `parallel` at once: the gather's output by node, hosts that failed left
/// out (their evidence stays unknown).
pub async fn gather_facts(
    jobs: &[HostJob],
    sessions: &BTreeMap<NodeName, Connection>,
    parallel: usize,
    timeout: Duration,
) -> BTreeMap<NodeName, String> {
    run_all(jobs, sessions, parallel, timeout, &|| {}, Script::Gather)
        .await
        .into_iter()
        .filter_map(|(node, out)| match out {
            HostOutput::Output(text) => Some((node, text)),
            HostOutput::Failed(_) => None,
        })
        .collect()
}

/// The hosts whose facts the diagnoses need: both ends of every failing pair.
pub fn hosts_needing_facts(report: &Report) -> BTreeSet<String> {
    report
        .pairs
        .iter()
        .filter(|p| p.status == PairStatus::Failing)
        .flat_map(|p| [p.from.clone(), p.to.clone()])
        .collect()
}

#[derive(Clone, Copy)]
enum Script {
    Probe,
    Gather,
}

async fn run_all(
    jobs: &[HostJob],
    sessions: &BTreeMap<NodeName, Connection>,
    parallel: usize,
    timeout: Duration,
    on_done: &(dyn Fn() + Sync),
    which: Script,
) -> BTreeMap<NodeName, HostOutput> {
    let results = fanout::run(jobs.iter().collect(), parallel, |job| async move {
        let out = match sessions.get(&job.node) {
            None => HostOutput::Failed(HostError::NotConnected),
            Some(Err(e)) => HostOutput::Failed(e.clone()),
            Some(Ok(session)) => run_one(session.as_ref(), job, timeout, which).await,
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
    which: Script,
) -> HostOutput {
    let (script, begin) = match which {
        Script::Probe => (&job.script, format!("{MARKER}begin ")),
        Script::Gather => (&job.gather, "@@meshup:gather:".to_owned()),
    };
    match session.exec("sh -s", script.as_bytes(), timeout).await {
        Err(e) => HostOutput::Failed(e.into()),
        Ok(out) => {
            let stdout = out.stdout_str();
            if stdout.contains(&begin) {
                HostOutput::Output(stdout)
            } else {
                let stderr = out.stderr_str();
                let reason = stderr
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .unwrap_or("no output");
                HostOutput::Failed(HostError::ProbeNotRun {
                    status: out.status,
                    reason: reason.to_owned(),
                })
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

/// Joins the hosts' outputs with the plan: parses probes and facts (from the probe
/// output itself when it ran the gather inside), fills in keys, derives firewall
/// evidence, evaluates, and adds the MTU findings. Pure.
pub fn assemble(
    plan: &VerifyPlan,
    mesh: &Mesh,
    playbooks: &Playbooks,
    outputs: &BTreeMap<NodeName, HostOutput>,
) -> miette::Result<Verdict> {
    assemble_with_facts(plan, mesh, playbooks, outputs, &BTreeMap::new())
}

/// [`assemble`] with the output of a separate facts gather for some hosts.
pub fn assemble_with_facts(
    plan: &VerifyPlan,
    mesh: &Mesh,
    playbooks: &Playbooks,
    outputs: &BTreeMap<NodeName, HostOutput>,
    gathered: &BTreeMap<NodeName, String>,
) -> miette::Result<Verdict> {
    let mut probes: BTreeMap<NodeName, NodeProbe> = BTreeMap::new();
    let mut keys: BTreeMap<NodeName, HostKeys> = BTreeMap::new();
    let mut firewall = BTreeMap::new();
    let mut psks = BTreeMap::new();
    for job in &plan.jobs {
        let Some(HostOutput::Output(text)) = outputs.get(&job.node) else {
            continue;
        };
        let probe = probe::parse(text).ok();
        let facts_text = gathered.get(&job.node).unwrap_or(text);
        let host_facts: Option<HostFacts> = facts::parse(facts_text).ok();
        keys.insert(
            job.node.clone(),
            HostKeys::from_host(probe.as_ref(), host_facts.as_ref()),
        );
        let mut evidence = match &host_facts {
            Some(f) if f.complete => {
                from_mesh::firewall_evidence(playbooks, &f.firewall, job.listen_port)
            }
            _ => FirewallEvidence {
                state: PortState::Unknown,
                firewall: "unknown (facts incomplete)".to_owned(),
                mesh_filter: None,
            },
        };
        if let Some(f) = host_facts.as_ref().filter(|f| f.complete) {
            let interface = plan.expectation.interface.as_str();
            evidence.mesh_filter = from_mesh::mesh_filter(playbooks, &f.firewall, interface);
            // PSK files are only asked for (and compared) when the mesh uses them.
            let peers = plan
                .expectation
                .node(&job.node)
                .filter(|_| mesh.settings.preshared_keys)
                .map(|n| n.peers.iter().map(|p| p.name.as_str()).collect::<Vec<_>>())
                .unwrap_or_default();
            psks.insert(job.node.clone(), PskEvidence::from_keys(&f.keys, peers));
        }
        firewall.insert(job.node.clone(), evidence);
        if let Some(p) = probe {
            probes.insert(job.node.clone(), p);
        }
    }
    let mut expectation = plan.expectation.clone();
    super::nat::expect_direct(
        &mut expectation,
        mesh,
        super::nat::live_direct(mesh, &probes, &keys),
    );
    from_mesh::fill_keys(&mut expectation, &keys);
    let mut report = evaluate_with_psks(&expectation, outputs, &firewall, &psks);
    report.nat_paths = super::nat::paths(mesh, &probes, &keys, &|from, to| {
        report.pairs.iter().any(|p| {
            p.from == from && p.to == to && p.status == super::evidence::PairStatus::Failing
        })
    });
    report
        .node_diagnoses
        .extend(from_mesh::mtu_findings(mesh, &probes));
    report.exits = plan
        .jobs
        .iter()
        .filter_map(|job| match outputs.get(&job.node) {
            Some(HostOutput::Output(text)) => {
                super::exit::parse(job.node.as_str(), mesh.settings.interface.as_str(), text)
            }
            _ => None,
        })
        .collect();
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
    let verdict = session.block_on(async {
        // Each host's probe starts as soon as its connection is up: no barrier after the
        // connect phase, so the slowest handshake no longer delays every probe.
        let t = Instant::now();
        let slowest_connect = std::sync::Mutex::new(Duration::ZERO);
        let jobs: BTreeMap<&NodeName, &HostJob> = plan.jobs.iter().map(|j| (&j.node, j)).collect();
        let done = fanout::run(nodes, session.parallel, |node| {
            let jobs = &jobs;
            let slowest_connect = &slowest_connect;
            let progress = &progress;
            let session = &session;
            async move {
                let conn = session.connect_one(node, progress).await;
                {
                    let mut slowest = slowest_connect.lock().unwrap_or_else(|e| e.into_inner());
                    *slowest = (*slowest).max(t.elapsed());
                }
                let out = match (&conn, jobs.get(&node.name)) {
                    (Ok(c), Some(job)) => {
                        progress.set(node.name.as_str(), "probing");
                        run_one(c.as_ref(), job, PROBE_TIMEOUT, Script::Probe).await
                    }
                    (Err(e), _) => HostOutput::Failed(e.clone()),
                    (Ok(_), None) => HostOutput::Failed(HostError::NotConnected),
                };
                Ok::<_, std::convert::Infallible>((conn, out))
            }
        })
        .await;
        let mut sessions: BTreeMap<NodeName, Connection> = BTreeMap::new();
        let mut outputs: BTreeMap<NodeName, HostOutput> = BTreeMap::new();
        for (node, r) in done {
            let (conn, out) = match r {
                Ok(v) => v,
                Err(never) => match never {},
            };
            sessions.insert(node.name.clone(), conn);
            outputs.insert(node.name.clone(), out);
        }
        let connect = *slowest_connect.lock().unwrap_or_else(|e| e.into_inner());
        report.add_phase("connect", connect);
        report.add_phase("probe", t.elapsed().saturating_sub(connect));
        let t = Instant::now();
        let mut verdict = assemble(&plan, mesh, &session.playbooks, &outputs);
        report.phase("evaluate", t);
        let wanted = verdict
            .as_ref()
            .map(|v| hosts_needing_facts(&v.report))
            .unwrap_or_default();
        if !wanted.is_empty() {
            let t = Instant::now();
            let jobs: Vec<HostJob> = plan
                .jobs
                .iter()
                .filter(|j| wanted.contains(j.node.as_str()))
                .cloned()
                .collect();
            for job in &jobs {
                progress.set(job.node.as_str(), "gathering facts");
            }
            let gathered = gather_facts(&jobs, &sessions, session.parallel, PROBE_TIMEOUT).await;
            report.phase("facts", t);
            let t = Instant::now();
            verdict = assemble_with_facts(&plan, mesh, &session.playbooks, &outputs, &gathered);
            report.phase("evaluate", t);
        }
        // Sessions close here, before the report is printed.
        drop(sessions);
        verdict
    });
    progress.clear();
    let mut verdict = verdict?;
    if session.limit.is_some() {
        verdict
            .report
            .limit_to(&|n: &str| plan.jobs.iter().any(|j| j.node.as_str() == n));
    }

    let t = Instant::now();
    let text = match options.format {
        VerifyFormat::Text if options.matrix => verdict.report.render_text_with_matrix(),
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
