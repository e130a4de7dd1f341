//! End-to-end tests of the transport: real endpoints on 127.0.0.1 (ephemeral ports), real
//! mTLS, the Raft network adapter on top. Every wait in these tests is bounded.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::impls::leader_id_adv::LeaderId;
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::{EntryOf, LogIdOf, SnapshotMetaOf, SnapshotOf, VoteOf};
use openraft::{EntryPayload, RaftNetworkFactory, RaftNetworkV2};

use crate::raft::network::NetworkFactory;
use crate::raft::types::{Command, Member, Page, PageSet, ProposalId, SnapshotImage, TypeConfig};
use crate::transport::endpoint::quic_client_config;
use crate::transport::tls::join_client_config;
use crate::transport::wire::{
    AdminRequest, AdminResponse, AppendReply, JoinGrant, JoinRequest, Request, Response,
    SnapshotHeader,
};
use crate::transport::{join, BoxFuture, Client, Endpoint, RpcHandler, TransportError};
use crate::transport::{Caller, JoinAnswer};
use crate::trust::{ClusterCa, ClusterId, NodeIdentity, NODE_CERT_VALIDITY};
use crate::trust::{JoinProof, NodeKey, PeerIdentity, Role, TokenId};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

const DEADLINE: Duration = Duration::from_secs(5);

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Answers like a cooperative peer and records what it was asked.
struct TestHandler {
    dir: PathBuf,
    ca: ClusterCa,
    calls: AtomicU64,
    installed: Mutex<Option<PathBuf>>,
    /// Never answer `Admin(Status)` nor append streams (to test deadlines).
    hang_on_status: bool,
    /// AppendEntries requests answered on append streams.
    appends: Arc<AtomicU64>,
    /// Who made the last `handle` call.
    last_caller: Mutex<Option<Caller>>,
}

impl RpcHandler for TestHandler {
    fn handle(&self, caller: &Caller, request: Request) -> BoxFuture<Response> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        *self.last_caller.lock().unwrap() = Some(caller.clone());
        let response = match request {
            Request::AppendEntries(req) => {
                assert_eq!(req.entries.len(), 1, "the entry must arrive intact");
                Response::AppendEntries(AppendEntriesResponse::Success)
            }
            Request::Vote(req) => Response::Vote(VoteResponse::new(req.vote, None, true)),
            Request::PreVote(req) => Response::PreVote(VoteResponse::new(req.vote, None, true)),
            // Signs whatever key it is sent: the node layer, not the transport, checks tokens.
            Request::Join(join) => match self.ca.issue(
                &join.public_key_der,
                self.ca.cluster_id(),
                7,
                NODE_CERT_VALIDITY,
                now_s(),
            ) {
                Ok(issued) => Response::Join(JoinGrant {
                    node_id: 7,
                    cluster_id: self.ca.cluster_id(),
                    ca_cert_pem: self.ca.cert_pem().into(),
                    cert_pem: issued.cert_pem,
                    members: BTreeMap::from([(7, Member { addr: join.addr })]),
                }),
                Err(e) => Response::Error { message: e.to_string(), retryable: false },
            },
            Request::Admin(AdminRequest::Status) if self.hang_on_status => {
                return Box::pin(std::future::pending())
            }
            Request::Admin(_) => Response::Admin(AdminResponse::Done),
            Request::TransferLeader(_) => Response::TransferLeader(Ok(())),
        };
        Box::pin(async move { response })
    }

    fn append_stream(
        &self,
        _caller: &PeerIdentity,
        requests: BoxStream<'static, AppendEntriesRequest<TypeConfig>>,
    ) -> BoxStream<'static, AppendReply> {
        if self.hang_on_status {
            return Box::pin(futures_util::stream::pending());
        }
        let calls = Arc::clone(&self.appends);
        // Every request is matched up to its last entry (or its prev_log_id when empty).
        Box::pin(requests.map(move |request| {
            calls.fetch_add(1, Ordering::SeqCst);
            let matched = request.entries.last().map(|e| e.log_id).or(request.prev_log_id);
            AppendReply::Appended(Ok(matched))
        }))
    }

    fn accept_snapshot(
        &self,
        _caller: &PeerIdentity,
        _header: &SnapshotHeader,
    ) -> Result<(), Response> {
        Ok(())
    }

    fn incoming_snapshot_path(&self) -> PathBuf {
        self.dir.join(format!("incoming-{}", self.calls.fetch_add(1, Ordering::SeqCst)))
    }

    fn install_snapshot(
        &self,
        vote: VoteOf<TypeConfig>,
        _meta: SnapshotMetaOf<TypeConfig>,
        image: SnapshotImage,
    ) -> BoxFuture<Result<SnapshotResponse<TypeConfig>, String>> {
        *self.installed.lock().unwrap() = Some(image.path);
        Box::pin(async move { Ok(SnapshotResponse::new(vote)) })
    }
}

