//! Host-side shell scripts for the effectful phases of `apply`.
//!
//! Each phase is one POSIX `sh` script sent on the standard input of a single SSH exec
//! (`sh -s`), so nothing of it shows in the host's process list and secrets never sit on
//! a command line. Every value put into a script is validated before it gets here
//! (interface, node names, paths, addresses are newtypes) and quoted again here anyway.
//! Scripts report what they did with `@@meshup:` marker lines that
//! [`parse_markers`] reads back.

use crate::secret::Secret;
use std::fmt::Write as _;

/// Quote a value for a POSIX shell (single quotes, `'` escaped).
pub fn q(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// The prologue shared by the phase scripts: strict mode, the config dir, and the
/// per-host lock so two meshup runs never interleave on one host.
fn prologue(out: &mut String, config_dir: &str, interface: &str) {
    let _ = writeln!(out, "set -u");
    let _ = writeln!(out, "umask 077");
    let _ = writeln!(
        out,
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    let _ = writeln!(out, "export PATH LC_ALL=C");
    let _ = writeln!(out, "D={}", q(config_dir));
    let _ = writeln!(out, "IF={}", q(interface));
    let _ = writeln!(out, "CONF=\"$D/$IF.conf\"");
    out.push_str(
        r#"mark() { printf '@@meshup:%s:%s\n' "$1" "$2"; }
fail() { mark fail "$1"; exit 1; }
mkdir -p "$D" || fail "cannot create $D"
chmod 700 "$D" || fail "cannot chmod $D"
exec 9>>"$D/.meshup.lock" || fail "cannot open lock $D/.meshup.lock"
if command -v flock >/dev/null 2>&1; then
  flock -n 9 || { mark locked "$D/.meshup.lock"; exit 75; }
fi
"#,
    );
}

/// What the prepare phase (2) does on one host: install WireGuard, generate the key
/// pair on the host, and store preshared keys.
#[derive(Debug, Default)]
pub struct PrepareScript {
    /// Install command from the host's playbook, when WireGuard is missing.
    pub install: Option<String>,
    /// Generate `private.key` (and `public.key`) when missing.
    pub generate_key: bool,
    /// Preshared keys to store, by peer name (file `psk-<peer>.key`).
    pub psks: Vec<(String, Secret)>,
}

impl PrepareScript {
    /// True when the phase has nothing to do on this host.
    pub fn is_empty(&self) -> bool {
        self.install.is_none() && !self.generate_key && self.psks.is_empty()
    }

    /// The script text. It contains preshared keys when `psks` is not empty: it is sent
    /// only on the SSH channel's stdin and never logged.
    pub fn render(&self, config_dir: &str, interface: &str) -> Secret {
        let mut s = String::new();
        prologue(&mut s, config_dir, interface);
        if let Some(install) = &self.install {
            s.push_str("mark step install\n");
            let _ = writeln!(
                s,
                "( {install} ) 9>&- </dev/null >\"$D/.meshup-install.log\" 2>&1 || {{ tail -n 20 \"$D/.meshup-install.log\" >&2; fail 'installing WireGuard failed'; }}"
            );
            s.push_str("command -v wg >/dev/null 2>&1 || fail 'wg not found after install'\n");
        }
        if self.generate_key {
            s.push_str(
                r#"mark step keygen
if [ ! -s "$D/private.key" ]; then
  wg genkey > "$D/.private.key.new" || fail 'wg genkey failed'
  chmod 600 "$D/.private.key.new" && mv -f "$D/.private.key.new" "$D/private.key" || fail 'cannot store private.key'
fi
"#,
            );
        }
        for (peer, psk) in &self.psks {
            let file = format!("psk-{peer}.key");
            let _ = writeln!(s, "mark step {}", q(&format!("psk {peer}")));
            // printf is a shell builtin: the key never appears in an argv.
            let _ = writeln!(
                s,
                "printf '%s\\n' {} > \"$D/.{file}.new\" && chmod 600 \"$D/.{file}.new\" && mv -f \"$D/.{file}.new\" \"$D\"/{} || fail {}",
                q(psk.expose_str().unwrap_or_default()),
                q(&file),
                q(&format!("cannot store {file}"))
            );
        }
        s.push_str(
            r#"if [ -s "$D/private.key" ] && command -v wg >/dev/null 2>&1; then
  wg pubkey < "$D/private.key" > "$D/.public.key.new" && mv -f "$D/.public.key.new" "$D/public.key" || fail 'wg pubkey failed'
  mark pubkey "$(cat "$D/public.key")"
fi
mark done prepare
"#,
        );
        Secret::new(s)
    }
}

/// How the interface is brought to the new config in the converge phase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Activation {
    /// The interface is up: `wg syncconf` plus explicit address, MTU and route changes.
    /// Running tunnels are never restarted for a peer change.
    LiveReload,
    /// The interface is down: bring it up with this command (service enable or `wg-quick up`).
    Start(String),
    /// Nothing to do for the interface itself.
    #[default]
    None,
}

/// What the converge phase (3) does on one host.
#[derive(Debug, Default)]
pub struct ConvergeScript {
    /// The desired config with secret tokens (no secret in it), when it must be written.
    pub config: Option<String>,
    /// Preshared-key files of peers that left the mesh, to delete.
    pub remove_psks: Vec<String>,
    /// Firewall commands from the playbook (already rendered and quoted).
    pub firewall: Vec<String>,
    /// Persist and enable IPv4 (and IPv6) forwarding.
    pub forwarding: Option<Forwarding>,
    /// How to apply the config to the interface.
    pub activation: Activation,
    /// Enable the service at boot without (re)starting it (interface already up).
    pub enable_only: Option<String>,
    /// Addresses (CIDR) the interface must carry, for live reloads.
    pub addresses: Vec<String>,
    /// MTU to set on a live interface.
    pub mtu: Option<u16>,
    /// Public key the interface must show at the end.
    pub expect_public_key: Option<String>,
    /// Commands to stop the interface and its service (node removed from the mesh).
    pub teardown: Option<String>,
}

/// Forwarding settings for transit nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarding {
    /// Also enable IPv6 forwarding.
    pub ipv6: bool,
}

