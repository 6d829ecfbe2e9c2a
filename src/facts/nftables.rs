//! The `nftables` fact: the structure of `nft list ruleset` that matters to WireGuard.

use serde::Serialize;

use super::port_spec::port_in_spec;

/// One chain of the ruleset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NftChain {
    /// Chain name.
    pub name: String,
    /// Hook of a base chain (`input`, `forward`, ...); `None` for regular chains.
    pub hook: Option<String>,
    /// Priority text of a base chain (`filter`, `filter - 1`, `0`).
    pub priority: Option<String>,
    /// Policy of a base chain (`accept`, `drop`).
    pub policy: Option<String>,
    /// Rule lines, trimmed, in order.
    pub rules: Vec<String>,
}

/// One table of the ruleset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NftTable {
    /// Family (`inet`, `ip`, `ip6`, `bridge`, `netdev`, `arp`).
    pub family: String,
    /// Table name.
    pub name: String,
    /// Managed by iptables-nft (nft warns not to touch it).
    pub iptables_managed: bool,
    /// Managed by a running firewalld (its `firewalld` tables): firewalld's rules are
    /// changed through firewalld.
    pub firewalld_managed: bool,
    /// Chains in order.
    pub chains: Vec<NftChain>,
}

/// A base chain that drops what no rule accepts: where a port must be opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NftChainRef {
    /// Table family.
    pub family: String,
    /// Table name.
    pub table: String,
    /// Chain name.
    pub chain: String,
}

/// The ruleset as `nft list ruleset` printed it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NftablesFacts {
    /// nft is installed and the listing succeeded.
    pub available: bool,
    /// Tables in order.
    pub tables: Vec<NftTable>,
}

