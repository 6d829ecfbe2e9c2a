//! Every remote script meshup runs, as real POSIX `sh` files checked by shellcheck and
//! run under dash, bash and busybox in the tests, plus the one way values get into them:
//! [`Values`], quoted shell assignments placed in front of a file's text. Nothing is
//! ever substituted inside a script.
//!
//! Scripts report back with marker lines `@@meshup:KIND:VALUE` ([`output`]).
pub mod output;

use crate::shell;

/// The read-only facts gather (sections of host state, secrets redacted on the host),
/// after the run hold's functions (apply's gather takes the hold).
pub const GATHER: &str = concat!(include_str!("hold.sh"), include_str!("gather.sh"));

/// A fresh `MU_MARK` for one gather: 16 random hex digits that its marker lines carry on
/// the host until its last sed turns them into `@@meshup:` (see gather.sh), so no text
/// on the host can pass for a marker.
pub fn gather_mark() -> String {
    let mut bytes = [0u8; 8];
    rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The apply library: the functions an apply phase is made of (see [`call`]), after the
/// run hold's functions (a phase of another run's hold stops).
pub const APPLY_LIB: &str = concat!(include_str!("hold.sh"), include_str!("lib.sh"));

/// The run hold's functions alone (apply's hold exec on its first host, and its release
/// when it cannot hold every host).
pub const HOLD: &str = include_str!("hold.sh");

/// Apply's last exec on a host: the first handshakes of the pairs it starts (see
/// `crate::apply::settle`).
pub const SETTLE: &str = include_str!("settle.sh");

/// `mu_wait_lock`: waits (bounded) for a package manager's lock held by another process.
pub const WAIT_LOCK: &str = include_str!("wait_lock.sh");

/// The host-side watchdog: one tick for one interface, run by the host's timer
/// (installed by the plan's watchdog steps; see the file's header for what it does).
pub const WATCHDOG: &str = include_str!("watchdog.sh");

/// meshup's routing script of an interface (exit route, MSS clamping, masquerade),
/// written on the host after its values by the plan's route step (`crate::routing`).
pub const ROUTE: &str = include_str!("route.sh");

/// The verify probe's functions (see `crate::verify::script` for how it is assembled).
pub const PROBE: &str = include_str!("probe.sh");

/// Values for a script: `NAME='value'` lines put in front of it. Each value is quoted
/// with [`shell::quote`]; names are checked to be plain shell variable names.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Values {
    lines: String,
}

impl std::fmt::Debug for Values {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may carry preshared keys.
        f.write_str("Values(<redacted>)")
    }
}

impl Values {
    /// No values.
    pub fn new() -> Values {
        Values::default()
    }

    /// Adds `name=value`. Panics on a name that is not `[A-Z_][A-Z0-9_]*`: names are
    /// constants of meshup's own code, never input.
    pub fn set(mut self, name: &str, value: &str) -> Values {
        assert!(
            name.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
            "not a shell variable name: {name}"
        );
        self.lines.push_str(name);
        self.lines.push('=');
        self.lines.push_str(&shell::quote(value));
        self.lines.push('\n');
        self
    }

    /// The values followed by `body`: the script as it is sent, as one brace group.
    /// `sh -s` reads a script from the connection as it runs it, so one cut short in
    /// transit (the connection drops while the rest is still on its way, e.g. behind a
    /// long package install) would run a truncated last line; a group is read whole
    /// before any of it runs, so a cut script runs nothing at all.
    pub fn before(&self, body: &str) -> String {
        let mut out = String::with_capacity(self.lines.len() + body.len() + 6);
        out.push_str("{\n");
        out.push_str(&self.lines);
        out.push_str(body);
        if !body.ends_with('\n') {
            out.push('\n');
        }
        out.push_str("}\n");
        out
    }
}

/// One call of a library function with quoted arguments, e.g.
/// `mu_install 'apt-get install -y wireguard-tools'`. An argument starting with `"$`
/// is a reference to a variable set by [`Values`] and is passed as it is.
pub fn call(function: &str, args: &[&str]) -> String {
    let mut out = function.to_string();
    for arg in args {
        out.push(' ');
        if arg.starts_with("\"$MU_") && arg.ends_with('"') {
            out.push_str(arg);
        } else {
            out.push_str(&shell::quote(arg));
        }
    }
    out
}

/// A heredoc feeding `body` to a library function: `mu_write_config <<'MESHUP_EOF_0'`.
/// The delimiter is chosen so that no line of `body` ends it early.
pub fn call_with_stdin(function: &str, body: &str) -> String {
    let mut n = 0u32;
    let delimiter = loop {
        let candidate = format!("MESHUP_EOF_{n}");
        if !body.lines().any(|l| l == candidate) {
            break candidate;
        }
        n += 1;
    };
    let mut out = format!("{function} <<'{delimiter}'\n{body}");
    if !body.ends_with('\n') && !body.is_empty() {
        out.push('\n');
    }
    out.push_str(&delimiter);
    out
}

/// Runs a script under `sh -s` with the script on stdin, as apply sends it (the unit
/// tests that run the library for real).
#[cfg(test)]
pub(crate) fn run_sh(script: &[u8]) -> std::process::Output {
    use std::io::Write as _;
    let mut child = std::process::Command::new("sh")
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
        .write_all(script)
        .expect("write");
    child.wait_with_output().expect("wait")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_assignments() {
        let v = Values::new()
            .set("MU_DIR", "/etc/wire guard")
            .set("MU_IF", "wg0");
        assert_eq!(
            v.before("mu_x"),
            "{\nMU_DIR='/etc/wire guard'\nMU_IF=wg0\nmu_x\n}\n"
        );
        assert_eq!(format!("{v:?}"), "Values(<redacted>)");
    }

    #[test]
    fn calls_quote_arguments_but_pass_variable_references() {
        assert_eq!(
            call("mu_store_psk", &["node-b", "\"$MU_PSK_1\""]),
            "mu_store_psk node-b \"$MU_PSK_1\""
        );
        let line = call("printf '%s|'", &["a b", "it's", "$(id)"]);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .expect("sh");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b|it's|$(id)|");
    }

    #[test]
    fn heredoc_delimiter_avoids_body_lines() {
        assert_eq!(
            call_with_stdin("f", "a\nMESHUP_EOF_0\n"),
            "f <<'MESHUP_EOF_1'\na\nMESHUP_EOF_0\nMESHUP_EOF_1"
        );
    }
}
