//! The verify report: a typed value rendered as a matrix + summary + diagnoses, JSON,
//! or Graphviz dot.
use std::fmt::Write as _;

use serde::Serialize;

use super::diagnosis::Diagnosis;
use super::evidence::{PairEvidence, PairStatus};
use super::expectation::{ExpectedNode, PairPath};
use super::nat::NatPathView;
use crate::nat_path::PathKind;

/// Per-node summary line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeSummary {
    /// Node name.
    pub name: String,
    /// Role for the dot colouring: `public`, `nat`, `relay`, `subnet-router`.
    pub role: String,
    /// The probe ran and was parsed.
    pub probed: bool,
    /// Healthy (or degraded but working) outgoing pairs.
    pub healthy: usize,
    /// Outgoing pairs.
    pub total: usize,
    /// Freshest handshake age among its direct peers, seconds.
    pub newest_handshake: Option<u64>,
    /// Oldest handshake age among its direct peers, seconds.
    pub oldest_handshake: Option<u64>,
    /// Direct peers it never had a handshake with.
    pub never: Vec<String>,
}

impl NodeSummary {
    pub(crate) fn from_pairs(node: &ExpectedNode, pairs: &[PairEvidence], probed: bool) -> Self {
        let mine: Vec<&PairEvidence> = pairs
            .iter()
            .filter(|p| p.from == node.name.as_str())
            .collect();
        let direct: Vec<_> = mine
            .iter()
            .filter(|p| p.path == PairPath::Direct)
            .filter_map(|p| p.forward.as_ref())
            .collect();
        let ages: Vec<u64> = direct.iter().filter_map(|v| v.handshake_age).collect();
        let role = if node.hub {
            "hub"
        } else if node.relay_role {
            "relay"
        } else if node.subnet_router {
            "subnet-router"
        } else if node.nat {
            "nat"
        } else {
            "public"
        };
        Self {
            name: node.name.to_string(),
            role: role.to_owned(),
            probed,
            healthy: mine
                .iter()
                .filter(|p| matches!(p.status, PairStatus::Healthy | PairStatus::Degraded))
                .count(),
            total: mine.len(),
            newest_handshake: ages.iter().min().copied(),
            oldest_handshake: ages.iter().max().copied(),
            never: direct
                .iter()
                .filter(|v| v.present && v.handshake_age.is_none())
                .map(|v| v.peer.clone())
                .collect(),
        }
    }
}

/// A ping to a probe address behind a subnet router.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeCheck {
    /// Sender.
    pub from: String,
    /// Subnet router.
    pub router: String,
    /// Probe address.
    pub address: String,
    /// It answered.
    pub ok: bool,
    /// Average RTT in ms.
    pub rtt_avg: Option<f64>,
    /// Minimum RTT in ms.
    pub rtt_min: Option<f64>,
}

/// Above this many nodes the text output shows the per-node summary and the failing
/// pairs instead of the N×N matrix (`verify --matrix` prints it anyway).
pub const MATRIX_MAX_NODES: usize = 20;

/// The whole verify result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Interface checked.
    pub interface: String,
    /// One summary per node, inventory order.
    pub nodes: Vec<NodeSummary>,
    /// Findings about single nodes.
    pub node_diagnoses: Vec<Diagnosis>,
    /// Every ordered pair, row-major in inventory order.
    pub pairs: Vec<PairEvidence>,
    /// Subnet probe pings.
    pub probes: Vec<ProbeCheck>,
    /// How each pair of NAT nodes talks (punched, LAN, relayed) and dead direct paths.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nat_paths: Vec<NatPathView>,
    /// With a mesh ACL: every TCP connect towards a node with rules, allowed or denied
    /// as the rules say, and whether the result matched.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub acl: Vec<super::acl_matrix::AclCheck>,
    /// Nodes using an exit node: their internet route and the address they leave with.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exits: Vec<super::exit::ExitCheck>,
}

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v < 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.0}"),
        None => String::new(),
    }
}

