//! The mapping pinned: each kind of error to its result code, one row per kind; and the
//! chain of causes that messages show.

use std::io;
use std::sync::Arc;

use openraft::error::ErrorSource;

use super::*;
use crate::archive::format::FormatError;
use crate::archive::store::StoreError;
use crate::archive::ArchiveError;
use crate::trust::ids::TokenId;

fn os(kind: io::ErrorKind) -> io::Error {
    io::Error::from(kind)
}

fn archive(error: ArchiveError) -> Error {
    Error::Archive(error)
}

fn transport(error: TransportError) -> Error {
    Error::transport("asking node 2", error)
}

fn storage(error: io::Error) -> Error {
    let source = openraft::StorageError::write_logs(StorageCause::from_error(&error));
    Error::Storage { context: "appending".into(), source }
}

fn raft(failure: RaftFailure) -> Error {
    Error::Raft { context: "asking raft".into(), failure, source: "openraft said no".into() }
}

fn join_error() -> tokio::task::JoinError {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    runtime.block_on(async {
        let task = tokio::spawn(std::future::pending::<()>());
        task.abort();
        task.await.expect_err("an aborted task fails")
    })
}

fn wal(source: WalError) -> Error {
    Error::Wal { context: "reading the WAL", source }
}

fn log(source: LogError) -> Error {
    Error::Log { context: "opening the Raft log", source }
}

