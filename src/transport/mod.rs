//! Talking to hosts: one SSH connection per host, commands with stdin in and
//! stdout/stderr/exit status out, behind the [`Session`] trait so tests can script it.

pub(crate) mod auth;
pub mod config;
mod error;
pub mod known_hosts;
mod scripted;
mod ssh;
pub mod ssh_config;
mod stats;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use auth::set_interactive;
pub use config::{Become, HostKeyPolicy, JumpHost, SshTarget, TargetSpec};
pub use error::TransportError;
pub use scripted::{ScriptedCall, ScriptedSession};
pub use ssh::SshSession;
pub use stats::{HostStats, Stats};

/// What one remote command produced.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit status; `None` when the command died from a signal or the server sent none.
    pub status: Option<u32>,
    /// Everything the command wrote to stdout, byte for byte.
    pub stdout: Vec<u8>,
    /// Everything the command wrote to stderr, byte for byte.
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// True when the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// Stdout as text (lossy).
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as text (lossy).
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

impl std::fmt::Debug for ExecOutput {
    // Output may be megabytes, and a command may legitimately carry a secret on stdout
    // (a preshared key read from one host for its peer): sizes only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecOutput")
            .field("status", &self.status)
            .field("stdout_len", &self.stdout.len())
            .field("stderr_len", &self.stderr.len())
            .finish()
    }
}

/// A boxed future, so [`Session`] can be used as `dyn Session`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A connection to one host that runs commands.
///
/// `exec` runs `command` with `sh` semantics (the server's login shell for SSH), feeds it
/// `stdin` then EOF, and returns its output; when the target becomes root through sudo,
/// the session wraps the command in `sudo -n -- sh -c '<command>'` itself.
pub trait Session: Send + Sync {
    /// The host name used in messages.
    fn host(&self) -> &str;

    /// Runs one command; fails with [`TransportError::CommandTimeout`] after `timeout`.
    fn exec<'a>(
        &'a self,
        command: &'a str,
        stdin: &'a [u8],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecOutput, TransportError>>;

    /// Runs one command like [`Session::exec`], but shows each line of its standard
    /// output to `watch.line` as it arrives and sends the end of its standard input
    /// (`watch.rest`, then EOF) only when that resolves: a script can say it is ready and
    /// wait for the word to go. When the command ends first, the rest is not sent.
    ///
    /// This default (a transport that cannot stream) runs the command, then shows the
    /// lines; the rest is awaited and dropped.
    fn exec_watched<'a>(
        &'a self,
        command: &'a str,
        stdin: &'a [u8],
        watch: Watch<'a>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecOutput, TransportError>> {
        Box::pin(async move {
            let out = self.exec(command, stdin, timeout).await?;
            for line in out.stdout_str().lines() {
                (watch.line)(line);
            }
            drop(watch.rest.await);
            Ok(out)
        })
    }

    /// The shortest round trip seen to the host (opening a channel: one request and its
    /// answer), `None` before any or where it is not measured.
    fn round_trip(&self) -> Option<Duration> {
        None
    }
}

/// What [`Session::exec_watched`] shows its caller while the command runs, and what it
/// waits for before it ends the command's input.
pub struct Watch<'a> {
    /// Called with each complete line of standard output (without its newline).
    pub line: &'a (dyn Fn(&str) + Send + Sync),
    /// The end of standard input: sent when it resolves, then EOF.
    pub rest: BoxFuture<'a, Vec<u8>>,
}

/// Checks a command before it is sent: a NUL byte would be cut by the remote shell.
pub(crate) fn validate_command(host: &str, command: &str) -> Result<(), TransportError> {
    if command.contains('\0') {
        return Err(TransportError::InvalidCommand {
            host: host.to_string(),
            reason: "the command contains a NUL byte".into(),
        });
    }
    Ok(())
}
