//! The cluster CA, node keys and node certificates.
//!
//! Invariants:
//! - the CA's subject is rebuilt deterministically from the cluster id ([`ca_params`]), so the
//!   issuer name and key identifier written into node certificates always equal the CA
//!   certificate's; [`ClusterCa::from_pem`] recovers the cluster id from the subject's OU;
//! - the CA key is held only where this node was given it (`Option`); issuing without it is an
//!   error, never a silent self-signature;
//! - a node's private key never leaves the node: the CA certifies a public key it is handed;
//! - every node certificate names exactly one node of one cluster in a URI SAN
//!   ([`peer::node_uri`]) and expires ([`NODE_CERT_VALIDITY`]);
//! - a key is paired only with the certificate that certifies it (SPKI comparison).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;

use super::error::TrustError;
use super::files::{read_optional, write_atomic};
use super::ids::{random_bytes, ClusterId, Fingerprint, NodeId};
use super::peer::{cert_spki, parse_cert};
pub use super::peer::{node_uri, peer_identity, PeerIdentity, CERT_DER_BYTES_MAX};
/// File names used by `save`/`load` in a state directory.
pub(crate) use crate::state_layout::{CA_CERT_FILE, CA_KEY_FILE, NODE_CERT_FILE, NODE_KEY_FILE};

/// The DNS name in every node certificate, and the server name every client asks for: the
/// CA, not the name, is what is checked, so a member may move without a new certificate.
pub const CLUSTER_SERVER_NAME: &str = "dqlite-vfs.cluster";

/// How long a node certificate is valid.
pub const NODE_CERT_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);

/// A certificate is renewed once it expires within this.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Environment variable that shortens the lifetime of the certificates a node issues, in
/// seconds (at least [`CERT_VALIDITY_MIN`]): for tests and renewal drills. Unset: 90 days.
pub const CERT_VALIDITY_ENV: &str = "DQLITE_VFS_CERT_VALIDITY_S";

/// The shortest lifetime [`CERT_VALIDITY_ENV`] may ask for.
pub const CERT_VALIDITY_MIN: Duration = Duration::from_secs(15);

/// The lifetime of the certificates this node issues: [`NODE_CERT_VALIDITY`], unless
/// [`CERT_VALIDITY_ENV`] says otherwise.
pub fn cert_validity() -> Duration {
    std::env::var(CERT_VALIDITY_ENV)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map_or(NODE_CERT_VALIDITY, |seconds| Duration::from_secs(seconds).max(CERT_VALIDITY_MIN))
}

/// How long before its expiry a certificate of lifetime `validity` is renewed: a third of
/// its life ([`RENEW_BEFORE`] of [`NODE_CERT_VALIDITY`]).
pub fn renew_before(validity: Duration) -> Duration {
    validity / 3
}

/// How far back a certificate's validity starts, for members whose clocks run behind.
const CLOCK_SKEW_S: u64 = 5 * 60;

/// Subject common name of cluster CAs; part of every node certificate's issuer name, so it
/// must never change for an existing cluster.
const CA_COMMON_NAME: &str = "dqlite-vfs cluster CA";

/// Subject common name of node certificates.
const NODE_COMMON_NAME: &str = "dqlite-vfs node";

/// The parameters of the CA of `cluster_id`: deterministic (see the module docs).
fn ca_params(cluster_id: ClusterId) -> Result<CertificateParams, TrustError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name.push(DnType::OrganizationalUnitName, cluster_id.to_string());
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn parse_cert_pem(pem: &str) -> Result<CertificateDer<'static>, TrustError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| TrustError::Pem(Box::new(e)))
}

fn parse_key_pem(pem: &str) -> Result<KeyPair, TrustError> {
    // rcgen's message names the PEM problem, never the key bytes.
    KeyPair::from_pem(pem).map_err(|e| TrustError::Pem(Box::new(e)))
}

/// A certificate embeds its subject's public key; a key whose SPKI differs is the wrong key
/// (mixed-up files), which would otherwise only show as failing handshakes.
fn ensure_key_matches(cert: &CertificateDer<'_>, key: &KeyPair) -> Result<(), TrustError> {
    if cert_spki(cert)? == key.subject_public_key_info() {
        Ok(())
    } else {
        Err(TrustError::KeyMismatch)
    }
}

/// A certificate issued by the CA for someone else's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// When it expires.
    pub not_after_unix_s: u64,
}

/// The cluster's certificate authority: its certificate, and its signing key where this node
/// holds it.
#[derive(Clone)]
pub struct ClusterCa {
    cluster_id: ClusterId,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    fingerprint: Fingerprint,
    key_pem: Option<String>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never in logs.
        write!(
            f,
            "ClusterCa({}, {}, key held: {})",
            self.cluster_id,
            self.fingerprint,
            self.has_key()
        )
    }
}

impl ClusterCa {
    /// A new CA with a fresh key, for a new cluster.
    pub fn generate(cluster_id: ClusterId) -> Result<ClusterCa, TrustError> {
        let key = KeyPair::generate()?;
        let cert = ca_params(cluster_id)?.self_signed(&key)?;
        ClusterCa::from_pem(&cert.pem(), Some(&key.serialize_pem()))
    }

