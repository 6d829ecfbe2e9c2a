//! The underlay address families a node is reached on (IPv4, IPv6, both), from its
//! endpoints: what decides which endpoint a pair uses and which pairs need a relay.
use std::fmt;
use std::net::IpAddr;

use super::{Endpoint, EndpointHost};

/// The IP families of the underlay (the network WireGuard's UDP runs over) a node has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Underlay {
    /// Reached on (and sends from) IPv4.
    pub v4: bool,
    /// Reached on (and sends from) IPv6.
    pub v6: bool,
}

impl Underlay {
    /// IPv4 only: a node behind NAT, or one with an IPv4 endpoint.
    pub const V4: Underlay = Underlay {
        v4: true,
        v6: false,
    };
    /// IPv6 only.
    pub const V6: Underlay = Underlay {
        v4: false,
        v6: true,
    };
    /// Both families.
    pub const DUAL: Underlay = Underlay { v4: true, v6: true };

    /// A node's families from its endpoints: an IPv4 literal gives IPv4, an IPv6 literal
    /// IPv6, a DNS name both (what it resolves to is only known on the hosts); `endpoint6`
    /// adds IPv6. A node without endpoint (behind NAT) is IPv4.
    pub fn of(endpoint: Option<&Endpoint>, endpoint6: Option<&Endpoint>) -> Underlay {
        let family = |e: &Endpoint| match e.host {
            EndpointHost::Ip(IpAddr::V4(_)) => Underlay::V4,
            EndpointHost::Ip(IpAddr::V6(_)) => Underlay::V6,
            EndpointHost::Dns(_) => Underlay::DUAL,
        };
        match (endpoint, endpoint6) {
            (None, _) => Underlay::V4,
            (Some(e), None) => family(e),
            (Some(e), Some(_)) => family(e).union(Underlay::V6),
        }
    }

    /// Both families' union.
    pub fn union(self, other: Underlay) -> Underlay {
        Underlay {
            v4: self.v4 || other.v4,
            v6: self.v6 || other.v6,
        }
    }

    /// The families both have.
    pub fn common(self, other: Underlay) -> Underlay {
        Underlay {
            v4: self.v4 && other.v4,
            v6: self.v6 && other.v6,
        }
    }

    /// Whether the two share a family (a packet can go from one to the other).
    pub fn meets(self, other: Underlay) -> bool {
        !self.common(other).is_empty()
    }

    /// Whether `self` has every family of `other`.
    pub fn covers(self, other: Underlay) -> bool {
        self.common(other) == other
    }

    /// No family at all.
    pub fn is_empty(self) -> bool {
        !self.v4 && !self.v6
    }
}

impl fmt::Display for Underlay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.v4, self.v6) {
            (true, true) => "IPv4 and IPv6",
            (true, false) => "IPv4 only",
            (false, true) => "IPv6 only",
            (false, false) => "no address family",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(text: &str) -> Endpoint {
        Endpoint::parse(text, 51820).expect("valid endpoint")
    }

    #[test]
    fn families_come_from_the_endpoints() {
        let cases: &[(Option<&str>, Option<&str>, Underlay)] = &[
            (None, None, Underlay::V4),
            (Some("203.0.113.1"), None, Underlay::V4),
            (Some("[2001:db8::5]:51820"), None, Underlay::V6),
            (Some("vpn.example.com"), None, Underlay::DUAL),
            (
                Some("203.0.113.1"),
                Some("[2001:db8::5]:51820"),
                Underlay::DUAL,
            ),
            (Some("203.0.113.1"), Some("v6.example.com"), Underlay::DUAL),
        ];
        for (e, e6, want) in cases {
            let (e, e6) = (e.map(endpoint), e6.map(endpoint));
            assert_eq!(Underlay::of(e.as_ref(), e6.as_ref()), *want, "{e:?} {e6:?}");
        }
    }

    #[test]
    fn meets_and_covers() {
        let cases = [
            (Underlay::V4, Underlay::V4, true, true),
            (Underlay::V4, Underlay::V6, false, false),
            (Underlay::DUAL, Underlay::V6, true, true),
            (Underlay::V6, Underlay::DUAL, true, false),
        ];
        for (a, b, meets, covers) in cases {
            assert_eq!(a.meets(b), meets, "{a} meets {b}");
            assert_eq!(a.covers(b), covers, "{a} covers {b}");
        }
    }
}
