//! A step: one change on one host, with its line, its reason, its diff and the exact
//! shell that apply sends for it (a call of a function of `scripts/lib.sh`).
use serde::Serialize;

/// What a step does, with Terraform's symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// `+` something new.
    Create,
    /// `~` something changed in place.
    Update,
    /// `-` something removed.
    Delete,
}

impl Action {
    /// The symbol shown in front of the step.
    pub fn symbol(self) -> char {
        match self {
            Action::Create => '+',
            Action::Update => '~',
            Action::Delete => '-',
        }
    }
}

/// The kind of a step, in execution order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// Move key files into the interface's own directory (older layout).
    Migrate,
    /// Install WireGuard packages.
    Install,
    /// Generate the key pair on the host.
    KeyGen,
    /// Generate the next key pair of a rotation on the host (beside the current one).
    Rotate,
    /// Store (or remove) a preshared key of a pair.
    Psk,
    /// Stop and remove the interface (node leaves the mesh).
    Remove,
    /// Wait for the agreed instant of a key rotation (and take the new key, on the
    /// rotated node): every host switches together.
    Flip,
    /// Set up a direct path to another NAT node at the agreed instant and confirm it by a
    /// handshake before the config moves its AllowedIPs off the relay.
    Punch,
    /// Move pairs onto or off a private network, at the agreed instant, on both hosts.
    PathMove,
    /// Write the interface config.
    Config,
    /// Write (or remove) the peer names block of `/etc/hosts`.
    HostsFile,
    /// Open the firewall.
    Firewall,
    /// Enable IP forwarding.
    Forwarding,
    /// Bring the interface up / enable the service.
    Service,
    /// Apply the new config to the running interface.
    Reload,
    /// meshup's routing script of the interface (exit route, MSS clamping, masquerade,
    /// Docker's chain): written and run once the running interface has its peers.
    Route,
    /// Install, update or remove the host-side watchdog (script, watch file, timer).
    Watchdog,
}

impl StepKind {
    /// Steps that wait for the run's agreed instant on every host (`MU_FLIP_AT`): the
    /// later it is, the more hosts must have received their script first.
    pub fn at_agreed_instant(self) -> bool {
        matches!(self, StepKind::Flip | StepKind::Punch | StepKind::PathMove)
    }
}

/// The SSH exec a step runs in: keys must exist on every host before any config that
/// names them is written, so apply runs all prepare steps, then all converge steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Install, key generation, preshared keys.
    Prepare,
    /// Everything else.
    Converge,
}

/// One change on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// `+`, `~` or `-`.
    pub action: Action,
    /// What kind of step.
    pub kind: StepKind,
    /// One line saying what changes.
    pub summary: String,
    /// Why.
    pub reason: String,
    /// Unified diff (configs), secrets shown as tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// The shell apply sends for this step, byte for byte (no secret in it: secrets
    /// and keys learned during the run are variables set in front of the script).
    pub shell: String,
}

impl Step {
    /// A step without a diff.
    pub fn new(
        action: Action,
        kind: StepKind,
        summary: impl Into<String>,
        reason: impl Into<String>,
        shell: impl Into<String>,
    ) -> Step {
        Step {
            action,
            kind,
            summary: summary.into(),
            reason: reason.into(),
            diff: None,
            shell: shell.into(),
        }
    }

    /// The same step with a diff.
    pub fn with_diff(mut self, diff: String) -> Step {
        self.diff = Some(diff);
        self
    }

    /// The phase the step runs in.
    pub fn phase(&self) -> Phase {
        match (self.kind, self.action) {
            (StepKind::Migrate | StepKind::Install | StepKind::KeyGen | StepKind::Rotate, _) => {
                Phase::Prepare
            }
            (StepKind::Psk, Action::Create | Action::Update) => Phase::Prepare,
            _ => Phase::Converge,
        }
    }
}

/// What one step function concluded about one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Something must change.
    Change(Step),
    /// Nothing to do, and why ("wg0.conf up to date").
    Unchanged(String),
    /// Not a change, but the operator should know.
    Warning(String),
}

impl Decision {
    /// A no-change decision.
    pub fn unchanged(reason: impl Into<String>) -> Decision {
        Decision::Unchanged(reason.into())
    }

    /// A warning.
    pub fn warning(text: impl Into<String>) -> Decision {
        Decision::Warning(text.into())
    }

    /// The step, if this is a change.
    pub fn step(&self) -> Option<&Step> {
        match self {
            Decision::Change(s) => Some(s),
            _ => None,
        }
    }
}