    /// Loads a CA from its certificate PEM and, where held, its key PEM. The cluster id is
    /// read from the certificate's subject; a key must belong to the certificate.
    pub fn from_pem(cert_pem: &str, key_pem: Option<&str>) -> Result<ClusterCa, TrustError> {
        let cert_der = parse_cert_pem(cert_pem)?;
        let cert = parse_cert(&cert_der)?;
        let subject = cert.subject();
        let cn = subject.iter_common_name().next().and_then(|a| a.as_str().ok());
        if cn != Some(CA_COMMON_NAME) {
            return Err(TrustError::Certificate(
                "not a dqlite-vfs cluster CA (common name)".into(),
            ));
        }
        let ou = subject.iter_organizational_unit().next().and_then(|a| a.as_str().ok());
        let cluster_id = ou
            .and_then(|ou| ou.parse().ok())
            .ok_or_else(|| TrustError::Certificate("the CA names no cluster id".into()))?;
        let fingerprint = Fingerprint::of_spki(cert.public_key().raw);
        let ca = ClusterCa {
            cluster_id,
            cert_pem: cert_pem.to_owned(),
            cert_der: cert_der.clone(),
            fingerprint,
            key_pem: None,
        };
        match key_pem {
            Some(key_pem) => ca.with_key(key_pem),
            None => Ok(ca),
        }
    }

    /// This CA with its signing key added (a voter receiving the key later), checking that
    /// the key belongs to the certificate.
    pub fn with_key(&self, key_pem: &str) -> Result<ClusterCa, TrustError> {
        ensure_key_matches(&self.cert_der, &parse_key_pem(key_pem)?)?;
        Ok(ClusterCa { key_pem: Some(key_pem.to_owned()), ..self.clone() })
    }

    /// The cluster this CA belongs to.
    pub fn cluster_id(&self) -> ClusterId {
        self.cluster_id
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA signing key, PEM (a secret), if this node holds it.
    pub fn key_pem(&self) -> Option<&str> {
        self.key_pem.as_deref()
    }

    /// Whether this node holds the signing key.
    pub fn has_key(&self) -> bool {
        self.key_pem.is_some()
    }

    /// What join tokens pin.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Writes the CA into `dir` atomically (the key only if held).
    pub fn save(&self, dir: &Path) -> Result<(), TrustError> {
        write_atomic(dir, CA_CERT_FILE, self.cert_pem.as_bytes())?;
        match &self.key_pem {
            Some(key) => write_atomic(dir, CA_KEY_FILE, key.as_bytes()),
            None => Ok(()),
        }
    }

    /// Reads a CA written by [`Self::save`]; an absent key file means the key is not held.
    pub fn load(dir: &Path) -> Result<ClusterCa, TrustError> {
        let cert = std::fs::read_to_string(dir.join(CA_CERT_FILE))?;
        let key = read_optional(dir, CA_KEY_FILE)?;
        ClusterCa::from_pem(&cert, key.as_deref())
    }

    /// Signs a certificate naming `node_id` of `cluster_id` for `subject_public_key_der` (a
    /// SubjectPublicKeyInfo the CA does not hold the private half of), valid from
    /// `now_unix_s` minus the clock skew allowance for `validity`.
    pub fn issue(
        &self,
        subject_public_key_der: &[u8],
        cluster_id: ClusterId,
        node_id: NodeId,
        validity: Duration,
        now_unix_s: u64,
    ) -> Result<IssuedCert, TrustError> {
        let key_pem = self.key_pem.as_deref().ok_or(TrustError::NoCaKey)?;
        if cluster_id != self.cluster_id {
            return Err(TrustError::WrongCluster);
        }
        if subject_public_key_der.len() > CERT_DER_BYTES_MAX {
            return Err(TrustError::Certificate("the public key is implausibly large".into()));
        }
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(subject_public_key_der)?;
        let mut params = CertificateParams::new(vec![CLUSTER_SERVER_NAME.to_owned()])?;
        params.subject_alt_names.push(SanType::URI(node_uri(cluster_id, node_id).try_into()?));
        params.distinguished_name.push(DnType::CommonName, NODE_COMMON_NAME);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let not_after_unix_s =
            now_unix_s.checked_add(validity.as_secs()).ok_or(TrustError::ValidityOutOfRange)?;
        params.not_before = unix_time(now_unix_s.saturating_sub(CLOCK_SKEW_S))?;
        params.not_after = unix_time(not_after_unix_s)?;
        // A positive 16-byte serial with a non-zero first byte: minimal DER, unique in practice.
        let mut serial = random_bytes::<16>()?;
        serial[0] = (serial[0] & 0x7f) | 0x40;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let issuer = Issuer::new(ca_params(self.cluster_id)?, parse_key_pem(key_pem)?);
        let cert = params.signed_by(&public_key, &issuer)?;
        Ok(IssuedCert { cert_pem: cert.pem(), not_after_unix_s })
    }
}

fn unix_time(unix_s: u64) -> Result<OffsetDateTime, TrustError> {
    let unix_s = i64::try_from(unix_s).map_err(|_| TrustError::ValidityOutOfRange)?;
    OffsetDateTime::from_unix_timestamp(unix_s).map_err(|_| TrustError::ValidityOutOfRange)
}

/// A node's own key pair, made on the node; only its public half is ever sent.
#[derive(Clone)]
pub struct NodeKey {
    key_pem: String,
    public_key_der: Vec<u8>,
    pkcs8: Arc<PrivatePkcs8KeyDer<'static>>,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeKey(..)")
    }
}

