//! The raft state machine: [`Lists`] in memory, applied from the log, with snapshots kept in
//! the node's store (tree `raft/snapshot`). Between snapshots the state lives only in memory;
//! after a restart openraft re-applies the committed log from the last snapshot (the log store
//! keeps the commit index for that), so nothing applied is lost and nothing is applied twice
//! into what is kept.
//!
//! Readers (the operator API, distribution down the mesh) take a [`ListsView`]: the applied
//! state behind a lock, and a watch of the applied version.

use super::{changes, io_error, ListsRaft, StoreFault, Voter, VoterId};
use node::sanctions::{Lists, Outcome};
use node::store::{Op, Store};
use openraft::storage::RaftStateMachine;
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use tokio::sync::watch;

const SNAPSHOT: &str = "raft/snapshot";
const SNAPSHOT_META: &[u8] = b"meta";
/// Snapshot bytes are kept in chunks of this size under `data/<n>`.
const CHUNK_BYTES: usize = 1 << 20;
const CHUNK_PREFIX: &[u8] = b"data/";

/// What the state machine has applied.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Applied {
    pub last_applied: Option<LogId<VoterId>>,
    pub membership: StoredMembership<VoterId, Voter>,
    pub lists: Lists,
}

/// A read handle on the applied state.
#[derive(Clone)]
pub struct ListsView {
    state: Arc<RwLock<Applied>>,
    version: watch::Receiver<u64>,
}

impl ListsView {
    /// The applied state, read-locked: hold it briefly.
    pub fn read(&self) -> RwLockReadGuard<'_, Applied> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The applied list version, watched: changes each time a command is applied.
    pub fn version(&self) -> watch::Receiver<u64> {
        self.version.clone()
    }
}

/// The state machine; openraft owns it, readers hold [`ListsView`]s.
pub struct ListsMachine {
    store: Store,
    state: Arc<RwLock<Applied>>,
    version: watch::Sender<u64>,
    /// Snapshots built by this instance, to name each one uniquely.
    built: u64,
}

impl ListsMachine {
    /// The state machine as its last stored snapshot left it (empty without one).
    pub fn open(store: Store) -> Result<ListsMachine, StoreFault> {
        let applied = match read_snapshot(&store)? {
            Some((_, bytes)) => proto::codec::decode_snapshot::<Applied>(&bytes)?,
            None => Applied::default(),
        };
        let (version, _) = watch::channel(applied.lists.version());
        Ok(ListsMachine { store, state: Arc::new(RwLock::new(applied)), version, built: 0 })
    }

    pub fn view(&self) -> ListsView {
        ListsView { state: self.state.clone(), version: self.version.subscribe() }
    }

    fn publish(&self) {
        let v = self.state.read().unwrap_or_else(|p| p.into_inner()).lists.version();
        self.version.send_if_modified(|old| std::mem::replace(old, v) != v);
    }
}

/// The stored snapshot's meta and bytes, if there is one.
#[allow(clippy::type_complexity)]
fn read_snapshot(store: &Store) -> Result<Option<(SnapshotMeta<VoterId, Voter>, Vec<u8>)>, StoreFault> {
    let Some(meta) = store.get(SNAPSHOT, SNAPSHOT_META)? else { return Ok(None) };
    let (meta, chunks): (SnapshotMeta<VoterId, Voter>, u64) = proto::codec::decode(&meta)?;
    let mut bytes = Vec::new();
    for n in 0..chunks as usize {
        let chunk = store.get(SNAPSHOT, &chunk_key(n))?.ok_or(StoreFault::MissingChunk(n))?;
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some((meta, bytes)))
}

fn chunk_key(n: usize) -> Vec<u8> {
    let mut key = CHUNK_PREFIX.to_vec();
    key.extend_from_slice(&(n as u64).to_be_bytes());
    key
}

/// Replace the stored snapshot with `meta` and `bytes`, in one commit.
async fn write_snapshot(store: &Store, meta: &SnapshotMeta<VoterId, Voter>, bytes: &[u8]) -> Result<(), StoreFault> {
    let mut ops: Vec<Op> = store
        .scan(SNAPSHOT, CHUNK_PREFIX)?
        .map(|kv| kv.map(|(key, _)| Op::Remove { tree: SNAPSHOT, key }))
        .collect::<Result<_, _>>()?;
    let chunks: Vec<&[u8]> = bytes.chunks(CHUNK_BYTES).collect();
    // Removals first, then puts: a key written again in the same commit keeps its new value.
    for (n, chunk) in chunks.iter().enumerate() {
        ops.push(Op::Put { tree: SNAPSHOT, key: chunk_key(n), value: chunk.to_vec() });
    }
    let meta = proto::codec::encode(&(meta, chunks.len() as u64))?;
    ops.push(Op::Put { tree: SNAPSHOT, key: SNAPSHOT_META.to_vec(), value: meta });
    store.commit(ops).await?;
    Ok(())
}

