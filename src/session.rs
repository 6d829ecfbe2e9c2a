//! The runner layer every command shares: load the inventory, its address lock, the
//! mesh and the playbooks once; one async runtime; connect to each host once and gather
//! its facts once. `plan`, `apply`, `verify` and `exec` all start here.
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use miette::{IntoDiagnostic, WrapErr};

use crate::address::{self, AddressLock};
use crate::facts::{self, GatherParams, Hold};
use crate::fanout;
use crate::host_error::HostError;
use crate::hosts::{self, Connected};
use crate::inventory::{Inventory, Node, NodeName};
use crate::plan::FactsMap;
use crate::playbook::Playbooks;
use crate::run_lock::RunLock;
use crate::scripts;
use crate::topology::Mesh;
use crate::transport::Stats;
use crate::ui::Progress;

/// How long the read-only gather may take on one host.
const GATHER_TIMEOUT: Duration = Duration::from_secs(60);

/// The hold exec's body, after the hold's functions: take it, say what was got.
const TAKE_HOLD: &str = "mu_hold\nprintf 'hold=%s\\n' \"$MU_HOLD_STATE\"\n";

/// Opens the way for the other hosts' gathers when the first host's task ends without
/// having done so (it could not be reached): nothing to be first on then.
struct OpenOnDrop<'a>(Option<&'a tokio::sync::watch::Sender<Option<bool>>>);

impl Drop for OpenOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(open) = self.0 {
            open.send_if_modified(|v| {
                let unset = v.is_none();
                if unset {
                    *v = Some(true);
                }
                unset
            });
        }
    }
}

/// What every command is told about where and how to run.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// The inventory file.
    pub inventory: PathBuf,
    /// A directory of playbooks replacing the built-in ones.
    pub playbooks: Option<PathBuf>,
    /// `--limit`: node names (validated against the inventory).
    pub limit: Vec<String>,
    /// Hosts handled at once.
    pub parallel: usize,
    /// More output.
    pub verbose: bool,
}

/// The loaded workstation side of a run, plus the runtime and the SSH counters.
pub struct Session {
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
    /// `--limit`, validated; `None` = every node.
    pub limit: Option<BTreeSet<NodeName>>,
    /// Hosts handled at once.
    pub parallel: usize,
    /// More output.
    pub verbose: bool,
    /// SSH connections and execs per host.
    pub stats: Arc<Stats>,
    /// This run's claim on meshup's lock on the hosts (taken by apply's gather).
    pub run: RunLock,
    /// The files the session was built from, as read.
    inputs: Inputs,
    runtime: tokio::runtime::Runtime,
}

/// The bytes of the inventory and of its address lock (`None`: absent or unreadable),
/// read after the inventory was parsed: a change in between shows as a change later,
/// never the other way round.
#[derive(PartialEq, Eq)]
struct Inputs(Option<Vec<u8>>, Option<Vec<u8>>);

impl Inputs {
    fn read(inventory: &Inventory) -> Inputs {
        Inputs(
            std::fs::read(inventory.path()).ok(),
            std::fs::read(inventory.lock_path()).ok(),
        )
    }
}

/// Open connections and gathered facts.
pub struct Gathered {
    /// Connected hosts.
    pub sessions: BTreeMap<NodeName, Connected>,
    /// Facts, or why there are none, for every host tried.
    pub facts: FactsMap,
}

impl Session {
    /// Loads inventory, lock, mesh and playbooks; validates `--limit`; starts the runtime.
    pub fn open(options: &SessionOptions) -> miette::Result<Session> {
        let inventory = Inventory::load(&options.inventory)?;
        let inputs = Inputs::read(&inventory);
        let lock = AddressLock::load(inventory.lock_path())?;
        let (allocation, updated_lock) = address::allocate(&inventory, &lock)?;
        let client_keys = crate::client_files::local_keys(&inventory)?;
        let mesh = Mesh::build(&inventory, &allocation).with_client_keys(&client_keys);
        let playbooks = match &options.playbooks {
            Some(dir) => Playbooks::load_dir(dir).into_diagnostic()?,
            None => Playbooks::embedded().into_diagnostic()?,
        };
        let limit = limit_set(&inventory, &options.limit)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .into_diagnostic()
            .wrap_err("cannot start the async runtime")?;
        Ok(Session {
            inventory,
            lock,
            updated_lock,
            mesh,
            playbooks,
            limit,
            parallel: options.parallel.max(1),
            verbose: options.verbose,
            stats: Arc::new(Stats::new()),
            run: RunLock::new(),
            inputs,
            runtime,
        })
    }

    /// The inventory or its address lock is no longer what this session was built from
    /// (edited, or written by another run, since it was read).
    pub fn inputs_changed(&self) -> bool {
        Inputs::read(&self.inventory) != self.inputs
    }

    /// The inventory file.
    pub fn path(&self) -> &Path {
        self.inventory.path()
    }