struct Node {
    endpoint: Endpoint,
    handler: Arc<TestHandler>,
    addr: String,
    _dir: tempfile::TempDir,
}

async fn node_on(listen: &str, ca: &ClusterCa, hang_on_status: bool) -> Node {
    let identity =
        NodeIdentity::issue_self(ca, ca.cluster_id(), 1, NODE_CERT_VALIDITY, now_s()).unwrap();
    bound(listen, ca, &identity, hang_on_status).await
}

/// A node presenting `identity` (made elsewhere, e.g. by a join).
async fn node_with(ca: &ClusterCa, identity: &NodeIdentity) -> Node {
    bound("127.0.0.1:0", ca, identity, false).await
}

async fn bound(
    listen: &str,
    ca: &ClusterCa,
    identity: &NodeIdentity,
    hang_on_status: bool,
) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let handler = Arc::new(TestHandler {
        dir: dir.path().to_owned(),
        ca: ca.clone(),
        calls: AtomicU64::new(0),
        installed: Mutex::new(None),
        hang_on_status,
        appends: Arc::default(),
        last_caller: Mutex::new(None),
    });
    let endpoint = Endpoint::bind(listen, ca, identity, handler.clone()).await.unwrap();
    let addr = endpoint.local_addr().unwrap().to_string();
    Node { endpoint, handler, addr, _dir: dir }
}

async fn node(ca: &ClusterCa) -> Node {
    node_on("127.0.0.1:0", ca, false).await
}

fn vote() -> VoteOf<TypeConfig> {
    VoteOf::<TypeConfig>::new(3, 1)
}

fn write_entry() -> EntryOf<TypeConfig> {
    let pages = PageSet {
        page_size: 4096,
        db_size_pages: 2,
        pages: vec![Page { number: 2, data: vec![0xab; 4096].into() }],
    };
    let command =
        Command::Write { proposal: ProposalId { node: 1, seq: 9 }, base: 4, pages, at_ms: 1 };
    let log_id = LogIdOf::<TypeConfig>::new(LeaderId { term: 3, node_id: 1 }, 5);
    EntryOf::<TypeConfig> { log_id, payload: EntryPayload::Normal(command) }
}

// Goal: two members of one cluster exchange Raft RPCs over mTLS, through the openraft adapter.
#[tokio::test]
async fn members_exchange_rpcs_over_mtls() {
    let ca = ClusterCa::generate(ClusterId::generate().unwrap()).unwrap();
    let (a, b) = (node(&ca).await, node(&ca).await);
    let mut factory = NetworkFactory::new(2, b.endpoint.client(), Arc::default());
    let mut peer = factory.new_client(1, &Member { addr: a.addr.clone() }).await;
    let option = RPCOption::new(DEADLINE);

    let granted = peer.vote(VoteRequest::new(vote(), None), option.clone()).await.unwrap();
    assert!(granted.is_granted_to(&vote()), "{granted:?}");
    let append = AppendEntriesRequest {
        vote: vote(),
        prev_log_id: None,
        entries: vec![write_entry()],
        leader_commit: None,
    };
    let response = peer.append_entries(append, option.clone()).await.unwrap();
    assert!(matches!(response, AppendEntriesResponse::Success));
    // Both calls reached the handler over the same reused connection.
    assert_eq!(a.handler.calls.load(Ordering::SeqCst), 2);
    b.endpoint.shutdown().await;
    a.endpoint.shutdown().await;
}

