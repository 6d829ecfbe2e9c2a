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
    /// nftables table (family inet) enforcing the mesh ACL: `meshup-<interface>`.
    pub acl_table: String,
    /// File holding the ACL's nft script, loaded by the interface's `PostUp`:
    /// `<config dir>/meshup-acl-<interface>.nft`.
    pub acl_file: String,
}

impl MeshMarks {
    /// The marks for `interface` (a validated interface name).
    pub fn new(interface: &str) -> MeshMarks {
        MeshMarks {
            interface: interface.to_string(),
            marker: format!("meshup:{interface}"),
            zone: format!("meshup-{interface}"),
            policy: format!("meshup-{interface}-fw"),
            acl_table: format!("meshup-{interface}"),
            acl_file: crate::inventory::acl_file(crate::inventory::DEFAULT_CONFIG_DIR, interface),
        }
    }

    /// These marks with the ACL file in `config_dir` (a validated absolute path).
    pub fn with_config_dir(mut self, config_dir: &str) -> MeshMarks {
        self.acl_file = crate::inventory::acl_file(config_dir, &self.interface);
        self
    }

    /// Placeholder values: these marks plus `extra`.
    pub(crate) fn fills<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut v = vec![
            ("interface", self.interface.as_str()),
            ("marker", self.marker.as_str()),
            ("zone", self.zone.as_str()),
            ("policy", self.policy.as_str()),
            ("acl_table", self.acl_table.as_str()),
            ("acl_file", self.acl_file.as_str()),
        ];
        v.extend_from_slice(extra);
        v
    }
}
