//! Planning for `plan` and `apply`: gather once, then plan host by host, showing each
//! host's plan as soon as it is made and keeping only its light form.
use std::collections::BTreeSet;

use miette::IntoDiagnostic as _;

use super::{PlanFormat, Rotate};
use crate::inventory::NodeName;
use crate::plan::{HostPlan, Plan, PlanInput, Planner};
use crate::session::{Gathered, Session};
use crate::ui::{self, Progress};

/// What a plan is made from, gathered once (shared by plan and apply).
pub struct Gather {
    /// Connections (apply) and facts.
    pub gathered: Gathered,
    rotate: BTreeSet<NodeName>,
    mesh: crate::topology::Mesh,
    paths: crate::nat_path::PathBook,
}

impl Gather {
    /// Connects, gathers and learns the NAT pairs' paths. `keep`: keep the connections
    /// open for apply (plan closes each one as soon as its facts are in).
    pub fn run(session: &Session, progress: &Progress, rotate: &Rotate, keep: bool) -> Gather {
        let gathered = if keep {
            session.connect_and_gather(progress)
        } else {
            session.gather_and_close(progress)
        };
        let rotate = rotate.select(session, &gathered.facts);
        let (mesh, paths) = crate::plan::nat_paths::learn_paths(
            &session.mesh,
            &gathered.facts,
            session.limit.as_ref(),
        );
        Gather {
            gathered,
            rotate,
            mesh,
            paths,
        }
    }

    /// The mesh as this run makes it (with the NAT pairs' direct paths).
    pub fn mesh(&self) -> &crate::topology::Mesh {
        &self.mesh
    }

    /// What the planner reads.
    pub fn input<'a>(&'a self, session: &'a Session, rotate_psk: bool) -> PlanInput<'a> {
        PlanInput {
            inventory: &session.inventory,
            mesh: &self.mesh,
            playbooks: &session.playbooks,
            facts: &self.gathered.facts,
            limit: session.limit.as_ref(),
            rotate: &self.rotate,
            rotate_psk,
            paths: &self.paths,
        }
    }
}

/// Plans host by host: each host's plan is handed to `show` as soon as it is made, and
/// only its light form is kept (the steps are made again when apply sends them), so
/// memory holds one host's config at a time, not every host's.
pub fn plan_hosts(planner: &Planner<'_>, mut show: impl FnMut(&HostPlan)) -> Plan {
    let hosts = planner
        .hosts()
        .map(|name| {
            let mut host = planner.host(name, true);
            show(&host);
            host.lighten();
            host
        })
        .collect();
    planner.finish(hosts)
}

/// Prints the plan on stdout as it is made: text, or JSON with the hosts streamed.
pub fn print_plan(
    planner: &Planner<'_>,
    format: PlanFormat,
    inventory: &std::path::Path,
    verbose: bool,
) -> miette::Result<Plan> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    write_plan(planner, format, inventory, verbose, &mut out).into_diagnostic()
}

/// Writes the plan as it is made, one host at a time: text, or JSON (the same document
/// as the whole [`Plan`] serialized, written host by host).
pub fn write_plan(
    planner: &Planner<'_>,
    format: PlanFormat,
    inventory: &std::path::Path,
    verbose: bool,
    out: &mut dyn std::io::Write,
) -> std::io::Result<Plan> {
    let mut failed = None;
    let mut first = true;
    if format == PlanFormat::Json {
        write!(out, "{{\n  \"hosts\": [")?;
    }
    let plan = plan_hosts(planner, |host| {
        let written = match format {
            PlanFormat::Text => out.write_all(ui::render_host(host, verbose).as_bytes()),
            PlanFormat::Json => serde_json::to_string_pretty(host)
                .map_err(std::io::Error::other)
                .and_then(|json| {
                    let sep = if first { "\n    " } else { ",\n    " };
                    first = false;
                    write!(out, "{sep}{}", json.replace('\n', "\n    "))
                }),
        };
        if let Err(e) = written {
            failed.get_or_insert(e);
        }
    });
    let written = match format {
        PlanFormat::Text => out.write_all(ui::render_summary(&plan, inventory).as_bytes()),
        PlanFormat::Json => json_tail(&plan).and_then(|tail| write!(out, "\n  ]{tail}\n}}\n")),
    };
    failed.map_or(written, Err).and_then(|()| out.flush())?;
    Ok(plan)
}

/// The plan's fields after `hosts`, as JSON object members (`,\n  "key": value`).
fn json_tail(plan: &Plan) -> std::io::Result<String> {
    let rest = Plan {
        hosts: Vec::new(),
        new_psk_pairs: plan.new_psk_pairs.clone(),
        nat_paths: plan.nat_paths.clone(),
        nat_mappings: plan.nat_mappings.clone(),
        network_paths: plan.network_paths.clone(),
    };
    let serde_json::Value::Object(fields) = serde_json::to_value(&rest)? else {
        return Ok(String::new());
    };
    let mut tail = String::new();
    for (key, value) in fields.iter().filter(|(k, _)| *k != "hosts") {
        let value = serde_json::to_string_pretty(value)?.replace('\n', "\n  ");
        tail.push_str(&format!(
            ",\n  {}: {value}",
            serde_json::Value::from(key.as_str())
        ));
    }
    Ok(tail)
}
