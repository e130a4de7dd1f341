//! Starting and stopping a node: state directory, owner lock, database files, QUIC endpoint,
//! Raft; then attaching it to the VFS so local commits go through the cluster.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::admission;
use super::archiving::{self, ArchiveShared};
use super::database::ReplicatedDb;
use super::options::{Role, StartOptions};
use super::rpc::Handler;
use super::runtime::{run_blocking, wait};
use super::state_dir::{Identity, StateDir};
use super::{compaction, membership, renewal, START_DEADLINE};
use crate::archive::setting::ArchiveView;
use crate::clock::unix_now_s;
use crate::error::Error;
use crate::raft::log_store::LogStore;
use crate::raft::network::NetworkFactory;
use crate::raft::state_machine::StateMachine;
use crate::raft::types::{Member, NodeId, TypeConfig};
use crate::transport::{Client, Endpoint};
use crate::trust::certs::{cert_validity, ClusterCa, NodeIdentity};
use crate::trust::error::TrustError;
use crate::trust::token::JoinToken;
use crate::trust::view::TrustView;
use crate::trust::ClusterId;
use crate::vfs::owner::OwnerLock;
use crate::vfs::{self, SharedDb};

/// openraft, as this crate instantiates it.
pub type RaftNode = openraft::Raft<TypeConfig, StateMachine<ReplicatedDb>>;

/// Raft timing (milliseconds). A heartbeat every 50 ms keeps followers from electing.
/// openraft makes a follower honour its leader's lease (the longest election timeout) before
/// its own election timeout even starts, so a dead leader is replaced 0.9-1.2 s after its last
/// heartbeat, plus one pre-vote and one vote round: the 2 s failover budget with room to spare.
const HEARTBEAT_MS: u64 = 50;
const ELECTION_TIMEOUT_MIN_MS: u64 = 300;
pub(super) const ELECTION_TIMEOUT_MAX_MS: u64 = 600;
/// Snapshot after this many entries; keep this many entries behind a snapshot so a briefly
/// lagging follower catches up from the log rather than a full image.
const SNAPSHOT_EVERY_ENTRIES: u64 = 10_000;
/// Entries per AppendEntries message (each entry is one transaction's pages).
const ENTRIES_PER_MESSAGE: u64 = 64;

/// One running node.
pub struct Node {
    id: NodeId,
    addr: String,
    advertise: Option<String>,
    learner: bool,
    dir: StateDir,
    pub(super) db: Arc<ReplicatedDb>,
    pub(super) raft: RaftNode,
    pub(super) log: LogStore,
    pub(super) log_bytes_max: u64,
    /// Largest snapshot image accepted from the leader (`snapshot_bytes_max`).
    pub(super) snapshot_bytes_max: u64,
    pub(super) client: Client,
    /// The cluster CA: its certificate, and its key on voters that hold it (a voter that
    /// joined receives the key after it became one).
    pub(super) ca: RwLock<ClusterCa>,
    /// This node's cluster, as its certificate names it.
    cluster_id: ClusterId,
    /// When this node's certificate expires (moves on at each renewal).
    cert_not_after_unix_s: AtomicU64,
    /// The replicated trust state, as this node has applied it.
    pub(super) trust: TrustView,
    /// The archive setting, as this node has applied it.
    pub(super) archive_view: ArchiveView,
    /// The archiver's progress and the log's purge floor.
    pub(super) archive: Arc<ArchiveShared>,
    endpoint: Mutex<Option<Endpoint>>,
    attachment: Mutex<Option<Arc<SharedDb>>>,
    /// A member answered this node with `Revoked` (its own registry may not know yet).
    removed: Arc<AtomicBool>,
    /// Why the node stopped: set by `stop`, or by [`watch_core`] when Raft ends by itself.
    stopped: Arc<Mutex<Option<String>>>,
    pub(super) next_proposal: AtomicU64,
    _owner: OwnerLock,
}

impl Node {
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The address it listens on.
    pub fn listen_addr(&self) -> &str {
        &self.addr
    }

    /// The address other members reach it at: the advertised one, else the listen address.
    pub fn member_addr(&self) -> &str {
        self.advertise.as_deref().unwrap_or(&self.addr)
    }

    /// Whether it joined as a non-voting member.
    pub fn is_learner(&self) -> bool {
        self.learner
    }

