//! Connection settings resolved like OpenSSH: inventory values first, then the
//! ssh_config for the host alias.
//!
//! Where `ssh` is installed, `ssh -G [-F file] [-o User=..] [-p port] alias` gives
//! OpenSSH's own answer (Include, Match, canonicalisation, tokens: everything). Without
//! it, [`parse_ssh_config`] reads a documented subset: `Host` (patterns, `!` negation),
//! `Match all|host|originalhost|user|localuser` (other criteria never match), `Include`
//! (globs in the file name), and the keywords `HostName` (with `%h`), `User`, `Port`,
//! `IdentityFile` (with `~`, `%d`, `%u`, `%h`, `%r`), `IdentitiesOnly`, `ProxyJump`,
//! `UserKnownHostsFile`, `ConnectTimeout`, `ServerAliveInterval`. First value wins,
//! `IdentityFile` accumulates, as in OpenSSH.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::TransportError;

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
        format!("{}@{}:{}", self.user, self.host, self.port)
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

    /// Resolves with the built-in parser only (ignores any installed `ssh`).
    pub fn resolve_builtin_only(&self) -> Result<SshTarget, TransportError> {
        let options = self.resolve_builtin(&self.alias)?;
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

/// Options read from ssh_config (or `ssh -G`), before inventory overrides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SshOptions {
    /// HostName.
    pub host: Option<String>,
    /// User.
    pub user: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// IdentityFile entries, unexpanded.
    pub identity_files: Vec<String>,
    /// IdentitiesOnly.
    pub identities_only: bool,
    /// IdentityAgent (`none`, `SSH_AUTH_SOCK`, or a socket path).
    pub identity_agent: Option<String>,
    /// ProxyJump.
    pub proxy_jump: Option<String>,
    /// ProxyCommand (unsupported; reported).
    pub proxy_command: Option<String>,
    /// UserKnownHostsFile entries.
    pub user_known_hosts: Vec<String>,
    /// GlobalKnownHostsFile entries.
    pub global_known_hosts: Vec<String>,
    /// ConnectTimeout.
    pub connect_timeout: Option<Duration>,
    /// ServerAliveInterval.
    pub keepalive: Option<Duration>,
}

impl SshOptions {
    fn fill_defaults(&mut self, _alias: &str, _local_user: &str) {
        if self.identity_files.is_empty() {
            self.identity_files = ["~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa"]
                .map(String::from)
                .to_vec();
        }
    }

    /// Parses the `key value` lines printed by `ssh -G`.
    pub fn from_ssh_g(output: &str) -> Self {
        let mut o = SshOptions::default();
        for line in output.lines() {
            let Some((key, value)) = line.split_once(' ') else {
                continue;
            };
            let value = value.trim();
            match key {
                "hostname" => o.host = Some(value.to_string()),
                "user" => o.user = Some(value.to_string()),
                "port" => o.port = value.parse().ok(),
                "identityfile" => o.identity_files.push(value.to_string()),
                "identitiesonly" => o.identities_only = value == "yes",
                "identityagent" => o.identity_agent = Some(value.to_string()),
                "proxyjump" if value != "none" => o.proxy_jump = Some(value.to_string()),
                "proxycommand" if value != "none" => o.proxy_command = Some(value.to_string()),
                "userknownhostsfile" => {
                    o.user_known_hosts = value.split_whitespace().map(String::from).collect()
                }
                "globalknownhostsfile" => {
                    o.global_known_hosts = value.split_whitespace().map(String::from).collect()
                }
                "connecttimeout" => o.connect_timeout = value.parse().ok().map(Duration::from_secs),
                "serveraliveinterval" => {
                    o.keepalive = value
                        .parse()
                        .ok()
                        .filter(|s| *s > 0)
                        .map(Duration::from_secs)
                }
                _ => {}
            }
        }
        o
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

/// What a ssh_config is evaluated for.
#[derive(Clone, Copy, Debug)]
pub struct ConfigQuery<'a> {
    /// Host alias as given on the command line.
    pub alias: &'a str,
    /// Remote user override, if any (for `Match user`).
    pub user: Option<&'a str>,
    /// Local user name (for `Match localuser`).
    pub local_user: &'a str,
}

/// Parses ssh_config text for one alias (the built-in subset; see the module doc).
/// `base` is the directory relative `Include` paths resolve against (`~/.ssh`).
pub fn parse_ssh_config(
    text: &str,
    query: &ConfigQuery<'_>,
    base: &Path,
) -> Result<SshOptions, String> {
    let mut options = SshOptions::default();
    let mut seen = Vec::new();
    apply_config(text, query, base, &mut options, &mut true, 0, &mut seen)?;
    Ok(options)
}

#[allow(clippy::too_many_arguments)]
fn apply_config(
    text: &str,
    query: &ConfigQuery<'_>,
    base: &Path,
    o: &mut SshOptions,
    active: &mut bool,
    depth: usize,
    seen: &mut Vec<PathBuf>,
) -> Result<(), String> {
    if depth > 16 {
        return Err("Include nested too deeply".into());
    }
    for (idx, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, rest) = split_keyword(line);
        let args = split_args(rest);
        let key = key.to_ascii_lowercase();
        let first = args.first().cloned().unwrap_or_default();
        match key.as_str() {
            "host" => *active = host_patterns_match(&args, query.alias),
            "match" => *active = match_criteria(&args, query, o)?,
            "include" if *active => {
                for pattern in &args {
                    let expanded = expand_home(pattern);
                    let full = if expanded.is_absolute() {
                        expanded
                    } else {
                        base.join(expanded)
                    };
                    for file in glob_files(&full) {
                        if seen.contains(&file) {
                            continue;
                        }
                        seen.push(file.clone());
                        let text = std::fs::read_to_string(&file)
                            .map_err(|e| format!("Include {}: {e}", file.display()))?;
                        // An included file's Host lines only scope within that file.
                        let mut inner_active = true;
                        apply_config(&text, query, base, o, &mut inner_active, depth + 1, seen)?;
                    }
                }
            }
            _ if !*active => {}
            "hostname" => set_once(&mut o.host, first.replace("%h", query.alias)),
            "user" => set_once(&mut o.user, first),
            "port" if o.port.is_none() => {
                o.port = Some(
                    first
                        .parse()
                        .map_err(|_| format!("line {}: bad Port {first:?}", idx + 1))?,
                );
            }
            "identityfile" if !o.identity_files.contains(&first) => o.identity_files.push(first),
            "identitiesonly" => o.identities_only = first.eq_ignore_ascii_case("yes"),
            "identityagent" => set_once(&mut o.identity_agent, first),
            "proxyjump" => set_once(&mut o.proxy_jump, first),
            "proxycommand" => set_once(&mut o.proxy_command, rest.trim().to_string()),
            "userknownhostsfile" if o.user_known_hosts.is_empty() => {
                o.user_known_hosts = args.clone()
            }
            "connecttimeout" if o.connect_timeout.is_none() => {
                o.connect_timeout = first.parse().ok().map(Duration::from_secs);
            }
            "serveraliveinterval" if o.keepalive.is_none() => {
                o.keepalive = first
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .map(Duration::from_secs);
            }
            _ => {}
        }
    }
    Ok(())
}

