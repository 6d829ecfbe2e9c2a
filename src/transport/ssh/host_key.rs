//! The host key check of every hop: the server's key against known_hosts, with the run's
//! policy; and why a connection ended underneath meshup.
use super::*;

/// Checks the server's host key against known_hosts with the run's policy.
pub(crate) struct HostKeyChecker {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) files: Vec<PathBuf>,
    pub(super) policy: HostKeyPolicy,
    /// Why the key was refused, reported after russh aborts the handshake.
    pub(super) refusal: Arc<Mutex<Option<TransportError>>>,
    /// Why the connection ended, when it ended underneath meshup (shared by a target and
    /// its jump hosts: a dead jump host ends the target's connection too).
    pub(super) lost: Arc<Mutex<Option<String>>>,
    /// The hop's name for that message.
    pub(super) name: String,
    /// The hop is a jump host, not the target.
    pub(super) jump: bool,
}

impl HostKeyChecker {
    pub(super) fn verify(&self, key: &russh::keys::PublicKey) -> Result<(), TransportError> {
        let name = known_hosts::host_key_name(&self.host, self.port);
        let fingerprint = known_hosts::fingerprint(key);
        if self.policy == HostKeyPolicy::Insecure {
            // Deliberately loud: this is the only path that skips verification.
            eprintln!(
                "WARNING: host key checking is DISABLED (host_key_checking: insecure); \
                 accepting {fingerprint} for {name} without verification"
            );
            tracing::warn!(host = %name, %fingerprint, "host key accepted without verification");
            return Ok(());
        }
        match known_hosts::check(&self.files, &self.host, self.port, key)? {
            Verdict::Known { .. } => Ok(()),
            Verdict::Changed { file, line } => Err(TransportError::HostKeyChanged {
                host: name,
                file,
                line,
                fingerprint,
            }),
            Verdict::Revoked { file, line } => Err(TransportError::HostKeyRevoked {
                host: name,
                file,
                line,
            }),
            Verdict::Unknown => match self.policy {
                HostKeyPolicy::Strict => Err(TransportError::HostKeyUnknown {
                    host: name,
                    fingerprint,
                    files: self.files.clone(),
                }),
                _ => {
                    let Some(target) = self.files.first() else {
                        return Err(TransportError::KnownHosts {
                            path: PathBuf::from("~/.ssh/known_hosts"),
                            message: "no known_hosts file to record a new host key in".into(),
                        });
                    };
                    known_hosts::learn(target, &self.host, self.port, key)?;
                    tracing::info!(host = %name, %fingerprint, file = %target.display(), "learned new host key");
                    Ok(())
                }
            },
        }
    }
}

impl client::Handler for HostKeyChecker {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let outcome = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => self.verify(key),
            PublicKeyOrCertificate::Certificate(_) => Err(TransportError::Ssh {
                host: self.host.clone(),
                message: "the server presented a host certificate; only plain host keys \
                          in known_hosts are supported"
                    .into(),
            }),
        };
        match outcome {
            Ok(()) => Ok(true),
            Err(e) => {
                *self.refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                Ok(false)
            }
        }
    }

    async fn disconnected(
        &mut self,
        reason: client::DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        let who = if self.jump {
            format!("jump host {}", self.name)
        } else {
            "the host".to_string()
        };
        let why = match &reason {
            client::DisconnectReason::ReceivedDisconnect(info) => {
                format!("{who} closed it ({})", info.message)
            }
            client::DisconnectReason::Error(russh::Error::KeepaliveTimeout) => {
                format!("{who} stopped answering (3 keepalives unanswered)")
            }
            client::DisconnectReason::Error(russh::Error::IO(e))
                if e.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                format!("{who} closed it")
            }
            client::DisconnectReason::Error(e) => format!("{who}: {e}"),
        };
        self.lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(why);
        match reason {
            client::DisconnectReason::ReceivedDisconnect(_) => Ok(()),
            client::DisconnectReason::Error(e) => Err(e),
        }
    }
}
