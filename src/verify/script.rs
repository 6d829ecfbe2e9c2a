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
//! | `during`                                 | optional caller script (e.g. the facts    |
//! |                                          | gather) run while the pings are in flight |
//! | `ping <target> <kind> <addr> [<size>]`   | one `ping` run, kind = mesh, mesh6,       |
//! |                                          | probe, mtu, small                         |
//! | `now`                                    | `date +%s`, taken after the pings         |
//! | `wg-dump`                                | `wg show <if> dump`, redacted on the host |
//! | `end`                                    | none                                      |
//!
//! All pings start at once in the background, before anything else is read, and each has
//! a deadline (`-w`), so the run takes about 4 s whatever the mesh size; a mesh ping
//! or DF ping that fails is run once more (WireGuard retries a lost handshake after 5 s,
//! and a loaded host may answer late), so a failing pair costs about 7 s. Towards a peer
//! whose name sorts before this node's, pings start 1 s late: the other side's pings
//! set the handshake up first, avoiding the crossed-handshake stall seen on the lab.
//! The dump is read after the pings, so its handshakes reflect the ping traffic; a first
//! dump taken before any ping shows what the mesh did on its own (who had initiated, and
//! the transfer counters the pings then move).
//!
//! The whole script is one subshell reading `/dev/null`, so it can be fed to `sh -s` on
//! stdin: the shell parses it completely before any command could read the script text.
use std::fmt::Write as _;
use std::net::IpAddr;

use super::error::VerifyError;
use super::expectation::{Expectation, NodeName};

/// The marker prefix of every section line.
pub const MARKER: &str = "@@meshup:verify:";

/// The kind of the probe's markers in the one marker protocol (`@@meshup:KIND:VALUE`).
pub const MARKER_KIND: &str = "verify";

/// The format version written in the `begin` section.
pub const FORMAT_VERSION: u32 = 1;

/// One ping the script runs.
struct PingJob<'a> {
    target: &'a NodeName,
    kind: &'static str,
    addr: IpAddr,
    size: Option<u16>,
    delay: u8,
}

