//! Client authentication: ssh-agent identities first, then identity files (ed25519,
//! ecdsa, RSA with rsa-sha2). An encrypted key asks for its passphrase once per run on
//! the terminal, or fails clearly without one.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use russh::client::Handle;
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};

use super::TransportError;
use crate::secret::Secret;

/// Whether passphrases may be asked on the terminal: 0 = decide from stdin, 1 = yes, 2 = no.
static INTERACTIVE: AtomicU8 = AtomicU8::new(0);

/// Allows or forbids passphrase prompts for encrypted identity files (default: allowed
/// when stdin is a terminal). Tests and `--non-interactive` runs turn it off.
pub fn set_interactive(allowed: bool) {
    INTERACTIVE.store(if allowed { 1 } else { 2 }, Ordering::SeqCst);
}

fn interactive() -> bool {
    match INTERACTIVE.load(Ordering::SeqCst) {
        1 => true,
        2 => false,
        _ => std::io::stdin().is_terminal(),
    }
}

/// The outcome of loading an identity file, kept for the whole run so each key (and its
/// passphrase prompt) is handled once even with many hosts.
#[derive(Clone)]
enum Loaded {
    Key(Arc<PrivateKey>),
    Missing,
    Failed(String),
}

static KEY_CACHE: Mutex<Option<HashMap<PathBuf, Loaded>>> = Mutex::new(None);

fn load_identity_blocking(path: &Path) -> Loaded {
    // Held across the prompt on purpose: parallel connections wait for one answer.
    let mut cache = KEY_CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some(found) = cache.get(path) {
        return found.clone();
    }
    let loaded = match russh::keys::load_secret_key(path, None) {
        Ok(key) => Loaded::Key(Arc::new(key)),
        Err(russh::keys::Error::IO(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            Loaded::Missing
        }
        Err(russh::keys::Error::KeyIsEncrypted) => {
            if !interactive() {
                Loaded::Failed(
                    "the key is encrypted and there is no terminal to ask its passphrase; \
                     add it to ssh-agent (ssh-add) first"
                        .into(),
                )
            } else {
                match ask_passphrase(path) {
                    Ok(pass) => match russh::keys::load_secret_key(path, pass.expose_str()) {
                        Ok(key) => Loaded::Key(Arc::new(key)),
                        Err(e) => Loaded::Failed(format!("cannot decrypt: {e}")),
                    },
                    Err(e) => Loaded::Failed(format!("cannot read the passphrase: {e}")),
                }
            }
        }
        Err(e) => Loaded::Failed(format!("cannot load: {e}")),
    };
    cache.insert(path.to_path_buf(), loaded.clone());
    loaded
}

/// Reads a passphrase from /dev/tty with echo off.
fn ask_passphrase(path: &Path) -> std::io::Result<Secret> {
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    write!(tty, "Enter passphrase for key '{}': ", path.display())?;
    tty.flush()?;
    let stty = |arg: &str| {
        std::fs::File::open("/dev/tty").and_then(|input| {
            std::process::Command::new("stty")
                .arg(arg)
                .stdin(input)
                .status()
        })
    };
    let echo_off = stty("-echo").map(|s| s.success()).unwrap_or(false);
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    if echo_off {
        let _ = stty("echo");
    }
    let _ = writeln!(tty);
    read?;
    let secret = Secret::from(line.trim_end_matches(['\n', '\r']));
    // Zero the temporary buffer too.
    zeroize::Zeroize::zeroize(&mut line);
    Ok(secret)
}

async fn load_identity(path: PathBuf) -> Loaded {
    tokio::task::spawn_blocking(move || load_identity_blocking(&path))
        .await
        .unwrap_or_else(|e| Loaded::Failed(format!("key loading task failed: {e}")))
}

/// What to authenticate as.
pub(crate) struct AuthRequest<'a> {
    pub host: &'a str,
    pub user: &'a str,
    pub identity_files: &'a [PathBuf],
    pub identities_only: bool,
    pub agent: Option<&'a Path>,
}

async fn rsa_hash<H: russh::client::Handler>(handle: &Handle<H>) -> Option<HashAlg> {
    handle
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten()
}

/// Authenticates `handle`; agent keys first, then identity files.
pub(crate) async fn authenticate<H: russh::client::Handler>(
    handle: &mut Handle<H>,
    req: &AuthRequest<'_>,
) -> Result<(), TransportError> {
    let mut tried = Vec::new();
    let mut file_problem: Option<TransportError> = None;
    let ssh_err = |e: russh::Error| TransportError::Ssh {
        host: req.host.to_string(),
        message: format!("authentication: {e}"),
    };

    // Public halves of the identity files, for IdentitiesOnly filtering of agent keys.
    let mut wanted_public: Vec<PublicKey> = Vec::new();
    if req.identities_only {
        for f in req.identity_files {
            let mut pubfile = f.clone().into_os_string();
            pubfile.push(".pub");
            if let Ok(k) = russh::keys::load_public_key(PathBuf::from(pubfile)) {
                wanted_public.push(k);
            }
        }
    }

    if let Some(socket) = req.agent {
        match AgentClient::connect_uds(socket).await {
            Ok(mut agent) => {
                let identities = agent.request_identities().await.unwrap_or_default();
                for identity in identities {
                    let public = identity.public_key().into_owned();
                    if req.identities_only
                        && !wanted_public
                            .iter()
                            .any(|w| w.key_data() == public.key_data())
                    {
                        continue;
                    }
                    let hash = if public.algorithm().is_rsa() {
                        rsa_hash(handle).await
                    } else {
                        None
                    };
                    tried.push(format!("agent key {}", identity.comment()));
                    match handle
                        .authenticate_publickey_with(req.user, public, hash, &mut agent)
                        .await
                    {
                        Ok(result) if result.success() => return Ok(()),
                        Ok(_) => {}
                        // The agent refused to sign (e.g. a confirm-only key): next key.
                        Err(e) => tracing::debug!(host = req.host, "agent signing failed: {e}"),
                    }
                }
            }
            Err(e) => tracing::debug!(host = req.host, "ssh-agent not usable: {e}"),
        }
    }

    for path in req.identity_files {
        match load_identity(path.clone()).await {
            Loaded::Missing => {}
            Loaded::Failed(message) => {
                tried.push(format!("{} (unusable)", path.display()));
                file_problem.get_or_insert(TransportError::Identity {
                    path: path.clone(),
                    message,
                });
            }
            Loaded::Key(key) => {
                let hash = if key.algorithm().is_rsa() {
                    rsa_hash(handle).await
                } else {
                    None
                };
                tried.push(path.display().to_string());
                let result = handle
                    .authenticate_publickey(req.user, PrivateKeyWithHashAlg::new(key, hash))
                    .await
                    .map_err(ssh_err)?;
                if result.success() {
                    return Ok(());
                }
            }
        }
    }
    if let Some(problem) = file_problem {
        return Err(problem);
    }
    Err(TransportError::AuthFailed {
        host: req.host.to_string(),
        user: req.user.to_string(),
        tried,
    })
}
