//! known_hosts files, read like OpenSSH: plain and hashed (`|1|salt|hash`) host
//! fields, `[host]:port` for non-22 ports, patterns with `*`, `?` and `!`, `@revoked`
//! lines; `@cert-authority` lines are skipped (host certificates are not supported).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{Algorithm, HashAlg, PublicKey};
use sha1::Sha1;

use super::TransportError;
use super::ssh_config::pattern_list_match;

/// How a presented host key relates to the known_hosts files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The key is recorded for this host.
    Known {
        /// File with the matching entry.
        file: PathBuf,
        /// Its line (1-based).
        line: usize,
    },
    /// The host has no entry.
    Unknown,
    /// The host is recorded with a different key: refuse.
    Changed {
        /// File with the old key.
        file: PathBuf,
        /// Its line (1-based).
        line: usize,
    },
    /// The key is marked `@revoked`: refuse.
    Revoked {
        /// File with the `@revoked` line.
        file: PathBuf,
        /// Its line (1-based).
        line: usize,
    },
}

/// One usable entry matching a host.
#[derive(Clone, Debug)]
struct Entry {
    file: PathBuf,
    line: usize,
    revoked: bool,
    key: PublicKey,
}

/// The name a host is recorded under: `host` on port 22, else `[host]:port`.
pub fn host_key_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// SHA256 fingerprint of a key, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    format!(
        "{} {}",
        key.algorithm().as_str(),
        key.fingerprint(HashAlg::Sha256)
    )
}

fn entries_for(files: &[PathBuf], name: &str) -> Result<Vec<Entry>, TransportError> {
    let mut found = Vec::new();
    for file in files {
        let text = match std::fs::read(file) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(TransportError::KnownHosts {
                    path: file.clone(),
                    message: format!("cannot read: {e}"),
                });
            }
        };
        for (idx, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let mut first = fields.next().unwrap_or_default();
            let mut revoked = false;
            if first.starts_with('@') {
                match first {
                    "@revoked" => revoked = true,
                    // @cert-authority and unknown markers: not a plain host key.
                    _ => continue,
                }
                first = fields.next().unwrap_or_default();
            }
            let (Some(_algo), Some(b64)) = (fields.next(), fields.next()) else {
                continue;
            };
            if !host_field_matches(first, name) {
                continue;
            }
            // A line we cannot parse is skipped, as OpenSSH does.
            let Ok(key) = russh::keys::parse_public_key_base64(b64) else {
                continue;
            };
            found.push(Entry {
                file: file.clone(),
                line: idx + 1,
                revoked,
                key,
            });
        }
    }
    Ok(found)
}

fn host_field_matches(field: &str, name: &str) -> bool {
    if let Some(hashed) = field.strip_prefix("|1|") {
        return hashed_matches(hashed, name);
    }
    let patterns: Vec<&str> = field.split(',').collect();
    pattern_list_match(&patterns, name)
}

fn hashed_matches(hashed: &str, name: &str) -> bool {
    let engine = base64::engine::general_purpose::STANDARD;
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (engine.decode(salt), engine.decode(hash)) else {
        return false;
    };
    let Ok(mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt) else {
        return false;
    };
    mac.chain_update(name.as_bytes())
        .verify_slice(&hash)
        .is_ok()
}

/// Checks `key` presented by `host:port` against `files` (searched in order).
pub fn check(
    files: &[PathBuf],
    host: &str,
    port: u16,
    key: &PublicKey,
) -> Result<Verdict, TransportError> {
    let entries = entries_for(files, &host_key_name(host, port))?;
    if let Some(e) = entries
        .iter()
        .find(|e| e.revoked && e.key.key_data() == key.key_data())
    {
        return Ok(Verdict::Revoked {
            file: e.file.clone(),
            line: e.line,
        });
    }
    let plain: Vec<&Entry> = entries.iter().filter(|e| !e.revoked).collect();
    if let Some(e) = plain.iter().find(|e| e.key.key_data() == key.key_data()) {
        return Ok(Verdict::Known {
            file: e.file.clone(),
            line: e.line,
        });
    }
    // Prefer the old key of the same type in the message; any recorded key of another
    // type also means the host is known under a different key.
    let old = plain
        .iter()
        .find(|e| e.key.algorithm() == key.algorithm())
        .or(plain.first());
    Ok(match old {
        Some(e) => Verdict::Changed {
            file: e.file.clone(),
            line: e.line,
        },
        None => Verdict::Unknown,
    })
}

/// Key algorithms recorded for `host:port`, so the client can ask for those first (as
/// OpenSSH does) and not trip over a second host key type.
pub fn known_algorithms(files: &[PathBuf], host: &str, port: u16) -> Vec<Algorithm> {
    let mut algos = Vec::new();
    for e in entries_for(files, &host_key_name(host, port)).unwrap_or_default() {
        if !e.revoked && !algos.contains(&e.key.algorithm()) {
            algos.push(e.key.algorithm());
        }
    }
    algos
}

