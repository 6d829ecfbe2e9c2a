//! The probe script `verify` runs (as root, read-only) on every host.
//!
//! One POSIX `sh` script per host. It prints sections, each opened by a marker line
//! `@@meshup:verify:<kind> <args…>`; commands whose status matters are followed by
//! `@@meshup:verify:exit <status>`. Sections, in order:
//!
//! | marker                                   | body                                      |
//! |------------------------------------------|-------------------------------------------|
//! | `begin 1 <node> <interface>`             | none (format version 1)                   |
//! | `wg-dump-before`                         | the redacted dump before any ping         |
//! | `link`                                   | `ip -o link show dev <if>` (MTU, state)   |
//! | `addr`                                   | `ip -o addr show dev <if>`                |
//! | `route 4`, `route 6`                     | `ip -4/-6 route show table all dev <if>`  |
//! | `forwarding`                             | ipv4 then ipv6 forwarding sysctls         |
//! | `derived-key`                            | `wg pubkey < <dir>/private.key` (only     |
//! |                                          | from [`host_probe_script`])               |
//! | `during`                                 | optional caller script (e.g. the facts    |
//! |                                          | gather) run while the pings are in flight |
//! | `ping <target> <kind> <addr> [<size>]`   | one `ping` run, kind = mesh, mesh6,       |
//! |                                          | probe, mtu, small                         |
//! | `now`                                    | `date +%s`, taken after the pings         |
//! | `wg-dump`                                | `wg show <if> dump`, redacted on the host |
//! | `end`                                    | none                                      |
//!
//! Healthy, a peer costs one `ping` process: a full-size DF ping answers both "is there
//! a path" and "does the MTU pass". All first-round pings start at once in the
//! background (no subshell, no `sleep` per peer), each with a deadline (`-w`), and the
//! shell collects their statuses with `wait <pid>`. What failed is retried in up to three
//! rounds: a small ping (twice: WireGuard retries a lost handshake after 5 s, and a
//! loaded host may answer late), then, once a small one answered, the DF ping once more,
//! so a pair is failed, or an MTU problem named, only on evidence that survived a retry.
//! A healthy run takes well under a second on an idle host; a failing pair about 9 s.
//! Towards a peer whose name sorts before this node's and with no handshake in the last
//! 2 minutes, the first ping starts 1 s late (a delay inside ping.pl's one run; without
//! perl, one background `sleep` for all of them):
//! the other side's pings set the handshake up first, avoiding the crossed-handshake
//! stall seen on the lab.
//! The dump is read after the pings, so its handshakes reflect the ping traffic; a first
//! dump taken before any ping shows what the mesh did on its own (who had initiated, and
//! the transfer counters the pings then move).
//!
//! The shell is `src/scripts/probe.sh` ([`scripts::PROBE`]): settings and functions, no
//! command of its own. What is sent is assembled as
//!
//! ```text
//! (
//! MU_IF=… MU_NODE=… MU_VERSION=… MU_DIR=… MU_PINGS=… MU_PING_SECTIONS=…   (Values)
//! <probe.sh>
//! mu_probe_start
//! mu_sec during              ┐ only with a `during` script, which keeps its own
//! ( <during> ) </dev/null    ┘ subshell: its variables and `exit` stay its own
//! mu_probe_finish
//! ) </dev/null
//! ```
//!
//! The `during` script is pasted between two calls rather than handed to probe.sh in a
//! variable: run from a variable it would need `eval`, and pasted text is parsed with
//! the rest. The outer subshell reading `/dev/null` is what lets the script be fed to
//! `sh -s` on stdin: the shell parses all of it before running anything, so no command
//! can read (or eat) the script text.
//!
//! The ping plan travels as two newline-separated values whose words are validated
//! addresses, node names, numbers and fixed ping options: `MU_PINGS` (the processes to
//! start: a `pair` for a peer's mesh + DF pings, a `job` for any other ping) and
//! `MU_PING_SECTIONS` (the section header of each result, in output order). A `MU_PINGS`
//! line ends with its ping argument lists in double quotes (`pair 0 1 0 10.10.0.2
//! "<DF ping args>" "<mesh ping args>"`, `job 2 0 1 10.10.0.2 "<ping args>"`); probe.sh splits a line with `IFS='"'`, then the
//! words and arguments with `IFS=' '`, under `set -f`: nothing is evaluated.
use std::fmt::Write as _;
use std::net::IpAddr;

use super::error::VerifyError;
use super::expectation::{Expectation, NodeName};
use crate::scripts::{self, Values};

/// The marker prefix of every section line.
pub const MARKER: &str = "@@meshup:verify:";

pub use super::sections::MARKER_KIND;

/// The one-process pinger probe.sh runs with perl where perl is installed.
pub const PINGER: &str = concat!(
    include_str!("../scripts/linux.pl"),
    include_str!("../scripts/ping.pl")
);