impl Report {
    /// Keeps only what the probed nodes (`--limit`) saw: their summaries, the pairs and
    /// subnet probes they sent, and the findings about them. Nodes outside the limit were
    /// not asked, so their missing output is no finding.
    pub fn limit_to(&mut self, probed: &dyn Fn(&str) -> bool) {
        self.nodes.retain(|n| probed(&n.name));
        self.pairs.retain(|p| probed(&p.from));
        self.probes.retain(|p| probed(&p.from));
        self.acl.retain(|c| probed(&c.from));
        self.exits.retain(|c| probed(&c.node));
        self.node_diagnoses.retain(|d| match d {
            Diagnosis::HostUnreachable { node, .. } => probed(node),
            _ => true,
        });
    }

    /// The NAT path of the pair `a`, `b` (either order).
    pub fn nat_path(&self, a: &str, b: &str) -> Option<&NatPathView> {
        self.nat_paths
            .iter()
            .find(|p| (p.a == a && p.b == b) || (p.a == b && p.b == a))
    }

    /// Every pair healthy, every probe answering, no node finding, no dead direct NAT
    /// path: exit status 0.
    pub fn all_healthy(&self) -> bool {
        self.nat_paths.iter().all(|p| p.dead.is_none())
            && self.node_diagnoses.is_empty()
            && self.pairs.iter().all(|p| p.status == PairStatus::Healthy)
            && self.probes.iter().all(|p| p.ok)
            && self.acl.iter().all(|c| c.ok)
            && self.exits.iter().all(super::exit::ExitCheck::ok)
    }

    fn cell(&self, p: &PairEvidence) -> String {
        let rtt = ms(p.ping.and_then(|p| p.rtt_min));
        let nat = self.nat_path(&p.from, &p.to).map(|n| n.kind);
        match (p.status, &p.path) {
            (PairStatus::Healthy, PairPath::Direct) if nat == Some(PathKind::Punched) => {
                format!("⇄ {rtt}")
            }
            (PairStatus::Healthy, PairPath::Direct) if nat == Some(PathKind::Lan) => {
                format!("≡ {rtt}")
            }
            (PairStatus::Healthy, PairPath::Direct) if p.network.is_some() => format!("≡ {rtt}"),
            (PairStatus::Healthy, PairPath::Direct) => format!("✓ {rtt}"),
            (PairStatus::Healthy, PairPath::Relayed(_)) => format!("↻ {rtt}"),
            (PairStatus::Degraded, _) => format!("! {rtt}"),
            (PairStatus::Failing, _) => "✗".to_owned(),
            (PairStatus::Unknown, _) => "?".to_owned(),
        }
    }

    /// The N×N matrix: rows send, columns receive (numbered as the rows).
    pub fn render_matrix(&self) -> String {
        let n = self.nodes.len();
        let width = self.nodes.iter().map(|s| s.name.len()).max().unwrap_or(0) + 4;
        let mut out = String::new();
        let _ = write!(out, "{:width$}", "from \\ to");
        for i in 1..=n {
            let _ = write!(out, " {i:>7}");
        }
        out.push('\n');
        for (i, row) in self.nodes.iter().enumerate() {
            let label = format!("{:>2} {}", i + 1, row.name);
            let _ = write!(out, "{label:width$}");
            for col in &self.nodes {
                let cell = if col.name == row.name {
                    "·".to_owned()
                } else {
                    self.pairs
                        .iter()
                        .find(|p| p.from == row.name && p.to == col.name)
                        .map_or_else(|| "?".to_owned(), |p| self.cell(p))
                };
                let _ = write!(out, " {cell:>7}");
            }
            out.push('\n');
        }
        out.push_str("✓ ok (min RTT ms)  ↻ relayed  ! degraded  ✗ failing  ? no output");
        if self.nat_paths.iter().any(|n| n.kind != PathKind::Relayed) {
            out.push_str("  ⇄ punched  ≡ LAN");
        }
        out.push('\n');
        for p in self
            .pairs
            .iter()
            .filter(|p| p.status == PairStatus::Healthy)
        {
            if let PairPath::Relayed(r) = &p.path {
                let hub = if self
                    .nodes
                    .iter()
                    .any(|n| n.name == r.as_str() && n.role == "hub")
                {
                    "hub "
                } else {
                    ""
                };
                let _ = writeln!(out, "{} → {}: relayed via {hub}{r}", p.from, p.to);
            }
            if let Some(network) = &p.network {
                let _ = writeln!(out, "{} → {}: network {network}", p.from, p.to);
            }
        }
        out.push_str(&self.render_dns_endpoints());
        for n in self
            .nat_paths
            .iter()
            .filter(|n| n.kind != PathKind::Relayed)
        {
            let _ = writeln!(
                out,
                "{} ↔ {}: {} ({} / {})",
                n.a,
                n.b,
                n.label(),
                n.a_to_b.as_deref().unwrap_or("-"),
                n.b_to_a.as_deref().unwrap_or("-")
            );
        }
        out
    }

