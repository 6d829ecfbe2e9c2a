//! The workstation side of `generate: true` clients: their key pair and their config
//! file, `<inventory dir>/clients/<name>.conf`, mode 600 in a mode 700 directory.
//!
//! The device of such a client runs no meshup, so its key pair is made here (x25519 in
//! memory) and lives only in that file: later runs read the private key back from it and
//! derive the public key, never making a new one while the file exists. This is the
//! one place a private key of the mesh lives on the workstation; `public_key:` clients
//! keep theirs on the device.
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroize as _;

use crate::inventory::{ClientKey, Inventory, NodeName};
use crate::keys::PublicKey;
use crate::render::{self, PRIVATE_KEY_TOKEN};
use crate::secret::Secret;
use crate::topology::Mesh;

/// Why a client's file could not be read or written.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ClientFileError {
    /// Reading, creating or renaming a file failed.
    #[error("{what} {}", path.display())]
    #[diagnostic(code(meshup::client::io))]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no valid `PrivateKey = ` line.
    #[error("{} has no valid `PrivateKey = ` line", path.display())]
    #[diagnostic(
        code(meshup::client::no_key),
        help(
            "meshup made this file for a `generate: true` client; delete it to get a new key pair (the device must then get the new config)"
        )
    )]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The file may be read by other users.
    #[error("{} is readable by other users (mode {mode:o})", path.display())]
    #[diagnostic(
        code(meshup::client::mode),
        help("it holds a private key: `chmod 600` it")
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// Where a generated client's config lives.
pub fn config_path(inventory: &Inventory, client: &NodeName) -> PathBuf {
    inventory.clients_dir().join(format!("{client}.conf"))
}

/// The public keys of the generated clients whose file exists, derived from the private
/// key in it. Reads only; a missing file is simply absent from the map.
pub fn local_keys(inventory: &Inventory) -> Result<BTreeMap<NodeName, PublicKey>, ClientFileError> {
    let mut keys = BTreeMap::new();
    for client in inventory.clients() {
        if client.key != ClientKey::Generated {
            continue;
        }
        let path = config_path(inventory, &client.name);
        if let Some(private) = read_private_key(&path)? {
            keys.insert(client.name.clone(), public_of(&private, &path)?);
        }
    }
    Ok(keys)
}

/// Makes a key pair for every generated client that has no file yet and writes it
/// (a config holding only `[Interface]` and the key until the nodes' keys are known).
/// Returns the clients that got a new key pair.
pub fn ensure_keys(inventory: &Inventory) -> Result<Vec<NodeName>, ClientFileError> {
    let mut made = Vec::new();
    for client in inventory.clients() {
        if client.key != ClientKey::Generated {
            continue;
        }
        let path = config_path(inventory, &client.name);
        if read_private_key(&path)?.is_some() {
            continue;
        }
        let private = new_private_key();
        let text = format!(
            "{}\n# Client: {}\n[Interface]\nPrivateKey = {}\n",
            render::CLIENT_HEADER,
            client.name,
            private.expose_str().unwrap_or_default()
        );
        write_private(&path, &Secret::new(text))?;
        made.push(client.name.clone());
    }
    Ok(made)
}

/// What happened to one generated client's config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The client.
    pub client: NodeName,
    /// Its file.
    pub path: PathBuf,
    /// The file was rewritten (its text differed).
    pub changed: bool,
    /// `via` nodes left out because their public key is not known yet.
    pub left_out: Vec<NodeName>,
}

/// Renders every generated client's config with the nodes' keys and writes the files
/// whose text differs (atomically, mode 600). A client without a key file is skipped
/// (`ensure_keys` makes them).
pub fn write_configs(
    inventory: &Inventory,
    mesh: &Mesh,
    node_key: &dyn Fn(&NodeName) -> Option<PublicKey>,
) -> Result<Vec<Written>, ClientFileError> {
    let mut out = Vec::new();
    for client in mesh.clients.iter().filter(|c| c.generated) {
        let path = config_path(inventory, &client.name);
        let Some(private) = read_private_key(&path)? else {
            continue;
        };
        let (text, left_out) = render::render_client(mesh, client, node_key);
        let full =
            Secret::new(text.replace(PRIVATE_KEY_TOKEN, private.expose_str().unwrap_or_default()));
        let current = read_secret(&path)?;
        let changed = current.as_ref().map(Secret::expose) != Some(full.expose());
        if changed {
            write_private(&path, &full)?;
        }
        out.push(Written {
            client: client.name.clone(),
            path,
            changed,
            left_out,
        });
    }
    Ok(out)
}