fn set_once(slot: &mut Option<String>, value: String) {
    if slot.is_none() && !value.is_empty() {
        *slot = Some(value);
    }
}

fn split_keyword(line: &str) -> (&str, &str) {
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let (key, rest) = line.split_at(end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest);
    (key, rest.trim_start())
}

fn split_args(rest: &str) -> Vec<String> {
    shlex::split(rest).unwrap_or_else(|| rest.split_whitespace().map(String::from).collect())
}

fn host_patterns_match(patterns: &[String], host: &str) -> bool {
    let list: Vec<&str> = patterns
        .iter()
        .flat_map(|p| p.split(','))
        .filter(|p| !p.is_empty())
        .collect();
    pattern_list_match(&list, host)
}

/// OpenSSH pattern-list semantics: any negated match wins (false); else any match.
pub(crate) fn pattern_list_match(patterns: &[&str], value: &str) -> bool {
    let mut matched = false;
    for p in patterns {
        if let Some(neg) = p.strip_prefix('!') {
            if glob_match(neg, value) {
                return false;
            }
        } else if glob_match(p, value) {
            matched = true;
        }
    }
    matched
}

fn match_criteria(args: &[String], q: &ConfigQuery<'_>, o: &SshOptions) -> Result<bool, String> {
    let mut i = 0;
    let mut result = true;
    while i < args.len() {
        let mut crit = args[i].to_ascii_lowercase();
        let negate = crit.starts_with('!');
        if negate {
            crit.remove(0);
        }
        let ok = match crit.as_str() {
            "all" => true,
            "canonical" | "final" => true,
            _ => {
                let Some(arg) = args.get(i + 1) else {
                    return Err(format!("Match {crit} needs an argument"));
                };
                i += 1;
                let patterns: Vec<&str> = arg.split(',').collect();
                match crit.as_str() {
                    "host" => pattern_list_match(&patterns, o.host.as_deref().unwrap_or(q.alias)),
                    "originalhost" => pattern_list_match(&patterns, q.alias),
                    "user" => pattern_list_match(
                        &patterns,
                        q.user.or(o.user.as_deref()).unwrap_or(q.local_user),
                    ),
                    "localuser" => pattern_list_match(&patterns, q.local_user),
                    // exec, localnetwork, tagged...: not evaluated without ssh.
                    _ => false,
                }
            }
        };
        result &= ok != negate;
        i += 1;
    }
    Ok(result)
}

