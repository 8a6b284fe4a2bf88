//! The tiers' view of the mesh's summaries: each node sends every rewrite of its window
//! summaries up; a receiver keeps, per (node, window), the highest version it has seen. That is
//! an idempotent upsert: the same rewrite twice, or an older one late, changes nothing, and late
//! data that rewrites a window replaces it.
//!
//! Only windows near now are upserted: ending at most [`SUMMARY_HORIZON_MS`] ago, starting at
//! most the clock tolerance ahead. A child sending summaries of any window it likes would
//! otherwise grow this tree without bound; the entries themselves are stored and passed up
//! as always (they are its entries), they just do not chart.

use crate::events::Summary;
use crate::store::{Op, Store, StoreError};
use proto::{Entry, Kind, NodeId};
use std::collections::BTreeMap;

/// Latest summary per (node, window) received from below, keyed `[len][node][window BE]`.
pub const MESH_SUMMARIES_TREE: &str = "state/mesh-summaries";

/// How far back a received summary's window may end and still be charted: a week, longer than
/// a site is expected to be cut off and still catching up.
pub const SUMMARY_HORIZON_MS: u64 = 7 * 86_400_000;

/// Whether a window is near enough to `now_ms` to be charted (see the module docs).
fn near_now(s: &Summary, now_ms: u64) -> bool {
    let ends = s.window_start_ms.saturating_add(s.window_ms);
    ends.saturating_add(SUMMARY_HORIZON_MS) >= now_ms
        && s.window_start_ms <= now_ms.saturating_add(crate::clock::MAX_CLOCK_JUMP_MS)
}

fn key(node: &NodeId, window_start_ms: u64) -> Vec<u8> {
    crate::store::keys::entry_key(node, window_start_ms)
}

/// The upserts a batch of received entries makes at `now_ms`, to be committed with the entries
/// themselves.
pub fn upserts(store: &Store, entries: &[Entry], now_ms: u64) -> Result<Vec<Op>, StoreError> {
    let mut best: BTreeMap<Vec<u8>, Summary> = BTreeMap::new();
    let mut far = 0;
    for e in entries.iter().filter(|e| e.kind == Kind::Summary) {
        let Ok(s) = crate::records::decode::<Summary>(&e.payload) else {
            tracing::warn!(origin = %e.origin, seq = e.seq, "unreadable summary not upserted");
            continue;
        };
        if s.node != e.origin {
            // A node summarises only itself.
            continue;
        }
        if !near_now(&s, now_ms) {
            far += 1;
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
    if far > 0 {
        tracing::warn!(summaries = far, "summaries of windows far from now stored but not charted");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::metrics::Metrics;
    use crate::store::StoreConfig;
    use proto::Hlc;
    use std::sync::Arc;

    /// A child's summaries of windows a month ago and a day ahead are not charted; this hour's
    /// is, and a later version of it replaces it.
    #[tokio::test]
    async fn only_windows_near_now_are_charted() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_764_000_000_000;
        let me = NodeId::new("county-test").unwrap();
        let store = Store::open(
            dir.path(),
            me,
            Arc::new(ManualClock::new(now)),
            StoreConfig::default(),
            Metrics::unregistered(),
        )
        .unwrap();
        let town = NodeId::new("town-a").unwrap();
        let hour = 3_600_000;
        let entry = |seq: u64, window_start_ms: u64, version: u64| {
            let mut s = Summary::empty(town.clone(), window_start_ms, hour);
            s.version = version;
            s.escalations = version;
            Entry {
                origin: town.clone(),
                seq,
                hlc: Hlc::new(now, 0),
                kind: Kind::Summary,
                payload: crate::records::encode(&s).unwrap(),
            }
        };
        let this_hour = Summary::window_of(now, hour);
        let entries = [
            entry(1, this_hour - 30 * 24 * hour, 1),
            entry(2, this_hour + 24 * hour, 1),
            entry(3, this_hour, 1),
            entry(4, this_hour, 2),
            entry(5, this_hour - 6 * 24 * hour, 1),
        ];
        let ups = upserts(&store, &entries, now).unwrap();
        store.commit(ups).await.unwrap();
        let charted = latest(&store, 0, u64::MAX).unwrap();
        let windows: Vec<(u64, u64)> = charted.iter().map(|s| (s.window_start_ms, s.version)).collect();
        assert_eq!(windows, [(this_hour - 6 * 24 * hour, 1), (this_hour, 2)]);
    }
}
