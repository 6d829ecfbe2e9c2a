//! meshup: an agentless WireGuard full mesh over SSH.
pub mod cli;
pub mod fanout;
pub mod secret;
pub mod shell;
pub mod transport;
