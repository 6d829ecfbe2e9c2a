//! Why one host could not be planned or changed: errors as values, rendered in one
//! place (their `Display`), so the plan, the recap and JSON all say the same thing.
use serde::{Serialize, Serializer};
use thiserror::Error;

/// A failure of one host. Other hosts go on; the run's exit status is 1.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HostError {
    /// Connecting, authenticating, checking the host key or running a command failed
    /// in the transport (the transport's own message).
    #[error("{message}")]
    Transport {
        /// The transport error, rendered.
        message: String,
    },
    /// The host was never connected (a failed connection reported before).
    #[error("not connected")]
    NotConnected,
    /// The gather ran but its output is unusable.
    #[error("fact gathering failed: {reason}")]
    Gather {
        /// Why, with the host's stderr when it said anything.
        reason: String,
    },
    /// Another meshup run holds the host's lock.
    #[error("another meshup run holds the lock {path}{}", holder.as_ref().map(|h| format!(": {h}")).unwrap_or_default())]
    LockHeld {
        /// The lock file.
        path: String,
        /// Who holds it (pid, command, user, how long), when the gather saw it.
        holder: Option<String>,
    },
    /// No playbook knows the host's distribution.
    #[error("{message}")]
    UnsupportedDistro {
        /// Which distro, and the known ones.
        message: String,
    },
    /// The host cannot be planned as it is (an invalid key file, a missing peer, …).
    #[error("{message}")]
    Blocked {
        /// What blocks it and what to do.
        message: String,
    },
    /// A step of apply failed (and the host kept its previous config).
    #[error("{message}{}", tail_suffix(.stderr_tail))]
    StepFailed {
        /// The step that failed (`install`, `write-config`, …), when the script said.
        step: Option<String>,
        /// What the script reported.
        message: String,
        /// Exit status of the script.
        status: Option<u32>,
        /// The last lines of the script's stderr (noise filtered).
        stderr_tail: String,
    },
    /// A step failed after the config was written, and the host was rolled back.
    #[error("rolled back to the previous config: {reason}{}", tail_suffix(.stderr_tail))]
    RolledBack {
        /// The step that failed.
        step: Option<String>,
        /// Why.
        reason: String,
        /// The last lines of the script's stderr.
        stderr_tail: String,
    },
    /// Not changed because a node whose move its config uses failed to apply it.
    #[error(
        "not changed: {node} failed to apply its {what}, which this host's new config uses; it keeps its working config"
    )]
    DependencyFailed {
        /// The node that failed.
        node: String,
        /// What it was moving.
        what: String,
    },
    /// Its steps were not started: the operator interrupted the run.
    #[error("not started: the run was interrupted")]
    Interrupted,
    /// The host returned something meshup cannot use (e.g. an invalid public key).
    #[error("{message}")]
    BadAnswer {
        /// What was wrong.
        message: String,
    },
    /// verify's probe did not run on the host (no shell, a missing tool, killed).
    #[error("probe did not run (exit {}): {reason}", status.map_or_else(|| "none".to_owned(), |s| s.to_string()))]
    ProbeNotRun {
        /// The script's exit status, when it had one.
        status: Option<u32>,
        /// The first line the host wrote on stderr, else "no output".
        reason: String,
    },
}

fn tail_suffix(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!(" ({})", tail.trim())
    }
}

impl HostError {
    /// A blocked host, from a message.
    pub fn blocked(message: impl Into<String>) -> HostError {
        HostError::Blocked {
            message: message.into(),
        }
    }
}

impl From<crate::transport::TransportError> for HostError {
    fn from(e: crate::transport::TransportError) -> HostError {
        HostError::Transport {
            message: e.to_string(),
        }
    }
}

impl Serialize for HostError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}
