//! Tests of [`super::Registry`]: apply sequences, refusals, authorization, and a property test
//! over random change sequences.

use proptest::prelude::*;

use super::*;

const NOW: u64 = 1_700_000_000;
const HOUR_S: u64 = 3600;

fn verifier(n: u8) -> TokenVerifier {
    TokenVerifier([n; 32])
}

fn record(role: Role, uses_left: u32) -> TokenRecord {
    TokenRecord { verifier: verifier(1), expires_at_unix_s: NOW + HOUR_S, uses_left, role }
}

fn bootstrapped() -> Registry {
    let mut r = Registry::default();
    let change = TrustChange::Bootstrap {
        cluster_id: ClusterId([1; 16]),
        ca_fingerprint: Fingerprint([2; 32]),
        cert_not_after_unix_s: NOW + 90 * 24 * HOUR_S,
    };
    assert_eq!(r.apply(&change), TrustOutcome::Admitted { node_id: 1 });
    r
}

fn admit(token: u64, role: Role, now_unix_s: u64) -> TrustChange {
    TrustChange::Admit {
        token: TokenId(token),
        role,
        now_unix_s,
        cert_not_after_unix_s: now_unix_s + 1000,
    }
}

fn issue(r: &mut Registry, id: u64, record: TokenRecord) -> TrustOutcome {
    r.apply(&TrustChange::IssueToken { id: TokenId(id), record, now_unix_s: NOW })
}

fn peer(node_id: NodeId) -> PeerIdentity {
    PeerIdentity { cluster_id: ClusterId([1; 16]), node_id, not_after_unix_s: NOW + 1000 }
}

/// Asserts that `change` is refused with `refusal` and leaves the registry unchanged.
fn refused(r: &mut Registry, change: TrustChange, refusal: Refusal) {
    let before = r.clone();
    assert_eq!(r.apply(&change), TrustOutcome::Refused(refusal), "{change:?}");
    assert_eq!(*r, before, "a refused {change:?} changed the registry");
}

// Goal: bootstrap admits node 1 as a voter, once; nothing else applies before it.
#[test]
fn bootstrap_once() {
    let mut empty = Registry::default();
    refused(&mut empty, admit(1, Role::Voter, NOW), Refusal::NotBootstrapped);
    refused(&mut empty, TrustChange::Revoke { node_id: 1 }, Refusal::NotBootstrapped);
    let mut r = bootstrapped();
    assert_eq!(r.admission(1).map(|a| a.role), Some(Role::Voter));
    assert!(r.check_connection(ClusterId([1; 16]), &peer(1)).is_ok());
    let again = TrustChange::Bootstrap {
        cluster_id: ClusterId([9; 16]),
        ca_fingerprint: Fingerprint([9; 32]),
        cert_not_after_unix_s: 0,
    };
    refused(&mut r, again, Refusal::AlreadyBootstrapped);
}

// Goal: each admission consumes one use and allocates the next id; a used-up token is no
// longer outstanding, and a replay of it is refused as used up (not as unknown).
#[test]
fn admit_consumes_uses_and_allocates_increasing_ids() {
    let mut r = bootstrapped();
    assert_eq!(issue(&mut r, 7, record(Role::Voter, 2)), TrustOutcome::Done);
    assert_eq!(r.check_token(TokenId(7), Role::Voter, NOW).unwrap().uses_left, 2);
    assert_eq!(r.apply(&admit(7, Role::Voter, NOW)), TrustOutcome::Admitted { node_id: 2 });
    assert_eq!(r.outstanding_tokens(NOW).next().map(|(_, t)| t.uses_left), Some(1));
    assert_eq!(r.apply(&admit(7, Role::Learner, NOW)), TrustOutcome::Admitted { node_id: 3 });
    assert_eq!(r.outstanding_tokens(NOW).count(), 0);
    refused(&mut r, admit(7, Role::Voter, NOW), Refusal::TokenUsedUp);
    assert!(matches!(
        r.check_token(TokenId(7), Role::Voter, NOW),
        Err(TrustError::TokenUsedUp { .. })
    ));
    assert_eq!(
        r.admitted().map(|(id, a)| (id, a.role)).collect::<Vec<_>>(),
        [(1, Role::Voter), (2, Role::Voter), (3, Role::Learner)]
    );
    assert_eq!(r.last_node_id(), 3);
}

