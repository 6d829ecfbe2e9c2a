//! The integration test binary: one module per feature.
mod check_cli;
mod inventory;
mod support_core;
mod support_sshd;
mod topology;
mod transport;