    /// This node's cluster.
    pub fn cluster_id(&self) -> ClusterId {
        self.cluster_id
    }

    /// When this node's certificate expires (seconds since the Unix epoch).
    pub fn cert_not_after_unix_s(&self) -> u64 {
        self.cert_not_after_unix_s.load(Ordering::Acquire)
    }

    /// Presents `identity` (a renewed certificate) on new connections from now on.
    pub(super) fn present(&self, identity: &NodeIdentity) -> Result<(), Error> {
        let ca = self.ca.read().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(endpoint) =
            self.endpoint.lock().unwrap_or_else(PoisonError::into_inner).as_ref()
        {
            endpoint
                .present(&ca, identity)
                .map_err(|e| Error::transport("presenting the renewed certificate", e))?;
        }
        self.cert_not_after_unix_s.store(identity.peer().not_after_unix_s, Ordering::Release);
        Ok(())
    }

    /// Whether the cluster has revoked this node's certificate (it was removed).
    pub fn is_removed(&self) -> bool {
        self.trust.get().is_revoked(self.id) || self.removed.load(Ordering::Acquire)
    }

    /// The state directory.
    pub fn state_dir(&self) -> &StateDir {
        &self.dir
    }

    /// The latest Raft metrics.
    pub fn metrics(&self) -> openraft::RaftMetrics<TypeConfig> {
        use openraft::type_config::async_runtime::WatchReceiver;
        self.raft.metrics().borrow_watched().clone()
    }

    /// Why the node stopped, if it did: stopped on purpose, or Raft stopped on a fatal error
    /// (a storage failure, say), after which this node neither votes nor applies.
    /// `metrics` are this node's latest (callers usually hold them already).
    pub fn stopped_reason(&self, metrics: &openraft::RaftMetrics<TypeConfig>) -> Option<String> {
        let stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner).clone();
        stopped.or_else(|| {
            metrics.running_state.as_ref().err().map(|fatal| format!("raft stopped: {fatal}"))
        })
    }

    /// Refuses a second start of this database at another address.
    pub fn same_address(&self, addr: &str) -> Result<(), Error> {
        if addr == self.addr {
            Ok(())
        } else {
            Err(Error::Refused(format!(
                "this database is already node {} listening on {}; it cannot also listen on {addr}",
                self.id, self.addr
            )))
        }
    }

    /// Stops Raft and the endpoint and detaches from the VFS. Idempotent.
    pub fn stop(&self, reason: &str) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason.to_owned());
        if let Some(attachment) =
            self.attachment.lock().unwrap_or_else(PoisonError::into_inner).take()
        {
            vfs::detach(&attachment);
        }
        let raft = self.raft.clone();
        let endpoint = self.endpoint.lock().unwrap_or_else(PoisonError::into_inner).take();
        let stopping = async move {
            let _ = raft.shutdown().await;
            if let Some(endpoint) = endpoint {
                endpoint.shutdown().await;
            }
        };
        if run_blocking(stopping, START_DEADLINE).is_err() {
            tracing::warn!(node = self.id, "node did not stop cleanly in time");
        }
        // Snapshot transfers cut short by the stop leave partial files; the transport has
        // stopped, so none is still being written.
        match crate::raft::state_machine::remove_incoming(self.dir.root()) {
            Ok(0) => {}
            Ok(removed) => {
                tracing::info!(node = self.id, removed, "removed partial snapshot files")
            }
            Err(error) => {
                tracing::warn!(node = self.id, %error, "could not remove partial snapshot files")
            }
        }
    }
}

