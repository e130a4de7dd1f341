//! Hostile peers against clusters of real `sqlite3` shell processes: joins with bad tokens, a
//! rogue server with another CA, a learner reaching for the CA key or membership, forged Raft
//! messages, a removed node coming back, and a flood of unauthenticated connections and
//! garbage datagrams (commits must go on; a member must still get a new connection).
//!
//! The attacker is this test process, speaking real QUIC through the crate's own library
//! (`dqlite_vfs::transport`, `dqlite_vfs::trust`): it can do everything a legitimate node can
//! (make keys, prove tokens it holds, bind an endpoint with a certificate it was granted) and
//! then sends what a legitimate node never would. The nodes under attack are stock `sqlite3`
//! shells that `.load` the extension, as in `t30_processes.rs`; every shell is killed when its
//! `Shell` drops, so a failing test leaves no process behind.

mod common;

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::shell::Shell;
use dqlite_vfs::raft::types::{NodeId, SnapshotImage, TypeConfig};
use dqlite_vfs::transport::wire::{
    AdminRequest, AppendReply, JoinGrant, JoinRequest, Request, Response, SnapshotHeader,
};
use dqlite_vfs::transport::{
    self, BoxFuture, Caller, Endpoint, JoinAnswer, RpcHandler, TransportError,
};
use dqlite_vfs::trust::{
    ClusterCa, ClusterId, Fingerprint, JoinToken, NodeIdentity, NodeKey, PeerIdentity,
    ProofBinding, Role, TrustError, CLUSTER_SERVER_NAME, NODE_CERT_VALIDITY,
};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use openraft::raft::{AppendEntriesRequest, SnapshotResponse, VoteRequest};
use openraft::type_config::alias::{SnapshotMetaOf, VoteOf};
use rand::RngCore;

/// This file's ports; other test files use other ranges.
const PORTS: Range<u16> = 17500..17600;

/// How long a node may take to reach a role, or a barrier to succeed, after it started.
const SETTLE_DEADLINE: Duration = Duration::from_secs(15);

/// Pause between polls of a node's state.
const POLL: Duration = Duration::from_millis(50);

/// Deadline of one request the attacker sends. Refusals come back at once; this only bounds
/// a node that would hang instead of answering.
const CALL_DEADLINE: Duration = Duration::from_secs(10);

/// Largest term a node accepts in a message (`dqlite_vfs::raft::bounds::TERM_MAX`); a term
/// at or past it in `ha_status()` means a forged message got through.
const TERM_MAX: u64 = 1 << 48;

// ---------------------------------------------------------------------------------------------
// Real nodes: sqlite3 shells
// ---------------------------------------------------------------------------------------------

/// Scratch directory plus the shells running in it. Shells are declared first so they are
/// killed (their `Drop`) before the directory is removed, on success and on panic alike.
struct Cluster {
    nodes: Vec<Node>,
    scratch: tempfile::TempDir,
}

/// One running `sqlite3` process that holds a node.
struct Node {
    shell: Shell,
    addr: String,
    id: NodeId,
}

impl Cluster {
    /// A cluster of `size` nodes: node 1 by `ha_init`, the others by `ha_join` with a token
    /// node 1 issued. Returns once every joiner reports itself a follower.
    fn start(size: usize) -> Cluster {
        let scratch = common::scratch_with_extension();
        let mut cluster = Cluster { nodes: Vec::new(), scratch };
        cluster.init("n1");
        for n in 2..=size {
            let token = issue_token(&mut cluster.nodes[0].shell, None);
            let node = cluster
                .join(&format!("n{n}"), &token)
                .unwrap_or_else(|e| panic!("[n{n}] ha_join: {e}"));
            assert_eq!(node, n as NodeId, "[n{n}] node id");
        }
        for node in &mut cluster.nodes[1..] {
            node.shell.wait_for_role("follower", SETTLE_DEADLINE);
        }
        cluster
    }

    fn dir(&self) -> &Path {
        self.scratch.path()
    }

    /// Starts a shell running `ha_init` on a fresh database `<name>.db`; returns the node id.
    fn init(&mut self, name: &str) -> NodeId {
        let addr = format!("127.0.0.1:{}", common::free_udp_port(PORTS));
        let mut shell = Shell::start(name, self.dir());
        let output = shell.ok(&format!(
            ".load ./libdqlite_vfs\n.open file:{name}.db?vfs=ha\nSELECT ha_init('{addr}');"
        ));
        let id = parse_id(name, &output);
        self.nodes.push(Node { shell, addr, id });
        id
    }

    /// Starts a shell running `ha_join` through node 1 with `token`; on success the node is
    /// kept and its id returned, on failure the shell's error text (the shell is killed).
    fn join(&mut self, name: &str, token: &str) -> Result<NodeId, String> {
        let addr = format!("127.0.0.1:{}", common::free_udp_port(PORTS));
        let seed = self.nodes[0].addr.clone();
        let mut shell = Shell::start(name, self.dir());
        let output =
            shell.sql(&format!(".load ./libdqlite_vfs\n.open file:{name}.db?vfs=ha\nSELECT ha_join('{addr}', '{seed}', '{token}');"))?;
        let id = parse_id(name, &output);
        self.nodes.push(Node { shell, addr, id });
        Ok(id)
    }

    fn leader(&mut self) -> &mut Shell {
        &mut self.nodes[0].shell
    }
}

fn parse_id(name: &str, output: &str) -> NodeId {
    output
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("[{name}] startup returned {output:?}, not a node id"))
}

/// `ha_token()` (or `ha_token(options)`) on `shell`: the token's text.
fn issue_token(shell: &mut Shell, options: Option<&str>) -> String {
    let sql = match options {
        Some(options) => format!("SELECT ha_token('{options}');"),
        None => "SELECT ha_token();".to_owned(),
    };
    let token = shell.ok(&sql).trim().to_owned();
    assert!(token.starts_with("dqvfs-join1."), "[{}] ha_token() returned {token:?}", shell.name());
    token
}

