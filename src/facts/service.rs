//! The `service` and `forward` facts: the wg-quick service and IP forwarding.

use serde::Serialize;

use super::sections::{key_values, value, yes_no};

/// Which service manager handles wg-quick on the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceManager {
    /// systemd (`wg-quick@<if>`).
    Systemd,
    /// OpenRC (`wg-quick.<if>`).
    Openrc,
    /// Neither was found running.
    #[default]
    None,
}

/// State of the wg-quick service for the interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceFacts {
    /// The service manager.
    pub manager: ServiceManager,
    /// The unit/service name (`wg-quick@wg0`, `wg-quick.wg0`).
    pub unit: Option<String>,
    /// `systemctl is-enabled` word (`enabled`, `disabled`, `static`, ...).
    pub enabled_state: Option<String>,
    /// `systemctl is-active` word (`active`, `inactive`, `failed`, ...).
    pub active_state: Option<String>,
}

impl ServiceFacts {
    /// Parses the `service` section.
    pub fn parse(body: &str) -> ServiceFacts {
        let kv = key_values(body);
        let text = |key| {
            value(&kv, key)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let manager = match value(&kv, "manager") {
            Some("systemd") => ServiceManager::Systemd,
            Some("openrc") => ServiceManager::Openrc,
            _ => ServiceManager::None,
        };
        ServiceFacts {
            manager,
            unit: text("unit"),
            enabled_state: text("enabled"),
            active_state: text("active"),
        }
    }

    /// The service starts at boot.
    pub fn enabled(&self) -> bool {
        matches!(
            self.enabled_state.as_deref(),
            Some("enabled" | "enabled-runtime" | "alias")
        )
    }

    /// The service is running.
    pub fn active(&self) -> bool {
        matches!(self.active_state.as_deref(), Some("active" | "reloading"))
    }
}

/// IP forwarding state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ForwardFacts {
    /// `net.ipv4.ip_forward`, `None` when unreadable.
    pub ipv4: Option<bool>,
    /// `net.ipv6.conf.all.forwarding`, `None` when unreadable.
    pub ipv6: Option<bool>,
    /// meshup's `/etc/sysctl.d/99-meshup-forward.conf` exists.
    pub persisted: bool,
}

impl ForwardFacts {
    /// Parses the `forward` section.
    pub fn parse(body: &str) -> ForwardFacts {
        let kv = key_values(body);
        let flag = |key| match value(&kv, key) {
            Some("1") => Some(true),
            Some("0") => Some(false),
            _ => None,
        };
        ForwardFacts {
            ipv4: flag("ipv4"),
            ipv6: flag("ipv6"),
            persisted: yes_no(value(&kv, "persisted")).unwrap_or(false),
        }
    }
}
