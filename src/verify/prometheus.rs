//! The verify report in the Prometheus text exposition format, for node_exporter's
//! textfile collector (`meshup verify --format prometheus > dir/meshup.prom`).
//!
//! Pair metrics carry `from`, `to`, `interface`, `path` (`direct`, `punched`, `lan` or
//! `relayed`) and
//! `relay` (the relay's name, empty for direct pairs); the traffic and handshake figures
//! are the sender's peer entry, which for a relayed pair is its entry for the relay.
//! Node metrics carry `node` and `interface`.
//!
//! Not exported: the age of a node's WireGuard key. Neither the probe nor the gathered
//! facts record when the key was made, so there is nothing to report.
use std::fmt::Write as _;

use super::evidence::{PairEvidence, PairStatus};
use super::expectation::PairPath;
use super::report::Report;

/// Metric type of a family, as written on its `# TYPE` line.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Gauge,
    Counter,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// One metric family: its name, help, type and samples (label pairs and value), written
/// together because the format wants a family's lines contiguous.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    samples: Vec<(Vec<(&'static str, String)>, String)>,
}

impl Family {
    fn new(name: &'static str, kind: Kind, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    fn push(&mut self, labels: Vec<(&'static str, String)>, value: impl ToString) {
        self.samples.push((labels, value.to_string()));
    }

    fn write(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind.as_str());
        for (labels, value) in &self.samples {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let _ = writeln!(out, "{}{{{}}} {value}", self.name, labels.join(","));
        }
    }
}

/// Escapes a label value as the exposition format requires (backslash, quote, newline).
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn pair_labels(report: &Report, p: &PairEvidence) -> Vec<(&'static str, String)> {
    let (path, relay) = match &p.path {
        PairPath::Direct => match report.nat_path(&p.from, &p.to) {
            Some(n) if n.kind == crate::nat_path::PathKind::Punched => ("punched", String::new()),
            Some(n) if n.kind == crate::nat_path::PathKind::Lan => ("lan", String::new()),
            _ => ("direct", String::new()),
        },
        PairPath::Relayed(r) => ("relayed", r.to_string()),
    };
    vec![
        ("from", p.from.clone()),
        ("to", p.to.clone()),
        ("interface", report.interface.clone()),
        ("path", path.to_owned()),
        ("relay", relay),
    ]
}

/// Renders the report as node_exporter textfile metrics, every name prefixed `meshup_`.
pub fn render(report: &Report) -> String {
    let mut healthy = Family::new(
        "meshup_pair_healthy",
        Kind::Gauge,
        "1 when traffic passes both ways with fresh handshakes and the live config matches, else 0.",
    );
    let mut handshake = Family::new(
        "meshup_pair_handshake_age_seconds",
        Kind::Gauge,
        "Seconds since the sender's latest handshake with the peer (no sample: never).",
    );
    let mut rx = Family::new(
        "meshup_pair_receive_bytes_total",
        Kind::Counter,
        "Bytes the sender received from the peer, as WireGuard counts them.",
    );
    let mut tx = Family::new(
        "meshup_pair_transmit_bytes_total",
        Kind::Counter,
        "Bytes the sender sent to the peer, as WireGuard counts them.",
    );
    let mut rtt = Family::new(
        "meshup_pair_rtt_avg_seconds",
        Kind::Gauge,
        "Average round trip of the pings across the mesh from sender to receiver (no sample: no reply).",
    );
    for p in &report.pairs {
        let labels = pair_labels(report, p);
        healthy.push(labels.clone(), u8::from(p.status == PairStatus::Healthy));
        if let Some(view) = p.forward.as_ref().filter(|v| v.present) {
            if let Some(age) = view.handshake_age {
                handshake.push(labels.clone(), age);
            }
            rx.push(labels.clone(), view.rx);
            tx.push(labels.clone(), view.tx);
        }
        if let Some(ms) = p.ping.and_then(|ping| ping.rtt_avg) {
            rtt.push(labels, ms / 1000.0);
        }
    }

    let mut probed = Family::new(
        "meshup_node_probed",
        Kind::Gauge,
        "1 when the node was reached and its probe output was read, else 0.",
    );
    let mut peers_healthy = Family::new(
        "meshup_node_peers_healthy",
        Kind::Gauge,
        "Pairs from this node that work (healthy or degraded).",
    );
    let mut peers = Family::new(
        "meshup_node_peers",
        Kind::Gauge,
        "Pairs from this node (one per other node of the mesh).",
    );
    for n in &report.nodes {
        let labels = vec![
            ("node", n.name.clone()),
            ("interface", report.interface.clone()),
        ];
        probed.push(labels.clone(), u8::from(n.probed));
        peers_healthy.push(labels.clone(), n.healthy);
        peers.push(labels, n.total);
    }

    let mut mesh_healthy = Family::new(
        "meshup_mesh_healthy",
        Kind::Gauge,
        "1 when verify found nothing wrong (its exit status was 0), else 0.",
    );
    mesh_healthy.push(
        vec![("interface", report.interface.clone())],
        u8::from(report.all_healthy()),
    );

    let mut out = String::new();
    for family in [
        &healthy,
        &handshake,
        &rx,
        &tx,
        &rtt,
        &probed,
        &peers_healthy,
        &peers,
        &mesh_healthy,
    ] {
        family.write(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("a\nb"), r"a\nb");
    }

    #[test]
    fn empty_families_write_nothing() {
        let mut out = String::new();
        Family::new("meshup_x", Kind::Gauge, "x").write(&mut out);
        assert_eq!(out, "");
    }
}