/// The member ids `ha_status()` lists, in order.
fn member_ids(shell: &mut Shell) -> Vec<NodeId> {
    let status = shell.status();
    let members = status["members"].as_array().unwrap_or_else(|| panic!("no members in {status}"));
    members
        .iter()
        .map(|m| m["id"].as_u64().unwrap_or_else(|| panic!("member without id: {m}")))
        .collect()
}

/// The outstanding token ids and their uses left, as `ha_status()` lists them.
fn tokens(shell: &mut Shell) -> BTreeSet<(String, u64)> {
    let status = shell.status();
    let tokens = status["tokens"].as_array().unwrap_or_else(|| panic!("no tokens in {status}"));
    tokens
        .iter()
        .map(|t| (t["id"].as_str().unwrap_or("?").to_owned(), t["uses_left"].as_u64().unwrap_or(0)))
        .collect()
}

fn unix_now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

// ---------------------------------------------------------------------------------------------
// The attacker: the crate's own library in this process
// ---------------------------------------------------------------------------------------------

/// The attacker's runtime: the transport needs tokio, and endpoints bound on it keep serving
/// between `block_on` calls (its worker threads drive them).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Asks `seed` to admit a node reachable at `my_addr` with `token`, proving the token's secret
/// for `key` exactly as a real joiner does, and follows redirects to the leader. Unlike
/// `ha_join` it makes no local check first (expiry, role): the *leader's* checks are tested.
async fn join_with(
    seed: &str,
    token: &JoinToken,
    role: Role,
    key: &NodeKey,
    my_addr: &str,
) -> Result<JoinGrant, TransportError> {
    let mut target = seed.to_owned();
    // A few redirects at most: leadership does not move in these tests.
    for _ in 0..4 {
        let (pin, token, addr, public_key_der) =
            (token.ca_fingerprint, token.clone(), my_addr.to_owned(), key.public_key_der());
        let request = move |tls_exporter| {
            let binding = ProofBinding {
                token_id: token.id,
                tls_exporter,
                joiner_public_key_der: &public_key_der,
                role,
                addr: &addr,
            };
            let proof = token.prove(&binding);
            JoinRequest {
                token_id: token.id,
                role,
                addr: addr.clone(),
                public_key_der: public_key_der.clone(),
                proof,
            }
        };
        match transport::join(&target, pin, request, CALL_DEADLINE).await? {
            JoinAnswer::Granted(grant) => return Ok(grant),
            JoinAnswer::Redirect(leader) => target = leader,
        }
    }
    panic!("the join through {seed} kept being redirected")
}

/// A peer admitted through a real join, holding the certificate the leader signed for it.
struct Impostor {
    /// Serves (with [`RefusingHandler`]) and calls with the granted certificate (mTLS).
    endpoint: Endpoint,
    node_id: NodeId,
    addr: String,
}

impl Impostor {
    /// Joins through `seed` with `token` for `role`, then binds an endpoint at the address it
    /// gave the leader, presenting the granted certificate.
    async fn admit(seed: &str, token: &str, role: Role) -> Impostor {
        let token = JoinToken::decode(token).expect("a token from ha_token() decodes");
        let key = NodeKey::generate().expect("key pair");
        let addr = format!("127.0.0.1:{}", common::free_udp_port(PORTS));
        let grant = join_with(seed, &token, role, &key, &addr)
            .await
            .unwrap_or_else(|e| panic!("a valid token is refused: {e}"));
        let ca = ClusterCa::from_pem(&grant.ca_cert_pem, None)
            .expect("the granted CA certificate parses");
        let identity = NodeIdentity::new(&grant.cert_pem, key)
            .expect("the granted certificate is for our key");
        let endpoint = Endpoint::bind(&addr, &ca, &identity, Arc::new(RefusingHandler::default()))
            .await
            .expect("bind the impostor");
        Impostor { endpoint, node_id: grant.node_id, addr }
    }

    /// Sends `request` to the node at `addr` as this member.
    async fn call(&self, addr: &str, request: Request) -> Result<Response, TransportError> {
        self.endpoint.client().call(addr, request, CALL_DEADLINE).await
    }
}

