//! The real [`Session`]: one russh connection per host (through its jump hosts),
//! reused for every command of a run.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{Algorithm, PublicKeyOrCertificate};
use russh::{ChannelMsg, Sig};
use tokio::io::{AsyncRead, AsyncWrite};

use super::auth::{AuthRequest, authenticate};
use super::known_hosts::{self, Verdict};
use super::{
    Become, BoxFuture, ExecOutput, HostKeyPolicy, Session, SshTarget, Stats, TransportError, Watch,
    validate_command,
};
use crate::shell;

mod host_key;

pub(crate) use host_key::HostKeyChecker;

/// Settings for one hop (a jump host or the target).
struct Hop<'a> {
    name: &'a str,
    host: &'a str,
    port: u16,
    user: &'a str,
    identity_files: &'a [PathBuf],
    identities_only: bool,
    jump: bool,
}

/// A live SSH connection to one host, plus the jump connections it runs through.
pub struct SshSession {
    name: String,
    user: String,
    become_: Become,
    handle: Handle<HostKeyChecker>,
    /// Kept alive for the tunnelled connection; dropped with the session.
    _jumps: Vec<Handle<HostKeyChecker>>,
    stats: Arc<Stats>,
    /// The shortest channel open so far, in microseconds (`u64::MAX`: none yet).
    round_trip_us: std::sync::atomic::AtomicU64,
    /// Why the connection ended underneath a command (see [`HostKeyChecker`]).
    lost: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for SshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSession")
            .field("name", &self.name)
            .field("user", &self.user)
            .field("become", &self.become_)
            .finish_non_exhaustive()
    }
}

/// Puts algorithms already recorded for the host first, as OpenSSH does, so a host with
/// several key types presents the one we know.
fn preferred_keys(known: &[Algorithm]) -> russh::Preferred {
    let mut preferred = russh::Preferred::default();
    if known.is_empty() {
        return preferred;
    }
    let is_known = |a: &Algorithm| {
        known.iter().any(|k| {
            k == a || (matches!(k, Algorithm::Rsa { .. }) && matches!(a, Algorithm::Rsa { .. }))
        })
    };
    let mut keys: Vec<Algorithm> = preferred
        .key
        .iter()
        .filter(|a| is_known(a))
        .cloned()
        .collect();
    keys.extend(preferred.key.iter().filter(|a| !is_known(a)).cloned());
    preferred.key = keys.into();
    preferred
}

impl SshSession {
    /// Connects to `target` (through its jump hosts), verifies host keys and
    /// authenticates. Each hop must finish within the target's connect timeout.
    pub async fn connect(
        target: &SshTarget,
        stats: &Arc<Stats>,
    ) -> Result<SshSession, TransportError> {
        let lost = Arc::new(Mutex::new(None));
        let mut jumps: Vec<Handle<HostKeyChecker>> = Vec::new();
        for jump in &target.jumps {
            let hop = Hop {
                name: &jump.name,
                host: &jump.host,
                port: jump.port,
                user: &jump.user,
                identity_files: &jump.identity_files,
                identities_only: jump.identities_only,
                jump: true,
            };
            let handle = connect_hop(target, &hop, jumps.last(), stats, &lost)
                .await
                .map_err(|e| TransportError::Jump {
                    jump: format!("{}@{}:{}", jump.user, jump.host, jump.port),
                    source: Box::new(e),
                })?;
            jumps.push(handle);
        }
        let hop = Hop {
            name: &target.name,
            host: &target.host,
            port: target.port,
            user: &target.user,
            identity_files: &target.identity_files,
            identities_only: target.identities_only,
            jump: false,
        };
        let handle = match connect_hop(target, &hop, jumps.last(), stats, &lost).await {
            Ok(h) => h,
            Err(e) => {
                return Err(match target.jumps.last() {
                    Some(j) => TransportError::Jump {
                        jump: format!("{}@{}:{}", j.user, j.host, j.port),
                        source: Box::new(e),
                    },
                    None => e,
                });
            }
        };
        Ok(SshSession {
            name: target.name.clone(),
            user: target.user.clone(),
            become_: target.become_,
            handle,
            _jumps: jumps,
            stats: Arc::clone(stats),
            round_trip_us: std::sync::atomic::AtomicU64::new(u64::MAX),
            lost,
        })
    }

    /// Why the connection ended underneath a command, when russh said.
    fn lost_why(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Closes the connection (and its jump connections) politely.
    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        for j in self._jumps.iter().rev() {
            let _ = j
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
        }
    }