/// Path of meshup's sysctl drop-in.
pub const SYSCTL_FILE: &str = "/etc/sysctl.d/99-meshup-forward.conf";

impl ConvergeScript {
    /// The script text (no secret in it: the host fills secrets in from its own files).
    pub fn render(&self, config_dir: &str, interface: &str) -> String {
        let mut s = String::new();
        prologue(&mut s, config_dir, interface);
        s.push_str("HAD_PREV=0\nWAS_UP=0\nip link show dev \"$IF\" >/dev/null 2>&1 && WAS_UP=1\n");
        s.push_str(
            r#"rollback() {
  mark rollback "$1"
  if [ "$HAD_PREV" = 1 ]; then cp -p "$CONF.meshup-prev" "$CONF"; else rm -f "$CONF"; fi
  if [ "$WAS_UP" = 1 ] && ip link show dev "$IF" >/dev/null 2>&1; then
    wg-quick strip "$CONF" > "$D/.$IF.stripped" 2>/dev/null && wg syncconf "$IF" "$D/.$IF.stripped"
    rm -f "$D/.$IF.stripped"
  fi
  exit 1
}
"#,
        );
        if let Some(teardown) = &self.teardown {
            s.push_str("mark step teardown\n");
            let _ = writeln!(s, "( {teardown} ) 9>&- </dev/null >/dev/null 2>&1");
            s.push_str("if [ -f \"$CONF\" ]; then mv -f \"$CONF\" \"$CONF.meshup-removed\"; fi\n");
            s.push_str("ip link show dev \"$IF\" >/dev/null 2>&1 && fail \"interface $IF still up after teardown\"\n");
        }
        for peer in &self.remove_psks {
            let _ = writeln!(s, "rm -f \"$D\"/{}", q(&format!("psk-{peer}.key")));
        }
        if let Some(config) = &self.config {
            let delim = heredoc_delimiter(config);
            s.push_str("mark step write-config\n");
            // Secrets are filled in on the host from its own key files.
            let _ = writeln!(
                s,
                r#"awk -v dir="$D" '
function secret(name,   line) {{
  if ((getline line < (dir "/" name)) <= 0) {{ missing = missing " " name; return "" }}
  close(dir "/" name); return line
}}
/^PrivateKey = <secret:private\.key>$/ {{ print "PrivateKey = " secret("private.key"); next }}
/^PresharedKey = <secret:psk-[a-z0-9][a-z0-9.-]*\.key>$/ {{
  f = $3; sub(/^<secret:/, "", f); sub(/>$/, "", f); print "PresharedKey = " secret(f); next }}
{{ print }}
END {{ if (missing != "") {{ print "missing secret files:" missing > "/dev/stderr"; exit 3 }} }}
' > "$D/.$IF.conf.meshup-new" <<'{delim}'
{config}{delim}"#,
            );
            s.push_str(
                r#"[ $? = 0 ] || { rm -f "$D/.$IF.conf.meshup-new"; fail 'assembling the config failed'; }
chmod 600 "$D/.$IF.conf.meshup-new"
if [ -f "$CONF" ]; then cp -p "$CONF" "$CONF.meshup-prev" && HAD_PREV=1; fi
mv -f "$D/.$IF.conf.meshup-new" "$CONF" || fail 'cannot install the new config'
"#,
            );
        }
        for cmd in &self.firewall {
            s.push_str("mark step firewall\n");
            let _ = writeln!(
                s,
                "( {cmd} ) 9>&- </dev/null >\"$D/.meshup-fw.log\" 2>&1 || {{ cat \"$D/.meshup-fw.log\" >&2; fail 'firewall command failed'; }}"
            );
        }
        if let Some(fw) = &self.forwarding {
            s.push_str("mark step forwarding\n");
            let mut body = String::from("net.ipv4.ip_forward=1\\n");
            if fw.ipv6 {
                body.push_str("net.ipv6.conf.all.forwarding=1\\n");
            }
            let _ = writeln!(
                s,
                "printf '# written by meshup: this node forwards mesh traffic\\n{body}' > {f}.new && chmod 644 {f}.new && mv -f {f}.new {f} || fail 'cannot write {f}'",
                f = SYSCTL_FILE
            );
            s.push_str("sysctl -q -w net.ipv4.ip_forward=1 >/dev/null || fail 'cannot enable ip_forward'\n");
            if fw.ipv6 {
                s.push_str(
                    "sysctl -q -w net.ipv6.conf.all.forwarding=1 >/dev/null || fail 'cannot enable IPv6 forwarding'\n",
                );
            }
        }
        match &self.activation {
            Activation::None => {}
            Activation::LiveReload => {
                s.push_str("mark step live-reload\n");
                s.push_str(
                    r#"ip link show dev "$IF" >/dev/null 2>&1 || rollback "interface $IF is not up"
wg-quick strip "$CONF" > "$D/.$IF.stripped" 2>"$D/.meshup-wg.log" || { cat "$D/.meshup-wg.log" >&2; rm -f "$D/.$IF.stripped"; rollback 'wg-quick strip failed'; }
wg syncconf "$IF" "$D/.$IF.stripped" 2>"$D/.meshup-wg.log" || { cat "$D/.meshup-wg.log" >&2; rm -f "$D/.$IF.stripped"; rollback 'wg syncconf failed'; }
rm -f "$D/.$IF.stripped"
"#,
                );
                s.push_str("WANT_ADDRS=\"");
                for a in &self.addresses {
                    let _ = write!(s, " {a}");
                }
                s.push_str(" \"\n");
                s.push_str(
                    r#"for a in $WANT_ADDRS; do
  ip -o addr show dev "$IF" | awk '{print $4}' | grep -qx "$a" || ip addr add "$a" dev "$IF" || rollback "cannot add address $a"
done
for a in $(ip -o addr show dev "$IF" scope global | awk '{print $4}'); do
  case " $WANT_ADDRS " in *" $a "*) ;; *) ip addr del "$a" dev "$IF" ;; esac
done
"#,
                );
                if let Some(mtu) = self.mtu {
                    let _ = writeln!(
                        s,
                        "ip link set dev \"$IF\" mtu {mtu} || rollback 'cannot set MTU'"
                    );
                }
                // Routes for AllowedIPs, as wg-quick would add them, and drop stale ones.
                s.push_str(
                    r#"ALLOWED=$(wg show "$IF" allowed-ips | awk '{for (i = 2; i <= NF; i++) print $i}' | grep -v '^(none)$')
for net in $ALLOWED; do
  case "$net" in *:*) fam=-6 ;; *) fam=-4 ;; esac
  [ -n "$(ip $fam route show dev "$IF" match "$net" 2>/dev/null)" ] || ip $fam route add "$net" dev "$IF" || rollback "cannot add route $net"