/// The refusal text of a call's outcome; panics (naming `what`) if the node did anything but
/// refuse.
fn refusal(what: &str, outcome: Result<Response, TransportError>) -> String {
    match outcome {
        Err(TransportError::Remote { message, .. }) => message,
        Ok(Response::Error { message, .. }) => message,
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

/// The leader's refusal text of a join; panics if the join was not refused by the leader.
fn join_refusal(what: &str, outcome: Result<JoinGrant, TransportError>) -> String {
    match outcome {
        Err(TransportError::Remote { message, .. }) => message,
        Ok(grant) => panic!("{what}: admitted as node {}", grant.node_id),
        Err(other) => panic!("{what}: expected the leader's refusal, got {other}"),
    }
}

/// An attacker's server side: answers everything with an error and counts what it was asked
/// (a rogue server must never even get a request from a joiner that pins another CA).
#[derive(Default)]
struct RefusingHandler {
    requests: AtomicU64,
}

const REFUSING: &str = "hostile test peer: refuses everything";

impl RpcHandler for RefusingHandler {
    fn handle(&self, _caller: &Caller, _request: Request) -> BoxFuture<Response> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Response::Error { message: REFUSING.into(), retryable: false } })
    }

    fn append_stream(
        &self,
        _caller: &PeerIdentity,
        _requests: BoxStream<'static, AppendEntriesRequest<TypeConfig>>,
    ) -> BoxStream<'static, AppendReply> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        Box::pin(futures_util::stream::once(async {
            AppendReply::Failed { message: REFUSING.into() }
        }))
    }

    fn accept_snapshot(
        &self,
        _caller: &PeerIdentity,
        _header: &SnapshotHeader,
    ) -> Result<(), Response> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        Err(Response::Error { message: REFUSING.into(), retryable: false })
    }

    fn incoming_snapshot_path(&self) -> PathBuf {
        // Never written: every snapshot is refused in `accept_snapshot`.
        std::env::temp_dir().join("dqlite-vfs-hostile-peer-never-written")
    }

    fn install_snapshot(
        &self,
        _vote: VoteOf<TypeConfig>,
        _meta: SnapshotMetaOf<TypeConfig>,
        _image: SnapshotImage,
    ) -> BoxFuture<Result<SnapshotResponse<TypeConfig>, String>> {
        Box::pin(async { Err(REFUSING.to_owned()) })
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// Goal: the leader refuses every join whose token is not a valid, outstanding token of this
/// cluster proven with its secret, says which problem it is, and a refused join costs the
/// cluster nothing (no member, no node id, no token use).
/// Method: a 2-node cluster of shells; the attacker sends joins through `transport::join`
/// (so the leader's checks run, not the joiner's local ones): (a) a real outstanding token's
/// id with another secret, (b) the token node 2 used up, (c) a token expired one second ago,
/// (d) a token of a second, one-node cluster, (e) a token id never issued. After each, the
/// members are the same; at the end the token of (a) still admits a real node as node 3.
#[test]
fn joins_with_bad_tokens_are_refused() {
    let mut cluster = Cluster::start(1);
    let used_up = issue_token(cluster.leader(), None);
    assert_eq!(cluster.join("n2", &used_up).expect("n2 joins"), 2);
    cluster.nodes[1].shell.wait_for_role("follower", SETTLE_DEADLINE);
    let seed = cluster.nodes[0].addr.clone();
    let members = member_ids(cluster.leader());
    assert_eq!(members, vec![1, 2]);
    let rt = runtime();
    let attempt = |token: &JoinToken| {
        let key = NodeKey::generate().expect("key pair");
        let addr = format!("127.0.0.1:{}", common::free_udp_port(PORTS));
        rt.block_on(join_with(&seed, token, Role::Voter, &key, &addr))
    };

    // (a) Right id, wrong secret: the proof is checked against the stored verifier.
    let legitimate = issue_token(cluster.leader(), None);
    let real = JoinToken::decode(&legitimate).expect("decode");
    let mut forged = JoinToken::generate(
        real.cluster_id,
        real.ca_fingerprint,
        real.role,
        real.expires_at_unix_s,
        vec![],
    )
    .expect("token");
    forged.id = real.id;
    let outstanding = tokens(cluster.leader());
    let message = join_refusal("(a) wrong secret", attempt(&forged));
    println!("(a) wrong secret: {message}");
    assert!(
        message.contains("the join proof does not match the token: wrong secret"),
        "(a): {message}"
    );
    assert_eq!(member_ids(cluster.leader()), members, "(a) members changed");
    assert_eq!(
        tokens(cluster.leader()),
        outstanding,
        "(a) a refused join must not spend a token use"
    );

    // (b) The token node 2 joined with (one use), with its real secret.
    let message =
        join_refusal("(b) used up", attempt(&JoinToken::decode(&used_up).expect("decode")));
    println!("(b) used up: {message}");
    assert!(message.contains("has no uses left"), "(b): {message}");
    assert_eq!(member_ids(cluster.leader()), members, "(b) members changed");

    // (c) Expired one second after issue; the attacker skips the joiner's local expiry check.
    let short =
        JoinToken::decode(&issue_token(cluster.leader(), Some(r#"{"ttl_s":1}"#))).expect("decode");
    std::thread::sleep(Duration::from_secs(2));
    assert!(short.expires_at_unix_s <= unix_now_s(), "the token must have expired by now");
    let message = join_refusal("(c) expired", attempt(&short));
    println!("(c) expired: {message}");
    assert!(message.contains("expired at unix time"), "(c): {message}");
    assert_eq!(member_ids(cluster.leader()), members, "(c) members changed");

    // (d) Another cluster's token sent to this cluster: the pin fails in the handshake,
    // before any request is sent.
    cluster.init("other");
    let other_token = issue_token(&mut cluster.nodes[2].shell, None);
    let other = JoinToken::decode(&other_token).expect("decode");
    match attempt(&other) {
        Err(TransportError::Trust(TrustError::ForeignCluster { expected, found })) => {
            println!(
                "(d) foreign cluster: pinned {expected}, presented {}",
                found.map_or("none".into(), |f| f.to_string())
            );
            assert_eq!(expected, other.ca_fingerprint);
            assert_eq!(found, Some(real.ca_fingerprint), "the node presents its own cluster's CA");
        }
        other => panic!("(d) another cluster's token: expected ForeignCluster, got {other:?}"),
    }
    assert_eq!(member_ids(cluster.leader()), members, "(d) members changed");

    // (e) A well-formed token of this cluster whose id was never issued.
    let unknown = JoinToken::generate(
        real.cluster_id,
        real.ca_fingerprint,
        Role::Voter,
        unix_now_s() + 3600,
        vec![],
    )
    .expect("token");
    let message = join_refusal("(e) unknown id", attempt(&unknown));
    println!("(e) unknown token: {message}");
    assert!(message.contains("no outstanding token"), "(e): {message}");
    assert_eq!(member_ids(cluster.leader()), members, "(e) members changed");

    // The legitimate token still admits, and the refused joins allocated no node id.
    assert_eq!(cluster.join("n3", &legitimate).expect("n3 joins with the legitimate token"), 3);
    assert_eq!(member_ids(cluster.leader()), vec![1, 2, 3]);
}

/// Goal: a joiner trusts only the CA its token pins: a server with another CA, listening
/// where the joiner was told to go, gets no request and the joiner's database stays a plain
/// one.
/// Method: a one-node real cluster issues a token; a rogue endpoint with its own CA and a
/// certificate for node 1 binds a port; a real `sqlite3` shell runs
/// `ha_join(addr, rogue_addr, token)`. The error must name another cluster and the rogue's CA
/// fingerprint; the rogue's handler must have seen no request; no `<db>-ha` state directory
/// appears; `ha_status()` does not report a node.
#[test]
fn a_rogue_server_with_another_ca_is_refused_by_the_joiner() {
    let mut cluster = Cluster::start(1);
    let token = issue_token(cluster.leader(), None);
    let rt = runtime();
    let rogue_ca = ClusterCa::generate(ClusterId::generate().expect("id")).expect("rogue CA");
    let rogue_identity = NodeIdentity::issue_self(
        &rogue_ca,
        rogue_ca.cluster_id(),
        1,
        NODE_CERT_VALIDITY,
        unix_now_s(),
    )
    .expect("rogue cert");
    let handler = Arc::new(RefusingHandler::default());
    let rogue_addr = format!("127.0.0.1:{}", common::free_udp_port(PORTS));
    let rogue = rt
        .block_on(Endpoint::bind(&rogue_addr, &rogue_ca, &rogue_identity, handler.clone()))
        .expect("bind the rogue server");

    let addr = format!("127.0.0.1:{}", common::free_udp_port(PORTS));
    let mut joiner = Shell::start("joiner", cluster.dir());
    let outcome =
        joiner.sql(&format!(".load ./libdqlite_vfs\n.open file:joiner.db?vfs=ha\nSELECT ha_join('{addr}', '{rogue_addr}', '{token}');"));
    let error = outcome.expect_err("joining through a rogue server must fail");
    println!("joiner: {error}");
    assert!(error.contains("the peer belongs to another cluster"), "{error}");
    assert!(
        error.contains(&rogue_ca.fingerprint().to_string()),
        "the error names the rogue's CA: {error}"
    );
    assert_eq!(
        handler.requests.load(Ordering::SeqCst),
        0,
        "the rogue server must get no request (no proof, no key)"
    );
    assert!(
        !cluster.dir().join("joiner.db-ha").exists(),
        "a failed join must not create the node's state directory"
    );
    match joiner.sql("SELECT json_extract(ha_status(), '$.role');") {
        Ok(role) => assert!(
            !["leader", "follower", "learner", "candidate"].contains(&role.trim()),
            "joiner reports {role}"
        ),
        Err(error) => println!("joiner ha_status(): {error}"),
    }
    // The real cluster is untouched.
    assert_eq!(member_ids(cluster.leader()), vec![1]);
    rt.block_on(rogue.shutdown());
}

/// Goal: a learner, holding a valid certificate, cannot get the CA key, remove or promote
/// anyone (itself included), issue tokens or read the log as archive records, from the
/// leader or a follower.
/// Method: a 2-node cluster issues a learner token; the attacker joins with it through the
/// library, binds an endpoint with the granted certificate and sends `FetchCaKey`,
/// `Remove{1}`, `AddMember{itself, voter}`, `IssueToken` and `ArchiveRecords` to both nodes.
/// Each must be refused; the members and outstanding tokens are the same afterwards.
#[test]
fn a_learner_cannot_get_the_ca_key_or_change_membership() {
    let mut cluster = Cluster::start(2);
    let token = issue_token(cluster.leader(), Some("learner"));
    let rt = runtime();
    let seed = cluster.nodes[0].addr.clone();
    let learner = rt.block_on(Impostor::admit(&seed, &token, Role::Learner));
    println!("learner admitted as node {}", learner.node_id);
    let members = member_ids(cluster.leader());
    let outstanding = tokens(cluster.leader());

    let requests = [
        AdminRequest::FetchCaKey,
        AdminRequest::Remove { node_id: 1 },
        AdminRequest::AddMember {
            node_id: learner.node_id,
            addr: learner.addr.clone(),
            learner: false,
        },
        AdminRequest::IssueToken { role: Role::Voter, ttl_s: 3600, uses: 1, seeds: vec![] },
        AdminRequest::ArchiveRecords { first: 1, last: u64::MAX },
    ];
    let targets: Vec<(String, String)> =
        cluster.nodes.iter().map(|n| (format!("n{}", n.id), n.addr.clone())).collect();
    for (name, addr) in &targets {
        for request in &requests {
            let what = format!("{request:?} to {name}");
            let message =
                refusal(&what, rt.block_on(learner.call(addr, Request::Admin(request.clone()))));
            println!("{what}: {message}");
            let expected = match request {
                AdminRequest::AddMember { .. } => "admitted as a learner",
                _ => "is not a voter",
            };
            assert!(message.contains(expected), "{what}: {message}");
        }
    }
    assert_eq!(member_ids(cluster.leader()), members, "members changed");
    assert_eq!(tokens(cluster.leader()), outstanding, "outstanding tokens changed");
    let learner_in_members = member_ids(&mut cluster.nodes[1].shell).contains(&learner.node_id);
    assert!(!learner_in_members, "the learner must not have become a member of any kind");
    rt.block_on(learner.endpoint.shutdown());
}

/// Goal: an admitted node cannot speak in another node's name in Raft, nor push a term to
/// overflow: votes are taken only from the candidate they name, appends only from the leader
/// they name, and terms past 2^48 are refused before openraft sees them.
/// Method: a 2-node cluster issues a voter token; the attacker joins with it (admitted, never
/// added to the membership) and sends, to both nodes, a `Vote` naming node 2, an
/// `AppendEntries` naming leader 1, and a `Vote` and an `AppendEntries` with term `u64::MAX`
/// naming itself. Each must be refused with the rule it broke; afterwards no node's term
/// moved past 2^48 (printed before and after), the leader is the same and still commits.
#[test]
fn forged_raft_messages_are_refused() {
    let mut cluster = Cluster::start(2);
    let token = issue_token(cluster.leader(), None);
    let rt = runtime();
    let seed = cluster.nodes[0].addr.clone();
    let impostor = rt.block_on(Impostor::admit(&seed, &token, Role::Voter));
    let me = impostor.node_id;
    println!("impostor admitted as node {me}");
    let terms_before: Vec<u64> = cluster
        .nodes
        .iter_mut()
        .map(|n| n.shell.status()["term"].as_u64().expect("term"))
        .collect();
    let term = terms_before.iter().copied().max().expect("two nodes");

    let vote = |term: u64, node: NodeId| VoteOf::<TypeConfig>::new(term, node);
    let append = |term: u64, leader: NodeId| AppendEntriesRequest::<TypeConfig> {
        vote: VoteOf::<TypeConfig>::new_committed(term, leader),
        prev_log_id: None,
        entries: vec![],
        leader_commit: None,
    };
    let forgeries = [
        (
            "a vote naming node 2",
            Request::Vote(VoteRequest::new(vote(term + 1, 2), None)),
            "sent a message naming node 2",
        ),
        (
            "a pre-vote naming node 2",
            Request::PreVote(VoteRequest::new(vote(term + 1, 2), None)),
            "sent a message naming node 2",
        ),
        (
            "an append naming leader 1",
            Request::AppendEntries(append(term, 1)),
            "in the name of leader 1",
        ),
        (
            "a vote with term u64::MAX",
            Request::Vote(VoteRequest::new(vote(u64::MAX, me), None)),
            "past the bound",
        ),
        (
            "an append with term u64::MAX",
            Request::AppendEntries(append(u64::MAX, me)),
            "past the bound",
        ),
    ];
    let targets: Vec<(String, String)> =
        cluster.nodes.iter().map(|n| (format!("n{}", n.id), n.addr.clone())).collect();
    for (name, addr) in &targets {
        for (what, request, expected) in &forgeries {
            let what = format!("{what} to {name}");
            let message = refusal(&what, rt.block_on(impostor.call(addr, request.clone())));
            println!("{what}: {message}");
            assert!(message.contains(expected), "{what}: {message}");
        }
    }

    let terms_after: Vec<u64> = cluster
        .nodes
        .iter_mut()
        .map(|n| n.shell.status()["term"].as_u64().expect("term"))
        .collect();
    println!("terms before {terms_before:?}, after {terms_after:?}");
    assert!(
        terms_after.iter().all(|&t| t < TERM_MAX),
        "a forged term got through: {terms_after:?}"
    );
    assert_eq!(cluster.leader().status()["role"], "leader", "node 1 must still lead");
    cluster.leader().ok("CREATE TABLE t(v TEXT); INSERT INTO t VALUES ('after the forgeries');");
    cluster.nodes[1].shell.barrier(SETTLE_DEADLINE);
    assert_eq!(cluster.nodes[1].shell.ok("SELECT v FROM t;"), "after the forgeries");
    rt.block_on(impostor.endpoint.shutdown());
}

/// Goal: once removed, a node's certificate is worth nothing: every node answers its requests
/// with `Revoked`, not with data.
/// Method: a 2-node cluster issues a learner token; the attacker joins with it, binds an
/// endpoint and adds itself as a learner member (allowed to the admitted node itself; its
/// handler refuses the replication traffic, so it never catches up; only its membership
/// matters here). Once `ha_status()` lists it, node 1 runs `ha_remove(<its id>)`; then
/// its `ReadIndex` requests (answered while it was a member) must get `Revoked` from both nodes
/// within a bounded wait, and so must `Status` and a second `AddMember` of itself.
#[test]
fn a_removed_node_is_refused() {
    let mut cluster = Cluster::start(2);
    let token = issue_token(cluster.leader(), Some("learner"));
    let rt = runtime();
    let seed = cluster.nodes[0].addr.clone();
    let intruder = rt.block_on(Impostor::admit(&seed, &token, Role::Learner));
    let id = intruder.node_id;
    println!("intruder admitted as node {id} at {}", intruder.addr);

    // openraft's leader waits (briefly, by its own default) for the new learner to catch up,
    // which it never does; the membership change is committed either way, so an answer or
    // our 3 s timeout are both fine: ha_status() decides.
    let add = AdminRequest::AddMember { node_id: id, addr: intruder.addr.clone(), learner: true };
    let added = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(3),
            intruder.call(&seed, Request::Admin(add.clone())),
        )
        .await
    });
    println!("AddMember of itself: {added:?}");
    let until = Instant::now() + SETTLE_DEADLINE;
    while !member_ids(cluster.leader()).contains(&id) {
        assert!(Instant::now() < until, "node {id} was not added as a learner: {added:?}");
        std::thread::sleep(POLL);
    }
    // While a member, it is answered like any member. (`ReadIndex`, not `Status`: a remote
    // `Status` is refused by every node with "status is answered locally".)
    let answer = rt.block_on(intruder.call(&seed, Request::Admin(AdminRequest::ReadIndex)));
    assert!(
        matches!(answer, Ok(Response::Admin(_))),
        "a member's ReadIndex before removal: {answer:?}"
    );

    cluster.leader().ok(&format!("SELECT ha_remove({id});"));
    assert!(!member_ids(cluster.leader()).contains(&id), "ha_remove({id}) left it a member");
    let targets: Vec<(String, String)> =
        cluster.nodes.iter().map(|n| (format!("n{}", n.id), n.addr.clone())).collect();
    for (name, addr) in &targets {
        // A follower learns of the revocation when it applies the entry: poll, bounded.
        let until = Instant::now() + SETTLE_DEADLINE;
        loop {
            match rt.block_on(intruder.call(addr, Request::Admin(AdminRequest::ReadIndex))) {
                Ok(Response::Revoked { node_id }) => {
                    assert_eq!(node_id, id);
                    println!("ReadIndex to {name} after removal: Revoked {{ node_id: {node_id} }}");
                    break;
                }
                Ok(Response::Admin(_)) if Instant::now() < until => std::thread::sleep(POLL),
                other => {
                    panic!("ReadIndex to {name} after removal: expected Revoked, got {other:?}")
                }
            }
        }
        for request in [AdminRequest::Status, add.clone()] {
            let again = rt.block_on(intruder.call(addr, Request::Admin(request.clone())));
            assert!(
                matches!(again, Ok(Response::Revoked { .. })),
                "{request:?} to {name} after removal: {again:?}"
            );
        }
    }
    assert!(!member_ids(cluster.leader()).contains(&id), "the removed node came back");
    rt.block_on(intruder.endpoint.shutdown());
}

// ---------------------------------------------------------------------------------------------
// Flood
// ---------------------------------------------------------------------------------------------

/// How long each commit-rate measurement lasts.
const MEASURE: Duration = Duration::from_secs(3);

/// Autocommit INSERTs per shell batch while measuring (one round trip to the shell each).
const INSERTS_PER_BATCH: usize = 10;

/// A batch of INSERTs taking this long counts as commits having stopped.
const BATCH_DEADLINE: Duration = Duration::from_secs(20);

/// The fewest unauthenticated connection attempts the flood must make (the goal's figure).
const FLOOD_ATTEMPTS_MIN: u64 = 1_000;

/// The most connection attempts the flood makes; it also stops when the measurement ends.
const FLOOD_ATTEMPTS_MAX: usize = 20_000;

/// Client sockets (quinn endpoints) the flood spreads its connections over.
const FLOOD_SOCKETS: usize = 6;

/// Handshakes in flight at once per flood socket.
const FLOOD_IN_FLIGHT: usize = 32;

/// How long the flood builds up before the second measurement starts.
const FLOOD_RAMP: Duration = Duration::from_secs(1);

/// Bound on one flood handshake, and on tearing the flood down.
const FLOOD_STEP_DEADLINE: Duration = Duration::from_secs(5);

/// The most garbage datagrams sent.
const GARBAGE_DATAGRAMS_MAX: u64 = 100_000;

/// What the flood did, counted by its tasks.
#[derive(Default)]
struct FloodCounts {
    attempted: AtomicU64,
    handshakes: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    garbage_streams: AtomicU64,
    datagrams: AtomicU64,
    first_failure: Mutex<Option<String>>,
    /// Completed connections, held open (idle, kept alive) until the flood ends.
    open: Mutex<Vec<quinn::Connection>>,
}

/// A client config like a joiner's (no certificate, pinned to the real CA, so handshakes
/// complete), with keep-alives so the connections it makes stay open while idle.
fn flood_client_config(pin: Fingerprint) -> quinn::ClientConfig {
    let (crypto, _pin_check) = transport::tls::join_client_config(pin).expect("join client config");
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(Duration::from_millis(500))).max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(Duration::from_secs(10)).expect("idle timeout"),
    ));
    config.transport_config(Arc::new(transport));
    config
}

