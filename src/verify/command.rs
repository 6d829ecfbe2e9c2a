//! The `verify` command: one SSH connection and one exec per host, all hosts in
//! parallel; the exec runs the probe script with the facts gather inside it (while the
//! pings are in flight), then everything is evaluated on the workstation.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use miette::{IntoDiagnostic as _, WrapErr as _};

use crate::address::{self, AddressLock};
use crate::cli::{Cli, VerifyArgs, VerifyFormat};
use crate::facts::{self, GatherParams, HostFacts};
use crate::fanout;
use crate::hosts;
use crate::inventory::Inventory;
use crate::playbook::Playbooks;
use crate::topology::Mesh;
use crate::transport::{Session, Stats};

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
            let peers: Vec<String> = spec.peers.iter().map(|p| p.name.to_string()).collect();
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
pub type Connection = Result<Arc<dyn Session>, String>;

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
            None => HostOutput::Failed("not connected".to_owned()),
            Some(Err(e)) => HostOutput::Failed(e.clone()),
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

async fn run_one(session: &dyn Session, job: &HostJob, timeout: Duration) -> HostOutput {
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

/// Wall-clock time of each phase, for `--stats`.
#[derive(Debug, Clone, Copy, Default)]
struct Phases {
    load: Duration,
    connect: Duration,
    probe: Duration,
    evaluate: Duration,
}

/// A spinner on stderr, only when stderr is a terminal.
struct Progress(Option<ProgressBar>);

impl Progress {
    fn new() -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {pos}/{len} {elapsed}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress(Some(bar))
    }

    fn phase(&self, message: &'static str, total: usize) {
        if let Some(bar) = &self.0 {
            bar.set_message(message);
            bar.set_length(total as u64);
            bar.set_position(0);
        }
    }

    fn tick(&self) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// `meshup verify`: exit 0 only when every pair is healthy.
pub fn run(cli: &Cli, args: &VerifyArgs) -> Result<ExitCode, miette::Report> {
    let started = Instant::now();
    let mut phases = Phases::default();
    let inventory = Inventory::load(&args.inventory)?;
    let lock = AddressLock::load(inventory.lock_path())?;
    let (allocation, _) = address::allocate(&inventory, &lock)?;
    let mesh = Mesh::build(&inventory, &allocation);
    if mesh.nodes.is_empty() {
        return Err(miette::miette!(
            "{}: no present node to verify",
            inventory.path().display()
        ));
    }
    let plan = VerifyPlan::new(&inventory, &mesh)?;
    let playbooks = Playbooks::embedded().into_diagnostic()?;
    phases.load = started.elapsed();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .into_diagnostic()
        .wrap_err("starting the async runtime")?;
    let stats = Arc::new(Stats::new());
    let parallel = usize::from(cli.parallel);
    let progress = Progress::new();
    let nodes: Vec<_> = mesh
        .nodes
        .iter()
        .filter_map(|spec| inventory.node(&spec.name))
        .collect();

    let outputs = runtime.block_on(async {
        let t = Instant::now();
        progress.phase("connecting", nodes.len());
        let connected = fanout::run(nodes, parallel, |node| {
            let stats = &stats;
            let progress = &progress;
            async move {
                let result = hosts::connect(node, stats).await;
                progress.tick();
                Ok::<_, std::convert::Infallible>(result)
            }
        })
        .await;
        let mut sessions: BTreeMap<NodeName, Connection> = BTreeMap::new();
        for (node, result) in connected {
            let name = node.name.clone();
            let connection = match result {
                Ok(Ok(session)) => Ok(session),
                Ok(Err(e)) => Err(e.to_string()),
                Err(never) => match never {},
            };
            sessions.insert(name, connection);
        }
        phases.connect = t.elapsed();

        let t = Instant::now();
        progress.phase("probing", plan.jobs.len());
        let outputs = probe_all(&plan.jobs, &sessions, parallel, PROBE_TIMEOUT, &|| {
            progress.tick()
        })
        .await;
        phases.probe = t.elapsed();
        // Sessions close here, before the report is printed.
        drop(sessions);
        outputs
    });
    progress.finish();

    let t = Instant::now();
    let verdict = assemble(&plan, &mesh, &playbooks, &outputs)?;
    let text = match args.format {
        VerifyFormat::Text => verdict.report.render_text(),
        VerifyFormat::Json => {
            let mut json = verdict.report.render_json();
            json.push('\n');
            json
        }
        VerifyFormat::Dot => verdict.report.render_dot(),
    };
    phases.evaluate = t.elapsed();
    print!("{text}");

    if args.stats {
        eprint!("{}", stats_text(started.elapsed(), &phases, &stats, &plan));
    }
    Ok(if verdict.report.all_healthy() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn stats_text(wall: Duration, phases: &Phases, stats: &Stats, plan: &VerifyPlan) -> String {
    let mut out = String::new();
    let n = plan.jobs.len();
    let _ = writeln!(
        out,
        "verify: {n} hosts, {} pairs, wall {}: load {}, connect {}, probe {}, evaluate {}",
        n * n.saturating_sub(1),
        secs(wall),
        secs(phases.load),
        secs(phases.connect),
        secs(phases.probe),
        secs(phases.evaluate),
    );
    let snapshot = stats.snapshot();
    let (connections, execs) = snapshot
        .values()
        .fold((0, 0), |(c, e), s| (c + s.connections, e + s.execs));
    let _ = writeln!(out, "ssh: {connections} connections, {execs} execs");
    for (host, s) in &snapshot {
        let _ = writeln!(
            out,
            "  {host}: {} connection{}, {} exec{}",
            s.connections,
            if s.connections == 1 { "" } else { "s" },
            s.execs,
            if s.execs == 1 { "" } else { "s" },
        );
    }
    out
}
