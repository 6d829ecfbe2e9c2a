//! The integration test binary: one module per feature.

/// Returns from a lab test, saying why, when the lab cannot run here.
macro_rules! require_lab {
    () => {
        if let Some(why) = crate::support_lab::lab_skip_reason() {
            eprintln!("skipping lab test: {why}");
            return;
        }
    };
}

mod acl_lab;
mod apply_lab;
mod architecture;
mod check_cli;
mod cli;
mod clients_lab;
mod distro_lab;
mod dns_lab;
mod docs;
mod exit_lab;
mod facts;
mod fault_lab;
mod firewall_lab;
mod import_lab;
mod inventory;
mod ipv6_lab;
mod lab;
mod names_lab;
mod nat_lab;
mod nm_lab;
mod package_lab;
mod playbook;
mod reboot_lab;
mod schema;
mod scripts;
mod support_core;
mod support_lab;
mod support_sshd;
mod topology;
mod topology_lab;
mod transport;
mod transport_lab;
mod vagrant;
mod verify;
mod verify_cli;
mod verify_metrics;
mod verify_secrets_lab;
mod vm_lab;
mod watchdog_lab;
