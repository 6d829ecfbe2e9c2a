//! meshup's routing script of the interface (`crate::routing`): written and run when its
//! text or what it finds in place differs from the inventory (an exit route, MSS
//! clamping, masquerade, Docker's chain), taken down and removed when the node no longer
//! needs it. Also what meshup's interface needs from NetworkManager (a drop-in marking it
//! unmanaged) and systemd-networkd (a `.netdev` of the same name is reported, not fought).
use super::HostInput;
use super::config::config_diff;
use crate::facts::{HostFacts, RouteFacts};
use crate::inventory::MeshSettings;
use crate::plan::step::{Action, Decision, Step, StepKind};
use crate::routing;
use crate::scripts;

/// Writes and runs, or removes, the routing script.
pub fn route(h: &HostInput<'_>) -> Vec<Decision> {
    let settings = h.settings();
    let path = routing::script_path(settings.config_dir.as_str(), h.iface());
    let facts = &h.facts.route;
    let Some(desired) = routing::script(h.mesh, h.spec) else {
        return route_removal(
            settings,
            h.facts,
            "this node neither forwards nor uses an exit",
        )
        .into_iter()
        .collect();
    };
    let wanted = routing::wanted_status(h.mesh, h.spec);
    let text_ok = facts.file.as_deref() == Some(desired.as_str());
    let live_ok = facts.status == wanted;
    let parts = |set: &std::collections::BTreeSet<String>| {
        if set.is_empty() {
            "nothing".to_string()
        } else {
            set.iter().cloned().collect::<Vec<_>>().join(", ")
        }
    };
    if text_ok && live_ok {
        return vec![Decision::unchanged(format!(
            "{path} up to date, in place: {}",
            parts(&wanted)
        ))];
    }
    let mut reasons = Vec::new();
    match &facts.file {
        None => reasons.push(format!("{path} does not exist")),
        Some(_) if !text_ok => reasons.push(format!("{path} differs from the inventory")),
        Some(_) => {}
    }
    if !live_ok {
        reasons.push(format!(
            "in place: {}; wanted: {}",
            parts(&facts.status),
            parts(&wanted)
        ));
    }
    let mut summary = vec![];
    if wanted.contains("exit4") {
        let exit = h.spec.exit_via.as_ref().map(|e| e.as_str()).unwrap_or("");
        summary.push(format!(
            "default route through exit {exit} (policy routing table {}, checked before it moves)",
            routing::EXIT_TABLE
        ));
    }
    if wanted.contains("masq") {
        summary.push("masquerade mesh sources out of the uplink".to_string());
    }
    if wanted.contains("clamp") {
        summary.push("clamp the TCP MSS of forwarded traffic".to_string());
    }
    if h.spec.is_transit && h.settings().firewall == crate::inventory::FirewallMode::Trust {
        summary
            .push("accept forwarded mesh traffic in Docker's DOCKER-USER where it exists".into());
    }
    let check = if wanted.contains("exit4") {
        "check"
    } else {
        ""
    };
    let shell = format!(
        "{}\n{}",
        scripts::call_with_stdin("mu_route_stage", &desired),
        scripts::call("mu_route", &[&path, check])
    );
    let action = if facts.file.is_none() {
        Action::Create
    } else {
        Action::Update
    };
    vec![Decision::Change(Step::new(
        action,
        StepKind::Route,
        format!("{path}: {}", summary.join("; ")),
        reasons.join("; "),
        shell,
    ))]
}

/// Takes the routing script's rules and routes down and removes it (a node that no
/// longer needs it, or leaves the mesh).
pub fn route_removal(settings: &MeshSettings, facts: &HostFacts, why: &str) -> Option<Decision> {
    let route: &RouteFacts = &facts.route;
    if route.file.is_none() && route.status.is_empty() {
        return None;
    }
    let path = routing::script_path(settings.config_dir.as_str(), settings.interface.as_str());
    let diff: String = route
        .status
        .iter()
        .map(|part| format!("-{part}\n"))
        .collect();
    Some(Decision::Change(
        Step::new(
            Action::Delete,
            StepKind::Route,
            format!(
                "take down and remove {path} (the host's own default route and rules come back)"
            ),
            why,
            scripts::call("mu_route_remove", &[&path]),
        )
        .with_diff(diff),
    ))
}

/// meshup's NetworkManager drop-in for interface `iface`.
pub fn nm_conf_path(iface: &str) -> String {
    format!("/etc/NetworkManager/conf.d/meshup-{iface}.conf")
}

/// The drop-in's text: NetworkManager leaves the interface alone (never takes it over,
/// never changes its addresses or port).
pub fn nm_conf(iface: &str) -> String {
    format!(
        "# Written by meshup: NetworkManager leaves the mesh interface alone.\n[keyfile]\nunmanaged-devices=interface-name:{iface}\n"
    )
}

/// A node leaving the mesh: meshup's NetworkManager drop-in goes (after the interface
/// is stopped, so NetworkManager never takes the running interface over), read again at
/// once where NetworkManager runs.
pub fn nm_removal(settings: &MeshSettings, facts: &HostFacts, why: &str) -> Option<Decision> {
    let text = facts.route.nm_conf.as_deref()?;
    let iface = settings.interface.as_str();
    let path = nm_conf_path(iface);
    Some(Decision::Change(
        Step::new(
            Action::Delete,
            StepKind::Route,
            format!("remove {path}: meshup's NetworkManager drop-in for {iface}"),
            why,
            scripts::call("mu_nm_remove", &[&path]),
        )
        .with_diff(config_diff(&path, Some(text), "")),
    ))
}

/// Where NetworkManager is installed, its drop-in marks the interface unmanaged (read
/// again at once where it runs); a systemd-networkd `.netdev` that creates an interface
/// of the same name is reported, not fought.
pub fn neighbours(h: &HostInput<'_>) -> Vec<Decision> {
    let iface = h.iface();
    let facts = &h.facts.route;
    let mut out: Vec<Decision> = facts
        .netdevs
        .iter()
        .map(|path| {
            Decision::warning(format!(
                "systemd-networkd creates {iface} from {path}: meshup does not manage it through networkd and leaves that file alone, but two owners of one interface fight; remove the file or choose another mesh.interface"
            ))
        })
        .collect();
    if !facts.nm_installed {
        return out;
    }
    let path = nm_conf_path(iface);
    let want = nm_conf(iface);
    if facts.nm_conf.as_deref() == Some(want.as_str()) {
        out.push(Decision::unchanged(format!(
            "NetworkManager leaves {iface} unmanaged ({path})"
        )));
        return out;
    }
    let mut shell = scripts::call_with_stdin(&scripts::call("mu_put_file", &[&path, "644"]), &want);
    shell.push('\n');
    shell.push_str(&scripts::call("mu_nm_reload", &[]));
    out.push(Decision::Change(Step::new(
        if facts.nm_conf.is_some() {
            Action::Update
        } else {
            Action::Create
        },
        StepKind::Route,
        format!("write {path}: NetworkManager leaves {iface} unmanaged"),
        format!(
            "NetworkManager is installed{} and {}",
            if facts.nm_running { " and runs" } else { "" },
            if facts.nm_conf.is_some() {
                format!("{path} differs")
            } else {
                format!("nothing marks {iface} unmanaged")
            }
        ),
        shell,
    )));
    out
}
