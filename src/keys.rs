//! WireGuard public keys.
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A WireGuard (Curve25519) public key: exactly 32 bytes, written as standard base64.
///
/// Parsing rejects anything that is not canonical base64 of 32 bytes, and the all-zero
/// key (what `wg` shows for an unset key), so a value read from a host can be put in a
/// config or a command without further checks.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

/// Why a string is not a valid [`PublicKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicKeyError {
    /// The text is not base64.
    #[error("public key is not valid base64")]
    NotBase64,
    /// The decoded key does not have 32 bytes.
    #[error("public key must be 32 bytes, found {0}")]
    WrongLength(usize),
    /// The key is all zeroes.
    #[error("public key is all zeroes")]
    AllZero,
}

impl PublicKey {
    /// Builds a key from raw bytes (e.g. derived with x25519-dalek).
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, PublicKeyError> {
        if bytes.iter().all(|b| *b == 0) {
            return Err(PublicKeyError::AllZero);
        }
        Ok(Self(bytes))
    }

    /// The 32 raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for PublicKey {
    type Err = PublicKeyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        // 32 bytes are always 44 base64 characters; checking first bounds the decode work.
        if text.len() != 44 {
            return match STANDARD.decode(text) {
                Ok(bytes) => Err(PublicKeyError::WrongLength(bytes.len())),
                Err(_) => Err(PublicKeyError::NotBase64),
            };
        }
        let bytes = STANDARD
            .decode(text)
            .map_err(|_| PublicKeyError::NotBase64)?;
        let array: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| PublicKeyError::WrongLength(bytes.len()))?;
        // Reject non-canonical encodings (trailing bits set) so text round-trips.
        if STANDARD.encode(array) != text {
            return Err(PublicKeyError::NotBase64);
        }
        Self::from_bytes(array)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(self.0))
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_valid_key() {
        let text = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
        let key: PublicKey = text.parse().expect("valid key");
        assert_eq!(key.to_string(), text);
    }

    #[test]
    fn rejects_bad_keys() {
        let cases = [
            ("", PublicKeyError::WrongLength(0)),
            ("not base64 at all!", PublicKeyError::NotBase64),
            ("AAAA", PublicKeyError::WrongLength(3)),
            (
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                PublicKeyError::AllZero,
            ),
            (
                "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dh=",
                PublicKeyError::NotBase64,
            ),
            (
                "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMk",
                PublicKeyError::WrongLength(36),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<PublicKey>(), Err(want), "input {text:?}");
        }
    }
}