    async fn run(
        &self,
        command: &str,
        stdin: &[u8],
        watch: Option<Watch<'_>>,
        timeout: Duration,
    ) -> Result<ExecOutput, TransportError> {
        validate_command(&self.name, command)?;
        let wrapped;
        let command = match self.become_ {
            Become::Root => command,
            Become::Sudo => {
                wrapped = shell::sudo(command);
                &wrapped
            }
        };
        let ssh_err = |what: &str, e: russh::Error| {
            if self.handle.is_closed() {
                TransportError::Disconnected {
                    host: self.name.clone(),
                    why: self.lost_why(),
                }
            } else {
                TransportError::Ssh {
                    host: self.name.clone(),
                    message: format!("{what}: {e}"),
                }
            }
        };
        let opened = std::time::Instant::now();
        let channel = tokio::time::timeout(timeout, self.handle.channel_open_session())
            .await
            .map_err(|_| TransportError::CommandTimeout {
                host: self.name.clone(),
                secs: timeout.as_secs(),
            })?
            .map_err(|e| ssh_err("cannot open a session channel", e))?;
        let us = u64::try_from(opened.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.round_trip_us
            .fetch_min(us, std::sync::atomic::Ordering::Relaxed);
        self.stats.record_exec(&self.name);
        let (mut reader, writer) = channel.split();

        let (line, rest) = match watch {
            Some(w) => (Some(w.line), Some(w.rest)),
            None => (None, None),
        };
        let work = async {
            writer
                .exec(true, command.as_bytes())
                .await
                .map_err(|e| ssh_err("cannot start the command", e))?;
            let send = async {
                if !stdin.is_empty() {
                    writer.data(stdin).await?;
                }
                if let Some(rest) = rest {
                    let rest = rest.await;
                    if !rest.is_empty() {
                        writer.data(&rest[..]).await?;
                    }
                }
                writer.eof().await
            };
            let receive = async {
                let mut out = ExecOutput::default();
                // Where the next line not yet shown to the watcher starts.
                let mut shown = 0;
                while let Some(msg) = reader.wait().await {
                    match msg {
                        ChannelMsg::Data { data } => {
                            out.stdout.extend_from_slice(&data);
                            if let Some(line) = line {
                                while let Some(nl) =
                                    out.stdout[shown..].iter().position(|&b| b == b'\n')
                                {
                                    line(&String::from_utf8_lossy(&out.stdout[shown..shown + nl]));
                                    shown += nl + 1;
                                }
                            }
                        }
                        ChannelMsg::ExtendedData { data, ext: 1 } => {
                            out.stderr.extend_from_slice(&data)
                        }
                        ChannelMsg::ExitStatus { exit_status } => out.status = Some(exit_status),
                        ChannelMsg::Failure => {
                            return Err(TransportError::Ssh {
                                host: self.name.clone(),
                                message: "the server refused to run the command".into(),
                            });
                        }
                        ChannelMsg::Close => break,
                        _ => {}
                    }
                }
                Ok(out)
            };
            // The input is sent while the output comes; a command that ends before its
            // input does (or before a watcher's rest resolves) ends the sending.
            tokio::pin!(send, receive);
            let mut sent = None;
            let received = loop {
                tokio::select! {
                    s = &mut send, if sent.is_none() => sent = Some(s),
                    r = &mut receive => break r,
                }
            };
            let out = received?;
            // The command may exit without reading all of stdin; that is its business,
            // but a broken connection is ours.
            if let Some(Err(e)) = sent
                && self.handle.is_closed()
            {
                return Err(ssh_err("sending stdin", e));
            }
            if out.status.is_none() && self.handle.is_closed() {
                return Err(TransportError::Disconnected {
                    host: self.name.clone(),
                    why: self.lost_why(),
                });
            }
            Ok(out)
        };
        let out = match tokio::time::timeout(timeout, work).await {
            Ok(result) => result?,
            Err(_) => {
                // Best effort: stop the remote command and free the channel.
                let cleanup = async {
                    let _ = writer.signal(Sig::KILL).await;
                    let _ = writer.close().await;
                };
                let _ = tokio::time::timeout(Duration::from_secs(2), cleanup).await;
                return Err(TransportError::CommandTimeout {
                    host: self.name.clone(),
                    secs: timeout.as_secs(),
                });
            }
        };
        trace_received(&self.name, &out);
        if self.become_ == Become::Sudo
            && out.status == Some(1)
            && String::from_utf8_lossy(&out.stderr).contains(shell::SUDO_NEEDS_PASSWORD)
        {
            return Err(TransportError::SudoNeedsPassword {
                host: self.name.clone(),
                user: self.user.clone(),
            });
        }
        Ok(out)
    }
}

impl Session for SshSession {
    fn host(&self) -> &str {
        &self.name
    }

    fn exec<'a>(
        &'a self,
        command: &'a str,
        stdin: &'a [u8],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecOutput, TransportError>> {
        Box::pin(self.run(command, stdin, None, timeout))
    }

