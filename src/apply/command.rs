//! The `plan` and `apply` commands: connect, gather, plan, and (apply) execute the plan
//! in phases, one SSH exec per host per phase, all hosts in parallel.

use super::plan::{self, Activation, HostPlan, HostState, KeyBook, Plan, PlanInput};
use super::progress::Progress;
use super::script::{self, ConvergeScript, Forwarding, PrepareScript};
use crate::address::{self, AddressLock};
use crate::cli::{ApplyArgs, Cli, PlanArgs, PlanFormat};
use crate::facts::{self, GatherParams, HostFacts};
use crate::fanout;
use crate::hosts::{self, Connected};
use crate::inventory::{Inventory, Node, NodeName};
use crate::playbook::Playbooks;
use crate::secret::Secret;
use crate::topology::Mesh;
use crate::transport::Stats;
use miette::{IntoDiagnostic, WrapErr};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const GATHER_TIMEOUT: Duration = Duration::from_secs(60);
const PREPARE_TIMEOUT: Duration = Duration::from_secs(900);
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(180);

/// Everything loaded from the workstation before any host is contacted.
pub struct Context {
    /// The inventory.
    pub inventory: Inventory,
    /// The address lock as read.
    pub lock: AddressLock,
    /// The lock with this run's allocations.
    pub updated_lock: AddressLock,
    /// The mesh.
    pub mesh: Mesh,
    /// Recipes.
    pub playbooks: Playbooks,
}

impl Context {
    /// Loads inventory, lock and playbooks and builds the mesh.
    pub fn load(path: &Path, playbooks: Option<&PathBuf>) -> miette::Result<Context> {
        let inventory = Inventory::load(path)?;
        let lock = AddressLock::load(inventory.lock_path())?;
        let (allocation, updated_lock) = address::allocate(&inventory, &lock)?;
        let mesh = Mesh::build(&inventory, &allocation);
        let playbooks = match playbooks {
            Some(dir) => Playbooks::load_dir(dir).into_diagnostic()?,
            None => Playbooks::embedded().into_diagnostic()?,
        };
        Ok(Context {
            inventory,
            lock,
            updated_lock,
            mesh,
            playbooks,
        })
    }

    /// Nodes meshup talks to: present nodes and absent ones (to remove).
    pub fn nodes(&self) -> Vec<&Node> {
        self.inventory.nodes().iter().collect()
    }

    fn gather_params(&self, node: &Node) -> Result<GatherParams, String> {
        let s = &self.mesh.settings;
        let peers: Vec<String> = self
            .mesh
            .node(&node.name)
            .map(|spec| spec.peers.iter().map(|p| p.name.to_string()).collect())
            .unwrap_or_default();
        GatherParams::new(
            s.interface.as_str(),
            s.config_dir.as_str(),
            node.listen_port,
            &peers,
        )
        .map_err(|e| e.to_string())
    }
}

fn limit_set(ctx: &Context, limit: &[String]) -> miette::Result<Option<BTreeSet<NodeName>>> {
    if limit.is_empty() {
        return Ok(None);
    }
    let mut set = BTreeSet::new();
    for name in limit {
        let node = ctx
            .inventory
            .nodes()
            .iter()
            .find(|n| n.name.as_str() == name.trim())
            .ok_or_else(|| {
                miette::miette!("--limit names `{name}`, which is not a node of the inventory")
            })?;
        set.insert(node.name.clone());
    }
    Ok(Some(set))
}

/// Connected sessions and gathered facts of one run.
struct Gathered {
    sessions: BTreeMap<NodeName, Connected>,
    facts: BTreeMap<NodeName, Result<HostFacts, String>>,
}

