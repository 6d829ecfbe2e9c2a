use super::*;

#[test]
fn node_names() {
    for good in ["node-a", "a", "0", "db1.eu-west", "n-"] {
        assert!(good.parse::<NodeName>().is_ok(), "{good}");
    }
    for bad in [
        "",
        "-a",
        ".a",
        "Node",
        "a b",
        "a/b",
        "a;rm",
        "a$x",
        "é",
        &"a".repeat(64),
    ] {
        assert!(bad.parse::<NodeName>().is_err(), "{bad}");
    }
}

#[test]
fn domain_names() {
    let longest = [
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61),
    ]
    .join(".");
    assert_eq!(longest.len(), 253);
    for good in ["mesh", "mesh.internal", "a-1.b2", "0", longest.as_str()] {
        assert!(good.parse::<DomainName>().is_ok(), "{good}");
    }
    let too_long = format!("{longest}x");
    let long_label = "a".repeat(64);
    for bad in [
        "",
        "Mesh",
        "-mesh",
        "mesh-",
        "a.-b",
        "a..b",
        ".mesh",
        "mesh.",
        "me_sh",
        "me sh",
        "mesh;x",
        long_label.as_str(),
        too_long.as_str(),
    ] {
        assert!(bad.parse::<DomainName>().is_err(), "{bad}");
    }
}

#[test]
fn interface_names() {
    for good in ["wg0", "wg-mesh", "a", "abcdefghijklmno"] {
        assert!(good.parse::<InterfaceName>().is_ok(), "{good}");
    }
    for bad in [
        "",
        ".",
        "..",
        "wg/0",
        "wg 0",
        "wg:0",
        "abcdefghijklmnop",
        "wg\t",
    ] {
        assert!(bad.parse::<InterfaceName>().is_err(), "{bad}");
    }
}

#[test]
fn remote_paths() {
    assert_eq!(
        "/etc/wireguard/"
            .parse::<RemotePath>()
            .map(|p| p.to_string()),
        Ok("/etc/wireguard".to_string())
    );
    for bad in [
        "etc/wireguard",
        "/etc/wire guard",
        "/etc/$(x)",
        "/etc/../root",
        "/a;b",
    ] {
        assert!(bad.parse::<RemotePath>().is_err(), "{bad}");
    }
}

#[test]
fn users_and_hosts() {
    for good in ["root", "admin", "_svc", "deploy-1", "machine$"] {
        assert!(good.parse::<UserName>().is_ok(), "{good}");
    }
    for bad in ["", "Root", "1user", "a b", "a;b", &"a".repeat(33)] {
        assert!(bad.parse::<UserName>().is_err(), "{bad}");
    }
    for good in [
        "203.0.113.10",
        "2001:db8::1",
        "web-1.example.com",
        "my_alias",
    ] {
        assert!(good.parse::<SshHost>().is_ok(), "{good}");
    }
    for bad in ["", "-oProxyCommand=x", "a b", "a;b", "a@b"] {
        assert!(bad.parse::<SshHost>().is_err(), "{bad}");
    }
}

#[test]
fn jump_hosts() {
    let jump: JumpHost = "admin@bastion.example.com:2222".parse().expect("valid");
    assert_eq!(jump.to_string(), "admin@bastion.example.com:2222");
    let jump: JumpHost = "[2001:db8::1]:22".parse().expect("valid");
    assert_eq!(jump.to_string(), "[2001:db8::1]:22");
    assert!("bastion:0".parse::<JumpHost>().is_err());
    assert!("x y".parse::<JumpHost>().is_err());
}

#[test]
fn endpoints() {
    let cases = [
        ("203.0.113.10:51820", "203.0.113.10:51820"),
        ("203.0.113.10", "203.0.113.10:51000"),
        ("vpn.example.com:1", "vpn.example.com:1"),
        ("[2001:db8::1]:51820", "[2001:db8::1]:51820"),
        ("2001:db8::1", "[2001:db8::1]:51000"),
    ];
    for (text, want) in cases {
        assert_eq!(
            Endpoint::parse(text, 51000).map(|e| e.to_string()),
            Ok(want.to_string())
        );
    }
    for bad in [
        "203.0.113.10:0",
        "203.0.113.10:65536",
        "203.0.113.10:x",
        "300.1.1.1",
        "0.0.0.0:51820",
        "bad host:1",
        "-a.example.com",
        "[2001:db8::1",
        "",
    ] {
        assert!(Endpoint::parse(bad, 51820).is_err(), "{bad}");
    }
}

#[test]
fn dns_endpoints_are_kept_as_names_and_bad_ones_say_why() {
    let parsed = Endpoint::parse("Node-B.Example.NET:51820", 1).expect("valid");
    assert_eq!(parsed.host, EndpointHost::Dns("node-b.example.net".into()));
    assert_eq!(parsed.to_string(), "node-b.example.net:51820");
    let label64 = format!("{}.example", "a".repeat(64));
    let long = format!("{}.example", vec!["a".repeat(60); 5].join("."));
    let too_long = format!(
        "is {} characters long; a DNS name has at most 253",
        long.len()
    );
    let cases: [(&str, &str); 9] = [
        ("node_b.example", "it contains '_'"),
        ("bad_host!", "it contains '_'"),
        ("-x.example", "label `-x` starts or ends with '-'"),
        ("x-.example", "label `x-` starts or ends with '-'"),
        ("a..example", "empty label"),
        (".example", "empty label"),
        ("ex ample", "it contains ' '"),
        (&label64, "label `aaaa"),
        (&long, &too_long),
    ];
    for (host, why) in cases {
        let err = Endpoint::parse(&format!("{host}:51820"), 1).expect_err(host);
        assert!(
            err.contains(&format!("`{host}` is not a valid DNS name: ")) && err.contains(why),
            "{host}: {err}"
        );
    }
    assert!(
        Endpoint::parse("fe80::1::2:51820", 1)
            .expect_err("bad v6")
            .contains("not a valid IPv6 address")
    );
}

#[test]
fn endpoint_names_and_live_addresses() {
    for (endpoint, name) in [
        ("node-b.example.net:51820", Some("node-b.example.net")),
        ("node-b.example.net.:51820", Some("node-b.example.net.")),
        ("198.51.100.20:51820", None),
        ("[2001:db8::1]:51820", None),
    ] {
        assert_eq!(endpoint_dns_name(endpoint), name, "{endpoint}");
    }
    for (live, expected, same) in [
        ("198.51.100.20:51820", "198.51.100.20:51820", true),
        ("198.51.100.21:51820", "198.51.100.20:51820", false),
        ("198.51.100.20:51820", "node-b.example.net:51820", true),
        ("203.0.113.99:51820", "node-b.example.net:51820", true),
        ("[2001:db8::1]:51820", "node-b.example.net:51820", true),
        ("198.51.100.20:51821", "node-b.example.net:51820", false),
        (
            "node-b.example.net:51820",
            "node-b.example.net:51820",
            false,
        ),
    ] {
        assert_eq!(
            endpoint_matches(live, expected),
            same,
            "{live} vs {expected}"
        );
    }
}
