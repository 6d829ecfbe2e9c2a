//! The integration test binary: one module per feature.
mod check_cli;
mod facts;
mod inventory;
mod playbook;
mod support_core;
mod support_sshd;
mod topology;
mod transport;
mod verify;
mod verify_cli;