/// One flood connection: handshake as an anonymous joiner; if it completes, some connections
/// send garbage on a stream (random bytes, or a frame announcing 1 GiB that never comes) and
/// all are kept open and idle.
async fn flood_one(
    socket: quinn::Endpoint,
    config: quinn::ClientConfig,
    target: SocketAddr,
    n: usize,
    counts: Arc<FloodCounts>,
) {
    counts.attempted.fetch_add(1, Ordering::Relaxed);
    let connecting = match socket.connect_with(config, target, CLUSTER_SERVER_NAME) {
        Ok(connecting) => connecting,
        Err(e) => return flood_failure(&counts, e.to_string()),
    };
    let conn = match tokio::time::timeout(FLOOD_STEP_DEADLINE, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) if e.to_string().to_lowercase().contains("refuse") => {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Ok(Err(e)) => return flood_failure(&counts, e.to_string()),
        Err(_) => return flood_failure(&counts, "handshake timed out".into()),
    };
    counts.handshakes.fetch_add(1, Ordering::Relaxed);
    if n.is_multiple_of(2) {
        let garbage = async {
            let (mut send, _recv) = conn.open_bi().await.ok()?;
            let mut bytes = vec![0u8; 4 + (rand::random::<u32>() % 4096) as usize];
            rand::rng().fill_bytes(&mut bytes);
            if n.is_multiple_of(4) {
                // A length prefix of 1 GiB, then a little: the server must bound what it reads.
                bytes[..4].copy_from_slice(&(1u32 << 30).to_be_bytes());
            }
            send.write_all(&bytes).await.ok()?;
            Some(())
        };
        if tokio::time::timeout(Duration::from_secs(1), garbage).await.ok().flatten().is_some() {
            counts.garbage_streams.fetch_add(1, Ordering::Relaxed);
        }
    }
    counts.open.lock().expect("flood lock").push(conn);
}

