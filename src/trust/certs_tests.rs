//! Tests of [`super`]: issuing for foreign keys, reading identities back, key pairing, files.

use std::os::unix::fs::PermissionsExt;

use super::*;

const NOW: u64 = 1_700_000_000;

fn ca() -> ClusterCa {
    ClusterCa::generate(ClusterId::generate().unwrap()).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A self-signed certificate with the given URI SANs (peer_identity does not check
/// signatures, so these are enough to test its parsing).
fn cert_with_uris(uris: &[&str]) -> CertificateDer<'static> {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![CLUSTER_SERVER_NAME.to_owned()]).unwrap();
    for uri in uris {
        params.subject_alt_names.push(SanType::URI((*uri).try_into().unwrap()));
    }
    params.self_signed(&key).unwrap().der().clone()
}

// Goal: the CA certifies a key it never held, and the certificate names the node, the
// cluster and the expiry it was issued with.
#[test]
fn issue_for_a_foreign_public_key() {
    let ca = ca();
    let joiner = NodeKey::generate().unwrap();
    let validity = Duration::from_secs(3600);
    let issued = ca.issue(&joiner.public_key_der(), ca.cluster_id(), 42, validity, NOW).unwrap();
    assert_eq!(issued.not_after_unix_s, NOW + 3600);
    let identity = NodeIdentity::new(&issued.cert_pem, joiner).unwrap();
    let peer = identity.peer();
    assert_eq!(
        peer,
        PeerIdentity { cluster_id: ca.cluster_id(), node_id: 42, not_after_unix_s: NOW + 3600 }
    );
    assert_eq!(peer_identity(identity.cert_der()).unwrap(), peer);
    let parsed = parse_cert(identity.cert_der()).unwrap();
    assert_eq!(parsed.validity().not_before.timestamp(), (NOW - CLOCK_SKEW_S) as i64);
    assert_ne!(
        issued,
        ca.issue(
            &NodeKey::generate().unwrap().public_key_der(),
            ca.cluster_id(),
            42,
            validity,
            NOW
        )
        .unwrap()
    );
}

// Goal: issuing is refused without the CA key, for another cluster id, or for a non-key.
#[test]
fn issue_refusals() {
    let ca = ca();
    let key = NodeKey::generate().unwrap().public_key_der();
    let public_only = ClusterCa::from_pem(ca.cert_pem(), None).unwrap();
    assert!(!public_only.has_key() && public_only.key_pem().is_none());
    assert!(matches!(
        public_only.issue(&key, ca.cluster_id(), 2, NODE_CERT_VALIDITY, NOW),
        Err(TrustError::NoCaKey)
    ));
    let other = ClusterId::generate().unwrap();
    assert!(matches!(
        ca.issue(&key, other, 2, NODE_CERT_VALIDITY, NOW),
        Err(TrustError::WrongCluster)
    ));
    assert!(ca.issue(b"not a key", ca.cluster_id(), 2, NODE_CERT_VALIDITY, NOW).is_err());
    assert!(matches!(
        ca.issue(&key, ca.cluster_id(), 2, Duration::MAX, NOW),
        Err(TrustError::ValidityOutOfRange)
    ));
    // The key can be added later, and must be the right one.
    assert!(public_only.with_key(ca.key_pem().unwrap()).unwrap().has_key());
    let stranger = self::ca();
    assert!(matches!(
        public_only.with_key(stranger.key_pem().unwrap()),
        Err(TrustError::KeyMismatch)
    ));
}

// Goal: the CA's cluster id and fingerprint are recovered from its PEM alone.
#[test]
fn ca_from_pem_recovers_cluster_id_and_fingerprint() {
    let ca = ca();
    let loaded = ClusterCa::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
    assert_eq!(loaded.cluster_id(), ca.cluster_id());
    assert_eq!(loaded.fingerprint(), ca.fingerprint());
    assert_eq!(ca.fingerprint(), Fingerprint::of_spki(&cert_spki(ca.cert_der()).unwrap()));
    assert_ne!(ca.fingerprint(), self::ca().fingerprint());
    // A node certificate is not a CA.
    let node = NodeIdentity::issue_self(&ca, ca.cluster_id(), 1, NODE_CERT_VALIDITY, NOW).unwrap();
    assert!(matches!(ClusterCa::from_pem(node.cert_pem(), None), Err(TrustError::Certificate(_))));
}

// Goal: peer_identity refuses certificates without exactly one well-formed node URI.
#[test]
fn peer_identity_refuses_malformed_uris() {
    let hex = ClusterId([3; 16]).to_string();
    let good = format!("dqlite-vfs://cluster/{hex}/node/5");
    assert_eq!(peer_identity(&cert_with_uris(&[&good])).unwrap().node_id, 5);
    let bad_cases: Vec<Vec<String>> = vec![
        vec![],
        vec![good.clone(), format!("dqlite-vfs://cluster/{hex}/node/6")],
        vec![format!("dqlite-vfs://cluster/{hex}/node/05")],
        vec![format!("dqlite-vfs://cluster/{hex}/node/99999999999999999999")],
        vec![format!("dqlite-vfs://cluster/{}/node/5", &hex[1..])],
        vec!["spiffe://cluster/x/node/5".to_owned()],
    ];
    for uris in bad_cases {
        let refs: Vec<&str> = uris.iter().map(String::as_str).collect();
        let err = peer_identity(&cert_with_uris(&refs)).unwrap_err();
        assert!(matches!(err, TrustError::PeerIdentity { .. }), "{uris:?}: {err}");
    }
}

// Goal: a key is paired only with the certificate that certifies it.
#[test]
fn key_and_certificate_mismatch_is_refused() {
    let ca = ca();
    let node = NodeIdentity::issue_self(&ca, ca.cluster_id(), 1, NODE_CERT_VALIDITY, NOW).unwrap();
    let other = NodeKey::generate().unwrap();
    assert!(matches!(NodeIdentity::new(node.cert_pem(), other), Err(TrustError::KeyMismatch)));
    let other_ca = self::ca();
    assert!(matches!(
        ClusterCa::from_pem(ca.cert_pem(), other_ca.key_pem()),
        Err(TrustError::KeyMismatch)
    ));
    assert!(matches!(NodeKey::from_pem("garbage"), Err(TrustError::Pem(_))));
}

// Goal: credentials survive save/load, files are owner-only, no temp file is left behind,
// and a CA saved without its key loads without it.
#[test]
fn save_load_round_trip_with_private_modes() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    let node = NodeIdentity::issue_self(&ca, ca.cluster_id(), 9, NODE_CERT_VALIDITY, NOW).unwrap();
    ca.save(dir.path()).unwrap();
    node.save(dir.path()).unwrap();
    node.save(dir.path()).unwrap(); // replacing existing files works
    for file in [CA_CERT_FILE, CA_KEY_FILE, NODE_CERT_FILE, NODE_KEY_FILE] {
        assert_eq!(mode(&dir.path().join(file)), 0o600, "{file}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4, "no temp files left");
    let loaded_ca = ClusterCa::load(dir.path()).unwrap();
    assert_eq!((loaded_ca.cert_der(), loaded_ca.key_pem()), (ca.cert_der(), ca.key_pem()));
    let loaded = NodeIdentity::load(dir.path()).unwrap();
    assert_eq!(
        (loaded.cert_pem(), loaded.key_pem(), loaded.peer()),
        (node.cert_pem(), node.key_pem(), node.peer())
    );
    assert_eq!(loaded.stateless_reset_key().algorithm(), node.stateless_reset_key().algorithm());

    let public_dir = tempfile::tempdir().unwrap();
    ClusterCa::from_pem(ca.cert_pem(), None).unwrap().save(public_dir.path()).unwrap();
    assert!(!ClusterCa::load(public_dir.path()).unwrap().has_key());
}

// Goal: Debug output of credentials never contains key material.
#[test]
fn debug_hides_keys() {
    let ca = ca();
    let node = NodeIdentity::issue_self(&ca, ca.cluster_id(), 1, NODE_CERT_VALIDITY, NOW).unwrap();
    let shown = format!("{ca:?} {node:?} {:?}", NodeKey::generate().unwrap());
    assert!(!shown.contains("PRIVATE KEY") && !shown.contains(&node.key_pem()[40..80]), "{shown}");
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        // Goal: the two certificate decoders that see network input (a peer's certificate,
        // a joiner's public key) return an error, never panic, on arbitrary or damaged bytes.
        #[test]
        fn certificate_and_key_decoders_never_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..2048),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        ) {
            let _ = peer_identity(&bytes);
            let signer = ca();
            let _ = signer.issue(&bytes, signer.cluster_id(), 2, NODE_CERT_VALIDITY, NOW);
            let node = NodeIdentity::issue_self(&signer, signer.cluster_id(), 3, NODE_CERT_VALIDITY, NOW).unwrap();
            let mut cert = node.cert_der().to_vec();
            let mut key = NodeKey::generate().unwrap().public_key_der();
            for (at, byte) in flips {
                let (i, j) = (at.index(cert.len()), at.index(key.len()));
                cert[i] ^= byte;
                key[j] ^= byte;
            }
            let _ = peer_identity(&cert);
            let _ = signer.issue(&key, signer.cluster_id(), 4, NODE_CERT_VALIDITY, NOW);
        }
    }
}