    /// One line per direct pair whose endpoint is a DNS name: the name and the address
    /// the sender's interface uses for it (resolved on the sender, or learned since).
    pub fn render_dns_endpoints(&self) -> String {
        let mut out = String::new();
        for p in self.pairs.iter().filter(|p| p.path == PairPath::Direct) {
            let Some(view) = &p.forward else { continue };
            let Some(name) = view.expected_endpoint.as_deref() else {
                continue;
            };
            if crate::inventory::endpoint_dns_name(name).is_none() {
                continue;
            }
            let live = view.endpoint.as_deref().map_or_else(
                || format!("no address on {} yet", view.on),
                |live| format!("{} sends to {live}", view.on),
            );
            let _ = writeln!(out, "{} → {}: endpoint {name} ({live})", p.from, p.to);
        }
        out
    }

    /// One line per node: healthy peers and handshake ages.
    pub fn render_summary(&self) -> String {
        let mut out = String::new();
        for s in &self.nodes {
            if !s.probed {
                let _ = writeln!(out, "{}: no probe output", s.name);
                continue;
            }
            let _ = write!(
                out,
                "{} ({}): peers healthy {}/{}",
                s.name, s.role, s.healthy, s.total
            );
            match (s.newest_handshake, s.oldest_handshake) {
                (Some(a), Some(b)) if a == b => {
                    let _ = write!(out, ", handshakes {a} s ago");
                }
                (Some(a), Some(b)) => {
                    let _ = write!(out, ", handshakes {a}–{b} s ago");
                }
                _ => {}
            }
            if !s.never.is_empty() {
                let _ = write!(out, ", never: {}", s.never.join(", "));
            }
            out.push('\n');
        }
        out.push_str(&super::acl_matrix::render(
            &self.acl,
            self.nodes.len() <= super::tcp::FULL_TCP_MAX_NODES,
        ));
        for p in &self.probes {
            let mark = if p.ok {
                format!("✓ {} ms", ms(p.rtt_min))
            } else {
                "✗".to_owned()
            };
            let _ = writeln!(
                out,
                "probe {} → {} (behind {}): {mark}",
                p.from, p.address, p.router
            );
        }
        out
    }

    /// Node findings, then each pair that is not healthy with its findings.
    pub fn render_diagnoses(&self) -> String {
        let mut out = String::new();
        for d in &self.node_diagnoses {
            let _ = writeln!(out, "- {d}");
        }
        for dead in self.nat_paths.iter().filter_map(|n| n.dead.as_ref()) {
            let _ = writeln!(out, "- {dead}");
        }
        for p in self
            .pairs
            .iter()
            .filter(|p| p.status != PairStatus::Healthy)
        {
            let _ = writeln!(out, "{} → {} ({:?}):", p.from, p.to, p.status);
            if p.diagnoses.is_empty() {
                let _ = writeln!(
                    out,
                    "  - no specific cause found; see the evidence in --format json"
                );
            }
            for d in &p.diagnoses {
                let _ = writeln!(out, "  - {d}");
            }
        }
        for p in self.probes.iter().filter(|p| !p.ok) {
            let d = Diagnosis::ProbeFails {
                from: p.from.clone(),
                router: p.router.clone(),
                address: p.address.clone(),
            };
            let _ = writeln!(out, "- {d}");
        }
        out
    }

