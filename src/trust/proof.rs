//! Proving knowledge of a join token's secret, bound to one TLS session and one key.
//!
//! The registry stores a [`TokenVerifier`]: the Ed25519 public key whose seed is derived from
//! the secret. A joiner signs a [`ProofBinding`] with the matching private key. Invariants:
//! - the stored verifier cannot make a proof (it is a public key, unlike a hash of the secret
//!   that would double as an HMAC key), so a leaked registry does not let anyone join;
//! - the signed message names the TLS exporter (unique per session), the joiner's public key,
//!   the role and the address, so a captured proof is useless on another connection, for
//!   another key, or for another role or address.
//! - the message encoding is injective: fixed-width fields, the address last and
//!   length-prefixed.

use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};

use super::error::TrustError;
use super::ids::{Role, TokenId};

/// The label of the TLS exporter (RFC 8446 §7.5) both sides derive the session binding with.
pub const TLS_EXPORTER_LABEL: &[u8] = b"EXPORTER-dqlite-vfs-join-v1";

/// Bytes taken from the TLS exporter.
pub const TLS_EXPORTER_BYTES: usize = 32;

/// Domain separation of the key derived from a token secret.
const KEY_DERIVATION_CONTEXT: &[u8] = b"dqlite-vfs token key v1";

/// Domain separation of the signed proof message.
const PROOF_CONTEXT: &[u8] = b"dqlite-vfs join proof v1";

/// What a join proof is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProofBinding<'a> {
    /// The token being used.
    pub token_id: TokenId,
    /// `export_keying_material(TLS_EXPORTER_LABEL, no context)` of the join connection.
    pub tls_exporter: [u8; TLS_EXPORTER_BYTES],
    /// The SubjectPublicKeyInfo DER of the key the joiner wants certified.
    pub joiner_public_key_der: &'a [u8],
    /// The role asked for.
    pub role: Role,
    /// The address the joiner will serve on.
    pub addr: &'a str,
}

impl ProofBinding<'_> {
    /// The exact bytes signed.
    fn message(&self) -> Vec<u8> {
        let key_hash = ring::digest::digest(&ring::digest::SHA256, self.joiner_public_key_der);
        let addr = self.addr.as_bytes();
        // An address longer than u16::MAX keeps the saturated length; the encoding stays
        // injective because the address is the last field.
        let addr_len = u16::try_from(addr.len()).unwrap_or(u16::MAX);
        let mut message = Vec::with_capacity(
            PROOF_CONTEXT.len() + 8 + TLS_EXPORTER_BYTES + 32 + 1 + 2 + addr.len(),
        );
        message.extend_from_slice(PROOF_CONTEXT);
        message.extend_from_slice(&self.token_id.0.to_be_bytes());
        message.extend_from_slice(&self.tls_exporter);
        message.extend_from_slice(key_hash.as_ref());
        message.push(role_byte(self.role));
        message.extend_from_slice(&addr_len.to_be_bytes());
        message.extend_from_slice(addr);
        message
    }
}

/// The wire byte of a role (also used in the token payload).
pub(crate) fn role_byte(role: Role) -> u8 {
    match role {
        Role::Voter => 0,
        Role::Learner => 1,
    }
}

/// The signing key of a token secret.
fn signing_key(secret: &[u8; 32]) -> Ed25519KeyPair {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let seed = ring::hmac::sign(&key, KEY_DERIVATION_CONTEXT);
    Ed25519KeyPair::from_seed_unchecked(seed.as_ref())
        .expect("an HMAC-SHA256 tag is a 32-byte Ed25519 seed")
}

/// Signs `binding` with the key of `secret`.
pub(crate) fn prove(secret: &[u8; 32], binding: &ProofBinding<'_>) -> JoinProof {
    let signature = signing_key(secret).sign(&binding.message());
    let mut bytes = [0u8; 64];
    bytes.copy_from_slice(signature.as_ref());
    JoinProof(bytes)
}

/// The verifier of a token secret.
pub(crate) fn verifier(secret: &[u8; 32]) -> TokenVerifier {
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(signing_key(secret).public_key().as_ref());
    TokenVerifier(bytes)
}

/// What the registry stores for a token: the Ed25519 public key of the token's signing key.
/// Not a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenVerifier(#[serde(with = "serde_bytes")] pub [u8; 32]);

impl TokenVerifier {
    /// Checks that `proof` signs `binding` with this token's key.
    pub fn verify(&self, binding: &ProofBinding<'_>, proof: &JoinProof) -> Result<(), TrustError> {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&binding.message(), &proof.0)
            .map_err(|_| TrustError::ProofInvalid)
    }
}

/// A joiner's proof that it holds a token's secret: an Ed25519 signature. Not a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinProof(#[serde(with = "serde_bytes")] pub [u8; 64]);
