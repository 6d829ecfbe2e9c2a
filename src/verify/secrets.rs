//! The preshared keys of a pair, compared without a key ever leaving its host: each host
//! reports the digest prefix of its PSK file for every peer and (verify's gather) of the
//! PSK its interface runs with every peer; two sides that hold different keys, or one
//! that holds none, are named. Pure.
use std::collections::BTreeMap;

use super::diagnosis::Diagnosis;
use crate::facts::{KeyFacts, KeyFileState};
use crate::keys::PublicKey;

/// A preshared key as one side holds it, by digest prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PskHeld {
    /// No preshared key.
    None,
    /// A key with this digest prefix.
    Digest(String),
    /// A file that holds no valid key, or a digest the host could not compute.
    Unreadable,
}

/// What one host's gathered facts say about its preshared keys. Never a key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PskEvidence {
    /// The PSK file for each peer, by peer name (only gathered when the mesh uses PSKs).
    pub files: BTreeMap<String, PskHeld>,
    /// The PSK the interface runs with each peer, by the peer's public key (empty when
    /// the host did not report it).
    pub live: BTreeMap<PublicKey, PskHeld>,
}

impl PskEvidence {
    /// From a host's keys fact. `peers` are the peer names whose files were asked for:
    /// a peer without a line has no file.
    pub fn from_keys<'a>(keys: &KeyFacts, peers: impl IntoIterator<Item = &'a str>) -> Self {
        let files = peers
            .into_iter()
            .map(|peer| {
                let held = match (keys.psks.get(peer), keys.psk_digests.get(peer)) {
                    (None | Some(KeyFileState::Absent), _) => PskHeld::None,
                    (Some(KeyFileState::Valid), Some(d)) => PskHeld::Digest(d.clone()),
                    _ => PskHeld::Unreadable,
                };
                (peer.to_owned(), held)
            })
            .collect();
        let live = keys
            .live_psk_digests
            .iter()
            .map(|(peer, digest)| {
                let held = digest.clone().map_or(PskHeld::None, PskHeld::Digest);
                (*peer, held)
            })
            .collect();
        PskEvidence { files, live }
    }
}

/// One side of a pair: its node name, the PSK evidence of its host, and the public key
/// of its entry for the other side.
#[derive(Debug, Clone, Copy)]
pub struct PskSide<'a> {
    /// The node.
    pub node: &'a str,
    /// Its host's evidence (`None`: no facts from it).
    pub evidence: Option<&'a PskEvidence>,
    /// The public key of its entry for the other side.
    pub entry: Option<PublicKey>,
}

impl PskSide<'_> {
    fn live(&self) -> Option<&PskHeld> {
        self.evidence?.live.get(&self.entry?)
    }

    fn file(&self, peer: &str) -> Option<&PskHeld> {
        self.evidence?.files.get(peer)
    }
}