    /// The default text output: matrix, summary and diagnoses; above
    /// [`MATRIX_MAX_NODES`] nodes the summary and diagnoses only (a line says how to get
    /// the matrix).
    pub fn render_text(&self) -> String {
        if self.nodes.len() > MATRIX_MAX_NODES {
            let mut out = self.render_summary();
            let _ = writeln!(
                out,
                "({} nodes: matrix left out; `verify --matrix` prints it)",
                self.nodes.len()
            );
            self.push_verdict(&mut out);
            return out;
        }
        self.render_text_with_matrix()
    }

    /// Matrix, summary and diagnoses, whatever the mesh size (`verify --matrix`).
    pub fn render_text_with_matrix(&self) -> String {
        let mut out = self.render_matrix();
        out.push('\n');
        out.push_str(&self.render_summary());
        self.push_verdict(&mut out);
        out
    }

    fn push_verdict(&self, out: &mut String) {
        let diagnoses = self.render_diagnoses();
        if !self.exits.is_empty() {
            out.push('\n');
            for check in &self.exits {
                out.push_str(&check.line());
                out.push('\n');
            }
        }
        if self.exits.iter().any(|c| !c.ok()) {
            out.push_str("\nA node using an exit does not leave through it.\n");
        }
        if diagnoses.is_empty() && self.exits.iter().all(super::exit::ExitCheck::ok) {
            out.push_str("\nAll pairs healthy.\n");
        } else {
            out.push('\n');
            out.push_str(&diagnoses);
        }
    }

    /// The typed report as pretty JSON.
    pub fn render_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Graphviz: nodes coloured by role, one edge per unordered pair (green when both
    /// directions are healthy, orange when degraded, red otherwise, dashed when relayed).
    pub fn render_dot(&self) -> String {
        let mut out = String::from("graph meshup {\n  node [style=filled];\n");
        for s in &self.nodes {
            let color = match s.role.as_str() {
                "relay" => "gold",
                "subnet-router" => "lightblue",
                "nat" => "lightgrey",
                _ => "palegreen",
            };
            let _ = writeln!(
                out,
                "  \"{}\" [fillcolor={color}, tooltip=\"{}\"];",
                s.name, s.role
            );
        }
        for (i, a) in self.nodes.iter().enumerate() {
            for b in &self.nodes[i + 1..] {
                let ab = self
                    .pairs
                    .iter()
                    .find(|p| p.from == a.name && p.to == b.name);
                let ba = self
                    .pairs
                    .iter()
                    .find(|p| p.from == b.name && p.to == a.name);
                let statuses: Vec<PairStatus> =
                    [ab, ba].iter().flatten().map(|p| p.status).collect();
                let color = if statuses.iter().all(|s| *s == PairStatus::Healthy) {
                    "green"
                } else if statuses
                    .iter()
                    .all(|s| matches!(s, PairStatus::Healthy | PairStatus::Degraded))
                {
                    "orange"
                } else {
                    "red"
                };
                let mut attrs = format!("color={color}");
                let nat = self
                    .nat_path(&a.name, &b.name)
                    .filter(|n| n.kind != PathKind::Relayed);
                if let Some(PairPath::Relayed(r)) = ab.map(|p| &p.path) {
                    let _ = write!(attrs, ", style=dashed, label=\"via {r}\"");
                } else if let Some(n) = nat {
                    let _ = write!(attrs, ", style=bold, label=\"{}\"", n.label());
                } else if let Some(rtt) = ab.and_then(|p| p.ping).and_then(|p| p.rtt_min) {
                    let _ = write!(attrs, ", label=\"{} ms\"", ms(Some(rtt)));
                }
                let _ = writeln!(out, "  \"{}\" -- \"{}\" [{attrs}];", a.name, b.name);
            }
        }
        out.push_str("}\n");
        out
    }
}
