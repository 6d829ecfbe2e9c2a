//! The `route` fact: meshup's routing script of the interface (`scripts/route.sh`, its
//! text and the parts it finds in place), and what the host runs beside the mesh that
//! could take the interface over: NetworkManager (and meshup's drop-in for it), and
//! systemd-networkd `.netdev` files naming the interface.
use std::collections::BTreeSet;

use serde::Serialize;

/// meshup's routing script and its neighbours on one host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouteFacts {
    /// The script's text (`<config dir>/meshup-route-<interface>.sh`), when it exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// What its `status` found in place: `clamp`, `masq`, `exit4`, `exit6`, and
    /// `docker-gap` (Docker's DOCKER-USER chain lacks meshup's rules).
    pub status: BTreeSet<String>,
    /// NetworkManager is installed.
    pub nm_installed: bool,
    /// NetworkManager runs.
    pub nm_running: bool,
    /// meshup's NetworkManager drop-in (`conf.d/meshup-<interface>.conf`), when it exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nm_conf: Option<String>,
    /// systemd-networkd `.netdev` files that create the interface.
    pub netdevs: Vec<String>,
}

impl RouteFacts {
    /// Nothing of meshup's routing and no neighbour that matters.
    pub fn is_empty(&self) -> bool {
        *self == RouteFacts::default()
    }

    /// Parses the section: `file=LINE`, `status=PART`, `nm=installed|running`,
    /// `nmconf=LINE`, `netdev=PATH`.
    pub fn parse(body: &str) -> RouteFacts {
        let mut out = RouteFacts::default();
        let mut file: Option<String> = None;
        let mut nm_conf: Option<String> = None;
        let push = |acc: &mut Option<String>, line: &str| {
            let text = acc.get_or_insert_with(String::new);
            text.push_str(line);
            text.push('\n');
        };
        for line in body.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "file" => push(&mut file, value),
                "status" => {
                    out.status.insert(value.trim().to_string());
                }
                "nm" if value == "installed" => out.nm_installed = true,
                "nm" if value == "running" => out.nm_running = true,
                "nmconf" => push(&mut nm_conf, value),
                "netdev" => out.netdevs.push(value.to_string()),
                _ => {}
            }
        }
        out.file = file;
        out.nm_conf = nm_conf;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_line_kind() {
        let cases: [(&str, RouteFacts); 3] = [
            ("", RouteFacts::default()),
            (
                "file=IF='wg0'\nfile=\nfile=set -u\nstatus=clamp\nstatus=exit4\n",
                RouteFacts {
                    file: Some("IF='wg0'\n\nset -u\n".into()),
                    status: ["clamp", "exit4"].map(String::from).into(),
                    ..RouteFacts::default()
                },
            ),
            (
                "nm=installed\nnm=running\nnmconf=[keyfile]\nnmconf=unmanaged-devices=interface-name:wg0\nnetdev=/etc/systemd/network/wg0.netdev\n",
                RouteFacts {
                    nm_installed: true,
                    nm_running: true,
                    nm_conf: Some("[keyfile]\nunmanaged-devices=interface-name:wg0\n".into()),
                    netdevs: vec!["/etc/systemd/network/wg0.netdev".into()],
                    ..RouteFacts::default()
                },
            ),
        ];
        for (body, want) in cases {
            assert_eq!(RouteFacts::parse(body), want, "{body}");
        }
    }
}