async fn connect_and_gather(
    ctx: &Context,
    parallel: usize,
    stats: &Arc<Stats>,
    progress: &Progress,
) -> Gathered {
    let nodes = ctx.nodes();
    let mut sessions = BTreeMap::new();
    let mut facts = BTreeMap::new();
    let outcomes = fanout::run(nodes, parallel, |node| async move {
        progress.set(node.name.as_str(), "connecting");
        let session = hosts::connect(node, stats)
            .await
            .map_err(|e| e.to_string())?;
        progress.set(node.name.as_str(), "gathering facts");
        let params = ctx.gather_params(node)?;
        let script = facts::gather_script(&params);
        let out = session
            .exec("sh -s", script.as_bytes(), GATHER_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        let parsed = facts::parse(&out.stdout_str()).map_err(|e| {
            let stderr = out.stderr_str();
            format!(
                "fact gathering failed: {e}{}",
                if stderr.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {}", stderr.trim())
                }
            )
        })?;
        progress.set(node.name.as_str(), "gathered");
        Ok::<_, String>((session, parsed))
    })
    .await;
    for (node, outcome) in outcomes {
        match outcome {
            Ok((session, f)) => {
                sessions.insert(node.name.clone(), session);
                facts.insert(node.name.clone(), Ok(f));
            }
            Err(e) => {
                progress.finish(node.name.as_str(), format!("unreachable: {e}"));
                facts.insert(node.name.clone(), Err(e));
            }
        }
    }
    Gathered { sessions, facts }
}

/// Renders a plan for people.
pub fn render_plan(plan: &Plan, inventory: &Path, verbose: bool) -> String {
    let mut out = String::new();
    for host in &plan.hosts {
        match &host.state {
            HostState::Unreachable(e) => {
                let _ = writeln!(out, "{}: UNREACHABLE: {e}\n", host.node);
                continue;
            }
            HostState::Error(e) => {
                let _ = writeln!(out, "{}: ERROR: {e}\n", host.node);
                continue;
            }
            HostState::Skipped => {
                if verbose {
                    let _ = writeln!(out, "{}: not in --limit (read only)\n", host.node);
                }
                continue;
            }
            HostState::Ready => {}
        }
        let what = host.host.as_deref().unwrap_or("");
        if host.changes.is_empty() {
            let _ = writeln!(out, "{}: no changes ({what})", host.node);
        } else {
            let _ = writeln!(
                out,
                "{}: {} change{} ({what})",
                host.node,
                host.changes.len(),
                if host.changes.len() == 1 { "" } else { "s" }
            );
        }
        for change in &host.changes {
            let _ = writeln!(out, "  {} {}", change.action.symbol(), change.summary);
            let _ = writeln!(out, "      why: {}", change.reason);
            if verbose {
                for cmd in &change.commands {
                    let _ = writeln!(out, "      run: {cmd}");
                }
            }
            if let Some(diff) = &change.diff {
                for line in diff.lines() {
                    let _ = writeln!(out, "      {line}");
                }
            }
        }
        if verbose || host.changes.is_empty() {
            for reason in &host.unchanged {
                let _ = writeln!(out, "  = {reason}");
            }
        }
        for warning in &host.warnings {
            let _ = writeln!(out, "  ! warning: {warning}");
        }
        out.push('\n');
    }
    let total = plan
        .hosts
        .iter()
        .filter(|h| h.state != HostState::Skipped)
        .count();
    let changing = plan.hosts.iter().filter(|h| h.has_changes()).count();
    let failed = plan.hosts.iter().filter(|h| h.failed()).count();
    let unchanged = total - changing - failed;
    if plan.is_empty() && failed == 0 {
        let _ = writeln!(
            out,
            "No changes. The mesh matches the inventory ({}).",
            inventory.display()
        );
    } else {
        let _ = writeln!(
            out,
            "{total} host{}: {changing} to change, {unchanged} unchanged{}",
            if total == 1 { "" } else { "s" },
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            }
        );
    }
    out
}

fn runtime() -> miette::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .into_diagnostic()
        .wrap_err("cannot start the async runtime")
}

