//! The `iptables` facts: `iptables -S INPUT` and `iptables -S FORWARD`.

use serde::Serialize;

use super::port_spec::port_in_spec;

/// One built-in chain as `iptables -S <chain>` prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IptablesChain {
    /// The `-P` policy (`ACCEPT`, `DROP`).
    pub policy: Option<String>,
    /// `-A` rules, arguments after the chain name, in order.
    pub rules: Vec<String>,
}

impl IptablesChain {
    /// Parses `iptables -S <chain>` output.
    pub fn parse(body: &str) -> IptablesChain {
        let mut chain = IptablesChain::default();
        for line in body.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["-P", _, policy, ..] => chain.policy = Some(policy.to_string()),
                ["-A", _, rest @ ..] => chain.rules.push(rest.join(" ")),
                _ => {}
            }
        }
        chain
    }

    /// Drops what no rule accepts: DROP/REJECT policy or a catch-all DROP/REJECT rule.
    pub fn restrictive(&self) -> bool {
        matches!(self.policy.as_deref(), Some("DROP" | "REJECT"))
            || self.rules.iter().any(|r| is_catch_all_drop(r))
    }

    /// A rule before any catch-all drop accepts UDP to `port`.
    pub fn accepts_udp(&self, port: u16) -> bool {
        self.accepts_before_drop(|words| {
            let udp = words.windows(2).any(|w| w[0] == "-p" && w[1] == "udp");
            let port_ok = words.windows(2).any(|w| {
                (w[0] == "--dport" || w[0] == "--dports")
                    && w[1].split(',').any(|p| port_in_spec(p, port))
            });
            let no_source = !words.iter().any(|w| *w == "-s" || *w == "!");
            udp && port_ok && no_source
        })
    }

    /// A rule before any catch-all drop accepts traffic coming in on `interface`.
    pub fn accepts_forward(&self, interface: &str) -> bool {
        self.accepts_on("-i", interface)
    }

    /// A rule before any catch-all drop accepts everything on `interface`: coming in
    /// (`flag` `-i`) or going out (`-o`), with no other match.
    pub fn accepts_on(&self, flag: &str, interface: &str) -> bool {
        self.accepts_before_drop(|words| {
            words.windows(2).any(|w| w[0] == flag && w[1] == interface)
                && !words.iter().any(|w| {
                    matches!(
                        *w,
                        "-s" | "-d" | "!" | "-p" | "--dport" | "--sport" | "--ctstate" | "--state"
                    )
                })
        })
    }

    /// Rules carrying the comment `marker` (as `iptables -S` prints them).
    pub fn marked(&self, marker: &str) -> Vec<&str> {
        self.rules
            .iter()
            .filter(|r| {
                r.split_whitespace()
                    .collect::<Vec<_>>()
                    .windows(2)
                    .any(|w| w[0] == "--comment" && w[1].trim_matches('"') == marker)
            })
            .map(String::as_str)
            .collect()
    }

    fn accepts_before_drop(&self, matches: impl Fn(&[&str]) -> bool) -> bool {
        for rule in &self.rules {
            if is_catch_all_drop(rule) {
                return false;
            }
            let words: Vec<&str> = rule.split_whitespace().collect();
            let accepts = words.windows(2).any(|w| w[0] == "-j" && w[1] == "ACCEPT");
            if accepts && matches(&words) {
                return true;
            }
        }
        false
    }
}

fn is_catch_all_drop(rule: &str) -> bool {
    let words: Vec<&str> = rule.split_whitespace().collect();
    matches!(words.as_slice(), ["-j", "DROP" | "REJECT", ..])
}

/// iptables state: whether installed, and the INPUT and FORWARD chains.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IptablesFacts {
    /// iptables is installed and listing succeeded.
    pub available: bool,
    /// The INPUT chain.
    pub input: IptablesChain,
    /// The FORWARD chain.
    pub forward: IptablesChain,
    /// ip6tables is installed and listing succeeded.
    pub available6: bool,
    /// ip6tables' INPUT chain.
    pub input6: IptablesChain,
    /// ip6tables' FORWARD chain.
    pub forward6: IptablesChain,
}