done
for fam in -4 -6; do
  ip $fam route show dev "$IF" | grep -v 'proto kernel' | awk '{print $1}' | while read -r net; do
    case "$net" in default|fe80::/64) continue ;; esac
    printf '%s\n' $ALLOWED | grep -qx "$net" || ip $fam route del "$net" dev "$IF"
  done
done
"#,
                );
            }
            Activation::Start(cmd) => {
                s.push_str("mark step start\n");
                let _ = writeln!(
                    s,
                    "( {cmd} ) 9>&- </dev/null >\"$D/.meshup-up.log\" 2>&1 || {{ grep -v -e 'kernel module' -e 'wireguard-go' -e '^\\[#\\]' \"$D/.meshup-up.log\" | tail -n 15 >&2; ip link show dev \"$IF\" >/dev/null 2>&1 && ip link del dev \"$IF\"; rollback 'bringing the interface up failed'; }}"
                );
            }
        }
        if let Some(cmd) = &self.enable_only {
            s.push_str("mark step enable\n");
            let _ = writeln!(
                s,
                "( {cmd} ) 9>&- </dev/null >\"$D/.meshup-enable.log\" 2>&1 || {{ cat \"$D/.meshup-enable.log\" >&2; fail 'enabling the service failed'; }}"
            );
        }
        if let Some(key) = &self.expect_public_key {
            s.push_str("mark step post-check\n");
            let _ = writeln!(s, "WANT_KEY={}", q(key));
            s.push_str(
                r#"ip link show dev "$IF" up >/dev/null 2>&1 || rollback "interface $IF is not up after apply"
LIVE_KEY=$(wg show "$IF" public-key 2>/dev/null)
[ "$LIVE_KEY" = "$WANT_KEY" ] || rollback "interface $IF runs public key $LIVE_KEY, expected $WANT_KEY"
"#,
            );
        }
        s.push_str("mark done converge\n");
        s
    }
}