// Goal: every kind of error reports the code docs/SQL.md documents for it. Method: one row
// per kind, its code asserted with the row's name in the message.
#[test]
fn each_kind_has_its_code() {
    let corrupt_record = LogError::RecordChanged { segment: 0, offset: 8 };
    let rows: Vec<(&str, Error, c_int)> = vec![
        // Bad calls and refusals.
        ("invalid argument", Error::InvalidArgument("x".into()), SQLITE_ERROR),
        ("not through ha", Error::NotThroughHa { function: "ha_status" }, SQLITE_ERROR),
        ("not a node", Error::NotANode, SQLITE_ERROR),
        ("refused", Error::Refused("x".into()), SQLITE_ERROR),
        ("internal", Error::Internal("x".into()), SQLITE_INTERNAL),
        ("task", Error::Task { context: "x", source: join_error() }, SQLITE_INTERNAL),
        // May not write here.
        ("not leader", Error::NotLeader { leader: None }, SQLITE_READONLY),
        ("lost quorum", Error::LostQuorum { silent_ms: 1 }, SQLITE_READONLY),
        ("stopped", Error::NodeStopped("x".into()), SQLITE_READONLY),
        ("removed", Error::Removed { node_id: 2 }, SQLITE_READONLY),
        ("owned elsewhere", Error::OwnedElsewhere("x".into()), SQLITE_READONLY_CANTLOCK),
        // Did not happen, distinct from outcome unknown, whatever the cause.
        ("conflict", Error::Conflict, SQLITE_IOERR_WRITE),
        ("not committed", Error::NotCommitted("x".into()), SQLITE_IOERR_WRITE),
        (
            "outcome unknown",
            Error::OutcomeUnknown { what: "x".into(), cause: None },
            SQLITE_IOERR_COMMIT_ATOMIC,
        ),
        (
            "outcome unknown after a storage failure",
            Error::OutcomeUnknown { what: "x".into(), cause: Some(Box::new(corrupt_record)) },
            SQLITE_IOERR_COMMIT_ATOMIC,
        ),
        ("no answer in time", Error::Unreachable("x".into()), SQLITE_IOERR),
        // Corruption of a WAL frame, a log record, a snapshot, a state file.
        ("wal frame", wal(WalError::FrameChecksum { frame_number: 3 }), SQLITE_CORRUPT),
        ("wal header", wal(WalError::HeaderChecksum), SQLITE_CORRUPT),
        ("wal-index", wal(WalError::IndexCorrupt { frame_number: 3 }), SQLITE_CORRUPT),
        (
            "wal short",
            wal(WalError::ShortFile { needed_bytes: 32, file_bytes: 0 }),
            SQLITE_IOERR_SHORT_READ,
        ),
        ("wal lock busy", wal(WalError::WriteLockBusy), SQLITE_BUSY),
        ("wal-index header", wal(WalError::IndexHeader { reason: "copies differ" }), SQLITE_BUSY),
        ("wal full", wal(WalError::TooManyFrames), SQLITE_FULL),
        ("bad page set", wal(WalError::EmptyPageSet), SQLITE_INTERNAL),
        (
            "wal i/o from the VFS",
            wal(WalError::Io(io::Error::other(SqliteCode { what: "x", code: SQLITE_IOERR_READ }))),
            SQLITE_IOERR_READ,
        ),
        (
            "log record",
            log(LogError::Corrupt { path: "seg".into(), offset: 0, reason: "x" }),
            SQLITE_CORRUPT,
        ),
        (
            "log record changed",
            log(LogError::RecordChanged { segment: 0, offset: 0 }),
            SQLITE_CORRUPT,
        ),
        ("log read", log(LogError::Read(os(io::ErrorKind::Other))), SQLITE_IOERR_READ),
        (
            "log short read",
            log(LogError::Read(os(io::ErrorKind::UnexpectedEof))),
            SQLITE_IOERR_SHORT_READ,
        ),
        ("log write", log(LogError::Write(os(io::ErrorKind::Other))), SQLITE_IOERR_WRITE),
        ("log fsync", log(LogError::Sync(Arc::new(os(io::ErrorKind::Other)))), SQLITE_IOERR_FSYNC),
        ("log other i/o", log(LogError::Io(os(io::ErrorKind::Other))), SQLITE_IOERR),
        ("log poisoned", log(LogError::Poisoned), SQLITE_INTERNAL),
        (
            "snapshot image",
            Error::StateMachine {
                context: "opening the state machine",
                source: SmError::BadImage { path: "img".into(), reason: "x".into() },
            },
            SQLITE_CORRUPT,
        ),
        (
            "state file",
            Error::StateFile {
                context: "reading node.json".into(),
                source: SmallFileError::Corrupt { path: "f".into(), reason: "x".into() },
            },
            SQLITE_CORRUPT,
        ),
        // Storage failures that come back through openraft keep their kind.
        ("storage corrupt", storage(corrupt_record_io()), SQLITE_CORRUPT),
        (
            "storage fsync",
            storage(LogError::Sync(Arc::new(os(io::ErrorKind::Other))).into()),
            SQLITE_IOERR_FSYNC,
        ),
        ("storage os error", storage(os(io::ErrorKind::PermissionDenied)), SQLITE_IOERR),
        // I/O of the node's own files: the operation decides.
        ("read", Error::io(Fault::Read, "x", os(io::ErrorKind::Other)), SQLITE_IOERR_READ),
        (
            "short read",
            Error::io(Fault::Read, "x", os(io::ErrorKind::UnexpectedEof)),
            SQLITE_IOERR_SHORT_READ,
        ),
        ("write", Error::io(Fault::Write, "x", os(io::ErrorKind::Other)), SQLITE_IOERR_WRITE),
        ("fsync", Error::io(Fault::Fsync, "x", os(io::ErrorKind::Other)), SQLITE_IOERR_FSYNC),
        ("stat", Error::io(Fault::Stat, "x", os(io::ErrorKind::Other)), SQLITE_IOERR_FSTAT),
        ("lock", Error::io(Fault::Lock, "x", os(io::ErrorKind::Other)), SQLITE_IOERR_LOCK),
        ("shm map", Error::io(Fault::ShmMap, "x", os(io::ErrorKind::Other)), SQLITE_IOERR_SHMMAP),
        ("open", Error::io(Fault::Open, "x", os(io::ErrorKind::Other)), SQLITE_CANTOPEN),
        ("other i/o", Error::io(Fault::Io, "x", os(io::ErrorKind::Other)), SQLITE_IOERR),
        (
            "corrupt file",
            Error::io(Fault::Corrupt, "x", os(io::ErrorKind::InvalidData)),
            SQLITE_CORRUPT,
        ),
        (
            "insecure state dir",
            Error::InsecureStateDir { dir: "d".into(), problem: "p".into(), fix: "f".into() },
            SQLITE_CANTOPEN,
        ),
        ("sqlite", Error::Sqlite { code: SQLITE_BUSY, message: "x".into() }, SQLITE_BUSY),
        // Raft.
        ("raft refused", raft(RaftFailure::Refused), SQLITE_ERROR),
        ("raft no quorum", raft(RaftFailure::NoQuorum), SQLITE_IOERR),
        ("raft timeout", raft(RaftFailure::Timeout), SQLITE_IOERR),
        ("raft stopped", raft(RaftFailure::Stopped), SQLITE_READONLY),
        ("raft panicked", raft(RaftFailure::Panicked), SQLITE_INTERNAL),
        ("raft config", raft(RaftFailure::Config), SQLITE_INTERNAL),
        // The network: unreachable is distinct from certificates and configuration.
        (
            "unreachable",
            transport(TransportError::Unreachable { addr: "a".into(), reason: "r".into() }),
            SQLITE_IOERR,
        ),
        (
            "connection lost",
            transport(TransportError::ConnectionLost { addr: "a".into(), reason: "r".into() }),
            SQLITE_IOERR,
        ),
        ("timeout", transport(TransportError::Timeout { what: "rpc", after_ms: 1 }), SQLITE_IOERR),
        (
            "frame",
            transport(TransportError::Frame(crate::transport::wire::FrameError::Ended)),
            SQLITE_IOERR,
        ),
        ("closed", transport(TransportError::Closed), SQLITE_IOERR),
        ("socket i/o", transport(TransportError::Io(os(io::ErrorKind::Other))), SQLITE_IOERR),
        ("resolve", transport(TransportError::Resolve { addr: "a".into() }), SQLITE_ERROR),
        (
            "remote",
            transport(TransportError::Remote { message: "m".into(), retryable: false }),
            SQLITE_ERROR,
        ),
        (
            "unexpected response",
            transport(TransportError::UnexpectedResponse { expected: "Vote", got: "Error".into() }),
            SQLITE_INTERNAL,
        ),
        ("snapshot transfer", transport(TransportError::Snapshot("x".into())), SQLITE_CORRUPT),
        ("pem", transport(TransportError::Pem("x".into())), SQLITE_AUTH),
        ("tls config", transport(TransportError::TlsConfig("x".into())), SQLITE_AUTH),
        (
            "certificate",
            transport(TransportError::Certificate(rcgen::Error::CouldNotParseCertificate)),
            SQLITE_AUTH,
        ),
        (
            "handshake",
            transport(TransportError::Handshake {
                addr: "a".into(),
                source: quinn::ConnectionError::TimedOut,
            }),
            SQLITE_AUTH,
        ),
        (
            "wrong peer",
            transport(TransportError::WrongPeer { addr: "a".into(), expected: 2, found: None }),
            SQLITE_AUTH,
        ),
        ("peer's trust", transport(TransportError::Trust(TrustError::ProofInvalid)), SQLITE_AUTH),
        (
            "listen: address in use",
            Error::Listen {
                addr: "a".into(),
                source: TransportError::Io(os(io::ErrorKind::AddrInUse)),
            },
            SQLITE_ERROR,
        ),
        (
            "listen: bad credentials",
            Error::Listen { addr: "a".into(), source: TransportError::Pem("x".into()) },
            SQLITE_AUTH,
        ),
        // Trust.
        ("token", Error::Trust(TrustError::TokenUnknown { id: TokenId(1) }), SQLITE_AUTH),
        ("revoked", Error::Trust(TrustError::Revoked { node_id: 2 }), SQLITE_AUTH),
        ("credentials i/o", Error::Trust(TrustError::Io(os(io::ErrorKind::Other))), SQLITE_IOERR),
        ("random", Error::Trust(TrustError::Random), SQLITE_INTERNAL),
        // Archive.
        (
            "damaged archive object",
            archive(ArchiveError::Format(FormatError::Damaged {
                name: "seg/x".into(),
                reason: "crc".into(),
            })),
            SQLITE_CORRUPT,
        ),
        (
            "bad archive url",
            archive(ArchiveError::Store(StoreError::InvalidTarget { reason: "scheme".into() })),
            SQLITE_ERROR,
        ),
        (
            "archive store down",
            archive(ArchiveError::Store(StoreError::Timeout {
                op: "put",
                name: "seg/x".into(),
                after: std::time::Duration::from_secs(1),
            })),
            SQLITE_IOERR,
        ),
        (
            "archive local file",
            archive(ArchiveError::io("writing", os(io::ErrorKind::Other))),
            SQLITE_IOERR,
        ),
        ("unrestorable", archive(ArchiveError::Unrestorable("a gap".into())), SQLITE_ERROR),
        ("restore over data", archive(ArchiveError::NotEmpty("tables".into())), SQLITE_ERROR),
        (
            "another cluster's archive",
            archive(ArchiveError::OtherCluster { url: "file:///a".into(), found: "x".into() }),
            SQLITE_ERROR,
        ),
    ];
    for (kind, error, code) in rows {
        assert_eq!(error.sqlite_code(), code, "{kind}: {}", error.chain());
    }
}

