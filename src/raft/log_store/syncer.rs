//! Makes appended log records durable in the background, in order, and tells openraft.
//!
//! An append writes its records and returns at once, so the leader can send them to
//! followers while its own `fdatasync` runs (the two fsyncs of a commit then overlap instead
//! of adding up). This thread syncs the files written, oldest request first, and only then
//! fires each request's `IOFlushed` callback. Requests that queued up while a sync ran are
//! covered by one sync per file (group commit): a sync flushes every earlier write to it.

use std::fs::File;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;

use openraft::storage::IOFlushed;

use super::LogError;
use crate::raft::types::TypeConfig;

/// One append waiting for durability.
struct Request {
    file: Arc<File>,
    callback: IOFlushed<TypeConfig>,
    /// For latency traces only.
    last_index: Option<u64>,
}

/// The sending side; the thread ends when every clone is dropped.
#[derive(Clone, Debug)]
pub(crate) struct Syncer {
    requests: Sender<RequestBox>,
}

/// `IOFlushed` is not `Debug`; the channel carries it boxed behind this wrapper.
struct RequestBox(Request);

impl std::fmt::Debug for RequestBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sync request")
    }
}

impl Syncer {
    /// Starts the syncing thread.
    pub(crate) fn start() -> std::io::Result<Syncer> {
        let (requests, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("dqlite-vfs-log-sync".into())
            .spawn(move || run(receiver))?;
        Ok(Syncer { requests })
    }

    /// Queues `file` (just written) for a sync; `callback` fires once it is durable.
    pub(crate) fn submit(
        &self,
        file: Arc<File>,
        callback: IOFlushed<TypeConfig>,
        last_index: Option<u64>,
    ) {
        if let Err(mpsc::SendError(RequestBox(request))) =
            self.requests.send(RequestBox(Request { file, callback, last_index }))
        {
            // The thread is gone (it only ends when every sender is dropped, so this cannot
            // happen while we hold one); sync here rather than lose the notification.
            let result = request.file.sync_data().map_err(|e| LogError::Sync(Arc::new(e)).into());
            request.callback.io_completed(result);
        }
    }
}

fn run(receiver: Receiver<RequestBox>) {
    while let Ok(RequestBox(first)) = receiver.recv() {
        let mut batch = vec![first];
        batch.extend(receiver.try_iter().map(|RequestBox(request)| request));
        let mut synced: Vec<Arc<File>> = Vec::new();
        let mut failure: Option<Arc<std::io::Error>> = None;
        for request in &batch {
            if failure.is_none() && !synced.iter().any(|f| Arc::ptr_eq(f, &request.file)) {
                match request.file.sync_data() {
                    Ok(()) => synced.push(Arc::clone(&request.file)),
                    Err(error) => failure = Some(Arc::new(error)),
                }
            }
        }
        for request in batch {
            let result = match &failure {
                None => Ok(()),
                Some(error) => Err(LogError::Sync(Arc::clone(error)).into()),
            };
            tracing::trace!(target: "dqlite_vfs::latency", last_index = request.last_index, "log synced");
            request.callback.io_completed(result);
        }
    }
}
