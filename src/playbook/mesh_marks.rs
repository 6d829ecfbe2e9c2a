//! The names meshup gives the firewall objects it adds for one mesh interface.

/// The names meshup gives its firewall objects for one mesh interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshMarks {
    /// The mesh interface.
    pub interface: String,
    /// Comment on every rule meshup adds: `meshup:<interface>`.
    pub marker: String,
    /// firewalld zone of the mesh interface: `meshup-<interface>`.
    pub zone: String,
    /// firewalld policy letting forwarded traffic into the zone: `meshup-<interface>-fw`.
    pub policy: String,
}

impl MeshMarks {
    /// The marks for `interface` (a validated interface name).
    pub fn new(interface: &str) -> MeshMarks {
        MeshMarks {
            interface: interface.to_string(),
            marker: format!("meshup:{interface}"),
            zone: format!("meshup-{interface}"),
            policy: format!("meshup-{interface}-fw"),
        }
    }

    /// Placeholder values: these marks plus `extra`.
    pub(crate) fn fills<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut v = vec![
            ("interface", self.interface.as_str()),
            ("marker", self.marker.as_str()),
            ("zone", self.zone.as_str()),
            ("policy", self.policy.as_str()),
        ];
        v.extend_from_slice(extra);
        v
    }
}
