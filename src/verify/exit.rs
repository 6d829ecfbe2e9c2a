//! verify's exit check: on a node that sends its internet traffic through an exit node,
//! the route to an address beyond the exits must leave through the mesh interface and,
//! with `mesh.exit_probe` (a TCP service answering each connection with the address it
//! came from), the connection must arrive with the exit's public address. Runs after
//! the probe in the same exec, as a section `exit-route <exit> <expected address>`
//! (`-` when the exit's endpoint is a DNS name) whose body is the `ip route get` line
//! and `seen <address>` or `seen-error`.
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use super::sections;
use crate::scripts::Values;
use crate::topology::{Mesh, NodeSpec};

/// Where the route is looked up when the mesh names no exit probe: an address of the
/// documentation range, never sent a packet (`ip route get` only asks the kernel).
const ROUTE_ONLY: &str = "192.0.2.1";

/// One node's exit check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExitCheck {
    /// The node using the exit.
    pub node: String,
    /// Its exit node.
    pub exit: String,
    /// The exit's public address (its endpoint, when that is an address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// The device the route beyond goes out of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The address the exit probe saw (`None`: no probe configured, or no answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seen: Option<String>,
    /// The probe was asked and did not answer.
    pub probe_failed: bool,
    /// The mesh interface.
    pub interface: String,
}

impl ExitCheck {
    /// The route goes through the mesh interface and the probe (when asked) saw the
    /// exit's address.
    pub fn ok(&self) -> bool {
        self.device.as_deref() == Some(self.interface.as_str())
            && !self.probe_failed
            && match (&self.seen, &self.expected) {
                (Some(seen), Some(want)) => seen == want,
                _ => true,
            }
    }

    /// One line of the text report.
    pub fn line(&self) -> String {
        let mut out = format!("{} → exit {}: ", self.node, self.exit);
        match &self.device {
            Some(d) if *d == self.interface => {
                let _ = write!(out, "internet route through {d}");
            }
            Some(d) => {
                let _ = write!(out, "internet route through {d}, not {}", self.interface);
            }
            None => out.push_str("no internet route"),
        }
        if self.probe_failed {
            out.push_str(", the exit probe did not answer");
        } else if let Some(seen) = &self.seen {
            let _ = write!(out, ", leaves as {seen}");
            match &self.expected {
                Some(want) if want != seen => {
                    let _ = write!(out, " (the exit's public address is {want})");
                }
                _ => {}
            }
        }
        out.push_str(if self.ok() { " ✓" } else { " ✗" });
        out
    }
}

/// The exit's public address: its endpoint's host when that is an IP address.
fn public_address(exit: &NodeSpec) -> Option<IpAddr> {
    let endpoint = exit.endpoint.as_deref()?;
    let (host, _) = endpoint.rsplit_once(':')?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The check's shell for `node` (`None`: it uses no exit), appended to its probe.
pub fn script(mesh: &Mesh, node: &NodeSpec) -> Option<String> {
    let exit = mesh.node(node.exit_via.as_ref()?)?;
    let expected = public_address(exit).map_or_else(|| "-".to_string(), |a| a.to_string());
    let probe = mesh.settings.exit_probe;
    let target = probe.map_or_else(|| ROUTE_ONLY.to_string(), |p| p.ip().to_string());
    let values = Values::new()
        .set("MU_EXIT", exit.name.as_str())
        .set("MU_EXIT_EXPECTED", &expected)
        .set("MU_EXIT_TARGET", &target)
        .set(
            "MU_EXIT_PROBE",
            &probe.map(|p| p.to_string()).unwrap_or_default(),
        );
    let group = values.before(
        "printf '@@meshup:verify:exit-route %s %s\\n' \"$MU_EXIT\" \"$MU_EXIT_EXPECTED\"
ip route get \"$MU_EXIT_TARGET\" 2>&1 | head -n 1
if [ -n \"$MU_EXIT_PROBE\" ]; then
	mu_seen=$(perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(PeerAddr => $ARGV[0], Timeout => 5) or exit 2; $s->timeout(5); $l = <$s>; print $l if defined $l' \"$MU_EXIT_PROBE\" 2>/dev/null | head -n 1)
	if [ -n \"$mu_seen\" ]; then printf 'seen %s\\n' \"$mu_seen\"; else echo seen-error; fi
fi
",
    );
    // A subshell reading nothing: `sh -s` reads the script itself from stdin.
    Some(format!("(\n{group}) </dev/null\n"))
}

/// The check from a node's verify output (`None`: it ran none).
pub fn parse(node: &str, interface: &str, output: &str) -> Option<ExitCheck> {
    let section = sections::split(output)
        .into_iter()
        .find(|s| s.kind == "exit-route")?;
    let exit = section.args.first()?.to_string();
    let expected = section
        .args
        .get(1)
        .filter(|a| **a != "-")
        .map(|a| a.to_string());
    let device = section.body.first().and_then(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        words
            .windows(2)
            .find(|w| w[0] == "dev")
            .map(|w| w[1].to_string())
    });
    let mut seen = None;
    let mut probe_failed = false;
    for line in &section.body[1.min(section.body.len())..] {
        if let Some(addr) = line.strip_prefix("seen ") {
            seen = Some(addr.trim().to_string());
        } else if line.trim() == "seen-error" {
            probe_failed = true;
        }
    }
    Some(ExitCheck {
        node: node.to_string(),
        exit,
        expected,
        device,
        seen,
        probe_failed,
        interface: interface.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Body, device, seen, probe failed, ok.
    type Case = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        bool,
        bool,
    );

    #[test]
    fn parses_what_the_node_saw() {
        let out = |body: &str| {
            format!(
                "@@meshup:verify:begin 1 b wg0\n@@meshup:verify:exit-route pub-1 203.0.113.11\n{body}"
            )
        };
        let cases: [Case; 5] = [
            (
                "192.0.2.1 dev wg0 table 51820 src 10.10.0.2 uid 0\nseen 203.0.113.11\n",
                Some("wg0"),
                Some("203.0.113.11"),
                false,
                true,
            ),
            (
                "192.0.2.1 via 169.254.0.1 dev eth0 src 203.0.113.12 uid 0\nseen 203.0.113.12\n",
                Some("eth0"),
                Some("203.0.113.12"),
                false,
                false,
            ),
            (
                "192.0.2.1 dev wg0 table 51820 src 10.10.0.2 uid 0\nseen 203.0.113.99\n",
                Some("wg0"),
                Some("203.0.113.99"),
                false,
                false,
            ),
            (
                "192.0.2.1 dev wg0 table 51820 src 10.10.0.2 uid 0\nseen-error\n",
                Some("wg0"),
                None,
                true,
                false,
            ),
            (
                "192.0.2.1 dev wg0 table 51820 src 10.10.0.2 uid 0\n",
                Some("wg0"),
                None,
                false,
                true,
            ),
        ];
        for (body, device, seen, failed, ok) in cases {
            let check = parse("b", "wg0", &out(body)).expect("section");
            assert_eq!(check.exit, "pub-1");
            assert_eq!(check.expected.as_deref(), Some("203.0.113.11"));
            assert_eq!(check.device.as_deref(), device, "{body}");
            assert_eq!(check.seen.as_deref(), seen, "{body}");
            assert_eq!(check.probe_failed, failed, "{body}");
            assert_eq!(check.ok(), ok, "{body}: {}", check.line());
        }
        assert!(parse("b", "wg0", "@@meshup:verify:begin 1 b wg0\n").is_none());
    }
}