impl NftablesFacts {
    /// Parses `nft list ruleset` output. Sets, maps and flowtables are skipped.
    pub fn parse(body: &str) -> NftablesFacts {
        let mut facts = NftablesFacts {
            available: true,
            tables: Vec::new(),
        };
        let mut managed: Vec<(String, String)> = Vec::new();
        let mut depth: i32 = 0;
        let mut table: Option<NftTable> = None;
        let mut chain: Option<NftChain> = None;
        for raw in body.lines() {
            let line = raw.trim();
            if let Some(rest) = line.strip_prefix("# Warning: table ") {
                let mut words = rest.split_whitespace();
                if let (Some(family), Some(name)) = (words.next(), words.next())
                    && rest.contains("iptables-nft")
                {
                    managed.push((family.to_string(), name.to_string()));
                }
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let opens = line.matches('{').count() as i32;
            let closes = line.matches('}').count() as i32;
            let words: Vec<&str> = line.split_whitespace().collect();
            match depth {
                0 if words.first() == Some(&"table") && words.len() >= 3 => {
                    table = Some(NftTable {
                        family: words[1].to_string(),
                        name: words[2].to_string(),
                        ..NftTable::default()
                    });
                }
                1 if words.first() == Some(&"chain") && words.len() >= 2 && opens > 0 => {
                    chain = Some(NftChain {
                        name: words[1].to_string(),
                        ..NftChain::default()
                    });
                }
                2 => {
                    if let Some(chain) = chain.as_mut() {
                        if line.starts_with("type ") && line.contains(" hook ") {
                            parse_base(line, chain);
                        } else if line != "}" {
                            chain.rules.push(line.to_string());
                        }
                    }
                }
                _ => {}
            }
            depth = (depth + opens - closes).max(0);
            if depth < 2
                && let (Some(done), Some(table)) = (chain.take(), table.as_mut())
            {
                table.chains.push(done);
            }
            if depth == 0
                && let Some(done) = table.take()
            {
                facts.tables.push(done);
            }
        }
        if let Some(mut open_table) = table {
            if let Some(open_chain) = chain {
                open_table.chains.push(open_chain);
            }
            facts.tables.push(open_table);
        }
        for t in &mut facts.tables {
            t.iptables_managed = managed
                .iter()
                .any(|(family, name)| *family == t.family && *name == t.name)
                || looks_like_iptables_nft(t);
        }
        facts
    }

    /// Base chains on `hook` that drop by default or end in a catch-all drop/reject,
    /// outside tables managed by iptables-nft.
    pub fn restrictive_chains(&self, hook: &str) -> Vec<NftChainRef> {
        let mut out = Vec::new();
        for table in self
            .tables
            .iter()
            .filter(|t| !t.iptables_managed && !t.firewalld_managed)
        {
            if !matches!(table.family.as_str(), "inet" | "ip" | "ip6") {
                continue;
            }
            for chain in &table.chains {
                if chain.hook.as_deref() == Some(hook) && chain_is_restrictive(chain) {
                    out.push(NftChainRef {
                        family: table.family.clone(),
                        table: table.name.clone(),
                        chain: chain.name.clone(),
                    });
                }
            }
        }
        out
    }

    /// The table holding the chain named by `r`.
    fn table_of(&self, r: &NftChainRef) -> Option<&NftTable> {
        self.tables
            .iter()
            .find(|t| t.family == r.family && t.name == r.table)
    }

    /// The chain named by `r`.
    pub fn chain(&self, r: &NftChainRef) -> Option<&NftChain> {
        self.table_of(r)?.chains.iter().find(|c| c.name == r.chain)
    }

    /// The restrictive input chain `r` accepts UDP to `port` before any catch-all drop
    /// (following jumps/gotos into regular chains of the same table).
    pub fn chain_accepts_udp(&self, r: &NftChainRef, port: u16) -> bool {
        let Some(table) = self.table_of(r) else {
            return false;
        };
        let mut visited = Vec::new();
        accepts(table, &r.chain, &mut visited, &|rule| {
            rule_accepts_udp(rule, port)
        })
    }

    /// The restrictive forward chain `r` accepts traffic between `interface` and itself.
    pub fn chain_accepts_forward(&self, r: &NftChainRef, interface: &str) -> bool {
        self.chain_accepts_on(r, "iif", interface)
    }

    /// The restrictive chain `r` accepts everything coming in on `interface` (`side`
    /// `iif`) or going out on it (`oif`), by name or index, with no other match.
    pub fn chain_accepts_on(&self, r: &NftChainRef, side: &str, interface: &str) -> bool {
        let Some(table) = self.table_of(r) else {
            return false;
        };
        let quoted = format!("\"{interface}\"");
        let by_name = format!("{side}name");
        let mut visited = Vec::new();
        accepts(table, &r.chain, &mut visited, &|rule| {
            let words: Vec<&str> = strip_comment(rule).split_whitespace().collect();
            let names_if = |key: &str| {
                words
                    .windows(2)
                    .any(|w| w[0] == key && (w[1] == interface || w[1] == quoted))
            };
            verdict(rule) == Some("accept")
                && (names_if(&by_name) || names_if(side))
                && !has_other_match(&words)
        })
    }

    /// Restrictive chains on `hook` that do not accept everything on `interface` yet
    /// (`side` `iif`: arriving on it, `oif`: leaving through it).
    pub fn chains_missing_on(&self, hook: &str, side: &str, interface: &str) -> Vec<NftChainRef> {
        self.restrictive_chains(hook)
            .into_iter()
            .filter(|r| !self.chain_accepts_on(r, side, interface))
            .collect()
    }

    /// Every rule carrying the comment `marker`, as `family table chain: rule`, outside
    /// the tables iptables-nft and firewalld manage (their rules are removed through them).
    pub fn marked(&self, marker: &str) -> Vec<String> {
        let needle = format!("comment \"{marker}\"");
        let mut out = Vec::new();
        for t in self
            .tables
            .iter()
            .filter(|t| !t.iptables_managed && !t.firewalld_managed)
        {
            for c in &t.chains {
                for r in c.rules.iter().filter(|r| r.contains(&needle)) {
                    out.push(format!("{} {} {}: {r}", t.family, t.name, c.name));
                }
            }
        }
        out
    }

    /// Every input chain that needs the port and does not accept it yet.
    pub fn chains_missing_port(&self, port: u16) -> Vec<NftChainRef> {
        self.restrictive_chains("input")
            .into_iter()
            .filter(|r| !self.chain_accepts_udp(r, port))
            .collect()
    }

    /// Every forward chain that does not accept the interface's traffic yet.
    pub fn chains_missing_forward(&self, interface: &str) -> Vec<NftChainRef> {
        self.restrictive_chains("forward")
            .into_iter()
            .filter(|r| !self.chain_accepts_forward(r, interface))
            .collect()
    }
}

/// iptables-nft's tables: family ip/ip6, every base chain named like a built-in
/// iptables chain. nft prints its "do not touch" warning on stderr only.
fn looks_like_iptables_nft(table: &NftTable) -> bool {
    const BUILTIN: [&str; 5] = ["INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"];
    let mut base = table.chains.iter().filter(|c| c.hook.is_some()).peekable();
    matches!(table.family.as_str(), "ip" | "ip6")
        && base.peek().is_some()
        && base.all(|c| BUILTIN.contains(&c.name.as_str()))
}

fn parse_base(line: &str, chain: &mut NftChain) {
    for part in line.split(';') {
        let part = part.trim();
        if let Some(rest) = part.strip_prefix("policy ") {
            chain.policy = Some(rest.trim().to_string());
        } else if part.starts_with("type ") {
            let words: Vec<&str> = part.split_whitespace().collect();
            if let Some(i) = words.iter().position(|w| *w == "hook") {
                chain.hook = words.get(i + 1).map(|w| w.to_string());
            }
            if let Some(i) = words.iter().position(|w| *w == "priority") {
                chain.priority = Some(words[i + 1..].join(" "));
            }
        }
    }
}

/// Words that only count packets or log, not match them.
const NEUTRAL: [&str; 4] = ["counter", "packets", "bytes", "log"];

fn strip_comment(rule: &str) -> &str {
    match rule.find(" comment ") {
        Some(i) => &rule[..i],
        None => rule,
    }
}

/// The final verdict word of a rule, if any.
fn verdict(rule: &str) -> Option<&str> {
    strip_comment(rule)
        .split_whitespace()
        .rev()
        .find(|w| {
            matches!(
                *w,
                "accept" | "drop" | "reject" | "jump" | "goto" | "return"
            )
        })
        .or_else(|| {
            strip_comment(rule)
                .split_whitespace()
                .find(|w| matches!(*w, "reject" | "drop"))
        })
}

/// A rule drops or rejects everything (nothing but counters/logging before the verdict).
fn is_catch_all_drop(rule: &str) -> bool {
    let words: Vec<&str> = strip_comment(rule).split_whitespace().collect();
    let Some(pos) = words.iter().position(|w| *w == "drop" || *w == "reject") else {
        return false;
    };
    words[..pos].iter().all(|w| {
        NEUTRAL.contains(w)
            || w.chars().all(|c| c.is_ascii_digit())
            || w.starts_with("prefix")
            || w.starts_with('"')
    })
}

fn chain_is_restrictive(chain: &NftChain) -> bool {
    matches!(chain.policy.as_deref(), Some("drop"))
        || chain.rules.iter().any(|r| is_catch_all_drop(r))
}

fn has_other_match(words: &[&str]) -> bool {
    words
        .iter()
        .any(|w| matches!(*w, "saddr" | "daddr" | "dport" | "sport"))
}

fn rule_accepts_udp(rule: &str, port: u16) -> bool {
    let body = strip_comment(rule);
    if verdict(body) != Some("accept") {
        return false;
    }
    let words: Vec<&str> = body.split_whitespace().collect();
    let Some(i) = words
        .windows(2)
        .position(|w| (w[0] == "udp" || w[0] == "th") && w[1] == "dport")
    else {
        return false;
    };
    if words[..i].contains(&"saddr") {
        // Restricted to some sources: not open to the mesh in general.
        return false;
    }
    let spec = &words[i + 2..];
    match spec.first() {
        Some(&"{") => spec[1..]
            .iter()
            .take_while(|w| **w != "}")
            .any(|w| port_in_spec(w.trim_end_matches(','), port)),
        Some(w) => port_in_spec(w, port),
        None => false,
    }
}

fn accepts(
    table: &NftTable,
    chain: &str,
    visited: &mut Vec<String>,
    matches: &dyn Fn(&str) -> bool,
) -> bool {
    if visited.iter().any(|v| v == chain) {
        return false;
    }
    visited.push(chain.to_string());
    let Some(chain) = table.chains.iter().find(|c| c.name == chain) else {
        return false;
    };
    for rule in &chain.rules {
        if is_catch_all_drop(rule) {
            return false;
        }
        if matches(rule) {
            return true;
        }
        let words: Vec<&str> = strip_comment(rule).split_whitespace().collect();
        if let Some(w) = words.windows(2).find(|w| w[0] == "jump" || w[0] == "goto")
            && accepts(table, w[1], visited, matches)
        {
            return true;
        }
    }
    false
}
