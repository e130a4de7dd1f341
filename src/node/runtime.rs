//! The tokio runtime all nodes of this process share.
//!
//! It starts lazily on its own threads, so loading the extension costs nothing until a
//! database becomes a node. SQLite's threads never `block_on` it: they hand work over and
//! wait on a channel with a deadline ([`run_blocking`]). A forked child must not use the
//! parent's runtime (its threads did not survive the fork), so the runtime remembers the
//! pid that started it.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::error::{Error, Fault};

/// Worker threads: Raft, QUIC and apply work are light; two keep latency low on two cores.
const WORKER_THREADS: usize = 2;

struct Shared {
    runtime: tokio::runtime::Runtime,
    pid: u32,
}

/// The runtime, or why it could not start (kept for every later caller, hence shared).
static RUNTIME: OnceLock<Result<Shared, Arc<std::io::Error>>> = OnceLock::new();

/// The process's runtime handle, started on first use.
pub fn handle() -> Result<tokio::runtime::Handle, Error> {
    let shared = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name("dqlite-vfs")
            .enable_all()
            .build()
            .map(|runtime| Shared { runtime, pid: std::process::id() })
            .map_err(Arc::new)
    });
    match shared {
        Ok(shared) if shared.pid == std::process::id() => Ok(shared.runtime.handle().clone()),
        Ok(_) => Err(Error::NodeStopped(
            "this process was forked from the one that started the node; nodes do not survive fork(): open the database in the parent or start the node after forking".into(),
        )),
        Err(e) => Err(Error::io_shared(Fault::Internal, "could not start the node's runtime", e)),
    }
}

/// Runs `future` on the runtime and waits for it from a thread outside the runtime, at
/// most `deadline`. `Err(None)` means the deadline passed (the future keeps running).
pub fn run_blocking<T, F>(future: F, deadline: Duration) -> Result<T, Option<Error>>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handle = handle().map_err(Some)?;
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        // The receiver may have given up (deadline): nothing to do then.
        let _ = sender.send(future.await);
    });
    match receiver.recv_timeout(deadline) {
        Ok(value) => Ok(value),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(None),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err(Some(Error::NodeStopped("the runtime dropped the task".into())))
        }
    }
}

/// [`run_blocking`] for fallible work: a missed deadline becomes an `Unreachable` error that
/// names `what` was being waited for.
pub fn wait<T: Send + 'static>(
    future: impl Future<Output = Result<T, Error>> + Send + 'static,
    deadline: Duration,
    what: &str,
) -> Result<T, Error> {
    run_blocking(future, deadline).map_err(|e| {
        e.unwrap_or_else(|| {
            Error::Unreachable(format!("{what}: no answer within {} s", deadline.as_secs()))
        })
    })?
}