// Goal: a call meant for one member never reaches another at its address: the certificate
// there must name the member dialled.
#[tokio::test]
async fn a_call_checks_which_member_answers() {
    let ca = ClusterCa::generate(ClusterId::generate().unwrap()).unwrap();
    let (a, b) = (node(&ca).await, node(&ca).await);
    let client = b.endpoint.client();
    let status = || Request::Admin(AdminRequest::Status);
    assert!(
        client.call_node(&a.addr, 1, status(), DEADLINE).await.is_ok(),
        "node 1 is at that address"
    );
    let err = client.call_node(&a.addr, 2, status(), DEADLINE).await.unwrap_err();
    assert!(matches!(err, TransportError::WrongPeer { expected: 2, found: Some(1), .. }), "{err}");
    assert_eq!(
        a.handler.calls.load(Ordering::SeqCst),
        1,
        "the misdirected call never reached the handler"
    );
    b.endpoint.shutdown().await;
    a.endpoint.shutdown().await;
}

// Goal: a node whose certificate comes from another CA is refused at the handshake, both ways,
// and the caller is told so (a refused certificate, not an unreachable peer).
#[tokio::test]
async fn certificate_from_another_ca_is_refused() {
    let ca = ClusterCa::generate(ClusterId::generate().unwrap()).unwrap();
    let intruder_ca = ClusterCa::generate(ClusterId::generate().unwrap()).unwrap();
    let (a, intruder) = (node(&ca).await, node(&intruder_ca).await);
    let err = intruder
        .endpoint
        .client()
        .call(&a.addr, Request::Admin(AdminRequest::Status), DEADLINE)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Handshake { .. }), "{err}");
    let err = a
        .endpoint
        .client()
        .call(&intruder.addr, Request::Admin(AdminRequest::Status), DEADLINE)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Handshake { .. }), "{err}");
    assert_eq!(a.handler.calls.load(Ordering::SeqCst), 0);
    assert_eq!(intruder.handler.calls.load(Ordering::SeqCst), 0);
    intruder.endpoint.shutdown().await;
    a.endpoint.shutdown().await;
}

// Goal: a joiner whose token pins another CA refuses the member during the handshake and
// reports both fingerprints; the member's handler never sees the request.
#[tokio::test]
async fn join_with_a_foreign_pin_reports_the_presented_ca() {
    let ca = ClusterCa::generate(ClusterId::generate().unwrap()).unwrap();
    let other = ClusterCa::generate(ClusterId::generate().unwrap()).unwrap();
    let a = node(&ca).await;
    let err = join(
        &a.addr,
        other.fingerprint(),
        |exporter| join_request(exporter, &NodeKey::generate().unwrap()),
        DEADLINE,
    )
    .await
    .unwrap_err();
    match err {
        TransportError::Trust(crate::trust::TrustError::ForeignCluster { expected, found }) => {
            assert_eq!((expected, found), (other.fingerprint(), Some(ca.fingerprint())));
        }
        other => panic!("expected ForeignCluster, got {other}"),
    }
    assert_eq!(a.handler.calls.load(Ordering::SeqCst), 0);
    a.endpoint.shutdown().await;
}

/// A join request for `key` (the proof is not checked by the test handler).
fn join_request(_exporter: [u8; 32], key: &NodeKey) -> JoinRequest {
    JoinRequest {
        token_id: TokenId(1),
        role: Role::Voter,
        addr: "127.0.0.1:9999".into(),
        public_key_der: key.public_key_der(),
        proof: JoinProof([0; 64]),
    }
}

