//! Runs openraft's storage test suite against our log store and state machine (over the
//! in-memory fake database), each test in a fresh temporary state directory.

use std::sync::Arc;

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;

use crate::raft::log_store::LogStore;
use crate::raft::state_machine::fake_db::FakeDb;
use crate::raft::state_machine::StateMachine;
use crate::raft::types::TypeConfig;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine<FakeDb>, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine<FakeDb>), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogStore::open(dir.path()).expect("open log");
        let sm = StateMachine::open(dir.path(), Arc::new(FakeDb::default()), Default::default())
            .expect("open state machine");
        Ok((dir, log, sm))
    }
}

// Goal: our storage satisfies every contract openraft's suite checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite() {
    Suite::test_all(Builder).await.expect("storage suite");
}
