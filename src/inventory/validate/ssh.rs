//! A node's `ssh:` over the inventory's `ssh:` defaults, and workstation paths.
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::inventory::spanned::Spanned;

use super::Validator;
use crate::inventory::names::{Become, HostKeyChecking, JumpHost, NodeName, SshHost, UserName};
use crate::inventory::raw::RawSsh;
use crate::inventory::{DEFAULT_CONNECT_TIMEOUT, SshTarget};

impl Validator<'_> {
    pub(super) fn ssh(
        &mut self,
        node: Option<&RawSsh>,
        defaults: &RawSsh,
        name: Option<&NodeName>,
    ) -> Option<SshTarget> {
        let empty = RawSsh::default();
        let node = node.unwrap_or(&empty);
        let pick = |field: fn(&RawSsh) -> &Option<Spanned<String>>| {
            field(node).as_ref().or(field(defaults).as_ref())
        };
        let pick_int = |field: fn(&RawSsh) -> &Option<Spanned<i64>>| {
            field(node).as_ref().or(field(defaults).as_ref())
        };

        let host = match &node.host {
            Some(value) => self.parse::<SshHost>(value, "invalid host"),
            None => name.and_then(|n| n.as_str().parse().ok()),
        };
        let user = match pick(|s| &s.user) {
            Some(value) => self.parse::<UserName>(value, "invalid user name"),
            None => "root".parse().ok(),
        };
        let port = match pick_int(|s| &s.port) {
            Some(value) => self.int_in(value, 1..=65535, "ssh port"),
            None => Some(22),
        };
        let identity_file = self.local_path(pick(|s| &s.identity_file));
        let jump = match pick(|s| &s.jump) {
            Some(value) => self.parse::<JumpHost>(value, "invalid jump host").map(Some),
            None => Some(None),
        };
        let become_method = match (pick(|s| &s.become_), &user) {
            (Some(value), Some(user)) => match self.parse::<Become>(value, "invalid become") {
                Some(Become::Root) if user.as_str() != "root" => {
                    let span = self.span(value);
                    self.problems.push_full(
                        span,
                        format!("become: root needs user root, but the user is `{user}`"),
                        "cannot become root",
                        Some("use `become: sudo` for a non-root user".into()),
                        None,
                    );
                    None
                }
                other => other,
            },
            (Some(value), None) => self.parse::<Become>(value, "invalid become"),
            (None, Some(user)) if user.as_str() == "root" => Some(Become::Root),
            (None, _) => Some(Become::Sudo),
        };
        let known_hosts = self.local_path(pick(|s| &s.known_hosts));
        let host_key_checking = match pick(|s| &s.host_key_checking) {
            Some(value) => self.parse::<HostKeyChecking>(value, "invalid policy"),
            None => Some(HostKeyChecking::AcceptNew),
        };
        let ssh_config = self.local_path(pick(|s| &s.ssh_config));
        let connect_timeout = match pick_int(|s| &s.connect_timeout) {
            Some(value) => self.int_in(value, 1..=3600, "connect_timeout"),
            None => u16::try_from(DEFAULT_CONNECT_TIMEOUT).ok(),
        };
        Some(SshTarget {
            host: host?,
            user: user?,
            port: port?,
            identity_file: identity_file?,
            jump: jump?,
            become_method: become_method?,
            known_hosts: known_hosts?,
            host_key_checking: host_key_checking?,
            ssh_config: ssh_config?,
            connect_timeout: Duration::from_secs(u64::from(connect_timeout?)),
        })
    }

    /// A path on the workstation: `~/` expands to $HOME, relative paths are relative to the
    /// inventory directory.
    pub(super) fn local_path(
        &mut self,
        value: Option<&Spanned<String>>,
    ) -> Option<Option<PathBuf>> {
        let Some(value) = value else {
            return Some(None);
        };
        let text = value.value.as_str();
        if text.is_empty() || text.chars().any(char::is_control) {
            let span = self.span(value);
            self.error(
                span,
                "path is empty or contains control characters",
                "invalid path",
            );
            return None;
        }
        if let Some(rest) = text.strip_prefix("~/") {
            let Some(home) = std::env::var_os("HOME") else {
                let span = self.span(value);
                self.error(span, "cannot expand `~`: HOME is not set", "needs HOME");
                return None;
            };
            return Some(Some(PathBuf::from(home).join(rest)));
        }
        let path = Path::new(text);
        Some(Some(if path.is_absolute() {
            path.to_owned()
        } else {
            self.dir.join(path)
        }))
    }
}
