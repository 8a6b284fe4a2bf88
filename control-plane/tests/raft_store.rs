//! openraft's own storage suite, run on the raft log and state machine over a real sled store.

use control_plane::raft::log_store::LogStore;
use control_plane::raft::state_machine::ListsMachine;
use control_plane::raft::ListsRaft;
use node::clock::ManualClock;
use node::metrics::Metrics;
use node::store::{Store, StoreConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use std::sync::Arc;

struct SledBuilder;

impl StoreBuilder<ListsRaft, LogStore, ListsMachine, (tempfile::TempDir, Store)> for SledBuilder {
    async fn build(&self) -> Result<((tempfile::TempDir, Store), LogStore, ListsMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(
            dir.path(),
            proto::NodeId::new("city").unwrap(),
            Arc::new(ManualClock::new(1_764_000_000_000)),
            StoreConfig::default(),
            Metrics::unregistered(),
        )
        .expect("open the store");
        let machine = ListsMachine::open(store.clone()).expect("open the state machine");
        Ok(((dir, store.clone()), LogStore::new(store), machine))
    }
}

#[test]
fn openraft_storage_suite_passes_on_sled() {
    // The suite builds its own runtime per case: call it from a plain test.
    Suite::test_all(SledBuilder).expect("the openraft storage suite");
}