impl PingJob<'_> {
    fn args(&self) -> String {
        let family = if self.addr.is_ipv6() { "-6" } else { "-4" };
        let addr = self.addr;
        match (self.kind, self.size) {
            ("mtu" | "small", Some(size)) => {
                format!("{family} -n -M do -s {size} -c 2 -i 0.2 -W 1 -w 2 '{addr}'")
            }
            _ => format!("{family} -n -c 3 -i 0.2 -W 1 -w 3 '{addr}'"),
        }
    }

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

    let mut s = String::with_capacity(1024 + jobs.len() * 160);
    let iface = expectation.interface.as_str();
    // `write!` into a String cannot fail; the results are ignored on purpose.
    let _ = write!(
        s,
        r#"#!/bin/sh
# meshup verify probe for {node}: read-only.
(
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL
M='{MARKER}'
IF='{iface}'
echo "${{M}}begin {FORMAT_VERSION} {node} {iface}"
T=$(mktemp -d 2>/dev/null || mktemp -d -t meshup-verify.XXXXXX) || {{ echo "${{M}}fatal mktemp failed"; exit 1; }}
trap 'rm -rf "$T"' EXIT
trap 'exit 1' HUP INT TERM
sec() {{ echo "${{M}}$*"; }}
wgdump() {{
  {{ wg show "$IF" dump 2>&1; echo "${{M}}exit $?"; }} | awk -F'\t' 'BEGIN {{ OFS = "\t" }}
    NF <= 1 {{ print; next }}
    NF == 4 {{ $1 = "(redacted)" }}
    NF == 8 {{ if ($2 != "(none)") $2 = "(set)" }}
    NF == 4 || NF == 8 {{ print; next }}
    {{ print "(unparsed line redacted)" }}'
}}
sec wg-dump-before
wgdump
# Peers with a handshake in the last 2 minutes need no staggered start (the stagger only
# avoids crossed first handshakes): their mesh addresses, space-separated.
RECENT=" $(wg show "$IF" dump 2>/dev/null | awk -F'\t' -v now="$(date +%s)" 'NR > 1 && $5 > now - 120 {{ gsub(/,/, " ", $4); printf "%s ", $4 }}')"
job() {{
  f=$1; d=$2; r=$3; shift 3
  (
    [ "$d" = 0 ] || sleep "$d"
    ping "$@" >"$T/$f.out" 2>&1
    rc=$?
    # A handshake lost at bring-up is retried by WireGuard after 5 s: try once more.
    if [ "$rc" != 0 ] && [ "$r" = 1 ]; then
      ping "$@" >"$T/$f.out" 2>&1
      rc=$?
    fi
    echo "$rc" >"$T/$f.rc"
  ) </dev/null >/dev/null 2>&1 &
}}
# One peer's connectivity and path-MTU probes in one process when healthy: a full-size
# ping with DF set answers both; only when it fails does a small ping tell "no path"
# from "MTU", and the full-size one is tried again once the path is known to work.
# (Arguments are validated addresses and numbers, split on purpose.)
pair() {{
  m=$1; u=$2; d=$3; a=$4; big=$5; small=$6
  case "$RECENT" in *" $a/32 "*|*" $a/128 "*) d=0 ;; esac
  (
    [ "$d" = 0 ] || sleep "$d"
    ping $big >"$T/$u.out" 2>&1
    urc=$?
    if [ "$urc" = 0 ]; then
      echo "$u" >"$T/$m.same"
      mrc=0
    else
      ping $small >"$T/$m.out" 2>&1
      mrc=$?
      if [ "$mrc" != 0 ]; then
        ping $small >"$T/$m.out" 2>&1
        mrc=$?
      fi
      if [ "$mrc" = 0 ]; then
        ping $big >"$T/$u.out" 2>&1
        urc=$?
      fi
    fi
    echo "$urc" >"$T/$u.rc"
    echo "$mrc" >"$T/$m.rc"
  ) </dev/null >/dev/null 2>&1 &
}}
"#,
        node = me.name,
    );
    let mut i = 0;
    while i < jobs.len() {
        let job = &jobs[i];
        // A "mesh" job directly followed by the "mtu" job of the same peer runs as a pair.
        if job.kind == "mesh"
            && let Some(next) = jobs
                .get(i + 1)
                .filter(|n| n.kind == "mtu" && n.target == job.target)
        {
            let _ = writeln!(
                s,
                "pair {i} {} {} {} \"{}\" \"{}\"",
                i + 1,
                job.delay,
                job.addr,
                next.args().replace('\'', ""),
                job.args().replace('\'', "")
            );
            i += 2;
            continue;
        }
        let retry = u8::from(matches!(job.kind, "mesh" | "mesh6" | "probe" | "mtu"));
        let _ = writeln!(s, "job {i} {} {retry} {}", job.delay, job.args());
        i += 1;
    }
    s.push_str(
        r#"sec link
ip -o link show dev "$IF" 2>&1
sec exit $?
sec addr
ip -o addr show dev "$IF" 2>&1
sec exit $?
sec route 4
ip -4 route show table all dev "$IF" 2>&1
sec exit $?
sec route 6
ip -6 route show table all dev "$IF" 2>&1
sec exit $?
sec forwarding
cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/all/forwarding 2>&1
"#,
    );
    if let Some(during) = during {
        s.push_str("sec during\n(\n");
        s.push_str(during);
        if !during.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(") </dev/null\n");
    }
    s.push_str(
        r#"wait
# Shell builtins only: at 50 hosts a cat per section was ~10,000 processes on the hosts.
out() {
  f="$T/$1.out"
  if [ -e "$T/$1.same" ]; then read -r other <"$T/$1.same"; f="$T/$other.out"; fi
  if [ -r "$f" ]; then
    while IFS= read -r line || [ -n "$line" ]; do printf '%s\n' "$line"; done <"$f"
  fi
  rc=
  [ -s "$T/$1.rc" ] && read -r rc <"$T/$1.rc"
  if [ -n "$rc" ]; then sec exit "$rc"; else sec exit 124; fi
}
"#,
    );
    for (i, job) in jobs.iter().enumerate() {
        let _ = writeln!(s, "sec {}\nout {i}", job.header());
    }
    s.push_str(
        r#"sec now
date +%s
sec wg-dump
wgdump
sec end
) </dev/null
"#,
    );
    Ok(s)
}
