//! The vessel desk: what the node knows about each vessel it hears (latest position, name,
//! fence zone) and the fence tracker that turns positions into fence alerts. One owner, reached
//! through the ingest core; the API reads it through the same handle.

use crate::records::{Alert, VesselReport};
use crate::rules::fence::{FenceTracker, Zone};
use crate::store::{Op, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The state tree holding each vessel's latest state, keyed by MMSI (4 bytes, big-endian).
pub const VESSELS_TREE: &str = "state/vessels";
/// Most vessels held in memory; the least recently heard are dropped beyond it. The city has
/// about 11,000 fishing vessels; foreign traffic passes too.
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
}

pub struct VesselDesk {
    fence: Option<FenceTracker>,
    vessels: HashMap<u32, VesselState>,
    last_hit: HashMap<u32, u64>,
}

impl VesselDesk {
    pub fn new(fence: Option<FenceTracker>) -> Self {
        VesselDesk { fence, vessels: HashMap::new(), last_hit: HashMap::new() }
    }

    /// Reload the vessels' last states after a restart.
    pub fn restore(&mut self, store: &Store) -> Result<usize, StoreError> {
        for kv in store.scan(VESSELS_TREE, b"")? {
            let (_, v) = kv?;
            match crate::records::decode::<VesselState>(&v) {
                Ok(state) => {
                    self.vessels.insert(state.mmsi, state);
                }
                Err(e) => tracing::warn!(error = %e, "unreadable vessel state skipped"),
            }
        }
        Ok(self.vessels.len())
    }

    pub fn tracked(&self) -> usize {
        self.vessels.len()
    }

    pub fn get(&self, mmsi: u32) -> Option<&VesselState> {
        self.vessels.get(&mmsi)
    }

    pub fn all(&self) -> impl Iterator<Item = &VesselState> {
        self.vessels.values()
    }

    pub fn observe(&mut self, report: &VesselReport, now_ms: u64) -> VesselUpdate {
        let mut update = VesselUpdate::default();
        if !self.vessels.contains_key(&report.mmsi) && self.vessels.len() >= MAX_VESSELS {
            self.evict_oldest();
        }
        let state = self.vessels.entry(report.mmsi).or_insert_with(|| VesselState {
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
                update.state_put = Some(Op::Put { tree: VESSELS_TREE, key: report.mmsi.to_be_bytes().to_vec(), value });
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

    fn evict_oldest(&mut self) {
        // Rare (only past MAX_VESSELS distinct vessels), so a scan is fine: drop the tenth
        // heard least recently in one go.
        let mut heard: Vec<(u64, u32)> = self.vessels.values().map(|v| (v.last_heard_ms, v.mmsi)).collect();
        heard.sort_unstable();
        for (_, mmsi) in heard.into_iter().take(MAX_VESSELS / 10) {
            self.vessels.remove(&mmsi);
        }
    }
}