/// `ha_init`: a new cluster of one, or the resumption of this database's node.
pub fn init_or_resume(db: &Path, addr: &str, options: &StartOptions) -> Result<Arc<Node>, Error> {
    if options.role == Role::Learner {
        return Err(Error::InvalidArgument(
            "the first node of a cluster must be a voter: learners join an existing cluster with ha_join(addr, peer, token) and a token from ha_token('learner')".into(),
        ));
    }
    if options.token.is_some() {
        return Err(Error::InvalidArgument(
            "ha_init starts a new cluster and takes no join token: to join an existing one, use ha_join(addr, peer, token)".into(),
        ));
    }
    let dir = StateDir::of(db);
    if let Some(identity) = live_identity(&dir)? {
        check_resume(&identity, addr, options)?;
        return start(db, &identity, options);
    }
    dir.create()?;
    let cluster_id = ClusterId::generate()?;
    let ca = ClusterCa::generate(cluster_id)?;
    ca.save(&dir.tls())?;
    NodeIdentity::issue_self(&ca, cluster_id, 1, cert_validity(), unix_now_s())?
        .save(&dir.tls())?;
    let identity = Identity {
        node_id: 1,
        addr: addr.to_owned(),
        advertise: options.advertise.clone(),
        learner: false,
        joined: false,
        left: false,
    };
    let node = start(db, &identity, options)?;
    if let Err(error) = membership::bootstrap(&node) {
        node.stop("bootstrap failed");
        return Err(error);
    }
    dir.save_identity(&Identity { joined: true, ..identity })?;
    Ok(node)
}

/// `ha_join`: become a member of `peer`'s cluster with a join token, or resume this
/// database's node (which needs no token: the one given may have expired or been used).
pub fn join_or_resume(
    db: &Path,
    addr: &str,
    peer: &str,
    options: &StartOptions,
) -> Result<Arc<Node>, Error> {
    let dir = StateDir::of(db);
    if let Some(identity) = live_identity(&dir)? {
        check_resume(&identity, addr, options)?;
        let node = start(db, &identity, options)?;
        if !identity.joined {
            membership::finish_join(&node, peer)?;
            dir.save_identity(&Identity { joined: true, ..identity.clone() })?;
        }
        if !identity.learner {
            // A voter that stopped between joining and receiving the CA key gets it now; a
            // failure only means it cannot admit nodes yet, so the start goes on.
            if let Err(error) = admission::fetch_ca_key(&node, peer) {
                tracing::warn!(error = %error.chain(), "could not fetch the cluster CA key yet");
            }
        }
        return Ok(node);
    }
    membership::check_joinable(db)?;
    let token = options.token.as_ref().ok_or_else(|| {
        Error::InvalidArgument(
            "ha_join needs a join token to join a cluster: run SELECT ha_token() on a voter, then ha_join(addr, peer, token)".into(),
        )
    })?;
    let token = JoinToken::decode(&token.0)?;
    // A learner token admits a learner only; a voter token admits either (the options decide).
    let role = match (options.role, token.role) {
        (Role::Learner, _) | (_, Role::Learner) => Role::Learner,
        (Role::Voter, Role::Voter) => Role::Voter,
    };
    let member_addr = options.advertise.as_deref().unwrap_or(addr);
    let admitted = admission::request_admission(member_addr, peer, &token, role)?;
    let grant = &admitted.grant;
    let ca = ClusterCa::from_pem(&grant.ca_cert_pem, None)?;
    if ca.fingerprint() != token.ca_fingerprint || grant.cluster_id != token.cluster_id {
        return Err(Error::Trust(TrustError::ForeignCluster {
            expected: token.ca_fingerprint,
            found: Some(ca.fingerprint()),
        }));
    }
    let tls_identity = NodeIdentity::new(&grant.cert_pem, admitted.key)?;
    let named = tls_identity.peer();
    if named.node_id != grant.node_id || named.cluster_id != token.cluster_id {
        return Err(Error::Refused(format!(
            "the leader's certificate names node {} of cluster {}, not node {} of cluster {}",
            named.node_id, named.cluster_id, grant.node_id, token.cluster_id
        )));
    }
    dir.create()?;
    ca.save(&dir.tls())?;
    tls_identity.save(&dir.tls())?;
    let identity = Identity {
        node_id: grant.node_id,
        addr: addr.to_owned(),
        advertise: options.advertise.clone(),
        learner: role == Role::Learner,
        joined: false,
        left: false,
    };
    dir.save_identity(&identity)?;
    let node = start(db, &identity, options)?;
    if let Err(error) = membership::finish_join(&node, &admitted.leader_addr) {
        node.stop("join failed");
        return Err(error);
    }
    if role == Role::Voter {
        if let Err(error) = admission::fetch_ca_key(&node, &admitted.leader_addr) {
            tracing::warn!(error = %error.chain(), "joined, but could not fetch the cluster CA key yet (retried at the next start)");
        }
    }
    dir.save_identity(&Identity { joined: true, ..identity })?;
    Ok(node)
}

