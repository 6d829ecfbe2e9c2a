//! The `ufw` fact: `ufw status verbose`.

use serde::Serialize;

use super::port_spec::port_in_spec;

/// One rule line of `ufw status verbose`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UfwRule {
    /// The `To` column (`51820/udp`, `22/tcp (v6)`, `Anywhere on wg0`, `OpenSSH`).
    pub to: String,
    /// The `Action` column (`ALLOW IN`, `DENY IN`, `ALLOW FWD`, `LIMIT IN`, ...).
    pub action: String,
    /// The `From` column.
    pub from: String,
    /// The comment after ` # ` (meshup marks its rules `meshup:<interface>`).
    pub comment: Option<String>,
}

/// ufw's state as `ufw status verbose` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UfwFacts {
    /// ufw is installed (the command ran).
    pub installed: bool,
    /// `Status: active`.
    pub active: bool,
    /// Default incoming policy (`deny`, `allow`, `reject`).
    pub default_incoming: Option<String>,
    /// Default routed policy (`disabled`, `deny`, `allow`, `reject`).
    pub default_routed: Option<String>,
    /// Rules in order (comments dropped).
    pub rules: Vec<UfwRule>,
}

impl UfwFacts {
    /// Parses `ufw status verbose` output; `installed` is set by the caller.
    pub fn parse(body: &str) -> UfwFacts {
        let mut facts = UfwFacts {
            installed: true,
            ..UfwFacts::default()
        };
        let mut in_rules = false;
        for line in body.lines() {
            if let Some(status) = line.strip_prefix("Status:") {
                facts.active = status.trim() == "active";
            } else if let Some(defaults) = line.strip_prefix("Default:") {
                for part in defaults.split(',') {
                    let mut words = part.split_whitespace();
                    let (Some(policy), Some(scope)) = (words.next(), words.next()) else {
                        continue;
                    };
                    match scope.trim_matches(|c| c == '(' || c == ')') {
                        "incoming" => facts.default_incoming = Some(policy.to_string()),
                        "routed" => facts.default_routed = Some(policy.to_string()),
                        _ => {}
                    }
                }
            } else if line.starts_with("--") {
                in_rules = true;
            } else if in_rules && let Some(rule) = parse_rule(line) {
                facts.rules.push(rule);
            }
        }
        facts
    }

    /// Incoming UDP to `port` is allowed (by default policy or by a rule).
    pub fn allows_udp(&self, port: u16) -> bool {
        if self.default_incoming.as_deref() == Some("allow") {
            return true;
        }
        self.rules.iter().any(|rule| {
            rule.action.starts_with("ALLOW")
                && !rule.action.contains("OUT")
                && !rule.action.contains("FWD")
                && to_allows_udp(&rule.to, port)
        })
    }

    /// Forwarding between `interface` and anything is allowed.
    pub fn allows_forward(&self, interface: &str) -> bool {
        if self.default_routed.as_deref() == Some("allow") {
            return true;
        }
        let on = format!("on {interface}");
        self.rules.iter().any(|rule| {
            rule.action.starts_with("ALLOW")
                && rule.action.contains("FWD")
                && rule.to.ends_with(&on)
                && rule.from.ends_with(&on)
        })
    }
}

fn to_allows_udp(to: &str, port: u16) -> bool {
    let to = to.replace(" (v6)", "");
    let spec = to.split(" on ").next().unwrap_or("").trim();
    let (ports, proto) = match spec.split_once('/') {
        Some((ports, proto)) => (ports, proto),
        None => (spec, "any"),
    };
    if proto != "udp" && proto != "any" {
        return false;
    }
    ports.split(',').any(|p| port_in_spec(p, port))
}

fn parse_rule(line: &str) -> Option<UfwRule> {
    let (line, comment) = match line.split_once(" # ") {
        Some((rule, comment)) => (rule.trim_end(), Some(comment.trim().to_string())),
        None => (line.trim_end(), None),
    };
    if line.trim().is_empty() {
        return None;
    }
    let columns: Vec<&str> = line
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    match columns.as_slice() {
        [to, action, from, ..] => Some(UfwRule {
            to: to.to_string(),
            action: action.to_string(),
            from: from.to_string(),
            comment,
        }),
        _ => None,
    }
}
