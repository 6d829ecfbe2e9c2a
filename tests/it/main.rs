//! One integration test binary, one module per feature.
mod facts;
mod playbook;