/// Serialises appends from parallel connections within this process.
static LEARN_LOCK: Mutex<()> = Mutex::new(());

/// Appends `host:port key` to `path` (created with its directory when missing).
pub fn learn(path: &Path, host: &str, port: u16, key: &PublicKey) -> Result<(), TransportError> {
    let err = |message: String| TransportError::KnownHosts {
        path: path.to_path_buf(),
        message,
    };
    let encoded = key
        .to_openssh()
        .map_err(|e| err(format!("cannot encode key: {e}")))?;
    let _guard = LEARN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create directory: {e}")))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
    }
    let needs_newline = match std::fs::read(path) {
        Ok(bytes) => !bytes.is_empty() && !bytes.ends_with(b"\n"),
        Err(_) => false,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| err(format!("cannot open for writing: {e}")))?;
    let mut line = String::new();
    if needs_newline {
        line.push('\n');
    }
    line.push_str(&host_key_name(host, port));
    line.push(' ');
    line.push_str(encoded.trim());
    line.push('\n');
    file.write_all(line.as_bytes())
        .map_err(|e| err(format!("cannot write: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED1: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const ED2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIA6rWI3G1sz07DnfFlrouTcysQlj2P+jpNSOEWD9OJ3X";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).expect("test key")
    }

    fn hashed(name: &str, salt: &[u8]) -> String {
        let engine = base64::engine::general_purpose::STANDARD;
        let mac = <Hmac<Sha1> as KeyInit>::new_from_slice(salt)
            .expect("hmac")
            .chain_update(name.as_bytes())
            .finalize()
            .into_bytes();
        format!("|1|{}|{}", engine.encode(salt), engine.encode(mac))
    }

    #[test]
    fn plain_hashed_port_and_changed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kh = dir.path().join("known_hosts");
        std::fs::write(
            &kh,
            format!(
                "# comment\n\n\
                 other.example ssh-ed25519 {ED2}\n\
                 {} ssh-ed25519 {ED1}\n\
                 [10.0.0.1]:2222\tssh-ed25519   {ED1} comment here\n\
                 @cert-authority * ssh-ed25519 {ED2}\n\
                 *.lan,!bad.lan ssh-ed25519 {ED1}\n",
                hashed("hashed.example", b"0123456789abcdefghij")
            ),
        )
        .expect("write");
        let files = vec![dir.path().join("missing"), kh.clone()];
        assert_eq!(
            check(&files, "hashed.example", 22, &key(ED1)).expect("ok"),
            Verdict::Known {
                file: kh.clone(),
                line: 4
            }
        );
        assert_eq!(
            check(&files, "10.0.0.1", 2222, &key(ED1)).expect("ok"),
            Verdict::Known {
                file: kh.clone(),
                line: 5
            }
        );
        assert_eq!(
            check(&files, "10.0.0.1", 22, &key(ED1)).expect("ok"),
            Verdict::Unknown
        );
        assert_eq!(
            check(&files, "other.example", 22, &key(ED1)).expect("ok"),
            Verdict::Changed {
                file: kh.clone(),
                line: 3
            }
        );
        assert_eq!(
            check(&files, "hashed.example", 22, &key(ED2)).expect("ok"),
            Verdict::Changed {
                file: kh.clone(),
                line: 4
            }
        );
        assert!(matches!(
            check(&files, "x.lan", 22, &key(ED1)).expect("ok"),
            Verdict::Known { .. }
        ));
        assert_eq!(
            check(&files, "bad.lan", 22, &key(ED1)).expect("ok"),
            Verdict::Unknown
        );
    }

    #[test]
    fn revoked_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kh = dir.path().join("kh");
        std::fs::write(
            &kh,
            format!("h ssh-ed25519 {ED1}\n@revoked * ssh-ed25519 {ED1}\n"),
        )
        .expect("write");
        assert_eq!(
            check(std::slice::from_ref(&kh), "h", 22, &key(ED1)).expect("ok"),
            Verdict::Revoked { file: kh, line: 2 }
        );
    }

    #[test]
    fn learn_appends_and_is_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kh = dir.path().join("sub/known_hosts");
        learn(&kh, "127.0.0.1", 2200, &key(ED1)).expect("learn");
        learn(&kh, "h", 22, &key(ED2)).expect("learn");
        let text = std::fs::read_to_string(&kh).expect("read");
        assert!(
            text.starts_with(&format!("[127.0.0.1]:2200 ssh-ed25519 {ED1}")),
            "{text}"
        );
        assert_eq!(
            check(std::slice::from_ref(&kh), "h", 22, &key(ED2)).expect("ok"),
            Verdict::Known {
                file: kh.clone(),
                line: 2
            }
        );
        assert_eq!(known_algorithms(&[kh], "h", 22), vec![Algorithm::Ed25519]);
    }
}
