//! Trust, removal and diagnosis per backend, from firewall output as the hosts print it
//! (captured on the lab's Debian 12 hosts).
use super::*;
use crate::facts::{
    FirewalldFacts, FirewalldMeshup, FirewalldZone, IptablesChain, IptablesFacts, NftablesFacts,
    UfwFacts,
};
use crate::playbook::Playbooks;

const NFT_TWO_TABLES: &str = "table inet filter {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		iif \"lo\" accept
		tcp dport 22 accept
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
	}
}
table ip guard {
	chain input {
		type filter hook input priority filter + 10; policy accept;
		ct state established,related accept
		tcp dport 22 accept
		drop
	}
}
";

fn marks() -> MeshMarks {
    MeshMarks::new("wg0")
}

fn fw(kind: FirewallKind) -> Firewall {
    Playbooks::embedded()
        .expect("embedded playbooks")
        .firewall(kind)
        .expect("playbook")
        .clone()
}

fn nft(text: &str) -> FirewallFacts {
    FirewallFacts {
        nftables: NftablesFacts::parse(text),
        ..FirewallFacts::default()
    }
}

fn commands(gaps: &[MeshGap]) -> Vec<&str> {
    gaps.iter()
        .flat_map(|g| g.action.commands.iter().map(String::as_str))
        .collect()
}

#[test]
fn nftables_gets_an_accept_in_every_restrictive_input_chain_and_forward_chain() {
    let facts = nft(NFT_TWO_TABLES);
    assert_eq!(FirewallKind::active(&facts), vec![FirewallKind::Nftables]);
    let nft = fw(FirewallKind::Nftables);
    let (gaps, warnings) = nft.trust_gaps(&facts, &marks(), false, &FirewallPaths::debian());
    assert!(warnings.is_empty());
    assert_eq!(gaps.len(), 1, "{gaps:#?}");
    assert_eq!(
        gaps[0].summary,
        "accept mesh traffic arriving on wg0 in nftables (chain inet filter input, ip guard input)"
    );
    assert_eq!(
        gaps[0].action.reason,
        "chain inet filter input, policy drop; chain ip guard input, policy accept, ends in a \
         catch-all drop: nothing accepts iifname wg0"
    );
    let cmds = commands(&gaps);
    assert_eq!(
        cmds[..2],
        [
            r#"m=meshup:wg0; nft insert rule inet filter input iifname wg0 accept comment "\"$m\"""#,
            r#"m=meshup:wg0; nft insert rule ip guard input iifname wg0 accept comment "\"$m\"""#,
        ]
    );
    assert!(
        cmds.iter()
            .any(|c| c.contains("/etc/nftables.d/meshup.nft"))
    );

    let (transit, _) = nft.trust_gaps(&facts, &marks(), true, &FirewallPaths::debian());
    let summaries: Vec<&str> = transit.iter().map(|g| g.summary.as_str()).collect();
    assert_eq!(
        summaries[1..],
        [
            "allow forwarding from wg0 in nftables (chain inet filter forward)",
            "allow forwarding to wg0 in nftables (chain inet filter forward)",
        ]
    );
    assert!(commands(&transit).contains(
        &r#"m=meshup:wg0; nft insert rule inet filter forward oifname wg0 accept comment "\"$m\"""#
    ));
}