/// A heredoc delimiter that does not occur as a line of `body`.
fn heredoc_delimiter(body: &str) -> String {
    let mut n = 0u32;
    loop {
        let candidate = format!("MESHUP_EOF_{n}");
        if !body.lines().any(|l| l == candidate) {
            return candidate;
        }
        n += 1;
    }
}

/// One `@@meshup:KIND:VALUE` line printed by a phase script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// `step`, `pubkey`, `fail`, `rollback`, `locked`, `done`.
    pub kind: String,
    /// The marker's value.
    pub value: String,
}

/// The marker lines of a phase script's standard output, in order.
pub fn parse_markers(stdout: &str) -> Vec<Marker> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("@@meshup:"))
        .filter_map(|rest| {
            let (kind, value) = rest.split_once(':')?;
            Some(Marker {
                kind: kind.to_string(),
                value: value.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn run_sh(script: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new("sh")
            .arg("-s")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script.as_bytes())
            .expect("write");
        child.wait_with_output().expect("wait")
    }

    #[test]
    fn quoting_keeps_hostile_values_literal() {
        for v in [
            "a b",
            "it's",
            "$(touch /tmp/x)",
            "a;b",
            "line\nbreak",
            "`id`",
            "",
        ] {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", q(v)))
                .output()
                .expect("sh");
            assert_eq!(String::from_utf8_lossy(&out.stdout), v);
        }
    }

    #[test]
    fn converge_assembles_secrets_on_the_host_and_keeps_a_backup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf8");
        std::fs::write(dir.path().join("private.key"), "PRIVATEKEYVALUE=\n").expect("write");
        std::fs::write(dir.path().join("psk-node-b.key"), "PSKVALUE=\n").expect("write");
        std::fs::write(dir.path().join("wgt0.conf"), "old\n").expect("write");
        let config = "[Interface]\nPrivateKey = <secret:private.key>\n\n[Peer]\nPresharedKey = <secret:psk-node-b.key>\nAllowedIPs = 10.10.0.2/32\n";
        let script = ConvergeScript {
            config: Some(config.to_string()),
            remove_psks: vec!["gone".into()],
            ..ConvergeScript::default()
        }
        .render(d, "wgt0");
        assert!(!script.contains("PRIVATEKEYVALUE"));
        std::fs::write(dir.path().join("psk-gone.key"), "x\n").expect("write");
        let out = run_sh(&script);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let written = std::fs::read_to_string(dir.path().join("wgt0.conf")).expect("read");
        assert_eq!(
            written,
            "[Interface]\nPrivateKey = PRIVATEKEYVALUE=\n\n[Peer]\nPresharedKey = PSKVALUE=\nAllowedIPs = 10.10.0.2/32\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("wgt0.conf.meshup-prev")).expect("read"),
            "old\n"
        );
        assert!(!dir.path().join("psk-gone.key").exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("wgt0.conf"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let markers = parse_markers(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(markers.last().map(|m| m.kind.as_str()), Some("done"));
    }

    #[test]
    fn converge_refuses_when_a_secret_file_is_missing_and_keeps_the_old_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf8");
        std::fs::write(dir.path().join("wgt0.conf"), "old\n").expect("write");
        let script = ConvergeScript {
            config: Some("PrivateKey = <secret:private.key>\n".into()),
            ..ConvergeScript::default()
        }
        .render(d, "wgt0");
        let out = run_sh(&script);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("missing secret files: private.key"));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("wgt0.conf")).expect("read"),
            "old\n"
        );
    }

    #[test]
    fn prepare_stores_psks_without_putting_them_in_argv_and_redacts_debug() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf8");
        let prep = PrepareScript {
            install: None,
            generate_key: false,
            psks: vec![("node-b".into(), Secret::new("c2VjcmV0cHNr".to_string()))],
        };
        assert!(!format!("{prep:?}").contains("c2VjcmV0cHNr"));
        let script = prep.render(d, "wgt0");
        let out = run_sh(script.expose_str().unwrap_or_default());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("psk-node-b.key")).expect("read"),
            "c2VjcmV0cHNr\n"
        );
    }

    #[test]
    fn a_second_run_waits_for_nobody_but_reports_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf8");
        if Command::new("flock").arg("-V").output().is_err() {
            return;
        }
        let lock = dir.path().join(".meshup.lock");
        std::fs::write(&lock, "").expect("write");
        let mut holder = Command::new("flock")
            .arg(&lock)
            .arg("sleep")
            .arg("5")
            .spawn()
            .expect("flock");
        std::thread::sleep(std::time::Duration::from_millis(300));
        let script = PrepareScript::default().render(d, "wgt0");
        let out = run_sh(script.expose_str().unwrap_or_default());
        let _ = holder.kill();
        let _ = holder.wait();
        assert_eq!(out.status.code(), Some(75));
        assert!(String::from_utf8_lossy(&out.stdout).contains("@@meshup:locked:"));
    }

    #[test]
    fn heredoc_delimiter_avoids_body_lines() {
        assert_eq!(heredoc_delimiter("a\nMESHUP_EOF_0\n"), "MESHUP_EOF_1");
    }
}
