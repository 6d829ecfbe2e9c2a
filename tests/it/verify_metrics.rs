//! `verify --format prometheus`: metrics rendered from reports built on the captured lab
//! outputs and on synthetic meshes, checked by the real `promtool check metrics`.
use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use meshup::verify::{Report, evaluate, prometheus};

use crate::verify::{lab_expectation, name, outputs, synth, synth_outputs, synthetic_mesh};

fn captured(scenario: &str) -> Report {
    evaluate(
        &lab_expectation(scenario),
        &outputs(scenario),
        &BTreeMap::new(),
    )
}

/// `promtool check metrics` on `text`: `None` when promtool is not installed, else its
/// exit status and output.
fn promtool(text: &str) -> Option<(bool, String)> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), said))
}

#[test]
fn metrics_pass_promtool_for_every_report_shape() {
    let relay = synthetic_mesh(2, 2);
    let mut relay_down = synth_outputs(&relay, &[]);
    let n04 = relay.node(&name("n04")).expect("n04");
    relay_down.insert(
        name("n04"),
        meshup::verify::HostOutput::Output(synth(&relay, n04, 1_795_600_000, &["n01"])),
    );
    let reports = [
        ("healthy", captured("healthy")),
        ("never", captured("never")),
        ("blocked", captured("blocked")),
        (
            "relay",
            evaluate(&relay, &synth_outputs(&relay, &[]), &BTreeMap::new()),
        ),
        (
            "relay down",
            evaluate(&relay, &relay_down, &BTreeMap::new()),
        ),
    ];
    let mut checked = 0;
    for (what, report) in &reports {
        let text = prometheus::render(report);
        assert!(text.ends_with('\n'), "{what}");
        match promtool(&text) {
            None => {
                eprintln!(
                    "NOTICE: promtool not installed (Debian package prometheus); metrics not linted"
                );
                return;
            }
            Some((ok, said)) => assert!(ok, "{what}: promtool: {said}\n{text}"),
        }
        checked += 1;
    }
    assert_eq!(checked, reports.len());
}

#[test]
fn healthy_pair_exports_health_handshake_traffic_and_rtt() {
    let text = prometheus::render(&captured("healthy"));
    let labels = r#"{from="node-a",to="node-b",interface="wg0",path="direct",relay=""}"#;
    for metric in [
        "meshup_pair_healthy",
        "meshup_pair_handshake_age_seconds",
        "meshup_pair_receive_bytes_total",
        "meshup_pair_transmit_bytes_total",
        "meshup_pair_rtt_avg_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {metric} ")),
            "{metric}\n{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{metric}{labels} "))),
            "{metric}\n{text}"
        );
    }
    assert!(
        text.contains(&format!("meshup_pair_healthy{labels} 1\n")),
        "{text}"
    );
    assert!(
        text.contains("meshup_mesh_healthy{interface=\"wg0\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("meshup_node_probed{node=\"node-b\",interface=\"wg0\"} 1\n"),
        "{text}"
    );
}

#[test]
fn never_handshaken_pair_is_unhealthy_and_has_no_age() {
    let text = prometheus::render(&captured("never"));
    assert!(
        text.contains(
            "meshup_pair_healthy{from=\"node-a\",to=\"node-b\",interface=\"wg0\",path=\"direct\",relay=\"\"} 0\n"
        ),
        "{text}"
    );
    assert!(
        !text.contains("meshup_pair_handshake_age_seconds{from=\"node-a\""),
        "{text}"
    );
    assert!(
        text.contains("meshup_mesh_healthy{interface=\"wg0\"} 0\n"),
        "{text}"
    );
}

#[test]
fn relayed_pairs_name_their_relay() {
    let relay = synthetic_mesh(2, 2);
    let report = evaluate(&relay, &synth_outputs(&relay, &[]), &BTreeMap::new());
    let text = prometheus::render(&report);
    assert!(
        text.contains(
            "meshup_pair_healthy{from=\"n03\",to=\"n04\",interface=\"wg0\",path=\"relayed\",relay=\"n01\"} 1\n"
        ),
        "{text}"
    );
    // Every pair sample of a family carries the same label names.
    for line in text.lines().filter(|l| l.starts_with("meshup_pair_")) {
        let labels = &line[line.find('{').expect("labels")..];
        assert!(
            labels.starts_with("{from=\"")
                && labels.contains("\",to=\"")
                && labels.contains("\",path=\"")
                && labels.contains("\",relay=\""),
            "{line}"
        );
    }
}
