//! Join tokens: the text an operator hands to a new node so it can join.
//!
//! Text form: `dqvfs-join1.` then base64url (no padding) of
//! `cluster_id[16] | ca_fingerprint[32] | token_id u64 BE | secret[32] | expires_at_unix_s u64 BE
//!  | role u8 | seed count u8 | per seed: len u8 + UTF-8 "host:port" | crc32 BE`.
//!
//! Invariants: decoding never panics and never allocates more than a bounded multiple of
//! [`TOKEN_TEXT_BYTES_MAX`]; the CRC is checked before any field, so a typo reads as
//! "malformed", never as a wrong secret; the secret never appears in `Debug` or in errors.

use std::fmt;

use super::error::TrustError;
use super::ids::{random_bytes, ClusterId, Fingerprint, Role, TokenId};
use super::proof::{self, role_byte};
pub use super::proof::{
    JoinProof, ProofBinding, TokenVerifier, TLS_EXPORTER_BYTES, TLS_EXPORTER_LABEL,
};

/// The version prefix of the text form.
pub const TOKEN_PREFIX: &str = "dqvfs-join1.";

/// The longest token text accepted, checked before decoding.
pub const TOKEN_TEXT_BYTES_MAX: usize = 4096;

/// The most seed addresses a token carries.
pub const SEEDS_MAX: usize = 8;

/// The longest seed address, in bytes (its length is one byte).
pub const SEED_BYTES_MAX: usize = 255;

/// Bytes before the seeds: cluster id, fingerprint, token id, secret, expiry, role, count.
const FIXED_BYTES: usize = 16 + 32 + 8 + 32 + 8 + 1 + 1;

/// Bytes of the trailing checksum.
const CRC_BYTES: usize = 4;

/// A decoded join token. Holds the secret: keep it out of logs (its `Debug` does).
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// The cluster the token joins.
    pub cluster_id: ClusterId,
    /// The pinned CA: the joiner trusts only a peer presenting a CA with this fingerprint.
    pub ca_fingerprint: Fingerprint,
    /// The token's public id.
    pub id: TokenId,
    /// 256 random bits; only its verifier is stored in the cluster.
    secret: [u8; 32],
    /// After this time the cluster refuses the token.
    pub expires_at_unix_s: u64,
    /// The most powerful role the token admits.
    pub role: Role,
    /// Members to contact, `host:port`.
    pub seeds: Vec<String>,
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("cluster_id", &self.cluster_id)
            .field("ca_fingerprint", &self.ca_fingerprint)
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("expires_at_unix_s", &self.expires_at_unix_s)
            .field("role", &self.role)
            .field("seeds", &self.seeds)
            .finish()
    }
}

fn malformed(reason: &'static str) -> TrustError {
    TrustError::TokenMalformed { reason }
}

fn check_seeds(seeds: &[String]) -> Result<(), TrustError> {
    if seeds.len() > SEEDS_MAX {
        return Err(malformed("more than 8 seed addresses"));
    }
    if seeds.iter().any(|s| s.is_empty() || s.len() > SEED_BYTES_MAX) {
        return Err(malformed("a seed address is empty or longer than 255 bytes"));
    }
    Ok(())
}

impl JoinToken {
    /// A new token with a random id and a random 256-bit secret.
    pub fn generate(
        cluster_id: ClusterId,
        ca_fingerprint: Fingerprint,
        role: Role,
        expires_at_unix_s: u64,
        seeds: Vec<String>,
    ) -> Result<JoinToken, TrustError> {
        check_seeds(&seeds)?;
        Ok(JoinToken {
            cluster_id,
            ca_fingerprint,
            id: TokenId::generate()?,
            secret: random_bytes()?,
            expires_at_unix_s,
            role,
            seeds,
        })
    }