fn flood_failure(counts: &FloodCounts, error: String) {
    counts.failed.fetch_add(1, Ordering::Relaxed);
    counts.first_failure.lock().expect("flood lock").get_or_insert(error);
}

/// Makes connection attempts from `FLOOD_SOCKETS` sockets until `stop` or the cap; returns
/// the sockets, to be closed by the caller.
async fn flood_connections(
    target: SocketAddr,
    pin: Fingerprint,
    counts: Arc<FloodCounts>,
    stop: Arc<AtomicBool>,
) -> Vec<quinn::Endpoint> {
    let config = flood_client_config(pin);
    let per_socket = FLOOD_ATTEMPTS_MAX / FLOOD_SOCKETS;
    let mut tasks = Vec::new();
    let mut sockets = Vec::new();
    for s in 0..FLOOD_SOCKETS {
        let socket = quinn::Endpoint::client(([127, 0, 0, 1], 0).into()).expect("flood socket");
        sockets.push(socket.clone());
        let (config, counts, stop) = (config.clone(), counts.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            futures_util::stream::iter(0..per_socket)
                .take_while(|_| std::future::ready(!stop.load(Ordering::Relaxed)))
                .for_each_concurrent(FLOOD_IN_FLIGHT, |i| {
                    flood_one(
                        socket.clone(),
                        config.clone(),
                        target,
                        s * per_socket + i,
                        counts.clone(),
                    )
                })
                .await
        }));
    }
    for task in tasks {
        // Every step inside is bounded; this bounds the whole drain after `stop` as well.
        let _ = tokio::time::timeout(FLOOD_STEP_DEADLINE * 2, task).await;
    }
    sockets
}

