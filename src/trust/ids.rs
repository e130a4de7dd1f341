//! The small identifiers of the trust model: cluster id, CA fingerprint, token id, role.
//!
//! Invariants: every id has one canonical text form (lowercase hex, fixed width) and parsing
//! accepts exactly that form, so an id written into a certificate, a token or a log line
//! compares equal byte for byte with the one it was derived from.

use std::fmt;
use std::str::FromStr;

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::TrustError;

pub use crate::raft::types::NodeId;

/// Prefix of the text form of a [`Fingerprint`], naming the hash like kubeadm's
/// `--discovery-token-ca-cert-hash`.
const FINGERPRINT_PREFIX: &str = "sha256:";

/// Fills `N` bytes from the system's secure generator.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], TrustError> {
    let mut bytes = [0u8; N];
    SystemRandom::new().fill(&mut bytes).map_err(|_| TrustError::Random)?;
    Ok(bytes)
}

/// Decodes exactly `N` bytes from lowercase hex.
fn hex_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let bytes = data_encoding::HEXLOWER.decode(text.as_bytes()).ok()?;
    bytes.try_into().ok()
}

/// A cluster's identity: 128 random bits chosen at bootstrap, written into the CA and every
/// node certificate so credentials of one cluster are never mistaken for another's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterId(pub [u8; 16]);

impl ClusterId {
    /// A fresh random cluster id.
    pub fn generate() -> Result<ClusterId, TrustError> {
        Ok(ClusterId(random_bytes()?))
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&data_encoding::HEXLOWER.encode(&self.0))
    }
}

impl FromStr for ClusterId {
    type Err = TrustError;

    /// Exactly 32 lowercase hex digits.
    fn from_str(text: &str) -> Result<ClusterId, TrustError> {
        hex_array(text).map(ClusterId).ok_or(TrustError::IdMalformed { what: "cluster id" })
    }
}

impl Serialize for ClusterId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ClusterId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ClusterId, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// SHA-256 of a CA certificate's SubjectPublicKeyInfo DER: what a join token pins. Hashing the
/// key rather than the whole certificate lets the CA certificate be re-issued with the same key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a SubjectPublicKeyInfo DER.
    pub fn of_spki(spki_der: &[u8]) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, spki_der);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Fingerprint(bytes)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{FINGERPRINT_PREFIX}{}", data_encoding::HEXLOWER.encode(&self.0))
    }
}

impl FromStr for Fingerprint {
    type Err = TrustError;

    /// `sha256:` then exactly 64 lowercase hex digits.
    fn from_str(text: &str) -> Result<Fingerprint, TrustError> {
        text.strip_prefix(FINGERPRINT_PREFIX)
            .and_then(hex_array)
            .map(Fingerprint)
            .ok_or(TrustError::IdMalformed { what: "fingerprint" })
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Fingerprint, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A join token's public id: names the token in the registry and in logs; not a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TokenId(pub u64);

impl TokenId {
    /// A fresh random token id.
    pub fn generate() -> Result<TokenId, TrustError> {
        Ok(TokenId(u64::from_be_bytes(random_bytes()?)))
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// What a member may do: a voter counts in Raft quorums; a learner only receives the log.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A full member: votes and counts in commit quorums.
    #[default]
    Voter,
    /// A non-voting replica.
    Learner,
}

impl Role {
    /// Whether a token issued for `self` may admit a node as `requested`: a voter token may
    /// admit a learner (less power), a learner token never a voter.
    pub fn allows(self, requested: Role) -> bool {
        self == Role::Voter || requested == Role::Learner
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Voter => "voter",
            Role::Learner => "learner",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: every id's text form parses back to the same id, and only the canonical form parses.
    #[test]
    fn text_forms_round_trip_and_are_strict() {
        let id = ClusterId::generate().unwrap();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(text.parse::<ClusterId>().unwrap(), id);
        assert!(
            text.to_uppercase().parse::<ClusterId>().is_err()
                || text.chars().all(|c| c.is_ascii_digit())
        );
        assert!(text[1..].parse::<ClusterId>().is_err());
        let fp = Fingerprint::of_spki(b"key");
        let text = fp.to_string();
        assert!(text.starts_with("sha256:") && text.len() == 7 + 64);
        assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
        assert!(text[7..].parse::<Fingerprint>().is_err());
        assert_eq!(TokenId(0xab).to_string(), "00000000000000ab");
        assert_eq!(Role::Learner.to_string(), "learner");
        let json = serde_json::to_string(&fp).unwrap();
        assert_eq!(serde_json::from_str::<Fingerprint>(&json).unwrap(), fp);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<ClusterId>(&json).unwrap(), id);
    }

    // Goal: a voter token may admit a learner, a learner token never a voter.
    #[test]
    fn role_allows_only_equal_or_less_power() {
        assert!(Role::Voter.allows(Role::Voter));
        assert!(Role::Voter.allows(Role::Learner));
        assert!(Role::Learner.allows(Role::Learner));
        assert!(!Role::Learner.allows(Role::Voter));
    }
}