/// Glob with `*` and `?` (OpenSSH patterns).
pub(crate) fn glob_match(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let (mut pi, mut vi) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn glob_files(path: &Path) -> Vec<PathBuf> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    match (path.parent(), name) {
        (Some(dir), Some(name)) if name.contains(['*', '?']) => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .filter(|e| glob_match(&name, &e.file_name().to_string_lossy()))
                        .map(|e| e.path())
                        .filter(|p| p.is_file())
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            files
        }
        _ if path.is_file() => vec![path.to_path_buf()],
        _ => Vec::new(),
    }
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

/// `$HOME`, if set.
pub(crate) fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "root".to_string())
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), home_dir()) {
        (Some(rest), Some(home)) => home.join(rest),
        _ if path == "~" => home_dir().unwrap_or_else(|| PathBuf::from(path)),
        _ => PathBuf::from(path),
    }
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

    fn query(alias: &str) -> ConfigQuery<'_> {
        ConfigQuery {
            alias,
            user: None,
            local_user: "me",
        }
    }

    #[test]
    fn first_value_wins_and_identity_files_accumulate() {
        let cfg = "\
Host web-*  !web-9
    HostName %h.example.net
    User deploy
    IdentityFile ~/.ssh/web
Host web-1
    Port 2222
    User ignored
Host *
    IdentityFile ~/.ssh/all
    Port 22
";
        let o = parse_ssh_config(cfg, &query("web-1"), Path::new("/nonexistent")).expect("ok");
        assert_eq!(o.host.as_deref(), Some("web-1.example.net"));
        assert_eq!(o.user.as_deref(), Some("deploy"));
        assert_eq!(o.port, Some(2222));
        assert_eq!(o.identity_files, vec!["~/.ssh/web", "~/.ssh/all"]);

        let o = parse_ssh_config(cfg, &query("web-9"), Path::new("/nonexistent")).expect("ok");
        assert_eq!(o.host, None);
        assert_eq!(o.port, Some(22));
    }

    #[test]
    fn match_and_equals_syntax() {
        let cfg = "\
Match originalhost db user admin
  Port=2200
Match host db.internal
  ProxyJump bastion
Host db
  HostName db.internal
Match all
  UserKnownHostsFile /tmp/kh1 /tmp/kh2
";
        let q = ConfigQuery {
            alias: "db",
            user: Some("admin"),
            local_user: "me",
        };
        let o = parse_ssh_config(cfg, &q, Path::new("/x")).expect("ok");
        assert_eq!(o.port, Some(2200));
        // `Match host` is evaluated before HostName was seen: no match, like a single
        // OpenSSH pass.
        assert_eq!(o.proxy_jump, None);
        assert_eq!(o.user_known_hosts, vec!["/tmp/kh1", "/tmp/kh2"]);
        let q = ConfigQuery {
            user: Some("bob"),
            ..q
        };
        let o = parse_ssh_config(cfg, &q, Path::new("/x")).expect("ok");
        assert_eq!(o.port, None);
    }

    #[test]
    fn include_with_glob() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("conf.d")).expect("mkdir");
        std::fs::write(
            dir.path().join("conf.d/10-a.conf"),
            "Host a\n  HostName 192.0.2.7\n  Port 2022\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("conf.d/20-b.conf"),
            "Host *\n  User fallback\n",
        )
        .expect("write");
        let cfg = "Include conf.d/*.conf\nHost a\n  HostName never\n";
        let o = parse_ssh_config(cfg, &query("a"), dir.path()).expect("ok");
        assert_eq!(o.host.as_deref(), Some("192.0.2.7"));
        assert_eq!(o.port, Some(2022));
        assert_eq!(o.user.as_deref(), Some("fallback"));
    }

    #[test]
    fn ssh_g_output_is_read() {
        let out = "host x\nhostname 10.0.0.5\nuser ops\nport 2201\nidentityfile ~/.ssh/id_ed25519\n\
identityfile /k/extra\nproxyjump jump@bastion:2222,second\nuserknownhostsfile ~/.ssh/known_hosts ~/.ssh/known_hosts2\n\
connecttimeout 7\nidentityagent none\n";
        let o = SshOptions::from_ssh_g(out);
        assert_eq!(o.host.as_deref(), Some("10.0.0.5"));
        assert_eq!(o.user.as_deref(), Some("ops"));
        assert_eq!(o.port, Some(2201));
        assert_eq!(o.identity_files.len(), 2);
        assert_eq!(o.proxy_jump.as_deref(), Some("jump@bastion:2222,second"));
        assert_eq!(o.user_known_hosts.len(), 2);
        assert_eq!(o.connect_timeout, Some(Duration::from_secs(7)));
        assert_eq!(o.identity_agent.as_deref(), Some("none"));
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

    #[test]
    fn globbing() {
        assert!(glob_match("*.example.com", "a.example.com"));
        assert!(glob_match("10.0.0.?", "10.0.0.7"));
        assert!(!glob_match("10.0.0.?", "10.0.0.17"));
        assert!(pattern_list_match(&["*", "!bad"], "good"));
        assert!(!pattern_list_match(&["*", "!bad"], "bad"));
        assert!(!pattern_list_match(&["!bad"], "good"));
    }
}
