//! The rustls/quinn configurations built from the cluster's credentials ([`crate::trust`]).
//!
//! Both directions of every member connection are verified against the cluster CA alone,
//! never against system roots. Every node presents the chain `[node certificate, CA]`, so a
//! joiner, which has no CA yet, can find the CA its token pins among what the server shows.
//!
//! A node that is joining has no certificate: the server therefore *accepts* clients without
//! one (a client with a certificate from another CA is still refused), and the RPC layer lets
//! such clients send `Join` only. The joiner's client ([`join_client_config`]) trusts the
//! server only if the presented chain holds a CA whose SubjectPublicKeyInfo hash equals the
//! token's fingerprint and the end-entity certificate verifies against it.
//!
//! TLS 1.3 only (QUIC requires it). Only the `ring` provider is used, passed explicitly to
//! every builder: we never install a process-wide default provider, since the host process may
//! have chosen another one.

use std::sync::{Arc, Mutex, PoisonError};

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::transport::error::TransportError;
use crate::trust::certs::{ClusterCa, NodeIdentity, CERT_DER_BYTES_MAX};
use crate::trust::{Fingerprint, CLUSTER_SERVER_NAME, TLS_EXPORTER_BYTES, TLS_EXPORTER_LABEL};

/// The ALPN protocol of this transport; a peer speaking another version fails the handshake.
pub const ALPN: &[u8] = b"dqlite-vfs/1";

/// The most certificates of a presented chain the join verifier looks at (ours has two).
const PRESENTED_CHAIN_MAX: usize = 4;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(e: impl Into<crate::error::BoxError>) -> TransportError {
    TransportError::TlsConfig(e.into())
}

fn root_store(ca: &CertificateDer<'_>) -> Result<RootCertStore, rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone().into_owned())?;
    Ok(roots)
}

/// The server side of a member: presents `identity` with the CA, verifies client
/// certificates against `ca`, and also accepts clients without a certificate (see the module
/// docs).
pub fn server_config(
    ca: &ClusterCa,
    identity: &NodeIdentity,
) -> Result<QuicServerConfig, TransportError> {
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(root_store(ca.cert_der()).map_err(tls_err)?),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(tls_err)?;
    let (chain, key) = identity.chain_and_key(ca);
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
pub fn client_config(
    ca: &ClusterCa,
    identity: &NodeIdentity,
) -> Result<QuicClientConfig, TransportError> {
    let (chain, key) = identity.chain_and_key(ca);
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_root_certificates(root_store(ca.cert_der()).map_err(tls_err)?)
        .with_client_auth_cert(chain, key)
        .map_err(tls_err)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    QuicClientConfig::try_from(tls).map_err(tls_err)
}

/// The session binding of a join proof: the TLS exporter of `connection` under
/// [`TLS_EXPORTER_LABEL`]. Both ends derive the same bytes; no other session does.
pub fn join_exporter(
    connection: &quinn::Connection,
) -> Result<[u8; TLS_EXPORTER_BYTES], TransportError> {
    let mut out = [0u8; TLS_EXPORTER_BYTES];
    connection.export_keying_material(&mut out, TLS_EXPORTER_LABEL, b"").map_err(|_| {
        TransportError::TlsConfig("the TLS session cannot export keying material".into())
    })?;
    Ok(out)
}

/// What the join verifier saw when the pin did not match, for the caller's error message.
#[derive(Clone, Debug, Default)]
pub struct PinCheck(Arc<Mutex<Option<Option<Fingerprint>>>>);

impl PinCheck {
    /// The CA fingerprint the server presented instead of the pinned one, if it failed the pin
    /// and presented a CA at all.
    pub fn foreign_fingerprint(&self) -> Option<Fingerprint> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).flatten()
    }

    /// Whether a handshake failed because no presented certificate matched the pin.
    pub fn mismatched(&self) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).is_some()
    }

    fn record(&self, seen: Option<Fingerprint>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(seen);
    }
}

/// The client of a node that is joining and has no credentials yet: presents no certificate
/// and trusts the server only through the CA `pin` (see the module docs). The returned
/// [`PinCheck`] tells, after a failed handshake, which CA the server presented instead.
pub fn join_client_config(
    pin: Fingerprint,
) -> Result<(QuicClientConfig, PinCheck), TransportError> {
    let provider = provider();
    let check = PinCheck::default();
    let verifier =
        Arc::new(PinnedCaVerifier { pin, provider: provider.clone(), check: check.clone() });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    Ok((QuicClientConfig::try_from(tls).map_err(tls_err)?, check))
}

/// Finds the pinned CA among the presented intermediates, then verifies the end entity
/// against it as the only root, with rustls' WebPKI verifier.
#[derive(Debug)]
struct PinnedCaVerifier {
    pin: Fingerprint,
    provider: Arc<CryptoProvider>,
    check: PinCheck,
}