/// The format version written in the `begin` section.
pub const FORMAT_VERSION: u32 = 1;

/// One ping the script runs.
struct PingJob<'a> {
    target: &'a NodeName,
    kind: &'static str,
    addr: IpAddr,
    size: Option<u16>,
    delay: u8,
    /// The target's mesh address (a recent handshake with it cancels the delay).
    peer: IpAddr,
}

impl PingJob<'_> {
    /// The ping arguments: fixed options, numbers and the address, split on spaces by
    /// the script.
    fn args(&self) -> String {
        let family = if self.addr.is_ipv6() { "-6" } else { "-4" };
        let addr = self.addr;
        match (self.kind, self.size) {
            ("mtu" | "small", Some(size)) => {
                format!("{family} -n -M do -s {size} -c 2 -i 0.2 -W 1 -w 2 {addr}")
            }
            _ => format!("{family} -n -c 3 -i 0.2 -W 1 -w 3 {addr}"),
        }
    }

    /// The words of its section marker.
    fn header(&self) -> String {
        match self.size {
            Some(size) => format!("ping {} {} {} {size}", self.target, self.kind, self.addr),
            None => format!("ping {} {} {}", self.target, self.kind, self.addr),
        }
    }
}

/// ICMP echo payload that makes an IP packet of exactly `mtu` bytes with DF set.
fn df_payload(mtu: u16, addr: IpAddr) -> u16 {
    let headers = if addr.is_ipv6() { 48 } else { 28 };
    mtu.saturating_sub(headers)
}

/// The probe script for `node`: pings every other node's mesh address(es) and probe
/// address and an MTU-sized DF ping per peer (the mesh ping shows that small packets
/// pass; older outputs carry a separate `small` DF ping), then reads the
/// interface, its routes and the redacted `wg show dump`.
pub fn probe_script(expectation: &Expectation, node: &NodeName) -> Result<String, VerifyError> {
    probe_script_with(expectation, node, None)
}

/// [`probe_script`] running `during` (a POSIX sh script, in a subshell of its own) while
/// the pings are in flight, under a `during` section. Its output must not contain lines
/// starting with the probe's [`MARKER`]; meshup's facts gather escapes every body line
/// starting with `@@`, so it qualifies.
pub fn probe_script_with(
    expectation: &Expectation,
    node: &NodeName,
    during: Option<&str>,
) -> Result<String, VerifyError> {
    build(expectation, node, None, during)
}

/// The probe `verify` runs on a host: [`probe_script`] plus a `derived-key` section, the
/// public key `wg pubkey` derives on the host from `<config_dir>/private.key` (the key
/// drift check needs it on every host; the facts gather, which reads it too, only runs
/// where a pair fails).
pub fn host_probe_script(
    expectation: &Expectation,
    node: &NodeName,
    config_dir: &str,
) -> Result<String, VerifyError> {
    let tcp = super::tcp::during_script(expectation, node)?;
    build(expectation, node, Some(config_dir), Some(&tcp))
}

fn build(
    expectation: &Expectation,
    node: &NodeName,
    config_dir: Option<&str>,
    during: Option<&str>,
) -> Result<String, VerifyError> {
    let me = expectation
        .node(node)
        .ok_or_else(|| VerifyError::NoSuchNode {
            name: node.to_string(),
        })?;
    let mut jobs = Vec::new();
    for other in expectation.nodes.iter().filter(|n| n.name != me.name) {
        let delay = u8::from(other.name < me.name);
        let job = |kind, addr, size| PingJob {
            target: &other.name,
            kind,
            addr,
            size,
            delay,
            peer: other.address,
        };
        jobs.push(job("mesh", other.address, None));
        let mtu = me.mtu.min(other.mtu);
        jobs.push(job(
            "mtu",
            other.address,
            Some(df_payload(mtu, other.address)),
        ));
        if let (Some(_), Some(addr6)) = (me.address6, other.address6) {
            jobs.push(job("mesh6", addr6, None));
        }
        if let Some(probe) = other.probe {
            jobs.push(job("probe", probe, None));
        }
    }

    let values = Values::new()
        .set("MU_IF", expectation.interface.as_str())
        .set("MU_NODE", me.name.as_str())
        .set("MU_DIR", config_dir.unwrap_or(""))
        .set("MU_PERL", PINGER)
        .set("MU_VERSION", &FORMAT_VERSION.to_string())
        .set("MU_PINGS", &ping_lines(&jobs))
        .set("MU_PING_SECTIONS", &section_lines(&jobs));
    let mut s = String::with_capacity(
        scripts::PROBE.len() + PINGER.len() + during.map_or(0, str::len) + jobs.len() * 160 + 256,
    );
    s.push_str("#!/bin/sh\n# meshup verify probe (read-only): see src/scripts/probe.sh.\n(\n");
    s.push_str(&values.before(scripts::PROBE));
    s.push_str("mu_probe_start\n");
    if let Some(during) = during {
        s.push_str("mu_sec during\n(\n");
        s.push_str(during);
        if !during.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(") </dev/null\n");
    }
    s.push_str("mu_probe_finish\n) </dev/null\n");
    Ok(s)
}