// Goal: a peer without a certificate can send Join (and gets a certificate for the key it
// made, the CA's certificate but never its key), but nothing else; the handler knows it as
// anonymous, with this session's exporter. With the certificate it is a member, named by it.
#[tokio::test]
async fn unauthenticated_peer_can_only_join() {
    let ca = ClusterCa::generate(ClusterId::generate().unwrap()).unwrap();
    let a = node(&ca).await;
    let key = NodeKey::generate().unwrap();
    let answer = join(&a.addr, ca.fingerprint(), |exporter| join_request(exporter, &key), DEADLINE)
        .await
        .unwrap();
    let JoinAnswer::Granted(grant) = answer else { panic!("expected a grant, got {answer:?}") };
    assert_eq!(grant.node_id, 7);
    assert_eq!(grant.ca_cert_pem, ca.cert_pem());
    assert!(matches!(
        a.handler.last_caller.lock().unwrap().as_ref(),
        Some(Caller::Anonymous { .. })
    ));
    // The certificate for its own key makes the new node a member the cluster accepts.
    let identity = NodeIdentity::new(&grant.cert_pem, key).unwrap();
    let joined_ca = ClusterCa::from_pem(&grant.ca_cert_pem, None).unwrap();
    let newcomer = node_with(&joined_ca, &identity).await;
    let ok = newcomer
        .endpoint
        .client()
        .call(&a.addr, Request::Admin(AdminRequest::Status), DEADLINE)
        .await
        .unwrap();
    assert!(matches!(ok, Response::Admin(AdminResponse::Done)));
    match a.handler.last_caller.lock().unwrap().as_ref() {
        Some(Caller::Member(peer)) => {
            assert_eq!((peer.node_id, peer.cluster_id), (7, ca.cluster_id()))
        }
        other => panic!("expected member 7, got {other:?}"),
    }

    let before = a.handler.calls.load(Ordering::SeqCst);
    for request in
        [Request::Admin(AdminRequest::Status), Request::Vote(VoteRequest::new(vote(), None))]
    {
        // An unauthenticated connection carries one request: each gets a connection of its own.
        let quic = quinn::Endpoint::client(([127, 0, 0, 1], 0).into()).unwrap();
        let anonymous = Client::new(
            quic.clone(),
            quic_client_config(join_client_config(ca.fingerprint()).unwrap().0).unwrap(),
        );
        let err = anonymous.call(&a.addr, request, DEADLINE).await.unwrap_err();
        assert!(matches!(err, TransportError::Remote { retryable: false, .. }), "{err}");
        // A second request on the same connection is never served.
        let second = anonymous
            .call(&a.addr, Request::Admin(AdminRequest::Status), Duration::from_millis(500))
            .await;
        assert!(matches!(second, Err(TransportError::Timeout { .. })), "{second:?}");
        quic.close(0u32.into(), b"");
    }
    assert_eq!(
        a.handler.calls.load(Ordering::SeqCst),
        before,
        "the handler never saw the refused requests"
    );
    newcomer.endpoint.shutdown().await;
    a.endpoint.shutdown().await;
}

// Goal: after the server endpoint restarts on the same port, the client reconnects by itself.
#[tokio::test]
async fn client_reconnects_after_server_restart() {
    let ca = ClusterCa::generate(ClusterId::generate().unwrap()).unwrap();
    let (a, b) = (node(&ca).await, node(&ca).await);
    let client = b.endpoint.client();
    let status = || Request::Admin(AdminRequest::Status);
    client.call(&a.addr, status(), DEADLINE).await.unwrap();
    let addr = a.addr.clone();
    a.endpoint.shutdown().await;
    assert!(
        client.call(&addr, status(), Duration::from_millis(500)).await.is_err(),
        "server is down"
    );

    let a2 = node_on(&addr, &ca, false).await;
    let started = Instant::now();
    let mut last_err = None;
    while started.elapsed() < Duration::from_secs(10) {
        match client.call(&addr, status(), Duration::from_secs(1)).await {
            Ok(response) => {
                assert!(matches!(response, Response::Admin(AdminResponse::Done)));
                last_err = None;
                break;
            }
            Err(e) => last_err = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(last_err.is_none(), "no reconnection: {last_err:?}");
    assert_eq!(a2.handler.calls.load(Ordering::SeqCst), 1);
    b.endpoint.shutdown().await;
    a2.endpoint.shutdown().await;
}

// Goal: a snapshot file of a few MiB arrives byte-identical and private (0600), and is handed
// to the handler.
#[tokio::test]
async fn snapshot_file_arrives_byte_identical() {
    let ca = ClusterCa::generate(ClusterId::generate().unwrap()).unwrap();
    let (a, b) = (node(&ca).await, node(&ca).await);
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join("image.db");
    // Not a multiple of the chunk size, with content that differs per position.
    let image: Vec<u8> = (0..(3 * 1024 * 1024 + 12_345u32))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&path, &image).unwrap();

    let mut factory = NetworkFactory::new(2, b.endpoint.client(), Arc::default());
    let mut peer = factory.new_client(1, &Member { addr: a.addr.clone() }).await;
    let snapshot = SnapshotOf::<TypeConfig, SnapshotImage> {
        meta: Default::default(),
        snapshot: SnapshotImage { path },
    };
    let cancel = std::future::pending();
    let response =
        peer.full_snapshot(vote(), snapshot, cancel, RPCOption::new(DEADLINE)).await.unwrap();
    assert_eq!(response.vote, vote());
    let received = a.handler.installed.lock().unwrap().clone().expect("snapshot installed");
    assert!(std::fs::read(&received).unwrap() == image, "received image differs");
    // The image is the whole database: created private whatever the umask.
    assert_eq!(
        std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(&received).unwrap()) & 0o777,
        0o600
    );
    b.endpoint.shutdown().await;
    a.endpoint.shutdown().await;
}