impl NodeKey {
    /// A fresh key pair (ECDSA P-256).
    pub fn generate() -> Result<NodeKey, TrustError> {
        Ok(NodeKey::from_pair(&KeyPair::generate()?))
    }

    /// Loads a key from PEM (as produced by [`Self::key_pem`]).
    pub fn from_pem(key_pem: &str) -> Result<NodeKey, TrustError> {
        Ok(NodeKey::from_pair(&parse_key_pem(key_pem)?))
    }

    fn from_pair(pair: &KeyPair) -> NodeKey {
        NodeKey {
            key_pem: pair.serialize_pem(),
            public_key_der: pair.subject_public_key_info(),
            pkcs8: Arc::new(PrivatePkcs8KeyDer::from(pair.serialize_der())),
        }
    }

    /// The public key, SubjectPublicKeyInfo DER: what the CA certifies.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.public_key_der.clone()
    }

    /// The private key, PEM (a secret).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }
}

/// A member's own key and CA-issued certificate, presented on both sides of a connection.
#[derive(Clone)]
pub struct NodeIdentity {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key: NodeKey,
    peer: PeerIdentity,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeIdentity({:?})", self.peer)
    }
}

impl NodeIdentity {
    /// Pairs a certificate with its key; refuses a key the certificate does not certify and a
    /// certificate without a node identity.
    pub fn new(cert_pem: &str, key: NodeKey) -> Result<NodeIdentity, TrustError> {
        let cert_der = parse_cert_pem(cert_pem)?;
        if cert_spki(&cert_der)? != key.public_key_der {
            return Err(TrustError::KeyMismatch);
        }
        let peer = peer_identity(&cert_der)?;
        Ok(NodeIdentity { cert_pem: cert_pem.to_owned(), cert_der, key, peer })
    }

    /// A fresh key certified by `ca` itself (node 1 at bootstrap, which holds the CA key).
    pub fn issue_self(
        ca: &ClusterCa,
        cluster_id: ClusterId,
        node_id: NodeId,
        validity: Duration,
        now_unix_s: u64,
    ) -> Result<NodeIdentity, TrustError> {
        let key = NodeKey::generate()?;
        let issued = ca.issue(&key.public_key_der, cluster_id, node_id, validity, now_unix_s)?;
        NodeIdentity::new(&issued.cert_pem, key)
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The private key, PEM (a secret).
    pub fn key_pem(&self) -> &str {
        self.key.key_pem()
    }

    /// Who the certificate says this node is.
    pub fn peer(&self) -> PeerIdentity {
        self.peer
    }

    /// Writes the identity into `dir` atomically (owner-only files).
    pub fn save(&self, dir: &Path) -> Result<(), TrustError> {
        // Key first: a crash between the two leaves a new key with the old certificate, which
        // `load` refuses loudly rather than presenting a certificate whose key is gone.
        write_atomic(dir, NODE_KEY_FILE, self.key.key_pem.as_bytes())?;
        write_atomic(dir, NODE_CERT_FILE, self.cert_pem.as_bytes())
    }

    /// Reads an identity written by [`Self::save`].
    pub fn load(dir: &Path) -> Result<NodeIdentity, TrustError> {
        let cert = std::fs::read_to_string(dir.join(NODE_CERT_FILE))?;
        let key = std::fs::read_to_string(dir.join(NODE_KEY_FILE))?;
        NodeIdentity::new(&cert, NodeKey::from_pem(&key)?)
    }

    /// The key QUIC derives stateless-reset tokens from. It is derived from the node's private
    /// key, so it survives restarts: a restarted node can reset the connections its previous
    /// process left open at its peers, and they re-dial at once instead of talking into a dead
    /// connection until it idles out.
    pub fn stateless_reset_key(&self) -> ring::hmac::Key {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(b"dqlite-vfs stateless reset key v1");
        context.update(self.key.pkcs8.secret_pkcs8_der());
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, context.finish().as_ref())
    }

    /// The chain to present, `[node certificate, CA certificate]` (the CA is included so a
    /// joiner can find the CA its token pins), and the private key.
    pub(crate) fn chain_and_key(
        &self,
        ca: &ClusterCa,
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (
            vec![self.cert_der.clone(), ca.cert_der.clone()],
            PrivateKeyDer::Pkcs8(self.key.pkcs8.clone_key()),
        )
    }
}

#[cfg(test)]
#[path = "certs_tests.rs"]
mod tests;
