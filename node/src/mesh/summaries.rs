//! The tiers' view of the mesh's summaries: each node sends every rewrite of its window
//! summaries up; a receiver keeps, per (node, window), the highest version it has seen. That is
//! an idempotent upsert: the same rewrite twice, or an older one late, changes nothing, and late
//! data that rewrites a window replaces it.

use crate::events::Summary;
use crate::store::{Op, Store, StoreError};
use proto::{Entry, Kind, NodeId};
use std::collections::BTreeMap;

/// Latest summary per (node, window) received from below, keyed `[len][node][window BE]`.
pub const MESH_SUMMARIES_TREE: &str = "state/mesh-summaries";

fn key(node: &NodeId, window_start_ms: u64) -> Vec<u8> {
    crate::store::keys::entry_key(node, window_start_ms)
}

/// The upserts a batch of received entries makes, to be committed with the entries themselves.
/// `pending` carries versions already upserted earlier in the same batch.
pub fn upserts(store: &Store, entries: &[Entry]) -> Result<Vec<Op>, StoreError> {
    let mut best: BTreeMap<Vec<u8>, Summary> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.kind == Kind::Summary) {
        let Ok(s) = crate::records::decode::<Summary>(&e.payload) else {
            tracing::warn!(origin = %e.origin, seq = e.seq, "unreadable summary not upserted");
            continue;
        };
        if s.node != e.origin {
            // A node summarises only itself.
            continue;
        }
        let k = key(&s.node, s.window_start_ms);
        let current = match best.get(&k) {
            Some(b) => Some(b.version),
            None => store
                .get(MESH_SUMMARIES_TREE, &k)?
                .and_then(|v| crate::records::decode::<Summary>(&v).ok())
                .map(|b| b.version),
        };
        if current.is_none_or(|v| s.version > v) {
            best.insert(k, s);
        }
    }
    best.into_iter()
        .map(|(key, s)| {
            let value = crate::records::encode(&s).map_err(|e| StoreError::Codec(e.to_string()))?;
            Ok(Op::Put { tree: MESH_SUMMARIES_TREE, key, value })
        })
        .collect()
}

/// The latest summaries received from below, of windows starting in `[from_ms, to_ms]`.
pub fn latest(store: &Store, from_ms: u64, to_ms: u64) -> Result<Vec<Summary>, StoreError> {
    let mut out = Vec::new();
    for kv in store.scan(MESH_SUMMARIES_TREE, b"")? {
        let (_, v) = kv?;
        if let Ok(s) = crate::records::decode::<Summary>(&v) {
            if (from_ms..=to_ms).contains(&s.window_start_ms) {
                out.push(s);
            }
        }
    }
    Ok(out)
}
