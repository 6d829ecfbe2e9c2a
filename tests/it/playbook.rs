//! Playbook tests.
