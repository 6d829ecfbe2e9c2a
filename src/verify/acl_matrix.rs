//! verify with a mesh ACL: the allowed/denied matrix itself. Every TCP connect a host
//! made towards a node that has rules (the check's own port, and up to
//! [`super::tcp::ACL_PORTS_MAX`] of the rules' TCP ports) is a check: an allowed one
//! passes when the connect completes, a denied one when it does not (it times out).
use std::fmt::Write as _;

use serde::Serialize;

use super::live::Live;
use super::tcp::{expected_open, port};

/// One connect of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AclCheck {
    /// Sender.
    pub from: String,
    /// Receiver (a node with rules).
    pub to: String,
    /// The receiver's address connected to.
    pub addr: String,
    /// Port.
    pub port: u16,
    /// The rules let the sender in on that port.
    pub allowed: bool,
    /// `ok`, `refused`, `timeout` or `error <reason>`.
    pub result: String,
    /// The result is what the rules say.
    pub ok: bool,
}

/// The checks of every probed host, in inventory order of sender, then receiver.
pub(super) fn checks(live: &Live<'_>) -> Vec<AclCheck> {
    let exp = live.exp;
    let check = port(exp);
    let mut out = Vec::new();
    for from in &exp.nodes {
        let Some(probe) = live.probe(&from.name) else {
            continue;
        };
        for to in exp.nodes.iter().filter(|t| t.acl.is_some()) {
            // Without the receiver's listener a refused connect proves nothing.
            if live.probe(&to.name).and_then(|p| p.tcp_listen) != Some(true) {
                continue;
            }
            for r in probe.tcp.iter().filter(|r| r.peer == to.name.as_str()) {
                let port = r.port.unwrap_or(check);
                let allowed = expected_open(from, to, &r.addr, port);
                out.push(AclCheck {
                    from: from.name.to_string(),
                    to: to.name.to_string(),
                    addr: r.addr.clone(),
                    port,
                    allowed,
                    result: r.result.clone(),
                    ok: allowed == r.ok(),
                });
            }
        }
    }
    out
}

/// The matrix as text: every check when `full`, else a count and the checks that did
/// not come out as the rules say. Empty without checks.
pub fn render(checks: &[AclCheck], full: bool) -> String {
    let mut out = String::new();
    if checks.is_empty() {
        return out;
    }
    let bad = checks.iter().filter(|c| !c.ok).count();
    let _ = writeln!(
        out,
        "mesh ACL: {} TCP checks, {} as the rules say{}",
        checks.len(),
        checks.len() - bad,
        if full { ":" } else { "" }
    );
    for c in checks.iter().filter(|c| full || !c.ok) {
        let _ = writeln!(
            out,
            "  {} {} → {} {} port {}: {}, {}",
            if c.ok { "✓" } else { "✗" },
            c.from,
            c.to,
            c.addr,
            c.port,
            if c.allowed { "allowed" } else { "denied" },
            match (c.allowed, c.ok) {
                (true, true) => "connected".to_string(),
                (false, true) => format!("blocked ({})", c.result),
                (true, false) => format!("not connected ({})", c.result),
                (false, false) => "connected: the rules are not enforced".to_string(),
            }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_shows_allowed_and_denied_and_what_went_wrong() {
        let check = |from: &str, port: u16, allowed: bool, result: &str| AclCheck {
            from: from.into(),
            to: "db".into(),
            addr: "10.10.0.1".into(),
            port,
            allowed,
            result: result.into(),
            ok: allowed == (result == "ok"),
        };
        let checks = [
            check("web", 5432, true, "ok"),
            check("other", 5432, false, "timeout"),
            check("web", 41000, false, "ok"),
        ];
        assert_eq!(
            render(&checks, true),
            "mesh ACL: 3 TCP checks, 2 as the rules say:\n  \
             ✓ web → db 10.10.0.1 port 5432: allowed, connected\n  \
             ✓ other → db 10.10.0.1 port 5432: denied, blocked (timeout)\n  \
             ✗ web → db 10.10.0.1 port 41000: denied, connected: the rules are not enforced\n"
        );
        assert_eq!(
            render(&checks, false),
            "mesh ACL: 3 TCP checks, 2 as the rules say\n  \
             ✗ web → db 10.10.0.1 port 41000: denied, connected: the rules are not enforced\n"
        );
        assert_eq!(render(&[], true), "");
    }
}