impl PinnedCaVerifier {
    fn fingerprint(cert: &CertificateDer<'_>) -> Option<Fingerprint> {
        if cert.len() > CERT_DER_BYTES_MAX {
            return None;
        }
        crate::trust::peer::cert_spki(cert).ok().map(|spki| Fingerprint::of_spki(&spki))
    }
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = intermediates.iter().take(PRESENTED_CHAIN_MAX);
        let fingerprints: Vec<_> = presented.map(|c| (c, Self::fingerprint(c))).collect();
        let Some((ca, _)) = fingerprints.iter().find(|(_, fp)| *fp == Some(self.pin)) else {
            self.check.record(fingerprints.iter().find_map(|(_, fp)| *fp));
            return Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer));
        };
        let roots = Arc::new(root_store(ca)?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        // Every member's certificate carries this one name (see `CLUSTER_SERVER_NAME`).
        let name = ServerName::try_from(CLUSTER_SERVER_NAME)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        webpki.verify_server_cert(end_entity, &[], &name, ocsp_response, now)
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
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::{ClusterId, NODE_CERT_VALIDITY};

    fn now_s() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    }

    fn cluster() -> (ClusterCa, NodeIdentity) {
        let ca = ClusterCa::generate(ClusterId::generate().unwrap()).unwrap();
        let id =
            NodeIdentity::issue_self(&ca, ca.cluster_id(), 1, NODE_CERT_VALIDITY, now_s()).unwrap();
        (ca, id)
    }

    fn verify(
        verifier: &PinnedCaVerifier,
        chain: &[CertificateDer<'static>],
    ) -> Result<ServerCertVerified, rustls::Error> {
        let name = ServerName::try_from(CLUSTER_SERVER_NAME).unwrap();
        verifier.verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now())
    }

    // Goal: a CA and identity survive files and still build both member configs.
    #[test]
    fn member_configs_build_from_saved_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, id) = cluster();
        ca.save(dir.path()).unwrap();
        id.save(dir.path()).unwrap();
        let (ca, id) =
            (ClusterCa::load(dir.path()).unwrap(), NodeIdentity::load(dir.path()).unwrap());
        assert!(server_config(&ca, &id).is_ok());
        assert!(client_config(&ca, &id).is_ok());
        assert!(join_client_config(ca.fingerprint()).is_ok());
    }

    // Goal: the join verifier accepts the pinned cluster's chain, refuses another cluster's
    // (recording the fingerprint it saw), and refuses a chain without any CA.
    #[test]
    fn join_verifier_pins_the_ca() {
        let (ca, id) = cluster();
        let (other_ca, other_id) = cluster();
        let check = PinCheck::default();
        let verifier =
            PinnedCaVerifier { pin: ca.fingerprint(), provider: provider(), check: check.clone() };
        let (chain, _) = id.chain_and_key(&ca);
        verify(&verifier, &chain).unwrap();
        assert!(!check.mismatched());

        let (foreign, _) = other_id.chain_and_key(&other_ca);
        assert!(verify(&verifier, &foreign).is_err());
        assert_eq!(check.foreign_fingerprint(), Some(other_ca.fingerprint()));

        // The right CA presented next to a certificate it did not sign: chain check fails.
        let forged = vec![foreign[0].clone(), ca.cert_der().clone()];
        assert!(verify(&verifier, &forged).is_err());

        let fresh = PinCheck::default();
        let verifier =
            PinnedCaVerifier { pin: ca.fingerprint(), provider: provider(), check: fresh.clone() };
        assert!(verify(&verifier, &chain[..1]).is_err());
        assert!(fresh.mismatched() && fresh.foreign_fingerprint().is_none());
    }

    // Goal: a real QUIC handshake with the pinned join config succeeds against a member, and
    // both ends derive the same join exporter.
    #[tokio::test]
    async fn pinned_join_handshake_and_exporter() {
        let (ca, id) = cluster();
        let server_crypto = Arc::new(server_config(&ca, &id).unwrap());
        let server = quinn::Endpoint::server(
            quinn::ServerConfig::with_crypto(server_crypto),
            ([127, 0, 0, 1], 0).into(),
        )
        .unwrap();
        let addr = server.local_addr().unwrap();
        let (crypto, check) = join_client_config(ca.fingerprint()).unwrap();
        let mut client = quinn::Endpoint::client(([127, 0, 0, 1], 0).into()).unwrap();
        client.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
        let accept = tokio::spawn(async move { server.accept().await.unwrap().await.unwrap() });
        let deadline = std::time::Duration::from_secs(5);
        let connecting = client.connect(addr, CLUSTER_SERVER_NAME).unwrap();
        let conn = tokio::time::timeout(deadline, connecting).await.unwrap().unwrap();
        let served = tokio::time::timeout(deadline, accept).await.unwrap().unwrap();
        assert!(!check.mismatched());
        assert_eq!(join_exporter(&conn).unwrap(), join_exporter(&served).unwrap());
        conn.close(0u32.into(), b"");
    }

    // Goal: a member's client (root = its CA) refuses a server certificate of another CA.
    #[test]
    fn another_cas_certificate_fails_chain_verification() {
        let (ca, id) = cluster();
        let (other_ca, other_id) = cluster();
        let webpki = WebPkiServerVerifier::builder_with_provider(
            Arc::new(root_store(ca.cert_der()).unwrap()),
            provider(),
        )
        .build()
        .unwrap();
        let name = ServerName::try_from(CLUSTER_SERVER_NAME).unwrap();
        webpki.verify_server_cert(id.cert_der(), &[], &name, &[], UnixTime::now()).unwrap();
        let err = webpki.verify_server_cert(
            other_id.cert_der(),
            &[other_ca.cert_der().clone()],
            &name,
            &[],
            UnixTime::now(),
        );
        assert!(err.is_err());
    }
}
