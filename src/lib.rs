//! meshup: an agentless WireGuard full mesh over SSH.
pub mod address;
pub mod apply;
pub mod cli;
pub mod exec;
pub mod facts;
pub mod fanout;
pub mod hosts;
pub mod inventory;
pub mod keys;
pub mod playbook;
pub mod render;
pub mod scripts;
pub mod secret;
pub mod shell;
pub mod topology;
pub mod transport;
pub mod verify;
