//! `meshup plan` and `meshup apply`: gather facts through the [`Session`], compute the
//! [`Plan`], show it, and (apply) send exactly its steps: one SSH exec per host for the
//! prepare steps (install, keys, preshared keys), then one for the converge steps.
pub mod hold;
pub mod phase;
pub mod planning;
pub mod punch;
pub mod settle;

use planning::{Gather, plan_hosts, print_plan};

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, IsTerminal, Write as _};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use miette::IntoDiagnostic;

use crate::fanout;
use crate::host_error::HostError;
use crate::interrupt::{EXIT_INTERRUPTED, Interrupt};
use crate::inventory::NodeName;
use crate::keys::PublicKey;
use crate::plan::{self, HostPlan, KeyBook, Phase, Plan, Planner};
use crate::scripts::Values;
use crate::secret::Secret;
use crate::session::{Gathered, Session, SessionOptions};
use crate::ui::{self, HostOutcome, Progress, Recap, StatsReport};

const PREPARE_TIMEOUT: Duration = Duration::from_secs(900);
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(180);

/// Output format of `meshup plan`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    /// Human-readable diffs.
    #[default]
    Text,
    /// Machine-readable plan.
    Json,
}

/// Options of `meshup plan`.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Where and how to run.
    pub session: SessionOptions,
    /// Exit 2 when changes are pending.
    pub detailed_exitcode: bool,
    /// Output format.
    pub format: PlanFormat,
    /// Plan a key rotation of these nodes (`--rotate`).
    pub rotate: Rotate,
    /// The rotation renews preshared keys of the pairs among them (`--psk`).
    pub rotate_psk: bool,
}

/// Which nodes' key pairs a run rotates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Rotate {
    /// None (a normal run).
    #[default]
    None,
    /// Every present node.
    All,
    /// These nodes (checked against the inventory).
    Nodes(Vec<String>),
    /// Nodes whose key pair is older than this (`--older-than`).
    OlderThan(crate::inventory::Age),
}

impl Rotate {
    /// The nodes to rotate, given the gathered facts (for `--older-than`).
    fn select(&self, session: &Session, facts: &plan::FactsMap) -> BTreeSet<NodeName> {
        match self {
            Rotate::OlderThan(age) => session
                .mesh
                .nodes
                .iter()
                .filter(|n| {
                    matches!(facts.get(&n.name), Some(Ok(f))
                        if f.keys.private_key_age_secs.is_some_and(|a| a >= age.secs()))
                })
                .map(|n| n.name.clone())
                .collect(),
            other => other.resolve(session).unwrap_or_default(),
        }
    }

    /// The nodes, validated against the inventory like `--limit`.
    fn resolve(&self, session: &Session) -> miette::Result<BTreeSet<NodeName>> {
        match self {
            Rotate::None | Rotate::OlderThan(_) => Ok(BTreeSet::new()),
            Rotate::All => Ok(session.mesh.nodes.iter().map(|n| n.name.clone()).collect()),
            Rotate::Nodes(names) => names
                .iter()
                .map(|name| {
                    session
                        .mesh
                        .nodes
                        .iter()
                        .find(|n| n.name.as_str() == name.trim())
                        .map(|n| n.name.clone())
                        .ok_or_else(|| {
                            miette::miette!(
                                "--rotate names `{name}`, which is not a present node of the inventory"
                            )
                        })
                })
                .collect(),
        }
    }
}

/// Options of `meshup apply`.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Where and how to run.
    pub session: SessionOptions,
    /// Do not ask.
    pub yes: bool,
    /// Print `--stats`.
    pub stats: bool,
    /// Rotate these nodes' key pairs (`meshup rotate`).
    pub rotate: Rotate,
    /// Rotate the preshared keys of the pairs among them instead (`--psk`).
    pub rotate_psk: bool,
    /// Exit 2 when changes were applied (0: none were needed, 1: a failure).
    pub detailed_exitcode: bool,
    /// How long to wait for another run that holds a host this run changes (`None`:
    /// report it and stop at once).
    pub wait_lock: Option<Duration>,
}