/// The identity of a node that has not left (a node that left starts over).
fn live_identity(dir: &StateDir) -> Result<Option<Identity>, Error> {
    Ok(dir.identity()?.filter(|identity| !identity.left))
}

/// A resume must name the node as it was made: the same listen address, and options that are
/// either left out (the stored ones apply) or the same.
fn check_resume(identity: &Identity, addr: &str, options: &StartOptions) -> Result<(), Error> {
    if identity.addr != addr {
        return Err(Error::Refused(format!(
            "this database is node {} of a cluster, listening on {}; resume it with that address (or ha_leave() first and start a new node)",
            identity.node_id, identity.addr
        )));
    }
    if options.advertise.is_some() && options.advertise != identity.advertise {
        return Err(Error::Refused(format!(
            "this database is node {} of a cluster, advertised as {}; resume it with the same advertised address",
            identity.node_id,
            identity.advertise.as_deref().unwrap_or(&identity.addr)
        )));
    }
    if options.role == Role::Learner && !identity.learner {
        return Err(Error::Refused(format!(
            "this database is node {}, a voter; it cannot resume as a learner",
            identity.node_id
        )));
    }
    Ok(())
}

fn raft_config() -> Result<Arc<openraft::Config>, Error> {
    let config = openraft::Config {
        cluster_name: "dqlite-vfs".into(),
        heartbeat_interval: HEARTBEAT_MS,
        // No heartbeat to a follower that acknowledged an append within the last interval:
        // under writes the appends prove the leader alive, and a heartbeat would be one more
        // RPC per follower per 50 ms.
        heartbeat_min_interval: Some(HEARTBEAT_MS),
        election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
        election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_ENTRIES),
        // Never purged by openraft itself: `compaction.rs` purges, so that entries not yet
        // archived stay (see `archiving.rs`).
        max_in_snapshot_log_to_keep: u64::MAX,
        max_payload_entries: ENTRIES_PER_MESSAGE,
        install_snapshot_timeout: 60_000,
        // Send new entries to followers while the leader's own fsync runs, so the two
        // fsyncs of a commit overlap instead of adding up.
        broadcast_submitted_on_append: Some(true),
        // A node that was partitioned away or restarted asks first whether it could win before
        // raising its term, so coming back never deposes a healthy leader.
        enable_pre_vote: Some(true),
        ..Default::default()
    };
    config.validate().map(Arc::new).map_err(Error::raft_config)
}

