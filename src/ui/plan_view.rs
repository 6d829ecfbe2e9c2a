//! The plan as people read it: per host its steps (`+ ~ -`), why, the diff, and with
//! `-v` the exact shell each step runs.
use std::fmt::Write as _;
use std::path::Path;

use crate::plan::{HostPlan, HostState, Plan};

/// Renders a plan for people.
pub fn render_plan(plan: &Plan, inventory: &Path, verbose: bool) -> String {
    let mut out = String::new();
    for host in &plan.hosts {
        out.push_str(&render_host(host, verbose));
    }
    out.push_str(&render_summary(plan, inventory));
    out
}

/// One host's part of the plan (printed as soon as the host is planned).
pub fn render_host(host: &HostPlan, verbose: bool) -> String {
    let mut out = String::new();
    match &host.state {
        HostState::Unreachable(e) => {
            let _ = writeln!(out, "{}: UNREACHABLE: {e}\n", host.node);
            return out;
        }
        HostState::Error(e) => {
            let _ = writeln!(out, "{}: ERROR: {e}\n", host.node);
            return out;
        }
        HostState::Skipped => {
            if verbose {
                let _ = writeln!(out, "{}: not in --limit (read only)\n", host.node);
            }
            return out;
        }
        HostState::Ready => {}
    }
    {
        let what = host.host.as_deref().unwrap_or("");
        let n = host.steps.len();
        if n == 0 {
            let _ = writeln!(out, "{}: no changes ({what})", host.node);
        } else {
            let _ = writeln!(
                out,
                "{}: {n} change{} ({what})",
                host.node,
                if n == 1 { "" } else { "s" }
            );
        }
        for step in &host.steps {
            let _ = writeln!(out, "  {} {}", step.action.symbol(), step.summary);
            let _ = writeln!(out, "      why: {}", step.reason);
            if verbose {
                let mut lines = step.shell.lines();
                if let Some(first) = lines.next() {
                    let _ = writeln!(out, "      run: {first}");
                }
                for line in lines {
                    let _ = writeln!(out, "           {line}");
                }
            }
            if let Some(diff) = &step.diff {
                for line in diff.lines() {
                    let _ = writeln!(out, "      {line}");
                }
            }
        }
        if verbose || host.steps.is_empty() {
            for reason in &host.unchanged {
                let _ = writeln!(out, "  = {reason}");
            }
        }
        for (node, what) in &host.after {
            let _ = writeln!(
                out,
                "  > after {node} has applied its {what} (left as is if {node} fails)"
            );
        }
        for warning in &host.warnings {
            let _ = writeln!(out, "  ! warning: {warning}");
        }
        out.push('\n');
    }
    out
}

/// The end of the plan: NAT pairs' paths and the counts (hosts may be lightened).
pub fn render_summary(plan: &Plan, inventory: &Path) -> String {
    let mut out = String::new();
    if !plan.nat_paths.is_empty() {
        let _ = writeln!(out, "NAT pairs:");
        for pair in &plan.nat_paths {
            let _ = writeln!(out, "  {}", pair.line());
        }
        out.push('\n');
    }
    if !plan.network_paths.is_empty() {
        let _ = writeln!(out, "Private networks:");
        for pair in &plan.network_paths {
            let _ = writeln!(out, "  {}", pair.line());
        }
        out.push('\n');
    }
    let total = plan
        .hosts
        .iter()
        .filter(|h| h.state != HostState::Skipped)
        .count();
    let changing = plan.hosts.iter().filter(|h| h.has_changes()).count();
    let failed = plan.hosts.iter().filter(|h| h.failed()).count();
    let unchanged = total - changing - failed;
    if plan.is_empty() && failed == 0 {
        let _ = writeln!(
            out,
            "No changes. The mesh matches the inventory ({}).",
            inventory.display()
        );
    } else {
        let _ = writeln!(
            out,
            "{total} host{}: {changing} to change, {unchanged} unchanged{}",
            if total == 1 { "" } else { "s" },
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            }
        );
    }
    out
}
