//! meshup: an agentless WireGuard full mesh over SSH.
pub mod cli;
pub mod verify;
