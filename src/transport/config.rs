//! Connection settings resolved like OpenSSH: inventory values first, then the
//! ssh_config for the host alias.
//!
//! Where `ssh` is installed, `ssh -G [-F file] [-o User=..] [-p port] alias` gives
//! OpenSSH's own answer (Include, Match, canonicalisation, tokens: everything). Without
//! it, the built-in reader in [`super::ssh_config`] evaluates a documented subset; this
//! module then expands `IdentityFile` tokens (`~`, `%d`, `%u`, `%h`, `%r`) and applies
//! the inventory's overrides.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::TransportError;
use super::ssh_config::{ConfigQuery, SshOptions, expand_home, home_dir, parse_ssh_config};

/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default keepalive interval (a dead host is noticed after 3 missed replies).
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);

/// How root privileges are obtained on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Become {
    /// The SSH user is root; commands run as they are.
    Root,
    /// Commands are wrapped in `sudo -n -- sh -c '...'`; sudo must be NOPASSWD.
    Sudo,
}

/// What to do with host keys, like OpenSSH's StrictHostKeyChecking.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Only hosts already in a known_hosts file are accepted.
    Strict,
    /// Unknown hosts are learned and recorded; a changed key is always refused.
    #[default]
    AcceptNew,
    /// Any key is accepted with a warning on stderr; nothing is recorded. Insecure.
    Insecure,
}

impl std::str::FromStr for HostKeyPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "yes" => Ok(Self::Strict),
            "accept-new" => Ok(Self::AcceptNew),
            "insecure" => Ok(Self::Insecure),
            other => Err(format!(
                "unknown host_key_checking {other:?} (expected yes, accept-new or insecure)"
            )),
        }
    }
}

/// A jump host (ProxyJump hop), resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JumpHost {
    /// Name used in messages and stats (the spec as written, e.g. `admin@bastion:2222`).
    pub name: String,
    /// Host name or address to connect to.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User.
    pub user: String,
    /// Identity files to try, in order.
    pub identity_files: Vec<PathBuf>,
    /// Use only the identity files, not every agent key.
    pub identities_only: bool,
}

/// Fully resolved settings to reach one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshTarget {
    /// Name for messages and stats (the alias as given).
    pub name: String,
    /// Host name or address to connect to (ssh_config `HostName`).
    pub host: String,
    /// Port.
    pub port: u16,
    /// SSH user.
    pub user: String,
    /// Identity files to try after the agent, in order (missing ones are skipped).
    pub identity_files: Vec<PathBuf>,
    /// Use only the identity files, not every agent key (ssh_config `IdentitiesOnly`).
    pub identities_only: bool,
    /// ssh-agent socket to try first (`IdentityAgent`, default `$SSH_AUTH_SOCK`); `None`
    /// disables the agent.
    pub agent: Option<PathBuf>,
    /// ProxyJump chain, first hop first.
    pub jumps: Vec<JumpHost>,
    /// known_hosts files searched in order; new keys are written to the first one.
    pub known_hosts: Vec<PathBuf>,
    /// Host key policy.
    pub host_key_policy: HostKeyPolicy,
    /// Timeout for TCP connect + SSH handshake + authentication (per hop).
    pub connect_timeout: Duration,
    /// Keepalive interval; the connection is dropped after 3 unanswered.
    pub keepalive: Duration,
    /// How commands get root.
    pub become_: Become,
}

impl SshTarget {
    /// A target with defaults (agent on, accept-new, `~/.ssh/known_hosts`), for tests and
    /// callers that do not go through ssh_config.
    pub fn new(host: impl Into<String>, port: u16, user: impl Into<String>) -> Self {
        let host = host.into();
        let user = user.into();
        let become_ = if user == "root" {
            Become::Root
        } else {
            Become::Sudo
        };
        Self {
            name: host.clone(),
            host,
            port,
            user,
            identity_files: Vec::new(),
            identities_only: false,
            agent: std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from),
            jumps: Vec::new(),
            known_hosts: home_dir()
                .map(|h| vec![h.join(".ssh/known_hosts")])
                .unwrap_or_default(),
            host_key_policy: HostKeyPolicy::AcceptNew,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            keepalive: DEFAULT_KEEPALIVE,
            become_,
        }
    }

    /// `user@host:port`, for messages.
    pub fn display(&self) -> String {
        if self.host.contains(':') {
            // An IPv6 address: `[v6]:port`, as OpenSSH writes it.
            format!("{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            format!("{}@{}:{}", self.user, self.host, self.port)
        }
    }
}

