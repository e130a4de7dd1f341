//! Cluster credentials and the TLS configurations built from them.
//!
//! Trust model: each cluster has its own certificate authority ([`ClusterCa`]); every member
//! holds a key and a certificate issued by it ([`NodeIdentity`]). Both directions of every
//! connection are verified against that CA alone, never against system roots. All node
//! certificates carry the same DNS name, [`CLUSTER_SERVER_NAME`], so a member may change its
//! address without a new certificate: the CA, not the name, is what is checked.
//!
//! A node that is joining has no certificate yet. The server therefore *accepts* clients
//! without a certificate (a client with a certificate from another CA is still refused), and
//! the RPC layer lets such unauthenticated clients send `Join` only.
//!
//! **Join is trust-on-first-use in this version**: [`join_client_config`] accepts whatever
//! certificate the contacted member presents (it still checks the handshake signature, so the
//! session is bound to that certificate's key). A man in the middle during the join could hand
//! out its own CA. A join secret will close this later.
//!
//! Only the `ring` provider is used, passed explicitly to every builder: we never install a
//! process-wide default provider, since the host process may have chosen another one.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::transport::error::TransportError;

/// The DNS name in every node certificate, and the server name every client asks for.
pub const CLUSTER_SERVER_NAME: &str = "dqlite-vfs.cluster";

/// The ALPN protocol of this transport; a peer speaking another version fails the handshake.
pub const ALPN: &[u8] = b"dqlite-vfs/1";

/// Subject common name of cluster CAs. Part of the issuer name of every node certificate, so
/// it must never change for an existing cluster (see [`ClusterCa::issuer`]).
const CA_COMMON_NAME: &str = "dqlite-vfs cluster CA";

/// Subject common name of node certificates.
const NODE_COMMON_NAME: &str = "dqlite-vfs node";

/// File names used by `save`/`load` in a state directory.
const CA_CERT_FILE: &str = "cluster-ca.pem";
const CA_KEY_FILE: &str = "cluster-ca-key.pem";
const NODE_CERT_FILE: &str = "node.pem";
const NODE_KEY_FILE: &str = "node-key.pem";

/// The cluster's certificate authority: its certificate and signing key, as PEM.
///
/// Every member keeps a copy (it is handed over at join), so any member can issue the
/// certificate of a new member.
#[derive(Clone)]
pub struct ClusterCa {
    cert_pem: String,
    key_pem: String,
    cert_der: CertificateDer<'static>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never in logs.
        f.write_str("ClusterCa(..)")
    }
}

/// The parameters of a cluster CA certificate. Deterministic, so that loading a CA from PEM
/// can rebuild the exact issuer name without parsing the certificate.
fn ca_params() -> Result<CertificateParams, TransportError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

impl ClusterCa {
    /// Creates a new CA with a fresh key (for a new cluster).
    pub fn generate() -> Result<Self, TransportError> {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        Ok(ClusterCa { cert_pem: cert.pem(), key_pem: key.serialize_pem(), cert_der: cert.der().clone() })
    }

    /// Loads a CA from its certificate and key PEM (as produced by [`Self::cert_pem`] and
    /// [`Self::key_pem`]), checking that the key belongs to the certificate.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, TransportError> {
        let cert_der = parse_cert_pem(cert_pem)?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| TransportError::Pem(e.to_string()))?;
        ensure_key_matches(&cert_der, &key)?;
        Ok(ClusterCa { cert_pem: cert_pem.to_owned(), key_pem: key_pem.to_owned(), cert_der })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA signing key, PEM (a secret).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Writes the CA into `dir` (the key file readable by the owner only).
    pub fn save(&self, dir: &Path) -> Result<(), TransportError> {
        write_file(&dir.join(CA_CERT_FILE), &self.cert_pem, 0o644)?;
        write_file(&dir.join(CA_KEY_FILE), &self.key_pem, 0o600)
    }

    /// Reads a CA written by [`Self::save`].
    pub fn load(dir: &Path) -> Result<Self, TransportError> {
        let cert = fs::read_to_string(dir.join(CA_CERT_FILE))?;
        let key = fs::read_to_string(dir.join(CA_KEY_FILE))?;
        Self::from_pem(&cert, &key)
    }

    /// The signer of node certificates. Rebuilt from [`ca_params`] rather than parsed from
    /// the certificate: the issuer name and key identifier it writes into node certificates
    /// are then exactly the CA certificate's subject and key identifier, which is what chain
    /// validation compares.
    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, TransportError> {
        let key = KeyPair::from_pem(&self.key_pem).map_err(|e| TransportError::Pem(e.to_string()))?;
        Ok(Issuer::new(ca_params()?, key))
    }

    fn root_store(&self) -> Result<RootCertStore, TransportError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert_der.clone()).map_err(|e| TransportError::TlsConfig(e.to_string()))?;
        Ok(roots)
    }
}

/// A member's own key and CA-issued certificate, presented on both sides of a connection.
#[derive(Clone)]
pub struct NodeIdentity {
    cert_pem: String,
    key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Arc<PrivatePkcs8KeyDer<'static>>,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeIdentity(..)")
    }
}

