//! `meshup plan` and `meshup apply`: gather facts through the [`Session`], compute the
//! [`Plan`], show it, and (apply) send exactly its steps: one SSH exec per host for the
//! prepare steps (install, keys, preshared keys), then one for the converge steps.
mod clocks;
mod execute;
pub mod hold;
mod instant;
pub mod phase;
pub mod planning;
pub mod punch;
pub mod settle;

use execute::execute;
pub use execute::{converge_values, prepare_values};
use planning::{Gather, plan_hosts, print_plan};

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, IsTerminal, Write as _};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use miette::IntoDiagnostic;

use crate::host_error::HostError;
use crate::interrupt::{EXIT_INTERRUPTED, Interrupt};
use crate::inventory::NodeName;
use crate::keys::PublicKey;
use crate::plan::{self, KeyBook, Plan, Planner};
use crate::session::{Session, SessionOptions};
use crate::ui::{self, HostOutcome, Progress, Recap, StatsReport};

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
    /// From `--rotate all|NODE,...` / `--nodes` and `--all`.
    pub fn from_names(names: &[String], all: bool) -> Rotate {
        if all || names.iter().any(|n| n == "all") {
            Rotate::All
        } else if names.is_empty() {
            Rotate::None
        } else {
            Rotate::Nodes(names.to_vec())
        }
    }

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

#[cfg(test)]
mod tests;
