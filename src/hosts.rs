//! From inventory nodes to live SSH sessions: the one place where the inventory's
//! connection settings meet the transport.

use crate::inventory::{self, HostKeyChecking, Node};
use crate::transport::{
    Become, HostKeyPolicy, Session, SshSession, Stats, TargetSpec, TransportError,
};
use std::sync::Arc;

/// The transport's raw connection values for one inventory node.
pub fn target_spec(node: &Node) -> TargetSpec {
    let ssh: &inventory::SshTarget = &node.ssh;
    TargetSpec {
        alias: ssh.host.as_str().to_string(),
        user: Some(ssh.user.as_str().to_string()),
        port: Some(ssh.port),
        identity_file: ssh.identity_file.clone(),
        jump: ssh.jump.as_ref().map(|j| j.to_string()),
        become_: Some(match ssh.become_method {
            inventory::Become::Root => Become::Root,
            inventory::Become::Sudo => Become::Sudo,
        }),
        known_hosts: ssh.known_hosts.clone(),
        host_key_policy: match ssh.host_key_checking {
            HostKeyChecking::Yes => HostKeyPolicy::Strict,
            HostKeyChecking::AcceptNew => HostKeyPolicy::AcceptNew,
            HostKeyChecking::Insecure => HostKeyPolicy::Insecure,
        },
        ssh_config: ssh.ssh_config.clone(),
        connect_timeout: Some(ssh.connect_timeout),
    }
}

/// A connected host: its name and a session usable for the whole run.
pub type Connected = Arc<dyn Session>;

/// Connects to one node (resolving ~/.ssh/config through `ssh -G` where available).
pub async fn connect(node: &Node, stats: &Arc<Stats>) -> Result<Connected, TransportError> {
    let mut target = target_spec(node).resolve()?;
    // Messages and statistics name the node, not the address.
    target.name = node.name.as_str().to_string();
    let session = SshSession::connect(&target, stats).await?;
    Ok(Arc::new(session))
}