/// Starts the node of `db` with `identity`; attaches it to the VFS.
fn start(db: &Path, identity: &Identity, options: &StartOptions) -> Result<Arc<Node>, Error> {
    let log_bytes_max = options.log_bytes_max.unwrap_or(super::LOG_BYTES_MAX_DEFAULT);
    let dir = StateDir::of(db);
    dir.create()?;
    let owner = OwnerLock::acquire(db)?;
    dir.remove_partial_files()?;
    let rdb = Arc::new(ReplicatedDb::open(db)?);
    let ca = ClusterCa::load(&dir.tls())?;
    let tls_identity = NodeIdentity::load(&dir.tls())?;
    let named = tls_identity.peer();
    dir.check_node_id(identity, named.node_id)?;
    let (cluster_id, cert_not_after_unix_s) = (named.cluster_id, named.not_after_unix_s);
    let trust = TrustView::default();
    let (archive_view, archive) = (ArchiveView::default(), Arc::new(ArchiveShared::default()));
    let handler = Arc::new(Handler::default());
    let (id, addr, root) = (identity.node_id, identity.addr.clone(), dir.root().to_owned());
    let root_for_archiver = root.clone();
    let config = raft_config()?;
    let removed = Arc::new(AtomicBool::new(false));
    let removed_for_network = Arc::clone(&removed);
    let (ca_for_bind, db_for_sm, handler_for_bind, views_for_sm) =
        (ca.clone(), Arc::clone(&rdb), Arc::clone(&handler), (trust.clone(), archive_view.clone()));
    let (view_for_archiver, archive_for_tasks) = (archive_view.clone(), Arc::clone(&archive));
    let cluster_bytes = cluster_id.0;
    let started = wait(
        async move {
            let endpoint = Endpoint::bind(&addr, &ca_for_bind, &tls_identity, handler_for_bind)
                .await
                .map_err(|source| Error::Listen { addr: addr.clone(), source })?;
            let opened = tokio::task::spawn_blocking(move || {
                let log = LogStore::open_with_segment_bytes(
                    &root,
                    compaction::segment_bytes_for(log_bytes_max),
                )
                .map_err(|source| Error::Log { context: "opening the Raft log", source })?;
                let sm = StateMachine::open(&root, db_for_sm, views_for_sm).map_err(|source| {
                    Error::StateMachine { context: "opening the state machine", source }
                })?;
                Ok::<_, Error>((log, sm))
            })
            .await
            .map_err(|source| Error::Task { context: "opening the node's storage", source })?;
            let (log, sm) = match opened {
                Ok(opened) => opened,
                Err(error) => {
                    endpoint.shutdown().await;
                    return Err(error);
                }
            };
            let network =
                NetworkFactory::new(id, endpoint.client(), Arc::clone(&removed_for_network));
            match RaftNode::new(id, config, network, log.clone(), sm).await {
                Ok(raft) => {
                    compaction::spawn(
                        raft.clone(),
                        log.clone(),
                        log_bytes_max,
                        Arc::clone(&archive_for_tasks),
                    );
                    let archiver = archiving::Archiver {
                        raft: raft.clone(),
                        log: log.clone(),
                        client: endpoint.client(),
                        state_dir: root_for_archiver,
                        cluster_id: cluster_bytes,
                        shared: archive_for_tasks,
                    };
                    archiving::spawn(archiver, view_for_archiver);
                    Ok((endpoint, raft, log))
                }
                Err(error) => {
                    endpoint.shutdown().await;
                    Err(Error::fatal("starting Raft", error))
                }
            }
        },
        START_DEADLINE,
        "starting the node",
    )?;
    let (endpoint, raft, log) = started;
    let stopped = Arc::new(Mutex::new(None));
    watch_core(raft.clone(), Arc::clone(&stopped))?;
    let node = Arc::new(Node {
        id: identity.node_id,
        addr: identity.addr.clone(),
        advertise: identity.advertise.clone(),
        learner: identity.learner,
        dir,
        db: rdb,
        raft,
        log,
        log_bytes_max,
        snapshot_bytes_max: options
            .snapshot_bytes_max
            .unwrap_or(crate::transport::limits::SNAPSHOT_BYTES_MAX),
        client: endpoint.client(),
        ca: RwLock::new(ca),
        cluster_id,
        cert_not_after_unix_s: AtomicU64::new(cert_not_after_unix_s),
        trust,
        archive_view,
        archive,
        endpoint: Mutex::new(Some(endpoint)),
        attachment: Mutex::new(None),
        removed,
        stopped,
        next_proposal: AtomicU64::new(rand::random::<u32>() as u64),
        _owner: owner,
    });
    handler.attach(&node);
    renewal::spawn(&node)?;
    let attachment = vfs::attach(db, Arc::clone(&node) as Arc<dyn vfs::Replicator>);
    *node.attachment.lock().unwrap_or_else(PoisonError::into_inner) = Some(attachment);
    node.next_proposal.fetch_add(1, Ordering::Relaxed);
    Ok(node)
}

/// Records why Raft stopped when its core task ends by itself, as on a panic inside openraft:
/// its metrics then stay as last published (a role, no error), so without this `ha_status()`
/// would show a node that looks alive but neither votes nor applies.
fn watch_core(raft: RaftNode, stopped: Arc<Mutex<Option<String>>>) -> Result<(), Error> {
    use openraft::type_config::async_runtime::WatchReceiver;
    super::runtime::handle()?.spawn(async move {
        let mut metrics = raft.metrics();
        // The core holds the only sender: this loop ends when the core does.
        while metrics.changed().await.is_ok() {}
        // Any call now answers with the core's fatal error.
        let reason = match raft.is_initialized().await {
            Err(fatal) => format!("raft stopped: {fatal} (this process's log says why): restart the node, or remove it and join it afresh"),
            Ok(_) => "raft stopped".to_owned(),
        };
        // A deliberate stop has already said why.
        stopped.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(reason);
    });
    Ok(())
}

/// The members of the cluster as this node knows them.
pub fn members(node: &Node) -> BTreeMap<NodeId, Member> {
    let metrics = node.metrics();
    metrics
        .membership_config
        .membership()
        .nodes()
        .map(|(id, member)| (*id, member.clone()))
        .collect()
}
