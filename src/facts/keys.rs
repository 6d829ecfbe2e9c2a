//! The `keys` fact: state of the host's key files, never their secret contents.

use std::collections::BTreeMap;

use serde::Serialize;

use super::sections::key_values;
use crate::keys::PublicKey;

/// State of a secret key file on the host (content never leaves the host).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyFileState {
    /// The file does not exist (or the fact was not gathered).
    #[default]
    Absent,
    /// The file exists but does not hold exactly one well-formed key.
    Invalid,
    /// The file holds one well-formed key.
    Valid,
}

impl KeyFileState {
    fn parse(text: &str) -> KeyFileState {
        match text.trim() {
            "valid" => KeyFileState::Valid,
            "invalid" => KeyFileState::Invalid,
            _ => KeyFileState::Absent,
        }
    }
}

/// State of `public.key` on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PublicKeyFile {
    /// No public.key.
    #[default]
    Absent,
    /// public.key exists but is not a well-formed key.
    Invalid,
    /// public.key holds this key.
    Present(PublicKey),
}

/// A PSK digest prefix as the gather prints it: 16 hex digits (anything else could be a
/// key, and is dropped).
fn is_digest(text: &str) -> bool {
    text.len() == 16 && text.chars().all(|c| c.is_ascii_hexdigit())
}

/// The host's keys: private key state, the public key derived from it on the host,
/// public.key, and the PSK file of every expected peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeyFacts {
    /// State of `private.key`.
    pub private_key: KeyFileState,
    /// `wg pubkey < private.key`, computed on the host.
    pub derived_public_key: Option<PublicKey>,
    /// State of `public.key`.
    pub public_key_file: PublicKeyFile,
    /// `psk-<peer>.key` state per expected peer name.
    pub psks: BTreeMap<String, KeyFileState>,
    /// Truncated SHA-256 of each valid PSK file, to compare the two sides of a pair.
    pub psk_digests: BTreeMap<String, String>,
    /// Seconds since `private.key` was written (its age), when readable.
    pub private_key_age_secs: Option<u64>,
    /// Truncated SHA-256 of the preshared key the live interface runs with each peer (by
    /// the peer's public key; `None`: no preshared key), hashed on the host like the
    /// files. Only verify's gather reads it ([`super::GatherParams::with_live_psks`]).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub live_psk_digests: BTreeMap<PublicKey, Option<String>>,
}

impl KeyFacts {
    /// Parses the `keys` section.
    pub fn parse(body: &str) -> KeyFacts {
        let mut keys = KeyFacts::default();
        for (key, value) in key_values(body) {
            match key {
                "private_key" => keys.private_key = KeyFileState::parse(value),
                "private_key_age" => keys.private_key_age_secs = value.parse().ok(),
                "derived_public_key" => keys.derived_public_key = value.parse().ok(),
                "public_key" => {
                    keys.public_key_file = match value {
                        "absent" | "" => PublicKeyFile::Absent,
                        other => other
                            .parse()
                            .map(PublicKeyFile::Present)
                            .unwrap_or(PublicKeyFile::Invalid),
                    }
                }
                "psk" => {
                    let mut words = value.split(' ');
                    if let (Some(peer), Some(state)) = (words.next(), words.next()) {
                        // Absent is what a missing entry means: not kept (N per host).
                        let state = KeyFileState::parse(state);
                        if state != KeyFileState::Absent {
                            keys.psks.insert(peer.to_string(), state);
                        }
                        if let Some(digest) = words.next().filter(|d| is_digest(d)) {
                            keys.psk_digests
                                .insert(peer.to_string(), digest.to_string());
                        }
                    }
                }
                "psk_live" => {
                    let mut words = value.split(' ');
                    if let (Some(Ok(peer)), Some(digest)) =
                        (words.next().map(str::parse::<PublicKey>), words.next())
                    {
                        if digest == "none" {
                            keys.live_psk_digests.insert(peer, None);
                        } else if is_digest(digest) {
                            keys.live_psk_digests.insert(peer, Some(digest.to_string()));
                        }
                    }
                }
                _ => {}
            }
        }
        keys
    }

    /// The host's public key: the one derived from private.key.
    pub fn public_key(&self) -> Option<PublicKey> {
        self.derived_public_key
    }

    /// public.key exists and equals the key derived from private.key.
    pub fn public_key_matches(&self) -> bool {
        match (&self.derived_public_key, &self.public_key_file) {
            (Some(derived), PublicKeyFile::Present(file)) => derived == file,
            _ => false,
        }
    }
}
