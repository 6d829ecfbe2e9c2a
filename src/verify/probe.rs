//! One host's probe output, parsed into typed evidence.
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::error::VerifyError;
use super::ping::{self, PingResult};
use super::sections;
use super::tcp::TcpRecord;
use crate::facts::{InterfaceAddresses, InterfaceRoutes, LinkInfo, Route, WgDump};
use crate::keys::PublicKey;

/// What a ping run was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PingKind {
    /// The target's IPv4 mesh address.
    Mesh,
    /// The target's IPv6 mesh address.
    Mesh6,
    /// A probe address in the target's subnets.
    Probe,
    /// DF ping of exactly the interface MTU.
    Mtu,
    /// DF ping with a small payload.
    Small,
}

impl PingKind {
    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "mesh" => Self::Mesh,
            "mesh6" => Self::Mesh6,
            "probe" => Self::Probe,
            "mtu" => Self::Mtu,
            "small" => Self::Small,
            _ => return None,
        })
    }
}

/// One ping run from this host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PingRecord {
    /// Target node name as the script wrote it.
    pub target: String,
    /// What the ping was for.
    pub kind: PingKind,
    /// Address pinged.
    pub address: IpAddr,
    /// ICMP payload size for DF probes.
    pub size: Option<u16>,
    /// Parsed result.
    pub result: PingResult,
}

/// IP forwarding switches on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Forwarding {
    /// `net.ipv4.ip_forward`.
    pub ipv4: bool,
    /// `net.ipv6.conf.all.forwarding`.
    pub ipv6: bool,
}

/// Everything one host's probe reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeProbe {
    /// Node name from the begin marker.
    pub node: String,
    /// The output reached the end marker (not cut off).
    pub complete: bool,
    /// Host clock (seconds since the epoch) right after the pings.
    pub now: Option<u64>,
    /// The interface link (`None` when `ip link` failed, e.g. no such device).
    pub link: Option<LinkInfo>,
    /// Addresses on the interface.
    pub addrs: Vec<IpNet>,
    /// Routes through the interface, all tables.
    pub routes: Vec<Route>,
    /// Forwarding switches.
    pub forwarding: Option<Forwarding>,
    /// The redacted dump taken before any ping (`None` when it failed or the script
    /// predates it).
    pub dump_before: Option<WgDump>,
    /// The redacted dump (`None` when `wg show` failed).
    pub dump: Option<WgDump>,
    /// `wg show` error output when it failed.
    pub dump_error: Option<String>,
    /// Every ping run, in script order.
    pub pings: Vec<PingRecord>,
    /// The public key derived on the host from its `private.key` (`None` when the probe
    /// did not read it or the file held no valid key).
    pub derived_key: Option<PublicKey>,
    /// TCP connects to the peers' mesh addresses (empty when the probe ran none).
    pub tcp: Vec<TcpRecord>,
    /// This host's TCP listener started (`None`: no TCP check ran).
    pub tcp_listen: Option<bool>,
}

impl NodeProbe {
    /// The ping of `kind` towards `target`.
    pub fn ping(&self, target: &str, kind: PingKind) -> Option<&PingRecord> {
        self.pings
            .iter()
            .find(|p| p.target == target && p.kind == kind)
    }
}

/// Parses one host's probe output.
pub fn parse(output: &str) -> Result<NodeProbe, VerifyError> {
    let sections = sections::split(output);
    let begin = sections
        .iter()
        .find(|s| s.kind == "begin")
        .ok_or(VerifyError::NotProbeOutput)?;
    let mut probe = NodeProbe {
        node: begin
            .args
            .get(1)
            .map_or_else(String::new, |s| (*s).to_owned()),
        complete: false,
        now: None,
        link: None,
        addrs: Vec::new(),
        routes: Vec::new(),
        forwarding: None,
        dump_before: None,
        dump: None,
        dump_error: None,
        pings: Vec::new(),
        derived_key: None,
        tcp: Vec::new(),
        tcp_listen: None,
    };
    for section in &sections {
        match section.kind {
            "link" if section.exit == Some(0) => probe.link = LinkInfo::parse(&section.text()),
            "addr" => probe.addrs = InterfaceAddresses::parse(&section.text()).addresses,
            "route" => {
                let v6 = section.args.first() == Some(&"6");
                let routes = InterfaceRoutes::parse_family(&section.text(), v6);
                probe.routes.extend(routes.routes);
            }
            "forwarding" => {
                let values: Vec<&str> = section.body.iter().map(|l| l.trim()).collect();
                if let [v4, v6, ..] = values[..] {
                    probe.forwarding = Some(Forwarding {
                        ipv4: v4 == "1",
                        ipv6: v6 == "1",
                    });
                }
            }
            "ping" => {
                let parsed = match section.args[..] {
                    [target, kind, addr, ref rest @ ..] => PingKind::parse(kind)
                        .zip(addr.parse().ok())
                        .map(|(kind, address)| (target, kind, address, rest.first())),
                    _ => None,
                };
                if let Some((target, kind, address, size)) = parsed {
                    probe.pings.push(PingRecord {
                        target: target.to_owned(),
                        kind,
                        address,
                        size: size.and_then(|s| s.parse().ok()),
                        result: ping::parse(&section.text(), section.exit),
                    });
                }
            }
            "wg-dump-before" if section.exit == Some(0) => {
                probe.dump_before = Some(WgDump::parse(&section.text()));
            }
            "derived-key" => {
                probe.derived_key = section.body.iter().find_map(|l| l.trim().parse().ok());
            }
            "tcp-listen" => {
                probe.tcp_listen = section.body.first().map(|l| l.trim() == "ok");
            }
            "tcp" => {
                if let ([peer, addr, rest @ ..], Some(result)) =
                    (&section.args[..], section.body.first())
                    && rest.len() <= 1
                {
                    probe.tcp.push(TcpRecord {
                        peer: peer.to_string(),
                        addr: addr.to_string(),
                        result: result.trim().to_string(),
                        port: rest.first().and_then(|p| p.parse().ok()),
                    });
                }
            }
            "now" => probe.now = section.body.iter().find_map(|l| l.trim().parse().ok()),
            "wg-dump" => {
                if section.exit == Some(0) {
                    probe.dump = Some(WgDump::parse(&section.text()));
                } else {
                    let message = dump_error(&section.body);
                    probe.dump_error = Some(if message.is_empty() {
                        format!("wg show exited with {:?}", section.exit)
                    } else {
                        message
                    });
                }
            }
            "end" => probe.complete = true,
            _ => {}
        }
    }
    Ok(probe)
}

/// The message of a failed `wg show dump`: its lines without a tab (error text). A line
/// with tabs could hold anything, so only its shape is kept, never a column that could
/// be a key; interface (4 columns) and peer (8 columns) lines are left out.
fn dump_error(body: &[&str]) -> String {
    body.iter()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|line| match line.split('\t').count() {
            1 => Some(*line),
            4 | 8 => None,
            _ => Some("(unparsed dump line)"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}