/// `MU_PINGS`: the processes to start, one line each. A `mesh` job directly followed
/// by the `mtu` job of the same peer runs as one `pair`; the other jobs are retried
/// once on failure.
fn ping_lines(jobs: &[PingJob<'_>]) -> String {
    let mut out = String::with_capacity(jobs.len() * 100);
    let mut i = 0;
    while i < jobs.len() {
        let job = &jobs[i];
        if job.kind == "mesh"
            && let Some(next) = jobs
                .get(i + 1)
                .filter(|n| n.kind == "mtu" && n.target == job.target)
        {
            // `write!` into a String cannot fail.
            let _ = writeln!(
                out,
                "pair {i} {} {} {} {} \"{}\" \"{}\"",
                i + 1,
                job.delay,
                job.addr,
                next.size.unwrap_or(0),
                next.args(),
                job.args()
            );
            i += 2;
            continue;
        }
        let retry = u8::from(matches!(job.kind, "mesh" | "mesh6" | "probe" | "mtu"));
        let _ = writeln!(
            out,
            "job {i} {} {retry} {} \"{}\"",
            job.delay,
            job.peer,
            job.args()
        );
        i += 1;
    }
    out
}

/// `MU_PING_SECTIONS`: line N is the section header of result N.
fn section_lines(jobs: &[PingJob<'_>]) -> String {
    let mut out = String::with_capacity(jobs.len() * 48);
    for job in jobs {
        out.push_str(&job.header());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::ExpectedNode;

    fn node(name: &str, i: u8) -> ExpectedNode {
        ExpectedNode {
            name: name.parse().expect("name"),
            address: format!("10.1.0.{i}").parse().expect("ip"),
            address6: Some(format!("fd00::{i}").parse().expect("ip")),
            nat: false,
            relay_role: false,
            hub: false,
            subnet_router: false,
            probe: Some(format!("192.168.{i}.1").parse().expect("ip")),
            mtu: 1420,
            listen_port: 51820,
            public_key: None,
            peers: Vec::new(),
            acl: None,
        }
    }

    fn mesh(names: &[&str]) -> Expectation {
        let nodes = (1..).zip(names).map(|(i, n)| node(n, i)).collect();
        Expectation::new("wg0".parse().expect("if"), nodes).expect("expectation")
    }

    #[test]
    fn ping_lists_hold_only_validated_words() {
        let exp = mesh(&["a.b-c", "0-node", "z9"]);
        // z9 sorts last: it starts late towards both others.
        let script = probe_script(&exp, &"z9".parse().expect("name")).expect("script");
        let value = |name: &str| {
            let start = script.find(&format!("\n{name}='")).expect(name) + name.len() + 3;
            let len = script[start..].find('\'').expect("end quote");
            script[start..start + len].to_owned()
        };
        let pings = value("MU_PINGS");
        let headers = value("MU_PING_SECTIONS");
        for text in [&pings, &headers] {
            assert!(
                text.chars()
                    .all(|c| c.is_ascii_alphanumeric() || " .:-\"\n".contains(c)),
                "{text}"
            );
        }
        assert_eq!(pings.lines().count(), 6, "{pings}");
        assert!(pings.contains("\njob 2 1 1 10.1.0.1 \"-6 -n -c 3 -i 0.2 -W 1 -w 3 fd00::1\"\n"));
        assert!(
            pings.contains("\njob 3 1 1 10.1.0.1 \"-4 -n -c 3 -i 0.2 -W 1 -w 3 192.168.1.1\"\n")
        );
        assert!(pings.starts_with("pair 0 1 1 10.1.0.1 1392 \"-4 -n -M do -s 1392"));
        assert_eq!(headers.lines().count(), 8, "{headers}");
        assert!(headers.contains("ping a.b-c mtu 10.1.0.1 1392\n"));
    }

    #[test]
    fn probe_file_evaluates_nothing_and_defines_what_the_assembly_calls() {
        let mut code = scripts::PROBE
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'));
        assert!(code.all(|l| !l.contains("eval")));
        for function in ["mu_probe_start()", "mu_probe_finish()", "mu_sec()"] {
            assert!(scripts::PROBE.contains(function), "{function}");
        }
        assert!(scripts::PROBE.contains(&format!("'{MARKER}%s\\n'")));
    }

    #[test]
    fn a_lone_node_probes_nothing_and_completes() {
        let exp = mesh(&["solo"]);
        let script = probe_script(&exp, &"solo".parse().expect("name")).expect("script");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("sh");
        let probe = crate::verify::probe::parse(&String::from_utf8_lossy(&out.stdout))
            .expect("probe output");
        assert!(probe.complete && probe.pings.is_empty() && probe.node == "solo");
    }
}