fn corrupt_record_io() -> io::Error {
    LogError::RecordChanged { segment: 1, offset: 64 }.into()
}

// Goal: a message shows the chain of causes, each once, down to the OS's reason.
#[test]
fn message_is_the_chain_of_causes() {
    let error = log(LogError::Write(io::Error::from_raw_os_error(28)));
    assert_eq!(
        error.chain().to_string(),
        format!("opening the Raft log: writing the raft log: {}", io::Error::from_raw_os_error(28))
    );
    // openraft prints its cause in its own message as well: it is not repeated.
    let error = storage(corrupt_record_io());
    let message = error.chain().to_string();
    assert_eq!(message.matches("changed on disk").count(), 1, "{message}");
    assert!(message.starts_with("appending: "), "{message}");
}

// Goal: an error of ours passed down as an `io::Error` (under a storage trait) keeps its code.
#[test]
fn our_error_inside_io_keeps_its_code() {
    let inner = io::Error::other(Error::NotLeader { leader: None });
    assert_eq!(Fault::of_io(&inner, Fault::Io), Fault::Sqlite(SQLITE_READONLY));
    let wal_inside = io::Error::other(WalError::HeaderChecksum);
    let sm = SmError::Io(wal_inside);
    assert_eq!(sm.fault(), Fault::Corrupt);
}