    /// The text form (see the module docs). Seeds beyond the bounds cannot occur: both
    /// constructors check them.
    pub fn encode(&self) -> String {
        let mut payload = Vec::with_capacity(
            FIXED_BYTES + self.seeds.iter().map(|s| 1 + s.len()).sum::<usize>() + CRC_BYTES,
        );
        payload.extend_from_slice(&self.cluster_id.0);
        payload.extend_from_slice(&self.ca_fingerprint.0);
        payload.extend_from_slice(&self.id.0.to_be_bytes());
        payload.extend_from_slice(&self.secret);
        payload.extend_from_slice(&self.expires_at_unix_s.to_be_bytes());
        payload.push(role_byte(self.role));
        assert!(self.seeds.len() <= SEEDS_MAX, "seeds are checked at construction");
        payload.push(self.seeds.len() as u8);
        for seed in &self.seeds {
            assert!(
                !seed.is_empty() && seed.len() <= SEED_BYTES_MAX,
                "seeds are checked at construction"
            );
            payload.push(seed.len() as u8);
            payload.extend_from_slice(seed.as_bytes());
        }
        let crc = crc32fast::hash(&payload);
        payload.extend_from_slice(&crc.to_be_bytes());
        format!("{TOKEN_PREFIX}{}", data_encoding::BASE64URL_NOPAD.encode(&payload))
    }

    /// Parses the text form, ignoring surrounding whitespace (a pasted newline).
    pub fn decode(text: &str) -> Result<JoinToken, TrustError> {
        let text = text.trim();
        if text.len() > TOKEN_TEXT_BYTES_MAX {
            return Err(malformed("longer than 4096 bytes"));
        }
        let body = text.strip_prefix(TOKEN_PREFIX).ok_or_else(|| {
            malformed("it does not start with the expected version prefix dqvfs-join1.")
        })?;
        let payload = data_encoding::BASE64URL_NOPAD
            .decode(body.as_bytes())
            .map_err(|_| malformed("not valid base64url after the prefix"))?;
        if payload.len() < FIXED_BYTES + CRC_BYTES {
            return Err(malformed("too short"));
        }
        let (content, crc) = payload.split_at(payload.len() - CRC_BYTES);
        if crc32fast::hash(content).to_be_bytes() != crc {
            return Err(malformed("checksum mismatch (a typo or a truncated copy)"));
        }
        Self::parse_content(content)
    }

    /// Parses the checksummed bytes.
    fn parse_content(content: &[u8]) -> Result<JoinToken, TrustError> {
        let mut reader = Reader(content);
        let cluster_id = ClusterId(reader.array()?);
        let ca_fingerprint = Fingerprint(reader.array()?);
        let id = TokenId(u64::from_be_bytes(reader.array()?));
        let secret: [u8; 32] = reader.array()?;
        let expires_at_unix_s = u64::from_be_bytes(reader.array()?);
        let role = match reader.byte()? {
            0 => Role::Voter,
            1 => Role::Learner,
            _ => return Err(malformed("unknown role byte")),
        };
        let count = usize::from(reader.byte()?);
        if count > SEEDS_MAX {
            return Err(malformed("more than 8 seed addresses"));
        }
        let mut seeds = Vec::with_capacity(count);
        for _ in 0..count {
            let len = usize::from(reader.byte()?);
            if len == 0 {
                return Err(malformed("an empty seed address"));
            }
            let bytes = reader.take(len)?;
            let seed =
                std::str::from_utf8(bytes).map_err(|_| malformed("a seed address is not UTF-8"))?;
            seeds.push(seed.to_owned());
        }
        if !reader.0.is_empty() {
            return Err(malformed("too long: bytes after the last seed"));
        }
        Ok(JoinToken { cluster_id, ca_fingerprint, id, secret, expires_at_unix_s, role, seeds })
    }

    /// What the cluster stores to check proofs made with this token.
    pub fn verifier(&self) -> TokenVerifier {
        proof::verifier(&self.secret)
    }

    /// Proves knowledge of the secret, bound to `binding`.
    pub fn prove(&self, binding: &ProofBinding<'_>) -> JoinProof {
        proof::prove(&self.secret, binding)
    }
}