/// Builds a snapshot of the state as it is when asked.
pub struct ListsSnapshotBuilder {
    store: Store,
    applied: Applied,
    id: String,
}

impl RaftSnapshotBuilder<ListsRaft> for ListsSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<ListsRaft>, StorageError<VoterId>> {
        let bytes = proto::codec::encode_snapshot(&self.applied)
            .map_err(|e| io_error(|a| StorageIOError::write_snapshot(None, a), &e))?;
        let meta = SnapshotMeta {
            last_log_id: self.applied.last_applied,
            last_membership: self.applied.membership.clone(),
            snapshot_id: self.id.clone(),
        };
        write_snapshot(&self.store, &meta, &bytes)
            .await
            .map_err(|e| io_error(|a| StorageIOError::write_snapshot(Some(meta.signature()), a), &e))?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(bytes)) })
    }
}

impl RaftStateMachine<ListsRaft> for ListsMachine {
    type SnapshotBuilder = ListsSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<VoterId>>, StoredMembership<VoterId, Voter>), StorageError<VoterId>> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError<VoterId>>
    where
        I: IntoIterator<Item = Entry<ListsRaft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut outcomes = Vec::new();
        let mut records = Vec::new();
        {
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            for entry in entries {
                let index = entry.log_id.index;
                state.last_applied = Some(entry.log_id);
                let outcome = match entry.payload {
                    EntryPayload::Normal(proposal) => {
                        let outcome = state.lists.apply(index, &proposal);
                        records.push(changes::Change { version: index, proposal, outcome: outcome.clone() });
                        outcome
                    }
                    EntryPayload::Blank => {
                        state.lists.skip_to(index);
                        Outcome::Applied { version: index, changed: 0 }
                    }
                    EntryPayload::Membership(ref m) => {
                        state.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                        state.lists.skip_to(index);
                        Outcome::Applied { version: index, changed: 0 }
                    }
                };
                outcomes.push(outcome);
            }
        }
        // The record of what was applied, made durable before anyone is told (see `changes`).
        let mut ops = Vec::new();
        for change in &records {
            ops.extend(changes::record(change).map_err(|e| io_error(StorageIOError::write_state_machine, &e))?);
        }
        if !ops.is_empty() {
            self.store.commit(ops).await.map_err(|e| io_error(StorageIOError::write_state_machine, &e))?;
        }
        self.publish();
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.built += 1;
        let applied = self.state.read().unwrap_or_else(|p| p.into_inner()).clone();
        let last = applied.last_applied.map(|l| format!("{}-{}", l.leader_id.term, l.index));
        let id = format!("{}-{}", last.unwrap_or_else(|| "none".into()), self.built);
        ListsSnapshotBuilder { store: self.store.clone(), applied, id }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<VoterId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<VoterId, Voter>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<VoterId>> {
        let bytes = snapshot.into_inner();
        let applied: Applied = proto::codec::decode_snapshot(&bytes)
            .map_err(|e| io_error(|a| StorageIOError::read_snapshot(Some(meta.signature()), a), &e))?;
        // Versions the snapshot covers were never applied here: their records are not kept.
        let horizon = meta.last_log_id.map_or(0, |l| l.index);
        if let Some(op) = changes::raise_horizon(&self.store, horizon)
            .map_err(|e| io_error(|a| StorageIOError::write_snapshot(Some(meta.signature()), a), &e))?
        {
            self.store
                .commit(vec![op])
                .await
                .map_err(|e| io_error(|a| StorageIOError::write_snapshot(Some(meta.signature()), a), &e))?;
        }
        // Durable first: once installed, openraft may purge the log the snapshot replaces.
        write_snapshot(&self.store, meta, &bytes)
            .await
            .map_err(|e| io_error(|a| StorageIOError::write_snapshot(Some(meta.signature()), a), &e))?;
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = applied;
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<ListsRaft>>, StorageError<VoterId>> {
        let stored =
            read_snapshot(&self.store).map_err(|e| io_error(|a| StorageIOError::read_snapshot(None, a), &e))?;
        Ok(stored.map(|(meta, bytes)| Snapshot { meta, snapshot: Box::new(Cursor::new(bytes)) }))
    }
}