/// Sends random datagrams at `target` until `stop` or the cap: half of them shaped like QUIC
/// v1 Initial packets of 1200 bytes (so the server derives keys and tries to decrypt them),
/// half random bytes of random length.
fn garbage_datagrams(target: SocketAddr, counts: &FloodCounts, stop: &AtomicBool) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("garbage socket");
    let mut rng = rand::rng();
    let mut buf = [0u8; 1400];
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) && sent < GARBAGE_DATAGRAMS_MAX {
        for _ in 0..100 {
            let len = if sent.is_multiple_of(2) {
                1200
            } else {
                1 + (rng.next_u32() as usize % buf.len())
            };
            rng.fill_bytes(&mut buf[..len]);
            if sent.is_multiple_of(2) {
                buf[0] = 0xc0 | (buf[0] & 0x0f);
                buf[1..5].copy_from_slice(&1u32.to_be_bytes());
                buf[5] = 8;
            }
            // A full socket buffer only means fewer datagrams arrive; the count is of sends.
            if socket.send_to(&buf[..len], target).is_ok() {
                sent += 1;
            }
        }
        // Paced (about 20,000 a second at most) so the flood does not only measure our own CPU.
        std::thread::sleep(Duration::from_millis(5));
    }
    counts.datagrams.store(sent, Ordering::Relaxed);
}