    /// The runtime's handle (to spawn background tasks such as the Ctrl-C listener).
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.runtime.handle().clone()
    }

    /// Runs a future on the session's runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The node is inside `--limit` (or there is none).
    pub fn in_limit(&self, node: &NodeName) -> bool {
        self.limit.as_ref().is_none_or(|l| l.contains(node))
    }

    /// Every node of the inventory meshup talks to (present and absent ones).
    pub fn nodes(&self) -> Vec<&Node> {
        self.inventory.nodes().iter().collect()
    }

    /// Connects to `nodes` (bounded, in parallel; one failure never stops the others).
    pub async fn connect(
        &self,
        nodes: Vec<&Node>,
        progress: &Progress,
    ) -> BTreeMap<NodeName, Result<Connected, HostError>> {
        fanout::run(nodes, self.parallel, |node| async move {
            Ok::<_, std::convert::Infallible>(self.connect_one(node, progress).await)
        })
        .await
        .into_iter()
        .map(|(node, r)| {
            let r = match r {
                Ok(r) => r,
                Err(never) => match never {},
            };
            (node.name.clone(), r)
        })
        .collect()
    }

    /// Connects to one node; a failure is shown on its progress line.
    pub async fn connect_one(
        &self,
        node: &Node,
        progress: &Progress,
    ) -> Result<Connected, HostError> {
        progress.set(node.name.as_str(), "connecting");
        let result = hosts::connect(node, &self.stats)
            .await
            .map_err(HostError::from);
        if let Err(e) = &result {
            progress.finish(node.name.as_str(), format!("unreachable: {e}"));
        }
        result
    }

    /// Connects to every node and gathers its facts (one exec per host), keeping the
    /// connections open for apply: the gather takes meshup's lock on each host for this
    /// run ([`Session::run`]), held until the connection closes.
    pub fn connect_and_gather(&self, progress: &Progress) -> Gathered {
        self.gather_all(progress, true)
    }

    /// Connects and gathers like [`Session::connect_and_gather`], closing each
    /// connection as soon as its facts are in (read-only commands: `plan`, `client`), so
    /// at most `--parallel` connections are open at once, however many hosts.
    pub fn gather_and_close(&self, progress: &Progress) -> Gathered {
        self.gather_all(progress, false)
    }

    /// The first host apply holds: the first node inside `--limit` in name order.
    fn first_held(&self) -> Option<NodeName> {
        self.nodes()
            .into_iter()
            .map(|n| &n.name)
            .filter(|n| self.in_limit(n))
            .min()
            .cloned()
    }

    fn gather_all(&self, progress: &Progress, keep: bool) -> Gathered {
        // apply (`keep`) holds every host it may change (those inside --limit) before it
        // changes any, or changes none (`crate::apply::hold`). The first of them in name
        // order is held first, alone: of two runs started at once over the same hosts,
        // one gets that host and then all the others, the other one none of them (it
        // only looks, to name the holder). The rest are held in parallel.
        let first = keep.then(|| self.first_held()).flatten();
        let mut nodes = self.nodes();
        // First in line, so it has a slot while the others wait for it.
        nodes.sort_by_key(|n| Some(&n.name) != first.as_ref());
        let (open, opened) = tokio::sync::watch::channel(None::<bool>);
        self.block_on(async {
            let first = first.as_ref();
            let open = &open;
            let opened = &opened;
            let outcomes = fanout::run(nodes, self.parallel, |node| async move {
                let is_first = Some(&node.name) == first;
                // Whatever happens to the first host, the others go on.
                let _opens = OpenOnDrop(is_first.then_some(open));
                progress.set(node.name.as_str(), "connecting");
                let session = hosts::connect(node, &self.stats).await?;
                let hold = if !keep || !self.in_limit(&node.name) {
                    false
                } else if is_first {
                    progress.set(node.name.as_str(), "holding");
                    let got = self.take_hold(&session).await;
                    open.send_replace(Some(got != Some(Hold::Other)));
                    true
                } else {
                    progress.set(node.name.as_str(), "waiting for the first hold");
                    let mut opened = opened.clone();
                    opened
                        .wait_for(Option::is_some)
                        .await
                        .map(|v| v.unwrap_or(true))
                        .unwrap_or(true)
                };
                progress.set(node.name.as_str(), "gathering facts");
                let facts = self.gather(node, &session, hold).await?;
                progress.set(node.name.as_str(), "gathered");
                Ok::<_, HostError>((keep.then_some(session), facts))
            })
            .await;
            let mut gathered = Gathered {
                sessions: BTreeMap::new(),
                facts: BTreeMap::new(),
            };
            for (node, outcome) in outcomes {
                match outcome {
                    Ok((session, f)) => {
                        if let Some(session) = session {
                            gathered.sessions.insert(node.name.clone(), session);
                        }
                        gathered.facts.insert(node.name.clone(), Ok(f));
                    }
                    Err(e) => {
                        progress.finish(node.name.as_str(), format!("unreachable: {e}"));
                        gathered.facts.insert(node.name.clone(), Err(e));
                    }
                }
            }
            gathered
        })
    }

    async fn gather(
        &self,
        node: &Node,
        session: &Connected,
        hold: bool,
    ) -> Result<facts::HostFacts, HostError> {
        let params = self.gather_params(node)?;
        let params = if hold {
            params.holding(&self.run)
        } else {
            params
        };
        let script = facts::gather_script(&params);
        let out = session
            .exec("sh -s", script.as_bytes(), GATHER_TIMEOUT)
            .await?;
        facts::parse(&out.stdout_str()).map_err(|e| {
            let stderr = out.stderr_str();
            HostError::Gather {
                reason: if stderr.trim().is_empty() {
                    e.to_string()
                } else {
                    format!("{e}: {}", stderr.trim())
                },
            }
        })
    }

    /// Takes this run's hold on one host by itself (the run's first host): what it got,
    /// `None` when the host did not say.
    async fn take_hold(&self, session: &Connected) -> Option<Hold> {
        let script = self
            .hold_values()
            .before(&format!("{}{}", scripts::HOLD, TAKE_HOLD));
        let out = session
            .exec("sh -s", script.as_bytes(), GATHER_TIMEOUT)
            .await
            .ok()?;
        let stdout = out.stdout_str();
        let line = stdout.lines().find_map(|l| l.strip_prefix("hold="))?;
        match line.trim() {
            "mine" => Some(Hold::Mine),
            "other" => Some(Hold::Other),
            "unsupported" => Some(Hold::Unsupported),
            _ => None,
        }
    }

    /// Gives back this run's hold on every host where its gather took it, but those in
    /// `done` (whose converge script let go itself): a run that cannot hold every host
    /// it changes changes none, and a run ends by letting go of hosts it did not
    /// converge. Closing the connections would too, but only once each host's sshd has
    /// seen the connection go, which a run started right after may beat.
    pub fn release_holds(&self, gathered: &Gathered, done: &BTreeSet<NodeName>) {
        let held: Vec<&Connected> = self
            .nodes()
            .into_iter()
            .filter(|n| !done.contains(&n.name))
            .filter(|n| {
                matches!(gathered.facts.get(&n.name), Some(Ok(f)) if f.files.hold == Some(Hold::Mine))
            })
            .filter_map(|n| gathered.sessions.get(&n.name))
            .collect();
        self.block_on(fanout::run(held, self.parallel, |session| async move {
            let script = self
                .hold_values()
                .before(&format!("{}mu_release\n", scripts::HOLD));
            session
                .exec("sh -s", script.as_bytes(), GATHER_TIMEOUT)
                .await
                .map(|_| ())
        }));
    }

    fn hold_values(&self) -> scripts::Values {
        scripts::Values::new()
            .set("MU_IF", self.mesh.settings.interface.as_str())
            .set("MU_RUN", self.run.id())
            .set("MU_RUN_BY", self.run.by())
    }

    /// The validated inputs of a node's gather script.
    pub fn gather_params(&self, node: &Node) -> Result<GatherParams, HostError> {
        let s = &self.mesh.settings;
        // Preshared key files are looked up per node only when the mesh uses them
        // (files left from before are found by name anyway): N nodes per host, N hosts.
        // Every other node, not only today's peers: two NAT nodes peer directly once
        // their path is punched, which the plan learns only from these facts, and their
        // pair's key must be seen then or it would be made anew on every run.
        let peers: Vec<String> = if s.preshared_keys {
            self.mesh
                .nodes
                .iter()
                .filter(|n| n.name != node.name)
                .map(|n| n.name.to_string())
                .collect()
        } else {
            Vec::new()
        };
        GatherParams::new(
            s.interface.as_str(),
            s.config_dir.as_str(),
            node.listen_port,
            &peers,
        )
        // The digests of the preshared keys the interface runs: a hand-built mesh's
        // keys are adopted when both sides of a pair hold the same one.
        .map(|p| {
            if s.preshared_keys {
                p.with_live_psks()
            } else {
                p
            }
        })
        .map_err(|e| HostError::Gather {
            reason: e.to_string(),
        })
    }

    /// Closes connections inside the runtime (they need it to say goodbye).
    pub fn close(&self, sessions: BTreeMap<NodeName, Connected>) {
        self.block_on(async move { drop(sessions) });
    }

    /// Writes the address lock when this run allocated new addresses.
    pub fn save_lock(&self) -> miette::Result<()> {
        if self.updated_lock != self.lock {
            self.updated_lock
                .save(self.inventory.lock_path())
                .into_diagnostic()
                .wrap_err_with(|| {
                    format!(
                        "cannot write the address lock {}",
                        self.inventory.lock_path().display()
                    )
                })?;
        }
        Ok(())
    }
}

/// `--limit` names checked against the inventory: every command refuses an unknown
/// name the same way.
fn limit_set(
    inventory: &Inventory,
    limit: &[String],
) -> miette::Result<Option<BTreeSet<NodeName>>> {
    if limit.is_empty() {
        return Ok(None);
    }
    let mut set = BTreeSet::new();
    for name in limit {
        let node = inventory
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