/// Raw, inventory-like connection values for one host, before resolution.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetSpec {
    /// Host as written: an address, a DNS name or an ssh_config alias.
    pub alias: String,
    /// User override.
    pub user: Option<String>,
    /// Port override.
    pub port: Option<u16>,
    /// Identity file tried first (already made absolute by the inventory).
    pub identity_file: Option<PathBuf>,
    /// ProxyJump override: `[user@]host[:port]` or an alias, comma-separated for a chain.
    pub jump: Option<String>,
    /// Privilege override; default root when the user is root, else sudo.
    pub become_: Option<Become>,
    /// Per-inventory known_hosts file (searched first, learned keys go there).
    pub known_hosts: Option<PathBuf>,
    /// Host key policy.
    pub host_key_policy: HostKeyPolicy,
    /// ssh_config file used like `ssh -F`.
    pub ssh_config: Option<PathBuf>,
    /// Connect timeout override.
    pub connect_timeout: Option<Duration>,
}

impl TargetSpec {
    /// A spec with only the alias set.
    pub fn new(alias: impl Into<String>) -> Self {
        Self {
            alias: alias.into(),
            ..Self::default()
        }
    }

    /// Resolves the spec: with `ssh -G` when the `ssh` binary is on PATH, else with the
    /// built-in subset parser over `ssh_config` (or `~/.ssh/config`).
    pub fn resolve(&self) -> Result<SshTarget, TransportError> {
        let options = match ssh_g(&self.alias, self) {
            Some(result) => result?,
            None => self.resolve_builtin(&self.alias)?,
        };
        self.finish(options)
    }

    fn resolve_builtin(&self, alias: &str) -> Result<SshOptions, TransportError> {
        let path = match &self.ssh_config {
            Some(p) => Some(p.clone()),
            None => home_dir().map(|h| h.join(".ssh/config")),
        };
        let text = match &path {
            Some(p) => match std::fs::read_to_string(p) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.ssh_config.is_none() => {
                    String::new()
                }
                Err(e) => {
                    return Err(TransportError::Config {
                        host: alias.to_string(),
                        message: format!("cannot read {}: {e}", p.display()),
                    });
                }
            },
            None => String::new(),
        };
        let base = path
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let local_user = local_user();
        let mut options = parse_ssh_config(
            &text,
            &ConfigQuery {
                alias,
                user: self.user.as_deref(),
                local_user: &local_user,
            },
            &base,
        )
        .map_err(|message| TransportError::Config {
            host: alias.to_string(),
            message,
        })?;
        options.fill_defaults(alias, &local_user);
        Ok(options)
    }

    fn finish(&self, options: SshOptions) -> Result<SshTarget, TransportError> {
        if let Some(cmd) = &options.proxy_command {
            return Err(TransportError::Config {
                host: self.alias.clone(),
                message: format!(
                    "ProxyCommand ({cmd}) is not supported; use ProxyJump (inventory `jump`)"
                ),
            });
        }
        let user = self
            .user
            .clone()
            .or(options.user.clone())
            .unwrap_or_else(local_user);
        let port = self.port.or(options.port).unwrap_or(22);
        let mut identity_files = Vec::new();
        identity_files.extend(self.identity_file.iter().cloned());
        for f in &options.identity_files {
            let p = expand_tokens(f, &self.alias, options.host.as_deref(), &user);
            if !identity_files.contains(&p) {
                identity_files.push(p);
            }
        }
        let mut known_hosts = Vec::new();
        known_hosts.extend(self.known_hosts.iter().cloned());
        let user_files = if options.user_known_hosts.is_empty() {
            home_dir()
                .map(|h| vec![h.join(".ssh/known_hosts")])
                .unwrap_or_default()
        } else {
            options
                .user_known_hosts
                .iter()
                .map(|f| expand_tokens(f, &self.alias, options.host.as_deref(), &user))
                .collect()
        };
        for f in user_files.into_iter().chain(
            options
                .global_known_hosts
                .iter()
                .map(|f| expand_tokens(f, &self.alias, options.host.as_deref(), &user)),
        ) {
            if !known_hosts.contains(&f) {
                known_hosts.push(f);
            }
        }
        let jump_spec = self.jump.clone().or(options.proxy_jump.clone());
        let mut jumps = Vec::new();
        if let Some(spec) = jump_spec.filter(|s| s != "none") {
            for hop in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                jumps.push(self.resolve_jump(hop)?);
            }
        }
        let become_ = self.become_.unwrap_or(if user == "root" {
            Become::Root
        } else {
            Become::Sudo
        });
        let connect_timeout = self
            .connect_timeout
            .or(options.connect_timeout)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        Ok(SshTarget {
            name: self.alias.clone(),
            host: options.host.unwrap_or_else(|| self.alias.clone()),
            port,
            user,
            identity_files,
            identities_only: options.identities_only,
            agent: agent_socket(options.identity_agent.as_deref()),
            jumps,
            known_hosts,
            host_key_policy: self.host_key_policy,
            connect_timeout,
            keepalive: options.keepalive.unwrap_or(DEFAULT_KEEPALIVE),
            become_,
        })
    }

    /// Resolves one ProxyJump hop `[user@]host[:port]` through ssh_config too (the hop's
    /// own ProxyJump is ignored: write the whole chain instead).
    fn resolve_jump(&self, hop: &str) -> Result<JumpHost, TransportError> {
        let (user, rest) = match hop.rsplit_once('@') {
            Some((u, r)) => (Some(u.to_string()), r),
            None => (None, hop),
        };
        let (host, port) = split_host_port(rest).map_err(|message| TransportError::Config {
            host: self.alias.clone(),
            message: format!("ProxyJump {hop:?}: {message}"),
        })?;
        let sub = TargetSpec {
            alias: host.clone(),
            user: user.clone(),
            port,
            ssh_config: self.ssh_config.clone(),
            ..TargetSpec::default()
        };
        let options = match ssh_g(&host, &sub) {
            Some(result) => result?,
            None => sub.resolve_builtin(&host)?,
        };
        let user = user.or(options.user.clone()).unwrap_or_else(local_user);
        // The inventory's identity file serves the jump hosts too (an operator's one key
        // for the fleet); the hop's own ssh_config identities follow.
        let mut identity_files: Vec<PathBuf> = self.identity_file.iter().cloned().collect();
        for f in options
            .identity_files
            .iter()
            .map(|f| expand_tokens(f, &host, options.host.as_deref(), &user))
        {
            if !identity_files.contains(&f) {
                identity_files.push(f);
            }
        }
        Ok(JumpHost {
            name: hop.to_string(),
            host: options.host.clone().unwrap_or(host),
            port: port.or(options.port).unwrap_or(22),
            user,
            identity_files,
            identities_only: options.identities_only,
        })
    }
}