// Goal: expired, unknown and wrong-role admissions are refused and change nothing; the
// leader's pre-check reports the same problems as errors.
#[test]
fn refused_admissions_leave_the_registry_unchanged() {
    let mut r = bootstrapped();
    issue(&mut r, 1, record(Role::Learner, 5));
    refused(&mut r, admit(1, Role::Learner, NOW + HOUR_S), Refusal::TokenExpired);
    refused(&mut r, admit(2, Role::Learner, NOW), Refusal::TokenUnknown);
    refused(&mut r, admit(1, Role::Voter, NOW), Refusal::TokenWrongRole);
    assert!(
        matches!(r.check_token(TokenId(1), Role::Learner, NOW + HOUR_S), Err(TrustError::TokenExpired { expired_at_unix_s, .. }) if expired_at_unix_s == NOW + HOUR_S)
    );
    assert!(matches!(
        r.check_token(TokenId(2), Role::Learner, NOW),
        Err(TrustError::TokenUnknown { .. })
    ));
    assert!(matches!(
        r.check_token(TokenId(1), Role::Voter, NOW),
        Err(TrustError::TokenWrongRole { token_role: Role::Learner, requested: Role::Voter, .. })
    ));
    assert!(r.outstanding_tokens(NOW + HOUR_S).next().is_none());
}

// Goal: a used-up record is refused as used up, by apply and by the leader's pre-check.
#[test]
fn used_up_token_is_refused() {
    let mut r = bootstrapped();
    r.tokens.insert(TokenId(3), record(Role::Voter, 0));
    refused(&mut r, admit(3, Role::Voter, NOW), Refusal::TokenUsedUp);
    assert!(matches!(
        r.check_token(TokenId(3), Role::Voter, NOW),
        Err(TrustError::TokenUsedUp { .. })
    ));
    assert!(matches!(
        Refusal::TokenUsedUp.into_error(&admit(3, Role::Voter, NOW)),
        TrustError::TokenUsedUp { id: TokenId(3) }
    ));
}

// Goal: token issue enforces its bounds, duplicates and the outstanding limit, after pruning
// expired tokens.
#[test]
fn issue_token_bounds() {
    let mut r = bootstrapped();
    assert_eq!(
        issue(&mut r, 1, record(Role::Voter, 0)),
        TrustOutcome::Refused(Refusal::TokenOutOfBounds)
    );
    assert_eq!(
        issue(&mut r, 1, record(Role::Voter, TOKEN_USES_MAX + 1)),
        TrustOutcome::Refused(Refusal::TokenOutOfBounds)
    );
    let long =
        TokenRecord { expires_at_unix_s: NOW + TOKEN_TTL_MAX_S + 1, ..record(Role::Voter, 1) };
    assert_eq!(issue(&mut r, 1, long), TrustOutcome::Refused(Refusal::TokenOutOfBounds));
    for id in 0..TOKENS_OUTSTANDING_MAX as u64 {
        assert_eq!(issue(&mut r, id, record(Role::Voter, 1)), TrustOutcome::Done);
    }
    assert_eq!(
        issue(&mut r, 0, record(Role::Voter, 1)),
        TrustOutcome::Refused(Refusal::DuplicateToken)
    );
    assert_eq!(
        issue(&mut r, 5000, record(Role::Voter, 1)),
        TrustOutcome::Refused(Refusal::TooManyTokens)
    );
    // Once they expire, issuing prunes them.
    let later = TokenRecord { expires_at_unix_s: NOW + 3 * HOUR_S, ..record(Role::Voter, 1) };
    let change =
        TrustChange::IssueToken { id: TokenId(5000), record: later, now_unix_s: NOW + 2 * HOUR_S };
    assert_eq!(r.apply(&change), TrustOutcome::Done);
    assert_eq!(r.outstanding_tokens(NOW).count(), 1);
    assert_eq!(r.apply(&TrustChange::RevokeToken { id: TokenId(5000) }), TrustOutcome::Done);
    refused(&mut r, TrustChange::RevokeToken { id: TokenId(5000) }, Refusal::TokenUnknown);
}