/// A running flood (connections and datagrams) at one node, from this process.
struct Flood {
    counts: Arc<FloodCounts>,
    stop: Arc<AtomicBool>,
    connections: tokio::task::JoinHandle<Vec<quinn::Endpoint>>,
    datagrams: std::thread::JoinHandle<()>,
}

impl Flood {
    /// Starts flooding `target` on `rt`; `pin` is the real CA's fingerprint (from a token).
    fn start(rt: &tokio::runtime::Runtime, target: SocketAddr, pin: Fingerprint) -> Flood {
        let counts = Arc::new(FloodCounts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let connections = rt.spawn(flood_connections(target, pin, counts.clone(), stop.clone()));
        let datagrams = {
            let (counts, stop) = (counts.clone(), stop.clone());
            std::thread::spawn(move || garbage_datagrams(target, &counts, &stop))
        };
        Flood { counts, stop, connections, datagrams }
    }

    /// Stops the flood, closes its connections and sockets (each wait bounded); returns the
    /// counts and how many completed connections were still open at the end.
    fn stop(self, rt: &tokio::runtime::Runtime) -> (Arc<FloodCounts>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let sockets = rt.block_on(async {
            tokio::time::timeout(FLOOD_STEP_DEADLINE * 3, self.connections).await
        });
        self.datagrams.join().expect("garbage thread");
        let open = std::mem::take(&mut *self.counts.open.lock().expect("flood lock"));
        let held_open = open.iter().filter(|c| c.close_reason().is_none()).count();
        for conn in &open {
            conn.close(0u32.into(), b"flood over");
        }
        if let Ok(Ok(sockets)) = sockets {
            rt.block_on(async {
                for socket in sockets {
                    let _ =
                        tokio::time::timeout(Duration::from_millis(500), socket.wait_idle()).await;
                }
            });
        }
        (self.counts, held_open)
    }
}

/// Autocommit INSERTs on `shell` in batches for about `duration`; every batch must succeed.
/// Returns how many rows were inserted and the time it took.
fn measure_commits(shell: &mut Shell, label: &str, duration: Duration) -> (usize, Duration) {
    let start = Instant::now();
    let mut inserted = 0;
    while start.elapsed() < duration {
        let sql: String = (0..INSERTS_PER_BATCH)
            .map(|i| format!("INSERT INTO flood(v) VALUES ('{label}-{}');\n", inserted + i))
            .collect();
        if let Err(error) = shell.sql_within(&sql, BATCH_DEADLINE) {
            panic!(
                "[{}] an INSERT failed {:?} into the {label} measurement: {error}",
                shell.name(),
                start.elapsed()
            );
        }
        inserted += INSERTS_PER_BATCH;
    }
    (inserted, start.elapsed())
}

/// `VmHWM` (peak resident set) and `VmRSS` of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Goal: a flood of unauthenticated QUIC connections and garbage datagrams at a follower does
/// not stop the cluster committing, nor cut the follower off for good.
/// Method: a 3-node cluster of shells. Serial autocommit INSERTs on the leader for ~3 s give
/// the baseline rate. Then this process opens at least 1,000 anonymous QUIC connections to a
/// follower (pinned to the real CA, so handshakes complete; half send garbage on a stream,
/// all stay open and idle) from several sockets, and sends random UDP datagrams at it, while
/// the INSERTs are timed again for ~3 s. Every INSERT must succeed and the rate during the
/// flood must be above zero; both rates, their ratio, the follower's peak RSS and the
/// connections completed vs refused are printed, not bounded. After the flood the follower is
/// still a follower, passes `ha_barrier()` and holds every row.
#[test]
fn commits_go_on_under_a_connection_flood() {
    let started = Instant::now();
    let mut cluster = Cluster::start(3);
    let pin =
        JoinToken::decode(&issue_token(cluster.leader(), None)).expect("decode").ca_fingerprint;
    let target: SocketAddr = cluster.nodes[1].addr.parse().expect("follower address");
    let follower_pid = cluster.nodes[1].shell.pid();
    cluster.leader().ok("CREATE TABLE flood(v TEXT NOT NULL);");
    cluster.nodes[1].shell.barrier(SETTLE_DEADLINE);

    let (before, before_time) = measure_commits(cluster.leader(), "before", MEASURE);
    let memory_before = memory_kib(follower_pid);
    let applied_before = cluster.nodes[1].shell.status()["applied_index"].as_u64();

    let rt = runtime();
    let flood = Flood::start(&rt, target, pin);
    std::thread::sleep(FLOOD_RAMP);
    let (during, during_time) = measure_commits(cluster.leader(), "during", MEASURE);
    let applied_during = cluster.nodes[1].shell.status()["applied_index"].as_u64();
    let leader_commit = cluster.leader().status()["commit_index"].as_u64();
    let memory_during = memory_kib(follower_pid);
    let (counts, held_open) = flood.stop(&rt);

    let rate = |n: usize, t: Duration| n as f64 / t.as_secs_f64();
    let (rate_before, rate_during) = (rate(before, before_time), rate(during, during_time));
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "commit rate before the flood: {rate_before:.0}/s ({before} INSERTs in {before_time:.2?})"
    );
    println!(
        "commit rate during the flood: {rate_during:.0}/s ({during} INSERTs in {during_time:.2?})"
    );
    println!("ratio during/before: {:.2}", rate_during / rate_before);
    println!(
        "flood: {} connection attempts, {} handshakes completed, {} refused, {} failed otherwise (first: {:?}), \
         {} garbage streams, {held_open} still open at the end, {} garbage datagrams",
        load(&counts.attempted),
        load(&counts.handshakes),
        load(&counts.refused),
        load(&counts.failed),
        counts.first_failure.lock().expect("flood lock").clone(),
        load(&counts.garbage_streams),
        load(&counts.datagrams),
    );
    println!(
        "follower memory: VmHWM {} KiB before, {} KiB during the flood (VmRSS {} -> {} KiB)",
        memory_before.0, memory_during.0, memory_before.1, memory_during.1
    );
    println!("follower applied index: {applied_before:?} before the flood, {applied_during:?} at its end (leader commit {leader_commit:?})");

