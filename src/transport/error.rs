//! The one error type of the transport layer.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong talking to a host, worded for the operator.
#[derive(Debug, Error)]
pub enum TransportError {
    /// The connection settings could not be resolved.
    #[error("ssh settings for {host}: {message}")]
    Config {
        /// Host alias as given.
        host: String,
        /// What is wrong.
        message: String,
    },
    /// The host name did not resolve or the TCP connection failed.
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        /// Host name connected to.
        host: String,
        /// Port.
        port: u16,
        /// The socket error.
        source: std::io::Error,
    },
    /// No SSH session was established within the connect timeout.
    #[error("connection to {host}:{port} timed out after {secs}s")]
    ConnectTimeout {
        /// Host name connected to.
        host: String,
        /// Port.
        port: u16,
        /// The timeout in seconds.
        secs: u64,
    },
    /// The host presented a key different from the one recorded.
    #[error(
        "host key for {host} CHANGED (old key at {}:{line}); refusing to connect. \
         The host presented {fingerprint}. If the host was really reinstalled, remove \
         the old key and connect again: ssh-keygen -R {} -f {}",
        file.display(),
        single_quoted(host),
        single_quoted(&file.display().to_string())
    )]
    HostKeyChanged {
        /// `host` or `[host]:port` as written in known_hosts.
        host: String,
        /// File holding the old key.
        file: PathBuf,
        /// Line of the old key (1-based).
        line: usize,
        /// SHA256 fingerprint of the presented key.
        fingerprint: String,
    },
    /// The presented key is marked `@revoked`.
    #[error("host key for {host} is REVOKED ({}:{line}); refusing to connect", file.display())]
    HostKeyRevoked {
        /// `host` or `[host]:port`.
        host: String,
        /// File with the `@revoked` line.
        file: PathBuf,
        /// Line (1-based).
        line: usize,
    },
    /// Strict checking is on and the host is not in any known_hosts file.
    #[error(
        "host key for {host} is not known ({fingerprint}) and host_key_checking is `yes`; \
         add it to {} or use accept-new",
        files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    HostKeyUnknown {
        /// `host` or `[host]:port`.
        host: String,
        /// SHA256 fingerprint of the presented key.
        fingerprint: String,
        /// Files searched.
        files: Vec<PathBuf>,
    },
    /// A known_hosts file could not be read or written.
    #[error("known_hosts file {}: {message}", path.display())]
    KnownHosts {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// An identity file could not be used.
    #[error("identity file {}: {message}", path.display())]
    Identity {
        /// The key file.
        path: PathBuf,
        /// What failed (never the passphrase).
        message: String,
    },
    /// The server accepted none of the keys tried.
    #[error(
        "permission denied for {user}@{host}: no key was accepted (tried: {}); \
         load a key into ssh-agent or set identity_file",
        if tried.is_empty() { "no keys found".to_string() } else { tried.join(", ") }
    )]
    AuthFailed {
        /// Host.
        host: String,
        /// User.
        user: String,
        /// The keys tried (agent comments and file paths).
        tried: Vec<String>,
    },
    /// The connection to the host failed through the given jump host.
    #[error("via jump host {jump}: {source}")]
    Jump {
        /// Jump host `user@host:port`.
        jump: String,
        /// What failed.
        source: Box<TransportError>,
    },
    /// An SSH protocol-level failure.
    #[error("ssh to {host}: {message}")]
    Ssh {
        /// Host.
        host: String,
        /// What failed.
        message: String,
    },
    /// The connection closed underneath a command.
    #[error("connection to {host} was lost{}", why.as_ref().map(|w| format!(": {w}")).unwrap_or_default())]
    Disconnected {
        /// Host.
        host: String,
        /// Why, when known (the host stopped answering keepalives, a network error, …).
        why: Option<String>,
    },
    /// A command ran longer than its timeout (it was abandoned; the channel closed).
    #[error("command on {host} timed out after {secs}s")]
    CommandTimeout {
        /// Host.
        host: String,
        /// Timeout in seconds.
        secs: u64,
    },
    /// `sudo -n` needed a password.
    #[error(
        "sudo on {host} needs NOPASSWD for user {user}, or connect as root \
         (sudo -n refused: a password is required)"
    )]
    SudoNeedsPassword {
        /// Host.
        host: String,
        /// The SSH user.
        user: String,
    },
    /// A command was refused before sending.
    #[error("refusing to run a command on {host}: {reason}")]
    InvalidCommand {
        /// Host.
        host: String,
        /// Why.
        reason: String,
    },
    /// The scripted session had no response for a command (tests).
    #[error("scripted session for {host} has no response for command: {command}")]
    Unscripted {
        /// Host.
        host: String,
        /// The command.
        command: String,
    },
}

/// `value` in single quotes for a command line the operator pastes into a shell (the
/// known_hosts name of a non-22 port is `[host]:port`, which a shell would glob).
fn single_quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

impl TransportError {
    /// True for failures to reach the host at all (the host may be down), as opposed
    /// to a refused key or a failing command.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::ConnectTimeout { .. } | Self::Disconnected { .. } => true,
            Self::Jump { source, .. } => source.is_unreachable(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_host_key_says_how_to_remove_the_old_one() {
        let err = TransportError::HostKeyChanged {
            host: "[10.0.0.5]:2222".into(),
            file: PathBuf::from("/home/o'neil/.ssh/known_hosts"),
            line: 7,
            fingerprint: "SHA256:abc".into(),
        };
        let msg = err.to_string();
        assert!(msg.contains("CHANGED"), "{msg}");
        assert!(msg.contains("/home/o'neil/.ssh/known_hosts:7"), "{msg}");
        assert!(
            msg.ends_with(
                r#"ssh-keygen -R '[10.0.0.5]:2222' -f '/home/o'\''neil/.ssh/known_hosts'"#
            ),
            "{msg}"
        );
    }
}