// Goal: a revoked node fails authorization for good; renewal needs an admitted node; another
// cluster's or an unknown node's certificate is refused.
#[test]
fn revoke_then_authorize_fails() {
    let mut r = bootstrapped();
    issue(&mut r, 1, record(Role::Voter, 1));
    assert_eq!(r.apply(&admit(1, Role::Voter, NOW)), TrustOutcome::Admitted { node_id: 2 });
    assert_eq!(
        r.apply(&TrustChange::Renew { node_id: 2, cert_not_after_unix_s: NOW + 5 }),
        TrustOutcome::Done
    );
    assert_eq!(r.admission(2).map(|a| a.cert_not_after_unix_s), Some(NOW + 5));
    assert_eq!(r.apply(&TrustChange::Revoke { node_id: 2 }), TrustOutcome::Done);
    assert_eq!(r.apply(&TrustChange::Revoke { node_id: 2 }), TrustOutcome::Done, "idempotent");
    assert!(r.is_revoked(2));
    assert!(matches!(
        r.check_connection(ClusterId([1; 16]), &peer(2)),
        Err(TrustError::Revoked { node_id: 2 })
    ));
    refused(
        &mut r,
        TrustChange::Renew { node_id: 2, cert_not_after_unix_s: NOW },
        Refusal::NotAdmitted,
    );
    refused(&mut r, TrustChange::Revoke { node_id: 3 }, Refusal::NotAdmitted);
    // A member this registry has not seen admitted yet (admitted after what it has applied)
    // is let in; its certificate is the proof of admission.
    assert!(r.check_connection(ClusterId([1; 16]), &peer(3)).is_ok());
    let foreign = PeerIdentity { cluster_id: ClusterId([7; 16]), ..peer(1) };
    assert!(matches!(
        r.check_connection(ClusterId([1; 16]), &foreign),
        Err(TrustError::WrongCluster)
    ));
    assert!(
        matches!(r.check_connection(ClusterId([7; 16]), &foreign), Err(TrustError::WrongCluster)),
        "not this registry's cluster"
    );
    // Before its first entries a node knows only its own cluster, from its certificate.
    assert!(Registry::default().check_connection(ClusterId([1; 16]), &peer(1)).is_ok());
}

// Goal: when every node id is taken, admission is refused and nothing changes.
#[test]
fn node_id_overflow_is_refused() {
    let mut r = bootstrapped();
    issue(&mut r, 1, record(Role::Voter, 3));
    r.last_node_id = u64::MAX - 1;
    assert_eq!(r.apply(&admit(1, Role::Voter, NOW)), TrustOutcome::Admitted { node_id: u64::MAX });
    refused(&mut r, admit(1, Role::Voter, NOW), Refusal::NodeIdsExhausted);
}

// Goal: the registry survives the state machine's serialization unchanged.
#[test]
fn registry_round_trips_through_messagepack() {
    let mut r = bootstrapped();
    issue(&mut r, 1, record(Role::Voter, 3));
    r.apply(&admit(1, Role::Learner, NOW));
    r.apply(&TrustChange::Revoke { node_id: 1 });
    let bytes = rmp_serde::to_vec(&r).unwrap();
    assert_eq!(rmp_serde::from_slice::<Registry>(&bytes).unwrap(), r);
}

fn arb_change() -> impl Strategy<Value = TrustChange> {
    let role = prop_oneof![Just(Role::Voter), Just(Role::Learner)];
    let time = 0u64..20;
    prop_oneof![
        (any::<u8>(), 0u64..30).prop_map(|(c, t)| TrustChange::Bootstrap {
            cluster_id: ClusterId([c; 16]),
            ca_fingerprint: Fingerprint([c; 32]),
            cert_not_after_unix_s: t
        }),
        (0u64..6, role.clone(), time.clone(), 0u32..4, 0u64..30).prop_map(
            |(id, role, now, uses, exp)| TrustChange::IssueToken {
                id: TokenId(id),
                record: TokenRecord {
                    verifier: verifier(0),
                    expires_at_unix_s: exp,
                    uses_left: uses,
                    role
                },
                now_unix_s: now,
            }
        ),
        (0u64..6, role, time.clone(), time).prop_map(|(t, role, now, na)| TrustChange::Admit {
            token: TokenId(t),
            role,
            now_unix_s: now,
            cert_not_after_unix_s: na
        }),
        (0u64..8, 0u64..30)
            .prop_map(|(n, t)| TrustChange::Renew { node_id: n, cert_not_after_unix_s: t }),
        (0u64..8).prop_map(|n| TrustChange::Revoke { node_id: n }),
        (0u64..6).prop_map(|id| TrustChange::RevokeToken { id: TokenId(id) }),
    ]
}

proptest! {
    // Goal: random change sequences never panic, allocated ids strictly increase, refusals
    // other than IssueToken's pruning change nothing, and bounds hold.
    #[test]
    fn random_changes_keep_invariants(changes in prop::collection::vec(arb_change(), 0..80)) {
        let mut r = Registry::default();
        let mut last = 0;
        for change in &changes {
            let before = r.clone();
            match r.apply(change) {
                TrustOutcome::Admitted { node_id } => {
                    prop_assert!(node_id > last);
                    last = node_id;
                }
                TrustOutcome::Refused(_) if !matches!(change, TrustChange::IssueToken { .. }) => prop_assert_eq!(&r, &before),
                _ => {}
            }
            prop_assert!(r.tokens.len() <= TOKENS_OUTSTANDING_MAX);
            prop_assert!(r.tokens.values().all(|t| t.uses_left <= TOKEN_USES_MAX));
            prop_assert!(r.admitted().all(|(id, _)| id <= r.last_node_id() && !r.is_revoked(id)));
        }
    }
}
