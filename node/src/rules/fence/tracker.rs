//! The per-vessel state machine: which zone each vessel is in, with hysteresis so a vessel
//! riding a zone's edge raises one alert, not one per report.

use super::boundary::{valid_position, Boundary, Measure, Prepared};
use super::sphere::V3;
use super::{ConfigError, CrossingKind, FenceConfig, FenceCrossing, Zone, METRES_PER_NM};
use crate::recency::RecentMap;

/// Zone edges in metres, derived once from the config.
#[derive(Debug, Clone, Copy)]
struct Thresholds {
    warn_m: f64,
    alert_m: f64,
    recall_m: f64,
    margin_m: f64,
}

impl Thresholds {
    /// The zone a measurement falls in, with every threshold pushed out by `margin_m`
    /// (0 for entering, the hysteresis margin for staying).
    fn zone(&self, m: &Measure, crossed: bool, margin_m: f64) -> Zone {
        if m.inside || crossed {
            return Zone::Recall;
        }
        match m.distance_m {
            Some(d) if d <= self.recall_m + margin_m => Zone::Recall,
            Some(d) if d <= self.alert_m + margin_m => Zone::Alert,
            Some(d) if d <= self.warn_m + margin_m => Zone::Warning,
            _ => Zone::Clear,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct VesselState {
    zone: Zone,
    last_ms: u64,
    pos: V3,
    /// When the vessel was last alerted into each zone, indexed by `Zone as usize`, for the
    /// cooldown.
    alerted_ms: [Option<u64>; 4],
}

/// Fence rule for one boundary. Sans-IO: feed it positions, act on what it returns.
pub struct FenceTracker {
    boundary: Boundary,
    prepared: Prepared,
    config: FenceConfig,
    thr: Thresholds,
    /// Least recently seen dropped first: recency is the order reports arrive in, not
    /// `now_ms`, because reports from different feeds need not arrive in time order.
    vessels: RecentMap<u32, VesselState>,
    evictions: u64,
}

impl FenceTracker {
    pub fn new(boundary: Boundary, config: FenceConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let max_vessels = config.max_vessels;
        let thr = Thresholds {
            warn_m: config.warn_nm * METRES_PER_NM,
            alert_m: config.alert_nm * METRES_PER_NM,
            recall_m: config.recall_nm * METRES_PER_NM + config.on_line_m,
            margin_m: config.margin_nm * METRES_PER_NM,
        };
        // Beyond warn + margin every zone is Clear whatever the exact distance.
        let prepared = Prepared::new(&boundary, thr.warn_m + thr.margin_m);
        Ok(Self { boundary, prepared, config, thr, vessels: RecentMap::new(max_vessels), evictions: 0 })
    }

    pub fn boundary(&self) -> &Boundary {
        &self.boundary
    }

    pub fn config(&self) -> &FenceConfig {
        &self.config
    }

    /// Distance and containment of a position, within the tracker's reach (warn + margin).
    pub fn measure(&self, lat: f64, lon: f64) -> Measure {
        if !valid_position(lat, lon) {
            return Measure { distance_m: None, inside: false };
        }
        self.prepared.measure(&self.boundary, V3::from_lat_lon(lat, lon), lat, lon)
    }

    /// The zone the tracker holds for a vessel. `None` for a vessel it holds no state for:
    /// never seen, last seen beyond warn + margin (which is Clear) with no cooldown running,
    /// or evicted.
    pub fn zone_of(&self, mmsi: u32) -> Option<Zone> {
        self.vessels.get(&mmsi).map(|s| s.zone)
    }

    /// Vessels with state held.
    pub fn tracked(&self) -> usize {
        self.vessels.len()
    }

    /// Vessels dropped to stay within `max_vessels`, since creation.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Feeds one position report. Returns a crossing when the vessel's zone changes:
    /// [`CrossingKind::Escalated`] (raise an alert) or [`CrossingKind::Deescalated`]
    /// (informational). Invalid positions (AIS sends 91°/181° for "not available") and
    /// reports older than the last one taken for this vessel are ignored.
    pub fn observe(&mut self, mmsi: u32, lat: f64, lon: f64, now_ms: u64) -> Option<FenceCrossing> {
        if !valid_position(lat, lon) {
            return None;
        }
        let prior = self.vessels.get(&mmsi).copied();
        if prior.is_some_and(|s| now_ms < s.last_ms) {
            return None;
        }
        let stale_ms = self.config.stale_after_s.saturating_mul(1000);
        let fresh = prior.filter(|s| now_ms - s.last_ms <= stale_ms);
        let resumed_after_silence = prior.is_some() && fresh.is_none();

        let p = V3::from_lat_lon(lat, lon);
        let m = self.prepared.measure(&self.boundary, p, lat, lon);
        // A fast vessel, or one reporting rarely, can step over a line between two reports
        // without ever being within the on-line tolerance: the move itself is tested.
        let crossed_line = fresh.is_some_and(|s| self.prepared.crossed(&self.boundary, s.pos, p, lat, lon));

        let entering = self.thr.zone(&m, crossed_line, 0.0);
        let staying = self.thr.zone(&m, crossed_line, self.thr.margin_m);
        let from = fresh.map_or(Zone::Clear, |s| s.zone);
        // Escalate at once; de-escalate only as far as the margin-widened zones allow.
        let to = if entering > from { entering } else { from.min(staying) };

        // The cooldown outlives silence and distance: a vessel that goes out of reach and
        // comes straight back is the case it exists for.
        let mut alerted_ms = prior.map_or([None; 4], |s| s.alerted_ms);
        let kind = if to > from {
            if self.cooling_down(&alerted_ms, to, now_ms) {
                CrossingKind::Repeated
            } else {
                alerted_ms[to as usize] = Some(now_ms);
                CrossingKind::Escalated
            }
        } else {
            CrossingKind::Deescalated
        };

        let out_of_reach = m.distance_m.is_none() && !m.inside && to == Zone::Clear;
        if out_of_reach && !self.cooling_down(&alerted_ms, Zone::Warning, now_ms) {
            // Out of reach, clear and no cooldown running: nothing to remember.
            self.forget(mmsi);
        } else {
            self.remember(mmsi, VesselState { zone: to, last_ms: now_ms, pos: p, alerted_ms });
        }
        if to == from {
            return None;
        }
        Some(FenceCrossing {
            mmsi,
            kind,
            from,
            to,
            distance_m: m.distance_m,
            inside: m.inside,
            crossed_line,
            resumed_after_silence,
            lat,
            lon,
            at_ms: now_ms,
        })
    }

    /// Whether the vessel was alerted into `zone` or a more severe one less than `cooldown_s`
    /// before `now_ms`.
    fn cooling_down(&self, alerted_ms: &[Option<u64>; 4], zone: Zone, now_ms: u64) -> bool {
        let cooldown_ms = self.config.cooldown_s.saturating_mul(1000);
        alerted_ms[zone as usize..].iter().flatten().any(|&at| now_ms.saturating_sub(at) < cooldown_ms)
    }

    fn forget(&mut self, mmsi: u32) {
        self.vessels.remove(&mmsi);
    }

    /// Hold `state` for `mmsi`, as its most recent sighting.
    fn remember(&mut self, mmsi: u32, state: VesselState) {
        let (held, evicted) = self.vessels.get_or_insert_with(mmsi, || state);
        *held = state;
        if evicted.is_some() {
            self.evictions += 1;
        }
    }
}
