//! The integration test binary: one module per feature.
mod apply_lab;
mod architecture;
mod check_cli;
mod facts;
mod inventory;
mod lab;
mod playbook;
mod scripts;
mod support_core;
mod support_lab;
mod support_sshd;
mod topology;
mod transport;
mod transport_lab;
mod vagrant;
mod verify;
mod verify_cli;