fn split_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed [")?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().map_err(|_| format!("bad port {p:?}"))?),
            None if after.is_empty() => None,
            None => return Err(format!("unexpected {after:?} after ]")),
        };
        return Ok((host.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Ok((
            h.to_string(),
            Some(p.parse().map_err(|_| format!("bad port {p:?}"))?),
        )),
        _ => Ok((s.to_string(), None)),
    }
}
/// Runs `ssh -G`; `None` when no `ssh` binary is available.
fn ssh_g(alias: &str, spec: &TargetSpec) -> Option<Result<SshOptions, TransportError>> {
    let mut cmd = Command::new("ssh");
    cmd.arg("-G");
    if let Some(f) = &spec.ssh_config {
        cmd.arg("-F").arg(f);
    }
    // Overrides go in as options so that `Match user` and friends see them.
    if let Some(u) = &spec.user {
        cmd.arg("-o").arg(format!("User={u}"));
    }
    if let Some(p) = spec.port {
        cmd.arg("-p").arg(p.to_string());
    }
    // `--` keeps a hostile alias from being read as an option.
    cmd.arg("--").arg(alias);
    let output = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            return Some(Err(TransportError::Config {
                host: alias.to_string(),
                message: format!("cannot run `ssh -G`: {e}"),
            }));
        }
    };
    if !output.status.success() {
        return Some(Err(TransportError::Config {
            host: alias.to_string(),
            message: format!(
                "`ssh -G` failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        }));
    }
    Some(Ok(SshOptions::from_ssh_g(&String::from_utf8_lossy(
        &output.stdout,
    ))))
}
/// The agent socket for an IdentityAgent value (absent means `$SSH_AUTH_SOCK`).
fn agent_socket(identity_agent: Option<&str>) -> Option<PathBuf> {
    match identity_agent {
        Some(v) if v.eq_ignore_ascii_case("none") => None,
        None | Some("SSH_AUTH_SOCK") => std::env::var_os("SSH_AUTH_SOCK")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
        Some(v) => match v.strip_prefix('$') {
            Some(var) => std::env::var_os(var)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            None => Some(expand_home(v)),
        },
    }
}
fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "root".to_string())
}
fn expand_tokens(path: &str, alias: &str, host: Option<&str>, user: &str) -> PathBuf {
    let home = home_dir()
        .map(|h| h.display().to_string())
        .unwrap_or_default();
    let expanded = path
        .replace("%d", &home)
        .replace("%u", &local_user())
        .replace("%r", user)
        .replace("%h", host.unwrap_or(alias))
        .replace("%n", alias)
        .replace("%%", "%");
    expand_home(&expanded)
}
#[cfg(test)]
mod tests {
    use super::*;

    impl TargetSpec {
        /// Resolves with the built-in parser only (ignores any installed `ssh`), to
        /// compare it with `ssh -G`.
        fn resolve_builtin_only(&self) -> Result<SshTarget, TransportError> {
            let options = self.resolve_builtin(&self.alias)?;
            self.finish(options)
        }
    }

    #[test]
    fn identity_agent_value_names_the_socket() {
        assert_eq!(agent_socket(Some("none")), None);
        assert_eq!(
            agent_socket(Some("/run/agent.sock")),
            Some(PathBuf::from("/run/agent.sock"))
        );
    }

    #[test]
    fn inventory_values_override_ssh_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("ssh_config");
        std::fs::write(
            &cfg,
            "Host node-a\n  HostName 127.0.0.9\n  User cfguser\n  Port 2200\n  ProxyJump hop@127.0.0.8:2022\n  IdentityFile /keys/cfg\n",
        )
        .expect("write");
        let spec = TargetSpec {
            alias: "node-a".into(),
            user: Some("root".into()),
            identity_file: Some(PathBuf::from("/keys/inv")),
            known_hosts: Some(dir.path().join("kh")),
            ssh_config: Some(cfg),
            ..TargetSpec::default()
        };
        for t in [
            spec.resolve().expect("resolve"),
            spec.resolve_builtin_only().expect("builtin"),
        ] {
            assert_eq!(t.host, "127.0.0.9");
            assert_eq!(t.user, "root");
            assert_eq!(t.port, 2200);
            assert_eq!(t.become_, Become::Root);
            assert_eq!(t.identity_files[0], PathBuf::from("/keys/inv"));
            assert!(t.identity_files.contains(&PathBuf::from("/keys/cfg")));
            assert_eq!(t.known_hosts[0], dir.path().join("kh"));
            assert_eq!(t.jumps.len(), 1);
            assert_eq!(t.jumps[0].user, "hop");
            assert_eq!(t.jumps[0].host, "127.0.0.8");
            assert_eq!(t.jumps[0].port, 2022);
            assert_eq!(t.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        }
    }
    #[test]
    fn builtin_parser_agrees_with_ssh_g_on_include_and_match() {
        if Command::new("ssh").arg("-V").output().is_err() {
            eprintln!("SKIPPED: no ssh binary to compare with");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let inc = dir.path().join("inc.conf");
        std::fs::write(&inc, "Host db-*\n  User dbadmin\n  Port 2201\n").expect("write");
        let cfg = dir.path().join("ssh_config");
        std::fs::write(
            &cfg,
            format!(
                "Match originalhost db-1\n  HostName 10.1.1.1\nInclude {}\n\
                 Host db-* !db-2\n  ProxyJump ops@bastion:2022\n\
                 Host *\n  IdentityFile /keys/%r-%h\n  UserKnownHostsFile /kh/one /kh/two\n",
                inc.display()
            ),
        )
        .expect("write");
        for alias in ["db-1", "db-2", "web"] {
            let spec = TargetSpec {
                alias: alias.into(),
                ssh_config: Some(cfg.clone()),
                ..TargetSpec::default()
            };
            let mut with_ssh = spec.resolve().expect("ssh -G");
            let mut builtin = spec.resolve_builtin_only().expect("builtin");
            // ssh -G also lists its default identity files and global known_hosts.
            with_ssh.identity_files.truncate(1);
            builtin.identity_files.truncate(1);
            with_ssh.known_hosts.truncate(2);
            builtin.known_hosts.truncate(2);
            // The bastion alias resolves through the same files.
            for j in with_ssh.jumps.iter_mut().chain(builtin.jumps.iter_mut()) {
                j.identity_files.clear();
            }
            assert_eq!(with_ssh, builtin, "alias {alias}");
        }
    }
    #[test]
    fn sudo_is_default_for_non_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("ssh_config");
        std::fs::write(&cfg, "").expect("write");
        let spec = TargetSpec {
            alias: "h".into(),
            user: Some("admin".into()),
            port: Some(2022),
            ssh_config: Some(cfg),
            jump: Some("[::1]:2200".into()),
            ..TargetSpec::default()
        };
        let t = spec.resolve_builtin_only().expect("resolve");
        assert_eq!(t.become_, Become::Sudo);
        assert_eq!(t.port, 2022);
        assert_eq!(t.jumps[0].host, "::1");
        assert_eq!(t.jumps[0].port, 2200);
    }
    #[test]
    fn proxy_command_is_refused_clearly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("ssh_config");
        std::fs::write(&cfg, "Host h\n  ProxyCommand nc %h %p\n").expect("write");
        let spec = TargetSpec {
            alias: "h".into(),
            ssh_config: Some(cfg),
            ..TargetSpec::default()
        };
        let err = spec.resolve().expect_err("refused").to_string();
        assert!(err.contains("ProxyCommand"), "{err}");
    }
}
