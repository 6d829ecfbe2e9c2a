//! The Vagrant lab (vagrant/): its inventory is valid and describes the guide's mesh (plus
//! an Arch node), the Vagrantfile passes `vagrant validate`, and its network provisioning
//! builds the guide's topology (public /24s, NAT router) in namespaces standing for the VMs.

use crate::support_core::{mesh, root};
use std::process::Command;

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn vagrant_inventory_is_the_guides_mesh() {
    let vagrant = std::fs::read_to_string(root().join("vagrant/inventory.yaml")).expect("read");
    let guide = std::fs::read_to_string(root().join("inventory/guide.yaml")).expect("read");
    let (vm, gm) = (mesh(&vagrant), mesh(&guide));
    for g in &gm.nodes {
        let v = vm
            .node(&g.name)
            .unwrap_or_else(|| panic!("{} missing", g.name));
        assert_eq!(
            (v.address, v.role, &v.endpoint),
            (g.address, g.role, &g.endpoint),
            "{}",
            g.name
        );
        let vpeers = vm.peers(v);
        for gp in &gm.peers(g) {
            let vp = vpeers.iter().find(|p| p.name == gp.name).expect("peer");
            assert_eq!(vp, gp, "{} -> {}", g.name, gp.name);
        }
    }
    assert_eq!(vm.settings.listen_port, 51820);
    assert!(vm.settings.preshared_keys);

    let out = Command::new(env!("CARGO_BIN_EXE_meshup"))
        .args(["check", "vagrant/inventory.yaml"])
        .current_dir(root())
        .output()
        .expect("meshup check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn vagrantfile_validates() {
    if !have("vagrant") {
        eprintln!("skipping: vagrant is not installed (tests/packages.txt installs it)");
        return;
    }
    let out = Command::new("vagrant")
        .arg("validate")
        .current_dir(root().join("vagrant"))
        .env("VAGRANT_DEFAULT_PROVIDER", "libvirt")
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .output()
        .expect("vagrant validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("validated successfully"), "{text}");
}

#[test]
fn vagrant_network_provisioning_builds_the_guides_topology() {
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if !(root_user && have("ruby") && have("nft") && have("ping")) {
        eprintln!("skipping: needs root, ruby, nft and ping");
        return;
    }
    let out = Command::new("bash")
        .arg(root().join("vagrant/tests/lab-net-netns.sh"))
        .output()
        .expect("run lab-net-netns.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains(" 0 failed"), "{text}");
}
