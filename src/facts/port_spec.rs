//! Port specs as firewalls print them: one port (`51820`) or an inclusive range, written
//! `51000:52000` (iptables, ufw) or `51000-52000` (nftables, firewalld). Shared by the
//! firewall parsers, so it imports none of them.

/// `port` is inside a port spec: `51820`, `51000:52000` or `51000-52000`.
pub fn port_in_spec(spec: &str, port: u16) -> bool {
    let spec = spec.trim();
    let range = spec.split_once(':').or_else(|| spec.split_once('-'));
    match range {
        Some((low, high)) => match (low.parse::<u16>(), high.parse::<u16>()) {
            (Ok(low), Ok(high)) => (low..=high).contains(&port),
            _ => false,
        },
        None => spec.parse::<u16>() == Ok(port),
    }
}

#[cfg(test)]
mod tests {
    use super::port_in_spec;

    #[test]
    fn single_ports_and_both_range_spellings() {
        for (spec, port, inside) in [
            ("51820", 51820, true),
            (" 51820 ", 51820, true),
            ("51821", 51820, false),
            ("51000:52000", 51820, true),
            ("51000-52000", 51820, true),
            ("51000-52000", 52000, true),
            ("51000-52000", 52001, false),
            ("52000-51000", 51820, false),
            ("wireguard", 51820, false),
            ("51000-", 51820, false),
            ("", 51820, false),
        ] {
            assert_eq!(port_in_spec(spec, port), inside, "{spec:?} {port}");
        }
    }
}