    fn exec_watched<'a>(
        &'a self,
        command: &'a str,
        stdin: &'a [u8],
        watch: Watch<'a>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecOutput, TransportError>> {
        Box::pin(self.run(command, stdin, Some(watch), timeout))
    }

    fn round_trip(&self) -> Option<Duration> {
        match self
            .round_trip_us
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            u64::MAX => None,
            us => Some(Duration::from_micros(us)),
        }
    }
}

async fn connect_hop(
    target: &SshTarget,
    hop: &Hop<'_>,
    via: Option<&Handle<HostKeyChecker>>,
    stats: &Arc<Stats>,
    lost: &Arc<Mutex<Option<String>>>,
) -> Result<Handle<HostKeyChecker>, TransportError> {
    let secs = target.connect_timeout.as_secs();
    let attempt = async {
        match via {
            Some(jump) => {
                let channel = jump
                    .channel_open_direct_tcpip(hop.host, u32::from(hop.port), "127.0.0.1", 0)
                    .await
                    .map_err(|e| TransportError::Ssh {
                        host: hop.name.to_string(),
                        message: format!(
                            "the jump host could not open a tunnel to {}:{}: {e}",
                            hop.host, hop.port
                        ),
                    })?;
                handshake(target, hop, channel.into_stream(), lost).await
            }
            None => {
                let tcp = tokio::net::TcpStream::connect((hop.host, hop.port))
                    .await
                    .map_err(|source| TransportError::Connect {
                        host: hop.host.to_string(),
                        port: hop.port,
                        source,
                    })?;
                let _ = tcp.set_nodelay(true);
                handshake(target, hop, tcp, lost).await
            }
        }
    };
    let handle = tokio::time::timeout(target.connect_timeout, attempt)
        .await
        .map_err(|_| TransportError::ConnectTimeout {
            host: hop.host.to_string(),
            port: hop.port,
            secs,
        })??;
    stats.record_connection(hop.name);
    Ok(handle)
}

async fn handshake<S>(
    target: &SshTarget,
    hop: &Hop<'_>,
    stream: S,
    lost: &Arc<Mutex<Option<String>>>,
) -> Result<Handle<HostKeyChecker>, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let refusal = Arc::new(Mutex::new(None));
    let checker = HostKeyChecker {
        host: hop.host.to_string(),
        port: hop.port,
        files: target.known_hosts.clone(),
        policy: target.host_key_policy,
        refusal: Arc::clone(&refusal),
        lost: Arc::clone(lost),
        name: hop.name.to_string(),
        jump: hop.jump,
    };
    let known = known_hosts::known_algorithms(&target.known_hosts, hop.host, hop.port);
    let config = Arc::new(client::Config {
        keepalive_interval: Some(target.keepalive),
        keepalive_max: 3,
        nodelay: true,
        preferred: preferred_keys(&known),
        ..client::Config::default()
    });
    let mut handle = match client::connect_stream(config, stream, checker).await {
        Ok(h) => h,
        Err(e) => {
            if let Some(reason) = refusal.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Err(reason);
            }
            return Err(TransportError::Ssh {
                host: hop.name.to_string(),
                message: format!("handshake with {}:{} failed: {e}", hop.host, hop.port),
            });
        }
    };
    authenticate(
        &mut handle,
        &AuthRequest {
            host: hop.host,
            user: hop.user,
            identity_files: hop.identity_files,
            identities_only: hop.identities_only,
            agent: target.agent.as_deref(),
        },
    )
    .await?;
    Ok(handle)
}

/// Environment variable naming a file that receives a copy of everything every exec got
/// back from a host (stdout and stderr, appended). A test hook: the lab tests use it to
/// prove that no private key or preshared key ever crosses SSH towards the workstation.
/// Unset (the normal case), nothing is written.
pub const TRACE_RECEIVED_ENV: &str = "MESHUP_TRACE_RECEIVED";

/// Appends what one exec received to the file named by [`TRACE_RECEIVED_ENV`], if set.
fn trace_received(host: &str, out: &ExecOutput) {
    use std::io::Write as _;
    let Some(path) = std::env::var_os(TRACE_RECEIVED_ENV) else {
        return;
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path);
    if let Ok(mut file) = file {
        let mut record = format!("@@trace:{host}:stdout\n").into_bytes();
        record.extend_from_slice(&out.stdout);
        record.extend_from_slice(format!("\n@@trace:{host}:stderr\n").as_bytes());
        record.extend_from_slice(&out.stderr);
        record.push(b'\n');
        // One write per exec so parallel hosts do not interleave.
        let _ = file.write_all(&record);
    }
}
