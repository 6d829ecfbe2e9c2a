//! The built-in ssh_config reader: what `~/.ssh/config` says for one host alias, for
//! machines without an `ssh` binary to ask (`ssh -G`, run by the `config` module).
//!
//! [`parse_ssh_config`] reads a documented subset: `Host` (patterns, `!` negation),
//! `Match all|host|originalhost|user|localuser` (other criteria never match), `Include`
//! (globs in the file name), and the keywords `HostName` (with `%h`), `User`, `Port`,
//! `IdentityFile`, `IdentitiesOnly`, `IdentityAgent`, `ProxyJump`, `ProxyCommand`,
//! `UserKnownHostsFile`, `ConnectTimeout`, `ServerAliveInterval`. First value wins,
//! `IdentityFile` accumulates, as in OpenSSH. [`SshOptions::from_ssh_g`] reads the same
//! options from what `ssh -G` prints. Pure except for reading `Include`d files.

use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// Adds OpenSSH's default identity files when the config named none.
    pub(super) fn fill_defaults(&mut self, _alias: &str, _local_user: &str) {
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
/// `$HOME`, if set.
pub(crate) fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}
/// `~` and `~/...` made absolute against `$HOME`.
pub(crate) fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), home_dir()) {
        (Some(rest), Some(home)) => home.join(rest),
        _ if path == "~" => home_dir().unwrap_or_else(|| PathBuf::from(path)),
        _ => PathBuf::from(path),
    }
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