/// The PSK finding of a direct pair, when its two sides hold different preshared keys:
/// the keys their interfaces run where both reported them (what decides the handshake),
/// else their files. A side whose interface runs another key than its file is named too.
/// The side whose name sorts first is `a` in the finding.
pub fn psk_mismatch<'a>(a: PskSide<'a>, b: PskSide<'a>) -> Option<Diagnosis> {
    // Both directions of a pair give the same finding.
    let (a, b) = if a.node <= b.node { (a, b) } else { (b, a) };
    let (file_a, file_b) = (a.file(b.node), b.file(a.node));
    let (held_a, held_b) = match (a.live(), b.live()) {
        (Some(la), Some(lb)) => (la, lb),
        _ => (file_a?, file_b?),
    };
    if held_a == held_b || [held_a, held_b].contains(&&PskHeld::Unreadable) {
        return None;
    }
    let only = match (held_a, held_b) {
        (PskHeld::Digest(_), PskHeld::None) => Some(a.node.to_owned()),
        (PskHeld::None, PskHeld::Digest(_)) => Some(b.node.to_owned()),
        _ => None,
    };
    let live_not_file: Vec<String> = [(a, file_a), (b, file_b)]
        .into_iter()
        .filter(
            |(side, file)| matches!((side.live(), file), (Some(live), Some(file)) if live != *file),
        )
        .map(|(side, _)| side.node.to_owned())
        .collect();
    let files_agree = match (file_a, file_b) {
        (Some(fa), Some(fb)) => fa == fb && *fa != PskHeld::Unreadable,
        _ => false,
    };
    Some(Diagnosis::PskMismatch {
        a: a.node.to_owned(),
        b: b.node.to_owned(),
        only,
        live_not_file,
        files_agree,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> PublicKey {
        PublicKey::from_bytes([i; 32]).expect("key")
    }

    fn held(text: &str) -> PskHeld {
        match text {
            "none" => PskHeld::None,
            "?" => PskHeld::Unreadable,
            d => PskHeld::Digest(d.to_owned()),
        }
    }

    /// `file` and `live` as "" (not reported), "none", "?" or a digest.
    fn evidence(peer: &str, peer_key: PublicKey, file: &str, live: &str) -> PskEvidence {
        let mut ev = PskEvidence::default();
        if !file.is_empty() {
            ev.files.insert(peer.to_owned(), held(file));
        }
        if !live.is_empty() {
            ev.live.insert(peer_key, held(live));
        }
        ev
    }

    #[test]
    fn pairs_are_named_by_what_their_sides_hold() {
        // (file a, live a, file b, live b) → (only, live_not_file, files_agree), or no finding.
        type Case = (
            &'static str,
            [&'static str; 4],
            Option<(Option<&'static str>, &'static [&'static str], bool)>,
        );
        let cases: [Case; 11] = [
            ("same everywhere", ["d1", "d1", "d1", "d1"], None),
            ("no PSK anywhere", ["none", "none", "none", "none"], None),
            (
                "files differ, live follows",
                ["d1", "d1", "d2", "d2"],
                Some((None, &[], false)),
            ),
            (
                "files differ, no live report",
                ["d1", "", "d2", ""],
                Some((None, &[], false)),
            ),
            (
                "one file missing",
                ["d1", "", "none", ""],
                Some((Some("node-a"), &[], false)),
            ),
            (
                "live differs from a file that agrees",
                ["d1", "d1", "d1", "d9"],
                Some((None, &["node-c"], true)),
            ),
            (
                "one side runs none",
                ["d1", "none", "d1", "d1"],
                Some((Some("node-c"), &["node-a"], true)),
            ),
            (
                "files differ, live agrees: the tunnel works",
                ["d1", "d1", "d2", "d1"],
                None,
            ),
            (
                "one side's live unknown: the files decide",
                ["d1", "d1", "d2", ""],
                Some((None, &[], false)),
            ),
            (
                "an unreadable file is not compared",
                ["?", "", "d1", ""],
                None,
            ),
            ("nothing reported by b", ["d1", "d1", "", ""], None),
        ];
        let (ka, kc) = (key(1), key(3));
        for (what, [fa, la, fc, lc], want) in cases {
            let ev_a = evidence("node-c", kc, fa, la);
            let ev_c = evidence("node-a", ka, fc, lc);
            let side_a = PskSide {
                node: "node-a",
                evidence: Some(&ev_a),
                entry: Some(kc),
            };
            let side_c = PskSide {
                node: "node-c",
                evidence: Some(&ev_c),
                entry: Some(ka),
            };
            let got = psk_mismatch(side_a, side_c);
            let want = want.map(|(only, live, agree)| Diagnosis::PskMismatch {
                a: "node-a".into(),
                b: "node-c".into(),
                only: only.map(str::to_owned),
                live_not_file: live.iter().map(|s| (*s).to_owned()).collect(),
                files_agree: agree,
            });
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn messages_say_who_holds_what_and_what_repairs_it() {
        let d = |only: Option<&str>, live: &[&str], files_agree| Diagnosis::PskMismatch {
            a: "node-a".into(),
            b: "node-c".into(),
            only: only.map(str::to_owned),
            live_not_file: live.iter().map(|s| (*s).to_owned()).collect(),
            files_agree,
        };
        let cases = [
            (
                d(None, &[], false),
                "preshared keys of node-a and node-c differ: run apply",
            ),
            (
                d(Some("node-a"), &[], false),
                "node-a uses a preshared key with node-c, node-c uses none: run apply",
            ),
            (
                d(None, &["node-c"], true),
                "preshared keys of node-a and node-c differ: node-c's interface does not run the preshared key in its key file; reload its config there (`wg syncconf wg0 <(wg-quick strip wg0)` on node-c)",
            ),
            (
                d(Some("node-c"), &["node-a"], false),
                "node-c uses a preshared key with node-a, node-a uses none: node-a's interface does not run the preshared key in its key file; run apply",
            ),
        ];
        for (diagnosis, text) in cases {
            assert_eq!(diagnosis.to_string().replace("<if>", "wg0"), text);
        }
    }

    #[test]
    fn evidence_reads_file_states_and_live_digests() {
        let keys = KeyFacts::parse(&format!(
            "psk=node-b valid 0123456789abcdef\npsk=node-c invalid\npsk=node-d absent\npsk_live={} none\npsk_live={} fedcba9876543210\n",
            key(2),
            key(3)
        ));
        let ev = PskEvidence::from_keys(&keys, ["node-b", "node-c", "node-d", "node-e"]);
        assert_eq!(ev.files["node-b"], held("0123456789abcdef"));
        assert_eq!(ev.files["node-c"], PskHeld::Unreadable);
        assert_eq!(ev.files["node-d"], PskHeld::None);
        assert_eq!(ev.files["node-e"], PskHeld::None);
        assert_eq!(ev.live[&key(2)], PskHeld::None);
        assert_eq!(ev.live[&key(3)], held("fedcba9876543210"));
    }
}
