//! Every applied list command, kept by each voter in its store: the record of who changed what,
//! when and why (the lists' audit trail and each subject's history), and the feed of committed
//! versions that the mesh distributes.
//!
//! - `raft/changes`: version (log index, big-endian) -> [`Change`]: the proposal as committed
//!   and its outcome, refused ones included (they were decided too).
//! - `raft/history`: `list/subject`, a zero byte, version -> nothing: which versions touched a
//!   subject, so its history is one prefix scan.
//!
//! The state machine writes both when it applies a command; a restart re-applies the log since
//! the last snapshot and writes the same keys again. A voter that caught up by installing a
//! snapshot never applied the versions the snapshot covers, so its records start after it: the
//! *horizon*, which every answer states.

use super::StoreFault;
use node::sanctions::{Command, ListKind, Outcome, Proposal, SubjectId};
use node::store::{Op, Store};
use serde::{Deserialize, Serialize};
use std::ops::Bound;

const CHANGES: &str = "raft/changes";
const HISTORY: &str = "raft/history";
const META: &str = "raft/changes-meta";
const HORIZON: &[u8] = b"horizon";

/// One applied command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub version: u64,
    pub proposal: Proposal,
    pub outcome: Outcome,
}

/// The subjects a command touches.
pub fn subjects(command: &Command) -> Vec<(ListKind, &SubjectId)> {
    match command {
        Command::Add { entry } | Command::Amend { entry } => vec![(entry.list, &entry.subject)],
        Command::Remove { list, subject } => vec![(*list, subject)],
        Command::Import { entries } => entries.iter().map(|e| (e.list, &e.subject)).collect(),
        Command::RevokeCertificate { .. } => Vec::new(),
    }
}

fn subject_prefix(list: ListKind, subject: &SubjectId) -> Vec<u8> {
    let mut key = format!("{list}/{subject}").into_bytes();
    key.push(0);
    key
}

/// The writes that record `change`.
pub fn record(change: &Change) -> Result<Vec<Op>, StoreFault> {
    let mut ops = vec![Op::Put {
        tree: CHANGES,
        key: change.version.to_be_bytes().to_vec(),
        value: proto::codec::encode(change)?,
    }];
    for (list, subject) in subjects(&change.proposal.command) {
        let mut key = subject_prefix(list, subject);
        key.extend_from_slice(&change.version.to_be_bytes());
        ops.push(Op::Put { tree: HISTORY, key, value: Vec::new() });
    }
    Ok(ops)
}

/// Note that versions up to `version` came in a snapshot: their records may be missing here.
pub fn raise_horizon(store: &Store, version: u64) -> Result<Option<Op>, StoreFault> {
    if horizon(store)? >= version {
        return Ok(None);
    }
    Ok(Some(Op::Put { tree: META, key: HORIZON.to_vec(), value: version.to_be_bytes().to_vec() }))
}

/// Records at or below this version may be missing on this voter (0: none are).
pub fn horizon(store: &Store) -> Result<u64, StoreFault> {
    Ok(store.get(META, HORIZON)?.and_then(|v| v.try_into().ok().map(u64::from_be_bytes)).unwrap_or(0))
}

/// Up to `limit` changes after `after`, in version order.
pub fn page(store: &Store, after: u64, limit: usize) -> Result<Vec<Change>, StoreFault> {
    store
        .range(CHANGES, Bound::Excluded(after.to_be_bytes().to_vec()), Bound::Unbounded)
        .take(limit)
        .map(|kv| Ok(proto::codec::decode(&kv?.1)?))
        .collect()
}

/// Every change that touched `subject` on `list`, oldest first (at most `limit`).
pub fn history(store: &Store, list: ListKind, subject: &SubjectId, limit: usize) -> Result<Vec<Change>, StoreFault> {
    let prefix = subject_prefix(list, subject);
    let mut out = Vec::new();
    for kv in store.scan(HISTORY, &prefix)?.take(limit) {
        let (key, _) = kv?;
        let version =
            key[prefix.len()..].try_into().map(u64::from_be_bytes).map_err(|_| StoreFault::BadKey(HISTORY))?;
        if let Some(bytes) = store.get(CHANGES, &version.to_be_bytes())? {
            out.push(proto::codec::decode(&bytes)?);
        }
    }
    Ok(out)
}
