//! The vessel desk: what the node knows about each vessel it hears (latest position, name,
//! fence zone) and the fence tracker that turns positions into fence alerts. One owner, reached
//! through the ingest core; the API reads it through the same handle.

use crate::recency::RecentMap;
use crate::records::{Alert, VesselReport};
use crate::rules::fence::{FenceTracker, Zone};
use crate::store::{Op, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The state tree holding each vessel's latest state, keyed by MMSI (4 bytes, big-endian).
pub const VESSELS_TREE: &str = "state/vessels";
/// Most vessels held, in memory and on disk; past it the one heard least recently is dropped
/// from both (every new MMSI would otherwise write a record kept forever and loaded at every
/// start). The city has about 11,000 fishing vessels; foreign traffic passes too.
pub const MAX_VESSELS: usize = 200_000;
/// A vessel's state is written to disk at most this often unless something that matters
/// changed (zone, name), so a report every few seconds costs one write a minute.
const PERSIST_EVERY_MS: u64 = 60_000;
/// A listed vessel raises a new hit after this long without one.
pub const MMSI_HIT_INTERVAL_MS: u64 = 3_600_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VesselState {
    pub mmsi: u32,
    pub shipname: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub speed: Option<f32>,
    pub course: Option<f32>,
    pub heading: Option<u16>,
    pub last_msg_type: u8,
    pub last_heard_ms: u64,
    /// `clear`, `warning`, `alert` or `recall`.
    pub zone: String,
    #[serde(skip)]
    persisted_ms: u64,
}

/// What one report changed.
#[derive(Default)]
pub struct VesselUpdate {
    pub fence_alerts: Vec<Alert>,
    /// The vessel's new state, when it is due to be written.
    pub state_put: Option<Op>,
    /// The state of a vessel dropped to make room, to delete from disk.
    pub state_remove: Option<Op>,
}

pub struct VesselDesk {
    fence: Option<FenceTracker>,
    vessels: RecentMap<u32, VesselState>,
    last_hit: HashMap<u32, u64>,
}

fn state_key(mmsi: u32) -> Vec<u8> {
    mmsi.to_be_bytes().to_vec()
}

impl VesselDesk {
    pub fn new(fence: Option<FenceTracker>) -> Self {
        Self::with_capacity(fence, MAX_VESSELS)
    }

    /// A desk holding at most `capacity` vessels.
    pub fn with_capacity(fence: Option<FenceTracker>, capacity: usize) -> Self {
        VesselDesk { fence, vessels: RecentMap::new(capacity), last_hit: HashMap::new() }
    }

    /// Reload the vessels' last states after a restart: the most recently heard, up to the
    /// desk's capacity. Returns how many were restored, and the deletes of the states of the
    /// others (and of unreadable ones) for the caller to commit.
    pub fn restore(&mut self, store: &Store) -> Result<(usize, Vec<Op>), StoreError> {
        let mut states = Vec::new();
        let mut removes = Vec::new();
        for kv in store.scan(VESSELS_TREE, b"")? {
            let (k, v) = kv?;
            match crate::records::decode::<VesselState>(&v) {
                Ok(state) => states.push(state),
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable vessel state dropped");
                    removes.push(Op::Remove { tree: VESSELS_TREE, key: k });
                }
            }
        }
        // Oldest first, so the desk's recency follows when each vessel was last heard.
        states.sort_by_key(|s| (s.last_heard_ms, s.mmsi));
        for state in states {
            if let (_, Some((old, _))) = self.vessels.get_or_insert_with(state.mmsi, || state.clone()) {
                removes.push(Op::Remove { tree: VESSELS_TREE, key: state_key(old) });
            }
        }
        Ok((self.vessels.len(), removes))
    }

    pub fn tracked(&self) -> usize {
        self.vessels.len()
    }

    pub fn get(&self, mmsi: u32) -> Option<&VesselState> {
        self.vessels.get(&mmsi)
    }

    /// Every vessel held, by MMSI.
    pub fn all(&self) -> impl Iterator<Item = &VesselState> {
        self.vessels.iter().map(|(_, v)| v)
    }

    pub fn observe(&mut self, report: &VesselReport, now_ms: u64) -> VesselUpdate {
        let mut update = VesselUpdate::default();
        let (state, evicted) = self.vessels.get_or_insert_with(report.mmsi, || VesselState {
            mmsi: report.mmsi,
            shipname: None,
            lat: None,
            lon: None,
            speed: None,
            course: None,
            heading: None,
            last_msg_type: report.msg_type,
            last_heard_ms: 0,
            zone: Zone::Clear.as_str().to_string(),
            persisted_ms: 0,
        });
        if let Some((old, _)) = evicted {
            update.state_remove = Some(Op::Remove { tree: VESSELS_TREE, key: state_key(old) });
        }
        let mut changed = state.last_heard_ms == 0;
        if let Some(name) = report.shipname.as_ref().filter(|n| !n.is_empty()) {
            changed |= state.shipname.as_ref() != Some(name);
            state.shipname = Some(name.clone());
        }
        state.last_msg_type = report.msg_type;
        state.last_heard_ms = now_ms;
        if let (Some(lat), Some(lon)) = (report.lat, report.lon) {
            state.lat = Some(lat);
            state.lon = Some(lon);
            state.speed = report.speed.or(state.speed);
            state.course = report.course.or(state.course);
            state.heading = report.heading.or(state.heading);
            if let Some(fence) = self.fence.as_mut() {
                if let Some(crossing) = fence.observe(report.mmsi, lat, lon, now_ms) {
                    changed |= state.zone != crossing.to.as_str();
                    state.zone = crossing.to.as_str().to_string();
                    if crossing.is_alert() {
                        update.fence_alerts.push(Alert::Fence {
                            mmsi: report.mmsi,
                            shipname: state.shipname.clone(),
                            zone: crossing.to.as_str().to_string(),
                            previous_zone: crossing.from.as_str().to_string(),
                            distance_m: crossing.distance_m,
                            inside: crossing.inside,
                            lat,
                            lon,
                            seen_ms: now_ms,
                        });
                    }
                }
            }
        }
        if changed || now_ms.saturating_sub(state.persisted_ms) >= PERSIST_EVERY_MS {
            state.persisted_ms = now_ms;
            if let Ok(value) = crate::records::encode(&*state) {
                update.state_put = Some(Op::Put { tree: VESSELS_TREE, key: state_key(report.mmsi), value });
            }
        }
        update
    }

    /// Whether a watchlist hit on `mmsi` should raise an alert now; records it if so.
    pub fn hit_due(&mut self, mmsi: u32, now_ms: u64) -> bool {
        match self.last_hit.get(&mmsi) {
            Some(&t) if now_ms.saturating_sub(t) < MMSI_HIT_INTERVAL_MS => false,
            _ => {
                if self.last_hit.len() >= MAX_VESSELS {
                    self.last_hit.retain(|_, &mut t| now_ms.saturating_sub(t) < MMSI_HIT_INTERVAL_MS);
                }
                self.last_hit.insert(mmsi, now_ms);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::metrics::Metrics;
    use crate::store::StoreConfig;
    use std::sync::Arc;

    fn report(mmsi: u32) -> VesselReport {
        VesselReport {
            mmsi,
            msg_type: 1,
            lat: Some(37.0),
            lon: Some(122.0),
            speed: None,
            course: None,
            heading: None,
            shipname: None,
            received_ms: 0,
            source: "rx".into(),
        }
    }

    /// Every new MMSI writes a state; past the capacity the vessel heard least recently is
    /// deleted from disk with it, and a restart loads no more than the capacity.
    #[tokio::test]
    async fn vessel_states_are_bounded_on_disk_and_at_restore() {
        let dir = tempfile::tempdir().unwrap();
        let node = proto::NodeId::new("harbour-a").unwrap();
        let store = Store::open(
            dir.path(),
            node.clone(),
            Arc::new(ManualClock::new(0)),
            StoreConfig::default(),
            Metrics::unregistered(),
        )
        .unwrap();
        let mut desk = VesselDesk::with_capacity(None, 3);
        for (i, mmsi) in [100, 200, 300, 100, 400, 500].into_iter().enumerate() {
            let update = desk.observe(&report(mmsi), 1_000 * (i as u64 + 1));
            let ops: Vec<Op> = update.state_put.into_iter().chain(update.state_remove).collect();
            store.commit(ops).await.unwrap();
        }
        let on_disk: Vec<u32> = store
            .scan(VESSELS_TREE, b"")
            .unwrap()
            .map(|kv| u32::from_be_bytes(kv.unwrap().0.try_into().unwrap()))
            .collect();
        assert_eq!(on_disk, vec![100, 400, 500], "200 and 300, heard least recently, are gone from disk");
        assert_eq!(desk.all().map(|v| v.mmsi).collect::<Vec<_>>(), vec![100, 400, 500]);

        // A store written by an older version holds more than the capacity: a restart keeps the
        // most recently heard and deletes the rest.
        let mut big = VesselDesk::with_capacity(None, 10);
        for (i, mmsi) in [600, 700].into_iter().enumerate() {
            let update = big.observe(&report(mmsi), 10_000 + i as u64);
            store.commit(update.state_put.into_iter().collect()).await.unwrap();
        }
        let mut restored = VesselDesk::with_capacity(None, 3);
        let (n, removes) = restored.restore(&store).unwrap();
        assert_eq!((n, removes.len()), (3, 2));
        store.commit(removes).await.unwrap();
        assert_eq!(restored.all().map(|v| v.mmsi).collect::<Vec<_>>(), vec![500, 600, 700]);
        assert_eq!(store.scan(VESSELS_TREE, b"").unwrap().count(), 3);
    }
}