// Goal: a call to a server that never answers fails at its deadline, not later.
#[tokio::test]
async fn call_fails_at_deadline_when_server_never_answers() {
    let ca = ClusterCa::generate(ClusterId::generate().unwrap()).unwrap();
    let a = node_on("127.0.0.1:0", &ca, true).await;
    let b = node(&ca).await;
    let started = Instant::now();
    let err = b
        .endpoint
        .client()
        .call(&a.addr, Request::Admin(AdminRequest::Status), Duration::from_millis(300))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, TransportError::Timeout { after_ms: 300, .. }), "{err}");
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    b.endpoint.shutdown().await;
    a.endpoint.shutdown().await;
}

fn append_at(index: u64) -> AppendEntriesRequest<TypeConfig> {
    let mut entry = write_entry();
    entry.log_id.index = index;
    let prev = LogIdOf::<TypeConfig>::new(LeaderId { term: 3, node_id: 1 }, index - 1);
    AppendEntriesRequest {
        vote: vote(),
        prev_log_id: Some(prev),
        entries: vec![entry],
        leader_commit: None,
    }
}

// Goal: an append stream carries several requests without waiting for answers, and the
// answers come back in request order; the stream ends once the input has.
#[tokio::test]
async fn append_stream_answers_in_order() {
    let ca = ClusterCa::generate(ClusterId::generate().unwrap()).unwrap();
    let (a, b) = (node(&ca).await, node(&ca).await);
    let mut factory = NetworkFactory::new(2, b.endpoint.client(), Arc::default());
    let mut peer = factory.new_client(1, &Member { addr: a.addr.clone() }).await;
    let requests = futures_util::stream::iter((5..10).map(append_at));
    let answers: Vec<_> =
        peer.stream_append(requests, RPCOption::new(DEADLINE)).await.unwrap().collect().await;
    let matched: Vec<u64> =
        answers.into_iter().map(|a| a.unwrap().unwrap().unwrap().index).collect();
    assert_eq!(matched, vec![5, 6, 7, 8, 9]);
    assert_eq!(a.handler.appends.load(Ordering::SeqCst), 5);
    b.endpoint.shutdown().await;
    a.endpoint.shutdown().await;
}

// Goal: an answer that does not come is reported as a timeout at its deadline, and ends the
// stream.
#[tokio::test]
async fn append_stream_answer_overdue_is_a_timeout() {
    let ca = ClusterCa::generate(ClusterId::generate().unwrap()).unwrap();
    let a = node_on("127.0.0.1:0", &ca, true).await;
    let b = node(&ca).await;
    let mut factory = NetworkFactory::new(2, b.endpoint.client(), Arc::default());
    let mut peer = factory.new_client(1, &Member { addr: a.addr.clone() }).await;
    let started = Instant::now();
    let requests = futures_util::stream::iter(vec![append_at(5)]);
    let answers: Vec<_> = peer
        .stream_append(requests, RPCOption::new(Duration::from_millis(300)))
        .await
        .unwrap()
        .collect()
        .await;
    let elapsed = started.elapsed();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert!(matches!(answers[0], Err(openraft::error::RPCError::Timeout(_))), "{answers:?}");
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    b.endpoint.shutdown().await;
    a.endpoint.shutdown().await;
}

