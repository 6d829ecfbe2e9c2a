//! What a run's converge says about the NAT pairs it punched: the confirmed direct paths.
use crate::inventory::NodeName;

/// Prints the confirmed direct paths of the run (after the progress lines are gone).
pub fn print_confirmed(mut lines: Vec<String>) {
    if !crate::ui::console::quiet() {
        lines.sort();
        for line in &lines {
            println!("{line}");
        }
    }
}

/// The line for a `punched` marker ("PEER SECONDS SWITCHED-AT").
pub fn confirmed(node: &NodeName, marker: &str) -> String {
    let mut words = marker.split_whitespace();
    let peer = words.next().unwrap_or("?");
    let secs = words.next().unwrap_or("?");
    let mut line = format!("{node}: direct path to {peer} confirmed by a handshake after {secs} s");
    if let Some(at) = words.next() {
        line.push_str(&format!(", AllowedIPs moved at {at}"));
    }
    line
}
