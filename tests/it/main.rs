//! The integration test binary: one module per feature.

mod support_sshd;
mod transport;
