//! The raft log, vote and commit index in the node's store (trees `raft/log` and `raft/meta`),
//! written through its flusher: a write returns, and the log-flushed callback fires, only once
//! the data is durable. Keys of `raft/log` are log indexes, big-endian, so key order is log
//! order.

use super::{io_error, ListsRaft, StoreFault, VoterId};
use node::store::{Op, Store};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, OptionalSend, RaftLogId, RaftLogReader, StorageError, StorageIOError, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

const LOG: &str = "raft/log";
const META: &str = "raft/meta";
const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
/// The last log id purged (kept so the log's state is known once every entry is gone).
const PURGED: &[u8] = b"purged";

/// The log storage. Clones share the store; openraft's log readers are clones.
#[derive(Clone)]
pub struct LogStore {
    store: Store,
}

impl LogStore {
    pub fn new(store: Store) -> LogStore {
        LogStore { store }
    }

    fn meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreFault> {
        match self.store.get(META, key)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(proto::codec::decode(&bytes)?)),
        }
    }

    fn put_meta<T: Serialize>(key: &[u8], value: &T) -> Result<Op, StoreFault> {
        Ok(Op::Put { tree: META, key: key.to_vec(), value: proto::codec::encode(value)? })
    }

    fn last_entry(&self) -> Result<Option<Entry<ListsRaft>>, StoreFault> {
        match self.store.range(LOG, Bound::Unbounded, Bound::Unbounded).next_back() {
            None => Ok(None),
            Some(kv) => Ok(Some(proto::codec::decode(&kv?.1)?)),
        }
    }

    /// The keys of log entries with index at or past `from`, through `to`.
    fn keys_between(&self, from: Bound<u64>, to: Bound<u64>) -> Result<Vec<Vec<u8>>, StoreFault> {
        let key = |b: Bound<u64>| b.map(|i| i.to_be_bytes().to_vec());
        Ok(self.store.range(LOG, key(from), key(to)).map(|kv| kv.map(|(k, _)| k)).collect::<Result<_, _>>()?)
    }
}

impl RaftLogReader<ListsRaft> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<ListsRaft>>, StorageError<VoterId>> {
        let key = |b: Bound<&u64>| b.map(|i| i.to_be_bytes().to_vec());
        self.store
            .range(LOG, key(range.start_bound()), key(range.end_bound()))
            .map(|kv| {
                let (_, value) = kv.map_err(|e| io_error(StorageIOError::read_logs, &e))?;
                proto::codec::decode(&value).map_err(|e| io_error(StorageIOError::read_logs, &e))
            })
            .collect()
    }
}

impl RaftLogStorage<ListsRaft> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<ListsRaft>, StorageError<VoterId>> {
        let purged: Option<LogId<VoterId>> = self.meta(PURGED).map_err(|e| io_error(StorageIOError::read_logs, &e))?;
        let last = self.last_entry().map_err(|e| io_error(StorageIOError::read_logs, &e))?;
        let last_log_id = last.map(|e| *e.get_log_id()).or(purged);
        Ok(LogState { last_purged_log_id: purged, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<VoterId>) -> Result<(), StorageError<VoterId>> {
        let op = LogStore::put_meta(VOTE, vote).map_err(|e| io_error(StorageIOError::write_vote, &e))?;
        self.store.commit(vec![op]).await.map_err(|e| io_error(StorageIOError::write_vote, &e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<VoterId>>, StorageError<VoterId>> {
        self.meta(VOTE).map_err(|e| io_error(StorageIOError::read_vote, &e))
    }

    /// Kept so a restarted voter re-applies what was committed before it stopped: the state
    /// machine lives in memory between snapshots.
    async fn save_committed(&mut self, committed: Option<LogId<VoterId>>) -> Result<(), StorageError<VoterId>> {
        let op = LogStore::put_meta(COMMITTED, &committed).map_err(|e| io_error(StorageIOError::write_logs, &e))?;
        self.store.commit(vec![op]).await.map_err(|e| io_error(StorageIOError::write_logs, &e))?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<VoterId>>, StorageError<VoterId>> {
        Ok(self
            .meta::<Option<LogId<VoterId>>>(COMMITTED)
            .map_err(|e| io_error(StorageIOError::read_logs, &e))?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<ListsRaft>) -> Result<(), StorageError<VoterId>>
    where
        I: IntoIterator<Item = Entry<ListsRaft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut ops = Vec::new();
        for entry in entries {
            let value = proto::codec::encode(&entry).map_err(|e| io_error(StorageIOError::write_logs, &e))?;
            ops.push(Op::Put { tree: LOG, key: entry.get_log_id().index.to_be_bytes().to_vec(), value });
        }
        // Durable before the callback: openraft counts this append towards a quorum once told.
        let result = self.store.commit(ops).await;
        match result {
            Ok(_) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(io_error(StorageIOError::write_logs, &e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<VoterId>) -> Result<(), StorageError<VoterId>> {
        let keys = self
            .keys_between(Bound::Included(log_id.index), Bound::Unbounded)
            .map_err(|e| io_error(StorageIOError::write_logs, &e))?;
        let ops = keys.into_iter().map(|key| Op::Remove { tree: LOG, key }).collect();
        self.store.commit(ops).await.map_err(|e| io_error(StorageIOError::write_logs, &e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<VoterId>) -> Result<(), StorageError<VoterId>> {
        let keys = self
            .keys_between(Bound::Unbounded, Bound::Included(log_id.index))
            .map_err(|e| io_error(StorageIOError::write_logs, &e))?;
        // The purge mark and the removals in one commit: after a crash the log's state is
        // either before the purge or after it.
        let mut ops = vec![LogStore::put_meta(PURGED, &log_id).map_err(|e| io_error(StorageIOError::write_logs, &e))?];
        ops.extend(keys.into_iter().map(|key| Op::Remove { tree: LOG, key }));
        self.store.commit(ops).await.map_err(|e| io_error(StorageIOError::write_logs, &e))?;
        Ok(())
    }
}
