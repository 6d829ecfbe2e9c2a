//! A package manager's lock: which files, and how to tell that someone holds them.

use serde::Deserialize;

/// How a lock file says it is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// An fcntl/flock lock on the file (apt/dpkg, rpm, apk): listed in `/proc/locks`
    /// with the holder's PID. The file itself always exists.
    Fcntl,
    /// The file holds the PID of the owner and is held while that process lives
    /// (zypper's `/run/zypp.pid`, yum's `/var/run/yum.pid`).
    Pidfile,
    /// Held while the file exists (pacman's `db.lck`); a crashed run leaves it behind.
    Exists,
}

impl LockKind {
    fn as_str(self) -> &'static str {
        match self {
            LockKind::Fcntl => "fcntl",
            LockKind::Pidfile => "pidfile",
            LockKind::Exists => "exists",
        }
    }
}

/// One lock file, written `kind:/path` in playbooks (`fcntl:/var/lib/dpkg/lock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockFile {
    /// How it is held.
    pub kind: LockKind,
    /// Absolute path.
    pub path: String,
}

impl<'de> Deserialize<'de> for LockFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let (kind, path) = text.split_once(':').ok_or_else(|| {
            serde::de::Error::custom(format!("lock file {text:?} must be KIND:/path"))
        })?;
        let kind = match kind {
            "fcntl" => LockKind::Fcntl,
            "pidfile" => LockKind::Pidfile,
            "exists" => LockKind::Exists,
            other => {
                return Err(serde::de::Error::custom(format!(
                    "lock kind {other:?} must be fcntl, pidfile or exists"
                )));
            }
        };
        Ok(LockFile {
            kind,
            path: path.to_string(),
        })
    }
}

/// A package manager's lock (`lock:` in a distro playbook).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageLock {
    /// Name in messages: "waiting for the dpkg lock held by ...".
    pub name: String,
    /// Files; the lock is held while any of them is.
    pub files: Vec<LockFile>,
}

impl PackageLock {
    pub(crate) fn validate(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return Err(format!(
                "lock name {:?} must be of A-Z a-z 0-9 - _ .",
                self.name
            ));
        }
        if self.files.is_empty() {
            return Err("lock.files is empty".into());
        }
        match self.files.iter().find(|f| !valid_path(&f.path)) {
            Some(f) => Err(format!(
                "lock file {:?} must be absolute, of A-Z a-z 0-9 / . _ -",
                f.path
            )),
            None => Ok(()),
        }
    }

    /// `mu_wait_lock TIMEOUT NAME KIND:PATH...`; every word is validated at load time
    /// and needs no quoting.
    pub(crate) fn call(&self, timeout_secs: u32) -> String {
        let mut call = format!("mu_wait_lock {timeout_secs} {}", self.name);
        for f in &self.files {
            call.push_str(&format!(" {}:{}", f.kind.as_str(), f.path));
        }
        call
    }
}

/// An absolute path made only of characters that need no shell quoting.
pub(crate) fn valid_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.contains("..")
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'))
}