fn host_names(session: &Session) -> Vec<&str> {
    session.nodes().iter().map(|n| n.name.as_str()).collect()
}

/// `meshup plan`.
pub fn plan(options: &PlanOptions) -> miette::Result<ExitCode> {
    let session = Session::open(&options.session)?;
    let progress = Progress::new(host_names(&session), session.verbose);
    options.rotate.resolve(&session)?;
    let gather = Gather::run(&session, &progress, &options.rotate, false);
    progress.clear();
    let input = gather.input(&session, options.rotate_psk);
    let planner = Planner::new(&input);
    let plan = print_plan(
        &planner,
        options.format,
        &options.session.inventory,
        session.verbose,
    )?;
    session.close(gather.gathered.sessions);
    Ok(if plan.has_errors() {
        ExitCode::from(1)
    } else if options.detailed_exitcode && !plan.is_empty() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
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

/// The preshared keys of this run, by host. Made in memory, sent only to the pair's two
/// hosts, never written or printed here. Pairs are walked in plan order, so each host's
/// list is in the order of its steps' `MU_PSK_<n>` (see `PskPlan::peers_of`).
fn psk_values(plan: &Plan) -> BTreeMap<NodeName, Vec<Secret>> {
    let mut out: BTreeMap<NodeName, Vec<Secret>> = BTreeMap::new();
    for (a, b) in &plan.new_psk_pairs {
        let psk = new_psk();
        out.entry(b.clone())
            .or_default()
            .push(Secret::new(psk.expose().to_vec()));
        out.entry(a.clone()).or_default().push(psk);
    }
    out
}

/// The values of a host's prepare script: the base values and its preshared keys.
pub fn prepare_values(session: &Session, psks: &[Secret]) -> Values {
    let mut values = phase::base_values(&session.mesh.settings, &session.run);
    for (i, psk) in psks.iter().enumerate() {
        values = values.set(
            &format!("MU_PSK_{}", i + 1),
            psk.expose_str().unwrap_or_default(),
        );
    }
    values
}

/// The values of a converge script: the base values and the public keys generated
/// during this run (`name=key …`), which the host fills into its config.
pub fn converge_values(session: &Session, generated: &BTreeMap<NodeName, PublicKey>) -> Values {
    let pubkeys: Vec<String> = generated.iter().map(|(n, k)| format!("{n}={k}")).collect();
    phase::base_values(&session.mesh.settings, &session.run).set("MU_PUBKEYS", &pubkeys.join(" "))
}

/// How many times apply starts again because its inventory changed while it took its
/// holds, before it gives up.
const INPUT_RESTARTS: usize = 5;

/// `meshup apply`.
pub fn apply(options: &ApplyOptions) -> miette::Result<ExitCode> {
    for _ in 0..INPUT_RESTARTS {
        if let Some(code) = apply_once(options)? {
            return Ok(code);
        }
    }
    Err(miette::miette!(
        "{} changed {INPUT_RESTARTS} times while apply took its hosts' holds: nothing was changed; run apply again once it is no longer being edited",
        options.session.inventory.display()
    ))
}

/// One apply: `None` when the inventory or its address lock changed between reading them
/// and holding every host (an operator's edit, or another run's allocation, while this
/// run waited): then it has let go of every host, changed nothing, and must start again,
/// or it would undo the newer inventory that the other run just applied.
fn apply_once(options: &ApplyOptions) -> miette::Result<Option<ExitCode>> {
    let mut report = StatsReport::new();
    // Generated clients get their key pair before the mesh is loaded, so the plan and
    // the nodes' configs carry their real public keys.
    let new_clients = crate::client_files::ensure_keys(&crate::inventory::Inventory::load(
        &options.session.inventory,
    )?)?;
    let session = Session::open(&options.session)?;
    let verbose = session.verbose;
    let progress = Progress::new(host_names(&session), verbose);
    let t = Instant::now();
    options.rotate.resolve(&session)?;
    let (gather, held) = hold_every_host(&session, &progress, options);
    if held.is_none() && session.inputs_changed() {
        session.release_holds(&gather.gathered, &BTreeSet::new());
        progress.println(format!(
            "{} changed while this run took its hosts' holds: starting again with it",
            options.session.inventory.display()
        ));
        session.close(gather.gathered.sessions);
        return Ok(None);
    }
    report.phase("connect + gather", t);
    progress.clear();
    drop(progress);
    // --quiet (which needs --yes): no plan, and of the recap only the failures.
    let quiet = ui::console::quiet();
    if let Some(held) = held {
        let plan = hold::held_plan(&session, &gather.gathered.facts, &held);
        if !quiet {
            let mut text: String = plan
                .hosts
                .iter()
                .map(|h| ui::render_host(h, verbose))
                .collect();
            text.push_str(&ui::render_summary(&plan, &options.session.inventory));
            print!("{text}");
        }
        let recap = Recap {
            outcomes: plan
                .hosts
                .iter()
                .map(|h| (h.node.clone(), HostOutcome::planned(h)))
                .collect(),
        };
        print!(
            "{}",
            if quiet {
                recap.render_failures()
            } else {
                recap.render()
            }
        );
        session.close(gather.gathered.sessions);
        return Ok(Some(ExitCode::from(1)));
    }
    let input = gather.input(&session, options.rotate_psk);
    let planner = Planner::new(&input);
    let plan = if quiet {
        plan_hosts(&planner, |_| {})
    } else {
        print_plan(
            &planner,
            PlanFormat::Text,
            &options.session.inventory,
            verbose,
        )?
    };

    let mut recap = Recap {
        outcomes: plan
            .hosts
            .iter()
            .map(|h| (h.node.clone(), HostOutcome::planned(h)))
            .collect(),
    };
    let mut interrupted = false;
    let mut generated = BTreeMap::new();
    if !plan.is_empty() {
        if !options.yes && !confirm(&plan)? {
            session.release_holds(&gather.gathered, &BTreeSet::new());
            eprintln!("Apply cancelled; nothing was changed.");
            return Ok(Some(ExitCode::from(1)));
        }
        let interrupt = Interrupt::install(&session.handle());
        generated = execute(
            &session,
            gather.mesh(),
            &gather.gathered,
            &plan,
            &planner,
            &interrupt,
            &mut recap,
            &mut report,
        );
        interrupted = interrupt.stopped();
    } else {
        session.release_holds(&gather.gathered, &BTreeSet::new());
    }
    session.save_lock()?;
    write_client_configs(&session, &planner.keys, &generated, &new_clients)?;
    if quiet {
        print!("{}", recap.render_failures());
    } else {
        print!("{}", recap.render());
    }
    if options.stats {
        eprint!("{}", report.render("STATS", &session.stats));
    }
    session.close(gather.gathered.sessions);
    if interrupted {
        eprintln!("apply was interrupted: run it again to finish the hosts marked NOT RUN");
        return Ok(Some(ExitCode::from(EXIT_INTERRUPTED)));
    }
    if options.detailed_exitcode && !recap.failed() && !plan.is_empty() {
        return Ok(Some(ExitCode::from(2)));
    }
    Ok(Some(recap.exit_code()))
}

/// Gathers while holding every host the run may change: when another run holds one,
/// gives back what it took and, with `--wait-lock`, tries again until that run is done
/// (or the time is up). Returns the gather and, when the run could not hold every host,
/// the hosts another run holds.
fn hold_every_host(
    session: &Session,
    progress: &Progress,
    options: &ApplyOptions,
) -> (Gather, Option<BTreeMap<NodeName, HostError>>) {
    let deadline = options.wait_lock.map(|d| Instant::now() + d);
    let mut tries = 0;
    loop {
        let gather = Gather::run(session, progress, &options.rotate, true);
        let Some(held) = hold::not_held(session, &gather.gathered.facts) else {
            return (gather, None);
        };
        session.release_holds(&gather.gathered, &BTreeSet::new());
        tries += 1;
        // Held by nobody now: the other run let go between this run's holds.
        let free_now = held.is_empty() && tries < 3;
        if !free_now && deadline.is_none_or(|d| Instant::now() >= d) {
            return (gather, Some(held));
        }
        if !held.is_empty() {
            let holders: Vec<String> = held.iter().map(|(n, e)| format!("{n}: {e}")).collect();
            progress.println(format!(
                "waiting for another meshup run ({} left of --wait-lock): {}",
                deadline
                    .map(|d| format!(
                        "{} s",
                        d.saturating_duration_since(Instant::now()).as_secs()
                    ))
                    .unwrap_or_default(),
                holders.join("; ")
            ));
        }
        session.close(gather.gathered.sessions);
        std::thread::sleep(hold::retry_pause());
    }
}

/// Writes the generated clients' configs (mode 600, beside the inventory) with the
/// nodes' keys as gathered or generated in this run, and says which files changed.
fn write_client_configs(
    session: &Session,
    keys: &KeyBook,
    generated: &BTreeMap<NodeName, PublicKey>,
    new_clients: &[NodeName],
) -> miette::Result<()> {
    for path in crate::client_files::retire_removed(&session.inventory)? {
        if !ui::console::quiet() {
            println!(
                "removed client: its config moved aside as {} (its key is revoked)",
                path.display()
            );
        }
    }
    let key = |n: &NodeName| generated.get(n).copied().or_else(|| keys.get(n));
    for file in crate::client_files::write_configs(&session.inventory, &session.mesh, &key)? {
        if file.changed && !ui::console::quiet() {
            let new = if new_clients.contains(&file.client) {
                " (new key pair)"
            } else {
                ""
            };
            println!(
                "client {}: wrote {}{new}; `meshup client {} --qr` shows it as a QR code",
                file.client,
                file.path.display(),
                file.client
            );
        }
        for node in &file.left_out {
            eprintln!(
                "warning: client {}: {node} is left out of {}: its public key is not known yet",
                file.client,
                file.path.display()
            );
        }
    }
    Ok(())
}

/// Runs the plan's steps: prepare on every changing host, then converge on those
/// whose prepare succeeded. Returns the public keys generated on hosts in this run.
#[allow(clippy::too_many_arguments)]
fn execute(
    session: &Session,
    mesh: &crate::topology::Mesh,
    gathered: &Gathered,
    plan: &Plan,
    planner: &Planner<'_>,
    interrupt: &Interrupt,
    recap: &mut Recap,
    report: &mut StatsReport,
) -> BTreeMap<NodeName, PublicKey> {
    let keys = &planner.keys;
    // The steps as shown, made again host by host just before they are sent.
    let steps_of = |host: &HostPlan| {
        let full = planner.host(&host.node, false);
        if full.fingerprint == host.fingerprint {
            Ok(full)
        } else {
            Err(HostError::blocked(
                "its steps came out different from the plan shown (a bug in meshup): nothing was sent",
            ))
        }
    };
    let steps_of = &steps_of;
    let changing: Vec<&HostPlan> = plan.hosts.iter().filter(|h| h.has_changes()).collect();
    let progress = Progress::new(changing.iter().map(|h| h.node.as_str()), session.verbose);
    let connection = |node: &NodeName| {
        gathered
            .sessions
            .get(node)
            .cloned()
            .ok_or(HostError::NotConnected)
    };

    // Phase 1: install, keys, preshared keys.
    let mut psks = psk_values(plan);
    let prepare: Vec<(&HostPlan, Values)> = changing
        .iter()
        .filter(|h| h.phase(Phase::Prepare).next().is_some())
        .map(|h| {
            (
                *h,
                prepare_values(session, &psks.remove(&h.node).unwrap_or_default()),
            )
        })
        .collect();
    let t = Instant::now();
    let results =
        session.block_on(fanout::run(prepare, session.parallel, |(host, values)| {
            let session_for_host = connection(&host.node);
            let progress = &progress;
            async move {
                if interrupt.stopped() {
                    return Err(HostError::Interrupted);
                }
                let ssh = session_for_host?;
                let installing = host
                    .phase(Phase::Prepare)
                    .any(|s| s.kind == plan::StepKind::Install);
                progress.set(
                    host.node.as_str(),
                    if installing {
                        "installing WireGuard"
                    } else {
                        "preparing keys"
                    },
                );
                let full = steps_of(host)?;
                let text = phase::script(&values, Phase::Prepare, full.phase(Phase::Prepare));
                drop(full);
                let markers = phase::run(&ssh, Phase::Prepare, &text, PREPARE_TIMEOUT).await?;
                // A rotated node reports its next key; the current one stays until the flip.
                let kind = if keys.rotating.contains(&host.node) {
                    "nextkey"
                } else {
                    "pubkey"
                };
                let key = markers.iter().find(|m| m.kind == kind).ok_or_else(|| {
                    HostError::BadAnswer {
                        message: "no public key after key generation".into(),
                    }
                })?;
                key.value
                    .parse::<PublicKey>()
                    .map_err(|_| HostError::BadAnswer {
                        message: "the host returned an invalid public key".into(),
                    })
            }
        }));
    report.phase("prepare (install, keys)", t);
    let mut generated: BTreeMap<NodeName, PublicKey> = BTreeMap::new();
    for ((host, _), result) in results {
        match result {
            Ok(key) => {
                if keys.generated_during_run(&host.node) {
                    generated.insert(host.node.clone(), key);
                }
                if host.phase(Phase::Converge).next().is_none() {
                    progress.finish(host.node.as_str(), "changed");
                    recap
                        .outcomes
                        .insert(host.node.clone(), HostOutcome::Changed(host.steps.len()));
                }
            }
            Err(HostError::Interrupted) => progress.finish(host.node.as_str(), "not run"),
            Err(e) => {
                progress.finish(host.node.as_str(), format!("failed: {e}"));
                recap
                    .outcomes
                    .insert(host.node.clone(), HostOutcome::Failed(e));
            }
        }
    }

    // Phase 2: converge, in two waves: nodes that move what their peers use (a listen
    // port, addresses) first; their peers only once those have succeeded.
    // A key rotation flips on every host of a wave at one instant, a moment after the
    // wave's converge scripts have been sent (they wait for it on the hosts). Each wave
    // gets its own: one agreed before the first would have passed when the second starts.
    // How long a new session's first handshake may take before it is tried again: the
    // round trip between two hosts is at most the sum of theirs to this workstation.
    let slowest = gathered
        .sessions
        .values()
        .filter_map(|s| s.round_trip())
        .max()
        .unwrap_or_default();
    let retry = (2.0 * slowest.as_secs_f64() + 0.05).max(0.1);
    let base_values =
        converge_values(session, &generated).set("MU_FLIP_WAIT", &format!("{retry:.3}"));
    // Rotated nodes whose new key was not made: their peers must keep the old one.
    let failed_rotations: Vec<&NodeName> = keys
        .rotating
        .iter()
        .filter(|n| matches!(recap.outcomes.get(*n), Some(HostOutcome::Failed(_))))
        .collect();
    let t = Instant::now();
    let mut punched = Vec::new();
    let mut switched = Vec::new();
    // Hosts whose converge script ran to its end, which lets go of the run's hold.
    let mut released = BTreeSet::new();
    // A NAT node sends its first keepalive (a handshake) the moment its interface comes
    // up; a public peer not up yet loses it, and WireGuard tries again only 5 s later. So
    // NAT nodes that start in this run start in the second wave when public nodes start.
    let starting = |h: &HostPlan| {
        !matches!(gathered.facts.get(&h.node), Some(Ok(f)) if f.interface_up())
            && h.phase(Phase::Converge).next().is_some()
    };
    let public = |h: &HostPlan| mesh.node(&h.node).is_some_and(|n| n.is_public());
    let public_starts = changing.iter().any(|h| public(h) && starting(h));
    let late = |h: &HostPlan| {
        !h.after.is_empty()
            || (public_starts && !public(h) && mesh.node(&h.node).is_some() && starting(h))
    };
    for wave in [false, true] {
        if interrupt.stopped() {
            break;
        }
        let mut hosts: Vec<&HostPlan> = Vec::new();
        for host in changing
            .iter()
            .copied()
            .filter(|h| late(h) == wave && h.phase(Phase::Converge).next().is_some())
        {
            if matches!(recap.outcomes.get(&host.node), Some(HostOutcome::Failed(_))) {
                continue;
            }
            let spec = session.mesh.node(&host.node);
            let failed_rotation = failed_rotations.iter().find(|n| {
                spec.zip(session.mesh.node(n))
                    .is_some_and(|(me, other)| session.mesh.is_peer(me, other))
            });
            let failed_dependency = host
                .after
                .iter()
                .find(|(node, _)| {
                    !matches!(recap.outcomes.get(node), Some(HostOutcome::Changed(_)))
                })
                .cloned()
                .or_else(|| failed_rotation.map(|n| ((*n).clone(), "new key".to_string())));
            if let Some((node, what)) = failed_dependency {
                let e = HostError::DependencyFailed {
                    node: node.to_string(),
                    what: what.clone(),
                };
                progress.finish(host.node.as_str(), format!("failed: {e}"));
                recap
                    .outcomes
                    .insert(host.node.clone(), HostOutcome::Failed(e));
                continue;
            }
            hosts.push(host);
        }
        // Hosts that switch at the agreed instant all run at once: one left waiting for
        // a slot would switch after the others (--parallel bounds everything else).
        let flips = hosts
            .iter()
            .filter(|h| h.steps.iter().any(|s| s.kind.at_agreed_instant()))
            .count();
        let parallel = if flips > 0 {
            session.parallel.max(hosts.len())
        } else {
            session.parallel
        };
        let flip_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default()
            + 3.0
            + 0.1 * flips as f64;
        let values = base_values
            .clone()
            .set("MU_FLIP_AT", &format!("{flip_at:.3}"));
        let results = session.block_on(fanout::run(hosts, parallel, |host| {
            let session_for_host = connection(&host.node);
            let progress = &progress;
            let values = &values;
            async move {
                if interrupt.stopped() {
                    return Err(HostError::Interrupted);
                }
                let ssh = session_for_host?;
                progress.set(host.node.as_str(), "converging");
                let full = steps_of(host)?;
                let text = phase::script(values, Phase::Converge, full.phase(Phase::Converge));
                drop(full);
                phase::run(&ssh, Phase::Converge, &text, CONVERGE_TIMEOUT).await
            }
        }));
        for (host, result) in results {
            let outcome = match result {
                Ok(markers) => {
                    if let Some(m) = markers.iter().find(|m| m.kind == "switched") {
                        switched.push((host.node.clone(), m.value.clone()));
                    }
                    for m in markers.iter().filter(|m| m.kind == "punched") {
                        punched.push(punch::confirmed(&host.node, &m.value));
                    }
                    for m in markers.iter().filter(|m| m.kind == "skipped") {
                        progress.println(format!(
                            "{}: warning: {} left out of the config: its key was not generated",
                            host.node, m.value
                        ));
                    }
                    progress.finish(host.node.as_str(), "changed");
                    released.insert(host.node.clone());
                    HostOutcome::Changed(host.steps.len())
                }
                Err(HostError::Interrupted) => {
                    progress.finish(host.node.as_str(), "not run");
                    HostOutcome::NotRun
                }
                Err(e) => {
                    progress.finish(host.node.as_str(), format!("failed: {e}"));
                    HostOutcome::Failed(e)
                }
            };
            recap.outcomes.insert(host.node.clone(), outcome);
        }
    }
    report.phase("converge", t);
    // Every other host this run holds (nothing to converge, failed, not run) is let go
    // of now: a run started right after this one must find it free.
    session.release_holds(gathered, &released);
    progress.clear();
    punch::print_confirmed(punched);
    print_switched(&switched);
    if !interrupt.stopped() {
        let t = Instant::now();
        settle(session, mesh, gathered, recap);
        report.phase("first handshakes", t);
    }
    generated
}

/// The first handshake of every pair this run brought up or changed, each started from
/// one side (see [`settle`]); a pair that gets none within the deadline is named.
fn settle(session: &Session, mesh: &crate::topology::Mesh, gathered: &Gathered, recap: &Recap) {
    let changed: BTreeSet<NodeName> = recap
        .outcomes
        .iter()
        .filter(|(_, o)| matches!(o, HostOutcome::Changed(_)))
        .map(|(n, _)| n.clone())
        .collect();
    if changed.is_empty() {
        return;
    }
    let up = |n: &NodeName| match recap.outcomes.get(n) {
        Some(HostOutcome::Changed(_)) => true,
        Some(HostOutcome::Ok) => {
            matches!(gathered.facts.get(n), Some(Ok(f)) if f.interface_up())
        }
        _ => false,
    };
    let plan = settle::initiators(mesh, &changed, &up);
    let hosts: Vec<(&NodeName, &Vec<(NodeName, std::net::IpAddr)>)> = plan
        .iter()
        .filter(|(n, _)| gathered.sessions.contains_key(*n))
        .collect();
    let deadline = settle::SETTLE_DEADLINE_SECS.to_string();
    let results = session.block_on(fanout::run(
        hosts,
        session.parallel.max(plan.len()),
        |(node, peers)| {
            let ssh = gathered.sessions.get(node).cloned();
            let deadline = &deadline;
            async move {
                let ssh = ssh.ok_or(HostError::NotConnected)?;
                let addresses: Vec<String> = peers.iter().map(|(_, a)| a.to_string()).collect();
                let script = Values::new()
                    .set("MU_WARM", &addresses.join(" "))
                    .set("MU_WARM_DEADLINE", deadline)
                    .before(crate::scripts::SETTLE);
                let out = ssh
                    .exec(
                        "sh -s",
                        script.as_bytes(),
                        Duration::from_secs(u64::from(settle::SETTLE_DEADLINE_SECS) + 30),
                    )
                    .await?;
                Ok::<_, HostError>(crate::scripts::output::markers(&out.stdout_str()))
            }
        },
    ));
    if ui::console::quiet() {
        return;
    }
    for ((node, peers), result) in results {
        match result {
            Ok(markers) => {
                for m in markers.iter().filter(|m| m.kind == "unsettled") {
                    let peer = peers
                        .iter()
                        .find(|(_, a)| a.to_string() == m.value)
                        .map_or(m.value.as_str(), |(n, _)| n.as_str());
                    println!(
                        "warning: {node} → {peer}: no handshake within {} s of the end of apply; `meshup verify` says why",
                        settle::SETTLE_DEADLINE_SECS
                    );
                }
            }
            Err(e) => println!("warning: {node}: the first handshakes were not started: {e}"),
        }
    }
}

/// How long after the agreed instant each host's flip took effect, by its own clock (a
/// pair loses about the difference between its two hosts): the range and the latest.
fn print_switched(switched: &[(NodeName, String)]) {
    if crate::ui::console::quiet() {
        return;
    }
    let mut ms: Vec<(i64, &NodeName)> = switched
        .iter()
        .filter_map(|(n, v)| v.trim().parse::<i64>().ok().map(|ms| (ms, n)))
        .collect();
    ms.sort();
    if let (Some((first, _)), Some((last, node))) = (ms.first(), ms.last()) {
        println!(
            "flip: {} host(s) switched {first} to {last} ms after the agreed instant (by their own clocks; latest: {node})",
            ms.len()
        );
    }
}

#[cfg(test)]
mod tests;
