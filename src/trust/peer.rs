//! Reading identities out of certificates: the node identity in a node certificate's URI SAN,
//! the SubjectPublicKeyInfo of any certificate.
//!
//! Invariants: parsing is bounded (certificates over [`CERT_DER_BYTES_MAX`] are refused before
//! parsing) and strict (exactly one URI SAN, exactly the form [`node_uri`] writes), so two
//! different texts never name the same node.

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::error::TrustError;
use super::ids::{ClusterId, NodeId};

/// The largest certificate DER parsed; ours are well under 1 KiB.
pub const CERT_DER_BYTES_MAX: usize = 16 * 1024;

/// The URI SAN scheme and authority of node certificates.
const NODE_URI_PREFIX: &str = "dqlite-vfs://cluster/";

/// Who a node certificate says its holder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The cluster that issued it.
    pub cluster_id: ClusterId,
    /// The node it names.
    pub node_id: NodeId,
    /// When it expires.
    pub not_after_unix_s: u64,
}

/// The URI SAN naming `node_id` of `cluster_id`.
pub fn node_uri(cluster_id: ClusterId, node_id: NodeId) -> String {
    format!("{NODE_URI_PREFIX}{cluster_id}/node/{node_id}")
}

/// Parses a URI written by [`node_uri`], and nothing else.
fn parse_node_uri(uri: &str) -> Result<(ClusterId, NodeId), TrustError> {
    let bad = |reason| TrustError::PeerIdentity { reason };
    let rest =
        uri.strip_prefix(NODE_URI_PREFIX).ok_or(bad("the URI is not a dqlite-vfs node URI"))?;
    let (cluster, node) = rest.split_once("/node/").ok_or(bad("the URI has no /node/ part"))?;
    let cluster_id =
        cluster.parse().map_err(|_| bad("the URI's cluster id is not 32 lowercase hex digits"))?;
    let canonical = !node.is_empty()
        && node.bytes().all(|b| b.is_ascii_digit())
        && (node == "0" || !node.starts_with('0'));
    if !canonical {
        return Err(bad("the URI's node id is not a canonical decimal number"));
    }
    let node_id = node.parse().map_err(|_| bad("the URI's node id overflows 64 bits"))?;
    Ok((cluster_id, node_id))
}

/// Parses a certificate, refusing oversized input and trailing bytes.
pub(crate) fn parse_cert(cert_der: &[u8]) -> Result<X509Certificate<'_>, TrustError> {
    if cert_der.len() > CERT_DER_BYTES_MAX {
        return Err(TrustError::Certificate(
            format!("larger than {CERT_DER_BYTES_MAX} bytes").into(),
        ));
    }
    let (rest, cert) =
        X509Certificate::from_der(cert_der).map_err(|e| TrustError::Certificate(Box::new(e)))?;
    if !rest.is_empty() {
        return Err(TrustError::Certificate("trailing bytes after the certificate".into()));
    }
    Ok(cert)
}

/// The SubjectPublicKeyInfo DER of a certificate.
pub(crate) fn cert_spki(cert_der: &[u8]) -> Result<Vec<u8>, TrustError> {
    Ok(parse_cert(cert_der)?.public_key().raw.to_vec())
}

/// The node identity of a node certificate (its single URI SAN and its expiry). Does not
/// check the signature: TLS verifies the chain; this only reads what it certifies.
pub fn peer_identity(cert_der: &[u8]) -> Result<PeerIdentity, TrustError> {
    let cert = parse_cert(cert_der)?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| TrustError::Certificate(Box::new(e)))?
        .ok_or(TrustError::PeerIdentity { reason: "no subject alternative name" })?;
    let mut uris = san.value.general_names.iter().filter_map(|name| match name {
        GeneralName::URI(uri) => Some(*uri),
        _ => None,
    });
    let uri = uris
        .next()
        .ok_or(TrustError::PeerIdentity { reason: "no URI in the subject alternative name" })?;
    if uris.next().is_some() {
        return Err(TrustError::PeerIdentity {
            reason: "more than one URI in the subject alternative name",
        });
    }
    let (cluster_id, node_id) = parse_node_uri(uri)?;
    let not_after_unix_s = u64::try_from(cert.validity().not_after.timestamp())
        .map_err(|_| TrustError::PeerIdentity { reason: "the certificate expires before 1970" })?;
    Ok(PeerIdentity { cluster_id, node_id, not_after_unix_s })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: the URI parser accepts exactly what node_uri writes.
    #[test]
    fn node_uri_is_strict() {
        let c = ClusterId([0xab; 16]);
        assert_eq!(parse_node_uri(&node_uri(c, 42)).unwrap(), (c, 42));
        assert_eq!(parse_node_uri(&node_uri(c, u64::MAX)).unwrap(), (c, u64::MAX));
        let hex = c.to_string();
        for bad in [
            format!("dqlite-vfs://cluster/{hex}/node/042"),
            format!("dqlite-vfs://cluster/{hex}/node/+42"),
            format!("dqlite-vfs://cluster/{hex}/node/-1"),
            format!("dqlite-vfs://cluster/{hex}/node/"),
            format!("dqlite-vfs://cluster/{hex}/node/18446744073709551616"),
            format!("dqlite-vfs://cluster/{hex}/node/4/x"),
            format!("dqlite-vfs://cluster/{}/node/4", hex.to_uppercase()),
            format!("dqlite-vfs://cluster/{}/node/4", &hex[2..]),
            format!("https://cluster/{hex}/node/4"),
            format!("dqlite-vfs://cluster/{hex}/nodes/4"),
        ] {
            assert!(matches!(parse_node_uri(&bad), Err(TrustError::PeerIdentity { .. })), "{bad}");
        }
    }

    // Goal: oversized or non-certificate input is refused, not parsed.
    #[test]
    fn garbage_is_refused() {
        assert!(matches!(
            peer_identity(&vec![0x30; CERT_DER_BYTES_MAX + 1]),
            Err(TrustError::Certificate(_))
        ));
        assert!(matches!(peer_identity(b"not a certificate"), Err(TrustError::Certificate(_))));
    }
}