impl NodeIdentity {
    /// Creates a fresh key and a certificate for it signed by `ca`, valid for
    /// [`CLUSTER_SERVER_NAME`] as both server and client.
    pub fn issue(ca: &ClusterCa) -> Result<Self, TransportError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![CLUSTER_SERVER_NAME.to_owned()])?;
        params.distinguished_name.push(DnType::CommonName, NODE_COMMON_NAME);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &ca.issuer()?)?;
        Self::from_pem(&cert.pem(), &key.serialize_pem())
    }

    /// Loads an identity from its certificate and key PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, TransportError> {
        let cert_der = parse_cert_pem(cert_pem)?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| TransportError::Pem(e.to_string()))?;
        ensure_key_matches(&cert_der, &key)?;
        let key_der = Arc::new(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok(NodeIdentity { cert_pem: cert_pem.to_owned(), key_pem: key_pem.to_owned(), cert_der, key_der })
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, PEM (a secret).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Writes the identity into `dir` (the key file readable by the owner only).
    pub fn save(&self, dir: &Path) -> Result<(), TransportError> {
        write_file(&dir.join(NODE_CERT_FILE), &self.cert_pem, 0o644)?;
        write_file(&dir.join(NODE_KEY_FILE), &self.key_pem, 0o600)
    }

    /// Reads an identity written by [`Self::save`].
    pub fn load(dir: &Path) -> Result<Self, TransportError> {
        let cert = fs::read_to_string(dir.join(NODE_CERT_FILE))?;
        let key = fs::read_to_string(dir.join(NODE_KEY_FILE))?;
        Self::from_pem(&cert, &key)
    }

    /// The key QUIC derives stateless-reset tokens from. It is derived from the node's private
    /// key, so it survives restarts: a restarted node can reset the connections its previous
    /// process left open at its peers, and they re-dial at once instead of talking into a dead
    /// connection until it idles out.
    pub fn stateless_reset_key(&self) -> ring::hmac::Key {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(b"dqlite-vfs stateless reset key v1");
        context.update(self.key_der.secret_pkcs8_der());
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, context.finish().as_ref())
    }

    fn chain_and_key(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (vec![self.cert_der.clone()], PrivateKeyDer::Pkcs8(self.key_der.clone_key()))
    }
}

fn parse_cert_pem(pem: &str) -> Result<CertificateDer<'static>, TransportError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| TransportError::Pem(e.to_string()))
}

/// A certificate embeds its subject's public key; a key that is not found in it is the wrong
/// key (mixed-up files), which would otherwise only show as failing handshakes.
fn ensure_key_matches(cert: &CertificateDer<'_>, key: &KeyPair) -> Result<(), TransportError> {
    let public = key.public_key_raw();
    if cert.as_ref().windows(public.len()).any(|w| w == public) {
        Ok(())
    } else {
        Err(TransportError::Pem("the key does not belong to the certificate".into()))
    }
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), TransportError> {
    let mut file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(e: impl std::fmt::Display) -> TransportError {
    TransportError::TlsConfig(e.to_string())
}

/// The server side of a member: presents `identity`, verifies client certificates against
/// `ca`, and also accepts clients without a certificate (see the module docs).
pub fn server_config(ca: &ClusterCa, identity: &NodeIdentity) -> Result<QuicServerConfig, TransportError> {
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(ca.root_store()?), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(tls_err)?;
    let (chain, key) = identity.chain_and_key();
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(tls_err)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    QuicServerConfig::try_from(tls).map_err(tls_err)
}

/// The client side of a member: verifies the server against `ca` and presents `identity`.
pub fn client_config(ca: &ClusterCa, identity: &NodeIdentity) -> Result<QuicClientConfig, TransportError> {
    let (chain, key) = identity.chain_and_key();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_root_certificates(ca.root_store()?)
        .with_client_auth_cert(chain, key)
        .map_err(tls_err)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    QuicClientConfig::try_from(tls).map_err(tls_err)
}

/// The client of a node that is joining and has no credentials yet: presents no certificate
/// and accepts the server's certificate on first use. **Not authenticated** — see the module
/// docs; use it for the `Join` request only.
pub fn join_client_config() -> Result<QuicClientConfig, TransportError> {
    let provider = provider();
    let verifier = Arc::new(TrustOnFirstUse { algorithms: provider.signature_verification_algorithms });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    QuicClientConfig::try_from(tls).map_err(tls_err)
}

/// Accepts any server certificate, but still requires the server to prove it holds the
/// certificate's key (handshake signature), so the session is bound to that key.
#[derive(Debug)]
struct TrustOnFirstUse {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for TrustOnFirstUse {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // QUIC is TLS 1.3 only; a TLS 1.2 handshake is a protocol violation.
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: a CA survives a PEM save/load round trip and still issues identities.
    #[test]
    fn ca_and_identity_round_trip_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::generate().unwrap();
        ca.save(dir.path()).unwrap();
        let loaded = ClusterCa::load(dir.path()).unwrap();
        assert_eq!(loaded.cert_der(), ca.cert_der());
        let id = NodeIdentity::issue(&loaded).unwrap();
        id.save(dir.path()).unwrap();
        let id2 = NodeIdentity::load(dir.path()).unwrap();
        assert_eq!(id2.cert_pem(), id.cert_pem());
        assert!(server_config(&loaded, &id2).is_ok());
        assert!(client_config(&loaded, &id2).is_ok());
    }

    // Goal: a key that does not belong to the certificate is rejected at load.
    #[test]
    fn mismatched_key_is_rejected() {
        let a = ClusterCa::generate().unwrap();
        let b = ClusterCa::generate().unwrap();
        let err = ClusterCa::from_pem(a.cert_pem(), b.key_pem()).unwrap_err();
        assert!(matches!(err, TransportError::Pem(_)), "{err}");
    }
}