    assert!(
        load(&counts.attempted) >= FLOOD_ATTEMPTS_MIN,
        "the flood made only {} attempts",
        load(&counts.attempted)
    );
    assert!(
        load(&counts.datagrams) >= 1_000,
        "only {} garbage datagrams sent",
        load(&counts.datagrams)
    );
    assert!(during > 0, "no commit during the flood");
    let total = before + during;
    assert_eq!(
        cluster.leader().ok("SELECT count(*) FROM flood;"),
        total.to_string(),
        "acknowledged INSERTs missing on the leader"
    );

    // The follower got through the flood: still following, and it catches up.
    cluster.nodes[1].shell.wait_for_role("follower", SETTLE_DEADLINE);
    cluster.nodes[1].shell.barrier(SETTLE_DEADLINE);
    assert_eq!(
        cluster.nodes[1].shell.ok("SELECT count(*) FROM flood;"),
        total.to_string(),
        "the follower lacks rows"
    );
    println!("test ran {:.1?}", started.elapsed());
}

/// Goal: while anonymous peers hold every connection slot of a node, a member can still open
/// a new connection to it and be answered (else a member whose connection broke during a
/// flood, e.g. a restarted leader, is locked out until the flood ends).
/// Method: a 2-node cluster; a learner token admits the attacker's own member identity (a
/// valid certificate, not added to the membership, so it has no connection yet). The same
/// flood as above hits the follower; once it has completed as many handshakes as the
/// server's connection limit, the member sends `ReadIndex` to the follower over a new
/// connection, retrying for a bounded time, and must get its answer.
#[test]
fn a_member_still_connects_during_a_flood() {
    /// The server's connection limit (`transport::limits::CONNECTIONS_MAX`).
    const CONNECTIONS_MAX: u64 = 256;
    /// How long the member keeps trying to be answered.
    const MEMBER_DEADLINE: Duration = Duration::from_secs(6);
    let mut cluster = Cluster::start(2);
    let token = issue_token(cluster.leader(), Some("learner"));
    let pin = JoinToken::decode(&token).expect("decode").ca_fingerprint;
    let rt = runtime();
    let seed = cluster.nodes[0].addr.clone();
    let member = rt.block_on(Impostor::admit(&seed, &token, Role::Learner));
    let follower = cluster.nodes[1].addr.clone();
    let flood = Flood::start(&rt, follower.parse().expect("follower address"), pin);
    let until = Instant::now() + FLOOD_STEP_DEADLINE * 2;
    while flood.counts.handshakes.load(Ordering::Relaxed) < CONNECTIONS_MAX - 8
        && Instant::now() < until
    {
        std::thread::sleep(POLL);
    }
    let full_after = flood.counts.handshakes.load(Ordering::Relaxed);

    let until = Instant::now() + MEMBER_DEADLINE;
    let mut outcomes = Vec::new();
    let answered = loop {
        let outcome = rt.block_on(member.call(&follower, Request::Admin(AdminRequest::ReadIndex)));
        let ok = matches!(outcome, Ok(Response::Admin(_)));
        outcomes.push(format!("{outcome:?}"));
        if ok || Instant::now() >= until {
            break ok;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (counts, held_open) = flood.stop(&rt);
    println!(
        "flood: {full_after} handshakes before the member tried, {} in all, {} refused, {held_open} open at the end",
        counts.handshakes.load(Ordering::Relaxed),
        counts.refused.load(Ordering::Relaxed)
    );
    println!(
        "member's ReadIndex to the follower, {} tries: first {:?}, last {:?}",
        outcomes.len(),
        outcomes.first(),
        outcomes.last()
    );
    assert!(
        answered,
        "a member could not get a connection to the follower during the flood: {:?}",
        outcomes.last()
    );
    rt.block_on(member.endpoint.shutdown());
}