/// Moves the config of every client no longer generated by the inventory (removed, or
/// switched to `public_key:`) aside as `<name>.conf.revoked`, so that a client added
/// again under the same name gets a new key pair instead of the revoked one. Returns
/// the files moved.
pub fn retire_removed(inventory: &Inventory) -> Result<Vec<PathBuf>, ClientFileError> {
    let dir = inventory.clients_dir();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ClientFileError::Io {
                what: "cannot list",
                path: dir,
                source,
            });
        }
    };
    let mut moved = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".conf"))
        else {
            continue;
        };
        let kept = inventory
            .clients()
            .iter()
            .any(|c| c.name.as_str() == stem && c.key == ClientKey::Generated);
        if kept || stem.starts_with('.') {
            continue;
        }
        let target = path.with_file_name(format!("{stem}.conf.revoked"));
        fs::rename(&path, &target).map_err(|source| ClientFileError::Io {
            what: "cannot move aside",
            path: path.clone(),
            source,
        })?;
        moved.push(target);
    }
    moved.sort();
    Ok(moved)
}

/// The text of a client's file, or `None` when it does not exist. Refuses a file that
/// other users may read.
pub fn read_secret(path: &Path) -> Result<Option<Secret>, ClientFileError> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ClientFileError::Io {
                what: "cannot read",
                path: path.to_owned(),
                source,
            });
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ClientFileError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    let bytes = fs::read(path).map_err(|source| ClientFileError::Io {
        what: "cannot read",
        path: path.to_owned(),
        source,
    })?;
    Ok(Some(Secret::new(bytes)))
}

/// The private key (base64 text) in a client's file, or `None` when there is no file.
fn read_private_key(path: &Path) -> Result<Option<Secret>, ClientFileError> {
    let Some(text) = read_secret(path)? else {
        return Ok(None);
    };
    let key = text.expose_str().and_then(|t| {
        t.lines().find_map(|line| {
            let (name, value) = line.split_once('=')?;
            (name.trim() == "PrivateKey").then(|| value.trim().to_owned())
        })
    });
    match key {
        Some(key) => Ok(Some(Secret::new(key))),
        None => Err(ClientFileError::NoKey {
            path: path.to_owned(),
        }),
    }
}

/// The public key of a base64 private key, as `wg pubkey` computes it.
fn public_of(private: &Secret, path: &Path) -> Result<PublicKey, ClientFileError> {
    let no_key = || ClientFileError::NoKey {
        path: path.to_owned(),
    };
    let mut bytes = STANDARD.decode(private.expose()).map_err(|_| no_key())?;
    let result = <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| no_key())
        .and_then(|array| {
            let secret = x25519_dalek::StaticSecret::from(array);
            let public = x25519_dalek::PublicKey::from(&secret);
            PublicKey::from_bytes(public.to_bytes()).map_err(|_| no_key())
        });
    bytes.zeroize();
    result
}

/// A fresh private key (what `wg genkey` makes: clamped by x25519 on use), base64.
fn new_private_key() -> Secret {
    let secret = x25519_dalek::StaticSecret::random();
    Secret::new(STANDARD.encode(secret.as_bytes()))
}

/// Writes `text` to `path` atomically with mode 600, creating `clients/` with mode 700.
fn write_private(path: &Path, text: &Secret) -> Result<(), ClientFileError> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| ClientFileError::Io { what, path, source }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io("cannot create", dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(text.expose())?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io("cannot write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_the_public_key_wg_pubkey_gives() {
        // The private key of wg(8)'s example config; its public key as `wg pubkey`
        // prints it.
        let private = Secret::new("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=");
        let public = public_of(&private, Path::new("t")).expect("valid key");
        assert_eq!(
            public.to_string(),
            "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="
        );
    }

    #[test]
    fn a_file_open_to_others_is_refused_and_a_written_one_is_600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("clients/laptop.conf");
        write_private(&path, &Secret::new("PrivateKey = x\n")).expect("write");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(path.parent().expect("dir"))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            read_secret(&path),
            Err(ClientFileError::TooOpen { mode: 0o644, .. })
        ));
    }
}