/// `meshup plan`.
pub fn plan(cli: &Cli, args: &PlanArgs) -> Result<ExitCode, miette::Report> {
    let ctx = Context::load(&args.inventory, args.playbooks.as_ref())?;
    let limit = limit_set(&ctx, &args.limit)?;
    let stats = Arc::new(Stats::new());
    let rt = runtime()?;
    let progress = Progress::new(
        ctx.inventory.nodes().iter().map(|n| n.name.as_str()),
        cli.verbose > 0,
    );
    let gathered = rt.block_on(connect_and_gather(
        &ctx,
        usize::from(cli.parallel),
        &stats,
        &progress,
    ));
    progress.clear();
    let input = PlanInput {
        inventory: &ctx.inventory,
        mesh: &ctx.mesh,
        playbooks: &ctx.playbooks,
        facts: &gathered.facts,
        limit: limit.as_ref(),
    };
    let (plan, _keys) = plan::compute(&input);
    match args.format {
        PlanFormat::Text => print!("{}", render_plan(&plan, &args.inventory, cli.verbose > 0)),
        PlanFormat::Json => println!("{}", serde_json::to_string_pretty(&plan).into_diagnostic()?),
    }
    // Connections close when their sessions drop, inside the runtime.
    rt.block_on(async move { drop(gathered.sessions) });
    Ok(if plan.has_errors() {
        ExitCode::from(1)
    } else if args.detailed_exitcode && !plan.is_empty() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Outcome of one host in an apply run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOutcome {
    /// Nothing needed changing.
    Ok,
    /// Changes applied.
    Changed(usize),
    /// Not touched (outside --limit).
    Skipped,
    /// Unreachable.
    Unreachable(String),
    /// Failed (and rolled back where it had started).
    Failed(String),
}

fn confirm(plan: &Plan) -> miette::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(miette::miette!(
            help = "review the plan with `meshup plan`, then run `meshup apply --yes`",
            "not on a terminal, so apply cannot ask for confirmation"
        ));
    }
    let n = plan.hosts.iter().filter(|h| h.has_changes()).count();
    eprint!(
        "Apply these changes to {n} host{}? Only 'yes' is accepted: ",
        if n == 1 { "" } else { "s" }
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .into_diagnostic()?;
    Ok(answer.trim() == "yes")
}

/// A fresh random preshared key (what `wg genpsk` makes: 32 random bytes, base64).
fn new_psk() -> Secret {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    bytes.fill(0);
    Secret::new(text)
}

/// Runs a marker script (`sh -s`) on a host: its markers when it reached `done`, else
/// why it did not (see [`failure_message`]).
async fn run_marked(
    session: &Connected,
    script: &[u8],
    timeout: std::time::Duration,
) -> Result<Vec<script::Marker>, String> {
    let out = session
        .exec("sh -s", script, timeout)
        .await
        .map_err(|e| e.to_string())?;
    let (markers, stderr) = marker_summary(&out);
    if !out.success() || !markers.iter().any(|m| m.kind == "done") {
        return Err(failure_message(&markers, &stderr, out.status));
    }
    Ok(markers)
}

fn marker_summary(out: &crate::transport::ExecOutput) -> (Vec<script::Marker>, String) {
    let markers = script::parse_markers(&out.stdout_str());
    let stderr: String = out
        .stderr_str()
        .lines()
        .filter(|l| {
            !l.contains("kernel module") && !l.contains("wireguard-go") && !l.starts_with("[#]")
        })
        .collect::<Vec<_>>()
        .join("; ");
    (markers, stderr)
}

fn failure_message(markers: &[script::Marker], stderr: &str, status: Option<u32>) -> String {
    let mut msg = if let Some(m) = markers.iter().find(|m| m.kind == "rollback") {
        format!("rolled back to the previous config: {}", m.value)
    } else if let Some(m) = markers.iter().find(|m| m.kind == "fail") {
        m.value.clone()
    } else if let Some(m) = markers.iter().find(|m| m.kind == "locked") {
        format!("another meshup run holds the lock {}", m.value)
    } else {
        format!(
            "exit status {}",
            status.map_or_else(|| "none".to_string(), |s| s.to_string())
        )
    };
    if !stderr.trim().is_empty() {
        let _ = write!(msg, " ({})", stderr.trim());
    }
    msg
}

/// `meshup apply`.
pub fn apply(cli: &Cli, args: &ApplyArgs) -> Result<ExitCode, miette::Report> {
    let started = Instant::now();
    let ctx = Context::load(&args.inventory, args.playbooks.as_ref())?;
    let limit = limit_set(&ctx, &args.limit)?;
    let stats = Arc::new(Stats::new());
    let rt = runtime()?;
    let parallel = usize::from(cli.parallel);
    let verbose = cli.verbose > 0;
    let mut timings: Vec<(&str, Duration)> = Vec::new();

    let progress = Progress::new(
        ctx.inventory.nodes().iter().map(|n| n.name.as_str()),
        verbose,
    );
    let t = Instant::now();
    let gathered = rt.block_on(connect_and_gather(&ctx, parallel, &stats, &progress));
    timings.push(("connect + gather", t.elapsed()));
    let input = PlanInput {
        inventory: &ctx.inventory,
        mesh: &ctx.mesh,
        playbooks: &ctx.playbooks,
        facts: &gathered.facts,
        limit: limit.as_ref(),
    };
    let (plan, mut keys) = plan::compute(&input);
    progress.clear();

    if plan.is_empty() {
        print!("{}", render_plan(&plan, &args.inventory, verbose));
        let outcomes: BTreeMap<NodeName, HostOutcome> = plan
            .hosts
            .iter()
            .map(|h| (h.node.clone(), initial_outcome(h)))
            .collect();
        save_lock(&ctx)?;
        print_recap(&outcomes);
        if args.stats {
            print_stats(&stats, &timings, started.elapsed());
        }
        return Ok(exit_for(&outcomes));
    }
    print!("{}", render_plan(&plan, &args.inventory, verbose));
    if !args.yes && !confirm(&plan)? {
        eprintln!("Apply cancelled; nothing was changed.");
        return Ok(ExitCode::from(1));
    }

    let mut outcomes: BTreeMap<NodeName, HostOutcome> = plan
        .hosts
        .iter()
        .map(|h| (h.node.clone(), initial_outcome(h)))
        .collect();
    let progress = Progress::new(
        plan.hosts
            .iter()
            .filter(|h| h.has_changes())
            .map(|h| h.node.as_str()),
        verbose,
    );
    let settings = &ctx.mesh.settings;
    let config_dir = settings.config_dir.as_str();
    let iface = settings.interface.as_str();

    // Phase 2: install, keys, preshared keys.
    let mut psks: BTreeMap<NodeName, Vec<(String, Secret)>> = BTreeMap::new();
    for (a, b) in &plan.new_psk_pairs {
        let psk = new_psk();
        let copy = Secret::new(psk.expose().to_vec());
        psks.entry(a.clone())
            .or_default()
            .push((b.to_string(), psk));
        psks.entry(b.clone())
            .or_default()
            .push((a.to_string(), copy));
    }
    let prepare: Vec<(&HostPlan, PrepareScript)> = plan
        .hosts
        .iter()
        .filter(|h| h.has_changes())
        .filter_map(|h| {
            let script = PrepareScript {
                install: h.steps.install.clone(),
                generate_key: h.steps.keygen,
                psks: psks.remove(&h.node).unwrap_or_default(),
            };
            (!script.is_empty()).then_some((h, script))
        })
        .collect();
    let t = Instant::now();
    let results = rt.block_on(fanout::run(
        prepare.iter().collect(),
        parallel,
        |(host, script)| {
            let session = gathered.sessions.get(&host.node).cloned();
            let progress = &progress;
            async move {
                let session = session.ok_or_else(|| "no session".to_string())?;
                progress.set(
                    host.node.as_str(),
                    if script.install.is_some() {
                        "installing WireGuard"
                    } else {
                        "preparing keys"
                    },
                );
                let text = script.render(config_dir, iface);
                let markers = run_marked(&session, text.expose(), PREPARE_TIMEOUT).await?;
                Ok(markers
                    .iter()
                    .find(|m| m.kind == "pubkey")
                    .map(|m| m.value.clone()))
            }
        },
    ));
    timings.push(("prepare (install, keys)", t.elapsed()));
    for ((host, _), result) in results {
        match result {
            Ok(Some(key)) => match key.parse() {
                Ok(k) => {
                    keys.known.insert(host.node.clone(), k);
                }
                Err(_) => {
                    outcomes.insert(
                        host.node.clone(),
                        HostOutcome::Failed("the host returned an invalid public key".into()),
                    );
                }
            },
            Ok(None) => {
                outcomes.insert(
                    host.node.clone(),
                    HostOutcome::Failed("no public key after key generation".into()),
                );
            }
            Err(e) => {
                progress.finish(host.node.as_str(), format!("failed: {e}"));
                outcomes.insert(host.node.clone(), HostOutcome::Failed(e));
            }
        }
    }
    // Keys that were to be generated and were not are now simply unknown.
    keys.pending.clear();

    // Phase 3: converge.
    let converge: Vec<(&HostPlan, ConvergeScript)> = plan
        .hosts
        .iter()
        .filter(|h| {
            h.has_changes() && !matches!(outcomes.get(&h.node), Some(HostOutcome::Failed(_)))
        })
        .map(|h| (h, converge_script(&ctx.mesh, &keys, h)))
        .collect();
    let t = Instant::now();
    let results = rt.block_on(fanout::run(
        converge.iter().collect(),
        parallel,
        |(host, script)| {
            let session = gathered.sessions.get(&host.node).cloned();
            let progress = &progress;
            async move {
                let session = session.ok_or_else(|| "no session".to_string())?;
                progress.set(host.node.as_str(), "converging");
                let text = script.render(config_dir, iface);
                run_marked(&session, text.as_bytes(), CONVERGE_TIMEOUT).await?;
                Ok(())
            }
        },
    ));
    timings.push(("converge", t.elapsed()));
    for ((host, _), result) in results {
        match result {
            Ok(()) => {
                progress.finish(host.node.as_str(), "changed");
                outcomes.insert(host.node.clone(), HostOutcome::Changed(host.changes.len()));
            }
            Err(e) => {
                progress.finish(host.node.as_str(), format!("failed: {e}"));
                outcomes.insert(host.node.clone(), HostOutcome::Failed(e));
            }
        }
    }
    progress.clear();
    save_lock(&ctx)?;
    print_recap(&outcomes);
    if args.stats {
        print_stats(&stats, &timings, started.elapsed());
    }
    // Connections close when their sessions drop, inside the runtime.
    rt.block_on(async move { drop(gathered.sessions) });
    Ok(exit_for(&outcomes))
}

fn initial_outcome(h: &HostPlan) -> HostOutcome {
    match &h.state {
        HostState::Unreachable(e) => HostOutcome::Unreachable(e.clone()),
        HostState::Error(e) => HostOutcome::Failed(e.clone()),
        HostState::Skipped => HostOutcome::Skipped,
        HostState::Ready if h.changes.is_empty() => HostOutcome::Ok,
        HostState::Ready => HostOutcome::Changed(0),
    }
}

fn converge_script(mesh: &Mesh, keys: &KeyBook, host: &HostPlan) -> ConvergeScript {
    let spec = mesh.node(&host.node);
    let config = (host.steps.write_config).then(|| keys.render(mesh, &host.node).0);
    let activation = match &host.steps.activation {
        None | Some(Activation::None) => script::Activation::None,
        Some(Activation::LiveReload) => script::Activation::LiveReload,
        Some(Activation::Start(cmd)) => script::Activation::Start(cmd.clone()),
    };
    ConvergeScript {
        config,
        remove_psks: host.steps.remove_psks.clone(),
        firewall: host.steps.firewall.clone(),
        forwarding: host.steps.forwarding.map(|ipv6| Forwarding { ipv6 }),
        activation,
        enable_only: host.steps.enable_only.clone(),
        addresses: spec
            .map(|s| {
                s.interface_addresses
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        mtu: spec.and_then(|s| s.mtu),
        expect_public_key: if host.steps.teardown.is_some() {
            None
        } else {
            keys.get(&host.node).map(|k| k.to_string())
        },
        teardown: host.steps.teardown.clone(),
    }
}

fn save_lock(ctx: &Context) -> miette::Result<()> {
    if ctx.updated_lock != ctx.lock {
        ctx.updated_lock
            .save(ctx.inventory.lock_path())
            .into_diagnostic()
            .wrap_err_with(|| {
                format!(
                    "cannot write the address lock {}",
                    ctx.inventory.lock_path().display()
                )
            })?;
    }
    Ok(())
}

fn print_recap(outcomes: &BTreeMap<NodeName, HostOutcome>) {
    let width = outcomes.keys().map(|n| n.as_str().len()).max().unwrap_or(4);
    println!("\nRECAP");
    for (node, outcome) in outcomes {
        let text = match outcome {
            HostOutcome::Ok => "ok".to_string(),
            HostOutcome::Changed(n) => {
                format!("changed ({n} change{})", if *n == 1 { "" } else { "s" })
            }
            HostOutcome::Skipped => "skipped (not in --limit)".to_string(),
            HostOutcome::Unreachable(e) => format!("UNREACHABLE: {e}"),
            HostOutcome::Failed(e) => format!("FAILED: {e}"),
        };
        println!("  {:<width$}  {text}", node.as_str());
    }
    let count = |f: fn(&HostOutcome) -> bool| outcomes.values().filter(|o| f(o)).count();
    println!(
        "  ok={} changed={} failed={} unreachable={} skipped={}",
        count(|o| matches!(o, HostOutcome::Ok)),
        count(|o| matches!(o, HostOutcome::Changed(_))),
        count(|o| matches!(o, HostOutcome::Failed(_))),
        count(|o| matches!(o, HostOutcome::Unreachable(_))),
        count(|o| matches!(o, HostOutcome::Skipped)),
    );
}

fn exit_for(outcomes: &BTreeMap<NodeName, HostOutcome>) -> ExitCode {
    if outcomes
        .values()
        .any(|o| matches!(o, HostOutcome::Failed(_) | HostOutcome::Unreachable(_)))
    {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Peak resident memory of this process (VmHWM), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Prints timings and SSH counters to stderr.
pub fn print_stats(stats: &Stats, timings: &[(&str, Duration)], total: Duration) {
    let mut out = String::from("\nSTATS\n");
    for (phase, d) in timings {
        let _ = writeln!(out, "  phase {phase:<24} {:>8.3} s", d.as_secs_f64());
    }
    let _ = writeln!(out, "  total {:<24} {:>8.3} s", "", total.as_secs_f64());
    let snapshot = stats.snapshot();
    let hosts = snapshot.len().max(1);
    let conns: u64 = snapshot.values().map(|h| h.connections).sum();
    let execs: u64 = snapshot.values().map(|h| h.execs).sum();
    let max_execs = snapshot.values().map(|h| h.execs).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "  ssh: {} hosts, {conns} connections, {execs} execs ({:.2} connections and {:.2} execs per host, max {max_execs})",
        snapshot.len(),
        conns as f64 / hosts as f64,
        execs as f64 / hosts as f64
    );
    if let Some(kib) = peak_rss_kib() {
        let _ = writeln!(out, "  peak rss: {:.1} MiB", kib as f64 / 1024.0);
    }
    eprint!("{out}");
}