#[test]
fn nftables_with_meshups_rules_needs_nothing_and_lists_them_for_removal() {
    let with = NFT_TWO_TABLES
        .replace(
            "policy drop;\n\t\tct state",
            "policy drop;\n\t\tiifname \"wg0\" accept comment \"meshup:wg0\"\n\t\tct state",
        )
        .replace(
            "filter + 10; policy accept;\n",
            "filter + 10; policy accept;\n\t\tiifname \"wg0\" accept comment \"meshup:wg0\"\n",
        );
    let facts = nft(&with);
    let nft = fw(FirewallKind::Nftables);
    let (gaps, _) = nft.trust_gaps(&facts, &marks(), false, &FirewallPaths::debian());
    assert!(gaps.is_empty(), "{gaps:#?}");
    assert!(nft.mesh_blockers(&facts, &marks(), false).is_empty());
    assert_eq!(
        nft.marked(&facts, &marks()),
        vec![
            "inet filter input: iifname \"wg0\" accept comment \"meshup:wg0\"",
            "ip guard input: iifname \"wg0\" accept comment \"meshup:wg0\"",
        ]
    );
    let removal = nft
        .untrust_commands(&facts, &marks(), &FirewallPaths::debian())
        .expect("removal");
    assert_eq!(
        removal.commands[0],
        "if nft list table inet meshup-wg0 >/dev/null 2>&1; then nft delete table inet meshup-wg0; fi"
    );
    assert!(removal.commands[1].starts_with("nft -a list ruleset | awk -v m=meshup:wg0 "));
    assert_eq!(
        removal.commands[2],
        "rm -f /etc/wireguard/meshup-acl-wg0.nft"
    );
    assert!(
        removal.commands[4]
            .contains(r#"f=/etc/nftables.d/meshup.nft; if [ -f "$f" ]; then { m=meshup:wg0; grep -vF "\"$m\"" "$f""#)
    );
    // Another interface's rules are not this mesh's.
    assert!(nft.marked(&facts, &MeshMarks::new("wg1")).is_empty());
}

fn iptables(input: &str, forward: &str) -> FirewallFacts {
    let chain = IptablesChain::parse;
    FirewallFacts {
        iptables: IptablesFacts {
            available: true,
            input: chain(input),
            forward: chain(forward),
            available6: true,
            input6: chain(input),
            forward6: chain(forward),
        },
        ..FirewallFacts::default()
    }
}

#[test]
fn iptables_both_families_input_and_dockers_forward_drop() {
    let ipt = fw(FirewallKind::Iptables);
    // Docker: FORWARD DROP only; a plain node needs nothing, a relay needs forwarding.
    let docker = iptables(
        "-P INPUT ACCEPT\n",
        "-P FORWARD DROP\n-A FORWARD -j DOCKER-USER\n",
    );
    assert_eq!(FirewallKind::active(&docker), vec![FirewallKind::Iptables]);
    assert!(ipt.port_open(&docker, 51820), "INPUT accepts everything");
    let (plain, _) = ipt.trust_gaps(&docker, &marks(), false, &FirewallPaths::debian());
    assert!(plain.is_empty(), "{plain:#?}");
    let (relay, _) = ipt.trust_gaps(&docker, &marks(), true, &FirewallPaths::debian());
    assert_eq!(relay.len(), 2, "{relay:#?}");
    assert!(
        relay[0]
            .action
            .reason
            .starts_with("iptables and ip6tables FORWARD")
    );
    assert!(commands(&relay).contains(
        &"iptables -w 5 -C FORWARD -o wg0 -m comment --comment meshup:wg0 -j ACCEPT 2>/dev/null || iptables -w 5 -I FORWARD -o wg0 -m comment --comment meshup:wg0 -j ACCEPT"
    ));

    let drop = iptables(
        "-P INPUT DROP\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n",
        "-P FORWARD ACCEPT\n",
    );
    let (gaps, _) = ipt.trust_gaps(&drop, &marks(), false, &FirewallPaths::debian());
    assert_eq!(
        gaps[0].summary,
        "accept mesh traffic arriving on wg0 in iptables"
    );
    let done = iptables(
        "-P INPUT DROP\n-A INPUT -i wg0 -m comment --comment \"meshup:wg0\" -j ACCEPT\n",
        "-P FORWARD ACCEPT\n",
    );
    let (gaps, _) = ipt.trust_gaps(&done, &marks(), false, &FirewallPaths::debian());
    assert!(gaps.is_empty());
    assert_eq!(
        ipt.marked(&done, &marks()),
        vec![
            "iptables -A INPUT -i wg0 -m comment --comment \"meshup:wg0\" -j ACCEPT",
            "ip6tables -A INPUT -i wg0 -m comment --comment \"meshup:wg0\" -j ACCEPT",
        ]
    );
    // A rule that accepts only some of wg0's traffic does not trust the mesh.
    let partial = iptables(
        "-P INPUT DROP\n-A INPUT -i wg0 -p tcp -m tcp --dport 22 -j ACCEPT\n",
        "-P FORWARD ACCEPT\n",
    );
    let (gaps, _) = ipt.trust_gaps(&partial, &marks(), false, &FirewallPaths::debian());
    assert_eq!(gaps.len(), 1);
}

/// `ufw status verbose` on a lab host after meshup's rules (relay: route rules too).
const UFW_TRUSTED: &str = "Status: active
Logging: on (low)
Default: deny (incoming), allow (outgoing), deny (routed)
New profiles: skip

To                         Action      From
--                         ------      ----
22/tcp                     ALLOW IN    Anywhere
Anywhere on wg0            ALLOW IN    Anywhere                   # meshup:wg0
51820/udp                  ALLOW IN    Anywhere                   # meshup:wg0
22/tcp (v6)                ALLOW IN    Anywhere (v6)
Anywhere (v6) on wg0       ALLOW IN    Anywhere (v6)              # meshup:wg0
51820/udp (v6)             ALLOW IN    Anywhere (v6)              # meshup:wg0

Anywhere                   ALLOW FWD   Anywhere on wg0            # meshup:wg0
Anywhere on wg0            ALLOW FWD   Anywhere                   # meshup:wg0
Anywhere (v6)              ALLOW FWD   Anywhere (v6) on wg0       # meshup:wg0
Anywhere (v6) on wg0       ALLOW FWD   Anywhere (v6)              # meshup:wg0
";

#[test]
fn ufw_allows_in_and_routes_on_the_interface() {
    let ufw = fw(FirewallKind::Ufw);
    let bare = FirewallFacts {
        ufw: UfwFacts::parse(
            "Status: active\nDefault: deny (incoming), allow (outgoing), deny (routed)\n\nTo  Action  From\n--  ------  ----\n22/tcp                     ALLOW IN    Anywhere\n",
        ),
        // ufw's own iptables chains are ufw's: no iptables rules beside them.
        iptables: iptables("-P INPUT DROP\n", "-P FORWARD DROP\n").iptables,
        ..FirewallFacts::default()
    };
    assert_eq!(FirewallKind::active(&bare), vec![FirewallKind::Ufw]);
    let (gaps, _) = ufw.trust_gaps(&bare, &marks(), true, &FirewallPaths::debian());
    assert_eq!(
        commands(&gaps),
        vec![
            "ufw allow in on wg0 comment meshup:wg0",
            "ufw route allow in on wg0 comment meshup:wg0",
            "ufw route allow out on wg0 comment meshup:wg0",
        ]
    );
    let trusted = FirewallFacts {
        ufw: UfwFacts::parse(UFW_TRUSTED),
        ..FirewallFacts::default()
    };
    let (gaps, _) = ufw.trust_gaps(&trusted, &marks(), true, &FirewallPaths::debian());
    assert!(gaps.is_empty(), "{gaps:#?}");
    assert_eq!(ufw.marked(&trusted, &marks()).len(), 8);
    assert!(
        ufw.untrust_commands(&trusted, &marks(), &FirewallPaths::debian())
            .is_some()
    );
}

fn firewalld(zones: &str, meshup: &str) -> FirewallFacts {
    FirewallFacts {
        firewalld: FirewalldFacts {
            installed: true,
            running: true,
            zone: None,
            zones: FirewalldZone::parse_all(zones),
            meshup: FirewalldMeshup::parse(meshup),
        },
        // firewalld's own nftables table is firewalld's.
        nftables: {
            let mut n = NftablesFacts::parse(
                "table inet firewalld {\n\tchain filter_INPUT {\n\t\ttype filter hook input priority filter + 10; policy accept;\n\t\treject with icmpx admin-prohibited\n\t}\n}\n",
            );
            n.tables[0].firewalld_managed = true;
            n
        },
        ..FirewallFacts::default()
    }
}

const ZONES: &str = "public\n  target: default\n  interfaces: \n  forward: yes\n\ntrusted\n  target: ACCEPT\n  interfaces: \n";
const MESHUP_ZONE: &str =
    "meshup-wg0 (active)\n  target: ACCEPT\n  interfaces: wg0\n  forward: yes\n";
const ZONE_FILE: &str = "file=meshup-wg0.xml <?xml version=\"1.0\" encoding=\"utf-8\"?><zone target=\"ACCEPT\">  <interface name=\"wg0\"/>  <forward/></zone>";

#[test]
fn firewalld_binds_the_interface_to_meshups_zone_and_forwards_by_policy() {
    let fwd = fw(FirewallKind::Firewalld);
    let facts = firewalld(ZONES, "default=public\npolicies=allow-host-ipv6\n");
    assert_eq!(FirewallKind::active(&facts), vec![FirewallKind::Firewalld]);
    let (gaps, warnings) = fwd.trust_gaps(&facts, &marks(), true, &FirewallPaths::debian());
    assert!(warnings.is_empty());
    assert_eq!(gaps.len(), 2, "{gaps:#?}");
    assert_eq!(
        gaps[0].action.reason,
        "wg0 is in no zone, so the default zone public filters it"
    );
    let cmds = commands(&gaps);
    assert!(
        cmds.contains(&"firewall-cmd --quiet --permanent --zone=meshup-wg0 --set-target=ACCEPT")
    );
    assert!(cmds.contains(
        &"firewall-cmd --quiet --permanent --policy=meshup-wg0-fw --add-egress-zone=meshup-wg0"
    ));
    assert!(
        !cmds.iter().any(|c| c.contains("--zone=trusted")),
        "trusted is left alone"
    );

    let done = firewalld(
        &format!("{ZONES}\n{MESHUP_ZONE}"),
        &format!(
            "default=public\npolicies=allow-host-ipv6 meshup-wg0-fw\n{ZONE_FILE}\nfile=meshup-wg0-fw.xml <policy target=\"ACCEPT\"><ingress-zone name=\"ANY\"/><egress-zone name=\"meshup-wg0\"/></policy>\n"
        ),
    );
    let (gaps, _) = fwd.trust_gaps(&done, &marks(), true, &FirewallPaths::debian());
    assert!(gaps.is_empty(), "{gaps:#?}");
    assert_eq!(
        fwd.marked(&done, &marks()),
        vec!["zone meshup-wg0", "policy meshup-wg0-fw"]
    );

    // Drift: the permanent zone file lost its interface.
    let drift = firewalld(
        &format!("{ZONES}\n{MESHUP_ZONE}"),
        "default=public\nfile=meshup-wg0.xml <zone target=\"ACCEPT\"></zone>\n",
    );
    let (gaps, _) = fwd.trust_gaps(&drift, &marks(), false, &FirewallPaths::debian());
    assert_eq!(gaps.len(), 1);

    // The user put wg0 into a zone of their own: left alone, with a warning.
    let own = firewalld(
        &format!("{ZONES}\ninternal\n  target: default\n  interfaces: wg0\n"),
        "default=public\n",
    );
    let (gaps, warnings) = fwd.trust_gaps(&own, &marks(), false, &FirewallPaths::debian());
    assert!(gaps.is_empty());
    assert!(warnings[0].starts_with("wg0 is bound to firewalld zone internal (target default)"));
}

#[test]
fn no_active_firewall_means_nothing_to_do_and_a_disabled_one_stays_off() {
    let off = FirewallFacts {
        ufw: UfwFacts::parse("Status: inactive\n"),
        iptables: iptables("-P INPUT ACCEPT\n", "-P FORWARD ACCEPT\n").iptables,
        ..FirewallFacts::default()
    };
    assert!(FirewallKind::active(&off).is_empty());
}