/// A cursor over the payload; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], TrustError> {
        if self.0.len() < len {
            return Err(malformed("too short: the payload ends inside a field"));
        }
        let (head, tail) = self.0.split_at(len);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TrustError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, TrustError> {
        Ok(self.take(1)?[0])
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn token(seeds: &[&str]) -> JoinToken {
        let seeds = seeds.iter().map(|s| (*s).to_owned()).collect();
        JoinToken::generate(
            ClusterId([7; 16]),
            Fingerprint([9; 32]),
            Role::Voter,
            1_700_000_000,
            seeds,
        )
        .unwrap()
    }

    fn reason(text: &str) -> &'static str {
        match JoinToken::decode(text) {
            Err(TrustError::TokenMalformed { reason }) => reason,
            other => panic!("expected TokenMalformed, got {other:?}"),
        }
    }

    /// The text of an arbitrary payload, checksummed unless `crc` is false.
    fn wrap(mut payload: Vec<u8>, crc: bool) -> String {
        let sum = crc32fast::hash(&payload).to_be_bytes();
        payload.extend_from_slice(&if crc { sum } else { [0; 4] });
        format!("{TOKEN_PREFIX}{}", data_encoding::BASE64URL_NOPAD.encode(&payload))
    }

    /// The checksummed content of a token, for building bad payloads.
    fn content(t: &JoinToken) -> Vec<u8> {
        let text = t.encode();
        let mut payload =
            data_encoding::BASE64URL_NOPAD.decode(&text.as_bytes()[TOKEN_PREFIX.len()..]).unwrap();
        payload.truncate(payload.len() - CRC_BYTES);
        payload
    }

    // Goal: a token with seeds survives encode/decode, whitespace around it included.
    #[test]
    fn round_trip_with_seeds() {
        let t = token(&["10.0.0.1:7000", "db-2.example:7000"]);
        let text = t.encode();
        assert!(text.starts_with("dqvfs-join1."));
        assert_eq!(JoinToken::decode(&format!("  {text}\n")).unwrap(), t);
        assert_eq!(JoinToken::decode(&token(&[]).encode()).unwrap().seeds.len(), 0);
    }

    // Goal: each kind of damage is reported as malformed, with its own reason.
    #[test]
    fn malformed_tokens_name_their_reason() {
        let t = token(&["a:1"]);
        let text = t.encode();
        assert!(reason(&"x".repeat(TOKEN_TEXT_BYTES_MAX + 1)).contains("4096"));
        assert!(reason(&text.replace("join1", "join2")).contains("prefix dqvfs-join1."));
        assert!(reason(&format!("{text}!")).contains("base64"));
        assert!(reason(&wrap(vec![0; 10], true)).contains("too short"));
        let mut typo = text.clone().into_bytes();
        let last = typo.len() - 10;
        typo[last] = if typo[last] == b'A' { b'B' } else { b'A' };
        assert!(reason(std::str::from_utf8(&typo).unwrap()).contains("checksum"));
        let role_at = 16 + 32 + 8 + 32 + 8;
        let mut bad = content(&t);
        bad[role_at] = 2;
        assert!(reason(&wrap(bad, true)).contains("role"));
        let mut bad = content(&t);
        bad[role_at + 1] = 9;
        assert!(reason(&wrap(bad, true)).contains("more than 8"));
        let mut bad = content(&t);
        bad[role_at + 1] = 2;
        assert!(reason(&wrap(bad, true)).contains("ends inside"));
        let mut bad = content(&t);
        bad.push(0);
        assert!(reason(&wrap(bad, true)).contains("too long"));
        let mut bad = content(&t);
        bad[role_at + 3] = 0xff;
        assert!(reason(&wrap(bad, true)).contains("UTF-8"));
        let mut bad = content(&t);
        bad[role_at + 2] = 0;
        assert!(reason(&wrap(bad, true)).contains("empty seed"));
        assert!(reason(&wrap(content(&t), false)).contains("checksum"));
        assert!(JoinToken::generate(
            t.cluster_id,
            t.ca_fingerprint,
            Role::Voter,
            0,
            vec!["a:1".into(); 9]
        )
        .is_err());
    }

    // Goal: the secret shows neither in Debug nor in any error message.
    #[test]
    fn secret_never_printed() {
        let mut t = token(&["a:1"]);
        t.secret = [0x5a; 32];
        let hex = data_encoding::HEXLOWER.encode(&t.secret);
        let debug = format!("{t:?}");
        assert!(
            !debug.contains(&hex) && !debug.contains("90, 90") && !debug.contains("5a5a"),
            "{debug}"
        );
        let text = t.encode();
        let errors = [
            JoinToken::decode(&text[..text.len() - 3]).unwrap_err(),
            JoinToken::decode(&format!("{text}A")).unwrap_err(),
            TrustError::ProofInvalid,
            TrustError::TokenExpired { id: t.id, expired_at_unix_s: 1 },
        ];
        for e in errors {
            let shown = format!("{e} {e:?}");
            assert!(
                !shown.contains(&hex) && !shown.contains(&text[TOKEN_PREFIX.len()..]),
                "{shown}"
            );
        }
    }

    // Goal: a proof verifies only for the exact session, key, address, role and secret.
    #[test]
    fn proof_is_bound_to_everything() {
        let t = token(&[]);
        let key = b"joiner spki".to_vec();
        let binding = ProofBinding {
            token_id: t.id,
            tls_exporter: [1; 32],
            joiner_public_key_der: &key,
            role: Role::Voter,
            addr: "10.0.0.5:7000",
        };
        let proof = t.prove(&binding);
        let verifier = t.verifier();
        verifier.verify(&binding, &proof).unwrap();
        let other_key = b"another spki".to_vec();
        let variants = [
            ProofBinding { tls_exporter: [2; 32], ..binding },
            ProofBinding { joiner_public_key_der: &other_key, ..binding },
            ProofBinding { addr: "10.0.0.6:7000", ..binding },
            ProofBinding { role: Role::Learner, ..binding },
            ProofBinding { token_id: TokenId(t.id.0 ^ 1), ..binding },
        ];
        for other in variants {
            assert!(matches!(verifier.verify(&other, &proof), Err(TrustError::ProofInvalid)));
        }
        let stranger = token(&[]);
        assert!(matches!(
            verifier.verify(&binding, &stranger.prove(&binding)),
            Err(TrustError::ProofInvalid)
        ));
        assert_ne!(stranger.verifier(), verifier);
        let bytes = rmp_serde::to_vec(&(verifier, proof)).unwrap();
        assert_eq!(
            rmp_serde::from_slice::<(TokenVerifier, JoinProof)>(&bytes).unwrap(),
            (verifier, proof)
        );
    }

    fn arb_token() -> impl Strategy<Value = JoinToken> {
        let seed = "[a-z0-9.:\\-é]{1,60}";
        (
            any::<[u8; 16]>(),
            any::<[u8; 32]>(),
            any::<u64>(),
            any::<[u8; 32]>(),
            any::<u64>(),
            any::<bool>(),
            prop::collection::vec(seed, 0..=SEEDS_MAX),
        )
            .prop_map(|(c, f, id, secret, exp, learner, seeds)| JoinToken {
                cluster_id: ClusterId(c),
                ca_fingerprint: Fingerprint(f),
                id: TokenId(id),
                secret,
                expires_at_unix_s: exp,
                role: if learner { Role::Learner } else { Role::Voter },
                seeds,
            })
    }

    proptest! {
        // Goal: decode never panics on arbitrary text.
        #[test]
        fn decode_never_panics_on_text(text in "\\PC{0,8192}") {
            let _ = JoinToken::decode(&text);
        }

        // Goal: decode never panics on arbitrary payloads behind a valid prefix, checksummed
        // or not.
        #[test]
        fn decode_never_panics_on_payloads(payload in prop::collection::vec(any::<u8>(), 0..3000), crc in any::<bool>()) {
            let _ = JoinToken::decode(&wrap(payload, crc));
        }

        // Goal: decode(encode(t)) == t for arbitrary field values.
        #[test]
        fn encode_decode_round_trips(t in arb_token()) {
            prop_assert_eq!(JoinToken::decode(&t.encode()).unwrap(), t);
        }
    }
}