// Goal: openraft's errors become the variant their meaning calls for: a redirect is "not the
// leader" (naming it), a discarded entry "outcome unknown", a storage failure keeps its kind, a
// shutdown is "stopped", a membership change still in progress may be retried.
#[test]
fn openraft_errors_are_classified() {
    use openraft::error::{
        ChangeMembershipError, ClientWriteError, Fatal, ForwardToLeader, InProgress, Infallible,
        RaftError,
    };
    use openraft::metrics::WaitError;

    use crate::raft::types::Member;

    let forward = ForwardToLeader::<TypeConfig> {
        leader_id: Some(2),
        leader_node: Some(Member { addr: "127.0.0.1:7002".into() }),
        reason: Default::default(),
    };
    let redirect = ClientWriteError::ForwardToLeader(forward.clone());
    let error = Error::raft("writing", RaftError::APIError(redirect));
    assert!(
        matches!(&error, Error::NotLeader { leader: Some((2, addr)) } if addr == "127.0.0.1:7002"),
        "{error:?}"
    );
    let discarded = ClientWriteError::LogEntryDiscarded(forward);
    let error = Error::raft("writing", RaftError::APIError(discarded));
    assert_eq!(error.sqlite_code(), SQLITE_IOERR_COMMIT_ATOMIC, "{}", error.chain());

    let corrupt = openraft::StorageError::read_logs(StorageCause::from_error(&corrupt_record_io()));
    let error =
        Error::raft::<Infallible>("snapshotting", RaftError::Fatal(Fatal::StorageError(corrupt)));
    assert_eq!(error.sqlite_code(), SQLITE_CORRUPT, "{}", error.chain());
    assert!(error.chain().to_string().contains("changed on disk"), "{}", error.chain());

    let error = Error::raft_wait("waiting", WaitError::ShuttingDown);
    assert_eq!(error.sqlite_code(), SQLITE_READONLY);

    let in_progress = InProgress { committed: None, membership_log_id: None };
    let busy =
        ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(in_progress));
    let error = Error::raft("adding a learner", RaftError::APIError(busy));
    assert_eq!(error.sqlite_code(), SQLITE_IOERR, "{}", error.chain());
}
