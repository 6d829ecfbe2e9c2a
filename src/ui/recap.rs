//! The end-of-run summary: one line per host, Ansible-style counters, the exit status.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use crate::host_error::HostError;
use crate::inventory::NodeName;
use crate::plan::{HostPlan, HostState};

/// Outcome of one host in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOutcome {
    /// Nothing needed changing.
    Ok,
    /// Changes applied.
    Changed(usize),
    /// Not touched (outside --limit).
    Skipped,
    /// Unreachable.
    Unreachable(HostError),
    /// Failed (and rolled back where it had started).
    Failed(HostError),
    /// Its steps were not started (the run was interrupted).
    NotRun,
}

impl HostOutcome {
    /// The outcome before anything runs, from the host's plan.
    pub fn planned(h: &HostPlan) -> HostOutcome {
        match &h.state {
            HostState::Unreachable(e) => HostOutcome::Unreachable(e.clone()),
            HostState::Error(e) => HostOutcome::Failed(e.clone()),
            HostState::Skipped => HostOutcome::Skipped,
            HostState::Ready if h.steps.is_empty() => HostOutcome::Ok,
            HostState::Ready => HostOutcome::NotRun,
        }
    }

    /// Counts as a failure for the exit status.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            HostOutcome::Failed(_) | HostOutcome::Unreachable(_) | HostOutcome::NotRun
        )
    }
}

/// Every host's outcome.
#[derive(Debug, Clone, Default)]
pub struct Recap {
    /// By node name.
    pub outcomes: BTreeMap<NodeName, HostOutcome>,
}

impl Recap {
    /// The recap text.
    pub fn render(&self) -> String {
        let mut out = String::from("\nRECAP\n");
        out.push_str(&self.host_lines(|_| true));
        let count = |f: fn(&HostOutcome) -> bool| self.outcomes.values().filter(|o| f(o)).count();
        let _ = write!(
            out,
            "  ok={} changed={} failed={} unreachable={} skipped={}",
            count(|o| matches!(o, HostOutcome::Ok)),
            count(|o| matches!(o, HostOutcome::Changed(_))),
            count(|o| matches!(o, HostOutcome::Failed(_))),
            count(|o| matches!(o, HostOutcome::Unreachable(_))),
            count(|o| matches!(o, HostOutcome::Skipped)),
        );
        let not_run = count(|o| matches!(o, HostOutcome::NotRun));
        if not_run > 0 {
            let _ = write!(out, " not-run={not_run}");
        }
        out.push('\n');
        out
    }

    /// What `apply --quiet` keeps of the recap: the lines of the hosts that count as
    /// failures, as [`Recap::render`] writes them; empty when every host succeeded.
    pub fn render_failures(&self) -> String {
        self.host_lines(HostOutcome::is_failure)
    }

    fn host_lines(&self, keep: fn(&HostOutcome) -> bool) -> String {
        let width = self
            .outcomes
            .keys()
            .map(|n| n.as_str().len())
            .max()
            .unwrap_or(4);
        let mut out = String::new();
        for (node, outcome) in self.outcomes.iter().filter(|(_, o)| keep(o)) {
            let text = match outcome {
                HostOutcome::Ok => "ok".to_string(),
                HostOutcome::Changed(n) => {
                    format!("changed ({n} change{})", if *n == 1 { "" } else { "s" })
                }
                HostOutcome::Skipped => "skipped (not in --limit)".to_string(),
                HostOutcome::Unreachable(e) => format!("UNREACHABLE: {e}"),
                HostOutcome::Failed(e) => format!("FAILED: {e}"),
                HostOutcome::NotRun => {
                    "NOT RUN (interrupted: its remaining steps did not start)".to_string()
                }
            };
            let _ = writeln!(out, "  {:<width$}  {text}", node.as_str());
        }
        out
    }

    /// A host failed (or was unreachable).
    pub fn failed(&self) -> bool {
        self.outcomes.values().any(HostOutcome::is_failure)
    }

    /// 0 when every host is ok, changed or skipped; 1 otherwise.
    pub fn exit_code(&self) -> ExitCode {
        if self.failed() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> NodeName {
        s.parse().expect("valid name")
    }

    #[test]
    fn failures_are_the_recap_lines_of_failed_hosts_only() {
        let recap = Recap {
            outcomes: [
                (name("alpha"), HostOutcome::Changed(2)),
                (
                    name("beta"),
                    HostOutcome::Unreachable(HostError::NotConnected),
                ),
                (name("gamma"), HostOutcome::Ok),
            ]
            .into_iter()
            .collect(),
        };
        let failures = recap.render_failures();
        assert_eq!(failures.lines().count(), 1, "{failures}");
        assert!(failures.starts_with("  beta   UNREACHABLE: "), "{failures}");
        assert!(recap.render().contains(&failures), "{}", recap.render());
        let fine = Recap {
            outcomes: [(name("alpha"), HostOutcome::Ok)].into_iter().collect(),
        };
        assert_eq!(fine.render_failures(), "");
    }
}