// Goal: a peer without a cluster certificate cannot open an append stream.
#[tokio::test]
async fn unauthenticated_peer_cannot_open_an_append_stream() {
    let ca = ClusterCa::generate(ClusterId::generate().unwrap()).unwrap();
    let a = node(&ca).await;
    let quic = quinn::Endpoint::client(([127, 0, 0, 1], 0).into()).unwrap();
    let anonymous = Client::new(
        quic.clone(),
        quic_client_config(join_client_config(ca.fingerprint()).unwrap().0).unwrap(),
    );
    let (mut sender, mut receiver) = anonymous.open_append_stream(&a.addr, 1).await.unwrap();
    // The request may or may not get through before the refusal resets the stream.
    let _ = sender.send(&append_at(5)).await;
    let reply = tokio::time::timeout(DEADLINE, receiver.next()).await.unwrap().unwrap();
    assert!(
        matches!(reply, Some(AppendReply::Failed { ref message }) if message.contains("certificate")),
        "{reply:?}"
    );
    assert_eq!(a.handler.appends.load(Ordering::SeqCst), 0);
    quic.close(0u32.into(), b"");
    a.endpoint.shutdown().await;
}

/// A request stream made like openraft's (`unfold`, which panics if polled after its end).
fn requests_of(
    requests: Vec<AppendEntriesRequest<TypeConfig>>,
) -> impl futures_util::Stream<Item = AppendEntriesRequest<TypeConfig>> + Unpin + Send + 'static {
    Box::pin(futures_util::stream::unfold(requests.into_iter(), |mut rest| async move {
        rest.next().map(|r| (r, rest))
    }))
}

fn entryless_at(index: u64) -> AppendEntriesRequest<TypeConfig> {
    let prev = LogIdOf::<TypeConfig>::new(LeaderId { term: 3, node_id: 1 }, index);
    AppendEntriesRequest {
        vote: vote(),
        prev_log_id: Some(prev),
        entries: vec![],
        leader_commit: Some(prev),
    }
}

// Goal: an entry-less request is sent when nothing follows it (a heartbeat: the input ends
// right after it), and replaced by a request that follows it at once (its answer covers both).
#[tokio::test]
async fn entryless_request_is_sent_alone_or_replaced_by_the_next() {
    let ca = ClusterCa::generate(ClusterId::generate().unwrap()).unwrap();
    let (a, b) = (node(&ca).await, node(&ca).await);
    let mut factory = NetworkFactory::new(2, b.endpoint.client(), Arc::default());
    let mut peer = factory.new_client(1, &Member { addr: a.addr.clone() }).await;

    let heartbeat = requests_of(vec![entryless_at(4)]);
    let answers: Vec<_> =
        peer.stream_append(heartbeat, RPCOption::new(DEADLINE)).await.unwrap().collect().await;
    let matched: Vec<u64> =
        answers.into_iter().map(|a| a.unwrap().unwrap().unwrap().index).collect();
    assert_eq!(matched, vec![4]);
    assert_eq!(a.handler.appends.load(Ordering::SeqCst), 1);

    let commit_then_entry = requests_of(vec![entryless_at(4), append_at(5)]);
    let answers: Vec<_> = peer
        .stream_append(commit_then_entry, RPCOption::new(DEADLINE))
        .await
        .unwrap()
        .collect()
        .await;
    let matched: Vec<u64> =
        answers.into_iter().map(|a| a.unwrap().unwrap().unwrap().index).collect();
    assert_eq!(matched, vec![5]);
    assert_eq!(a.handler.appends.load(Ordering::SeqCst), 2, "the entry-less request was replaced");
    b.endpoint.shutdown().await;
    a.endpoint.shutdown().await;
}
