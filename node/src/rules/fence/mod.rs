//! Vessel fences: zones by geodesic distance from a boundary given as GeoJSON, with per-vessel
//! hysteresis. See docs/fences.md for the operator's view (sources, tolerances, config).
//!
//! - Boundary ([`Boundary`]): LineString, MultiLineString, Polygon or MultiPolygon, bare or in a
//!   Feature / FeatureCollection. Edges are great-circle arcs between consecutive vertices (not
//!   rhumb lines, and not RFC 7946's straight lines in longitude/latitude). A polygon is an area
//!   vessels must not enter: inside it is the Recall zone.
//! - Zones ([`Zone`]), from the distance `d` in metres (1 nm = 1852 m) to the nearest edge:
//!   `d <= warn_nm` Warning, `d <= alert_nm` Alert, `d <= recall_nm + on_line_m` (or inside a
//!   polygon, or having crossed an edge since the last report) Recall.
//! - Distance: closest point on each arc on the sphere, then Karney's geodesic distance on WGS84
//!   to that point. Measured against a dense-sampling brute force, see docs/fences.md.
//! - Prefilter: a vessel outside the union of the edges' boxes (widened by warn + margin) costs
//!   four comparisons; nearer, an R-tree and a per-edge cap test pick the few edges to measure.
//! - Hysteresis ([`FenceTracker`]): escalation is immediate and reported once; de-escalation
//!   happens only when the vessel is beyond the zone's threshold plus `margin_nm`, and is
//!   reported too, as a non-alert [`CrossingKind::Deescalated`], so the API can show each
//!   vessel's zone. A vessel that left (de-escalated) and comes back alerts again once
//!   `cooldown_s` has passed since its last alert for that zone (a more severe zone alerts at
//!   once); so does one silent for longer than `stale_after_s`.

mod boundary;
mod geojson;
mod sphere;
mod tracker;

#[cfg(test)]
mod tests;

pub use boundary::{Boundary, Measure};
pub use geojson::BoundaryError;
pub use tracker::FenceTracker;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One international nautical mile, metres.
pub const METRES_PER_NM: f64 = 1852.0;

/// How close a vessel is to the boundary, least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Zone {
    Clear,
    Warning,
    Alert,
    Recall,
}

impl Zone {
    /// `clear`, `warning`, `alert` or `recall`: the names alerts, metrics and the API use.
    pub fn as_str(self) -> &'static str {
        match self {
            Zone::Clear => "clear",
            Zone::Warning => "warning",
            Zone::Alert => "alert",
            Zone::Recall => "recall",
        }
    }
}

/// Whether a zone change raises an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrossingKind {
    /// Into a more severe zone: raise an alert (one per escalation).
    Escalated,
    /// Out to a less severe zone, past the margin: no alert, but the vessel's zone changed.
    Deescalated,
    /// Back into a zone within `cooldown_s` of an alert for that zone or a more severe one:
    /// the vessel's zone changed, but it is not alerted again.
    Repeated,
}

/// A vessel's zone change, returned by [`FenceTracker::observe`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FenceCrossing {
    pub mmsi: u32,
    pub kind: CrossingKind,
    pub from: Zone,
    pub to: Zone,
    /// Geodesic distance to the nearest edge, metres; `None` when beyond warn + margin.
    pub distance_m: Option<f64>,
    /// Inside a polygon of the boundary.
    pub inside: bool,
    /// The move since the previous report crossed an edge.
    pub crossed_line: bool,
    /// The vessel had been silent longer than `stale_after_s`, so it is judged afresh
    /// (`from` is then `Clear`).
    pub resumed_after_silence: bool,
    pub lat: f64,
    pub lon: f64,
    pub at_ms: u64,
}

impl FenceCrossing {
    pub fn is_alert(&self) -> bool {
        self.kind == CrossingKind::Escalated
    }
}

/// Fence settings. Every key is optional; see docs/fences.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FenceConfig {
    /// Warning within this distance, nautical miles.
    pub warn_nm: f64,
    /// Alert within this distance, nautical miles.
    pub alert_nm: f64,
    /// Recall order within this distance (plus `on_line_m`), nautical miles.
    pub recall_nm: f64,
    /// Tolerance for "on the line", metres: GPS error and the computation's own error.
    pub on_line_m: f64,
    /// Hysteresis: leave a zone only beyond its threshold plus this, nautical miles.
    pub margin_nm: f64,
    /// A vessel silent for longer than this is judged afresh when it reports again, seconds.
    pub stale_after_s: u64,
    /// Most vessels with state held; beyond it the least recently seen is dropped.
    pub max_vessels: usize,
    /// A vessel alerted into a zone is not alerted into that zone (or a less severe one) again
    /// for this long, seconds, however often it leaves and comes back: hysteresis alone lets a
    /// vessel riding the margin re-alert on every swing. 0 turns the cooldown off.
    pub cooldown_s: u64,
}

impl Default for FenceConfig {
    fn default() -> Self {
        Self {
            warn_nm: 3.0,
            alert_nm: 1.0,
            recall_nm: 0.0,
            on_line_m: 30.0,
            margin_nm: 0.1,
            stale_after_s: 1800,
            max_vessels: 100_000,
            cooldown_s: 600,
        }
    }
}

/// Why a [`FenceConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    #[error("{0} must be a finite number >= 0")]
    NotFiniteNonNegative(&'static str),
    #[error("distances must satisfy recall_nm < alert_nm < warn_nm <= {MAX_WARN_NM}")]
    Order,
    #[error("max_vessels must be at least 1")]
    NoVessels,
}

/// Largest warn distance accepted: fences are coastal, and the prefilter widens by it.
const MAX_WARN_NM: f64 = 100.0;

impl FenceConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, v) in [
            ("warn_nm", self.warn_nm),
            ("alert_nm", self.alert_nm),
            ("recall_nm", self.recall_nm),
            ("on_line_m", self.on_line_m),
            ("margin_nm", self.margin_nm),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(ConfigError::NotFiniteNonNegative(name));
            }
        }
        if !(self.recall_nm < self.alert_nm && self.alert_nm < self.warn_nm && self.warn_nm <= MAX_WARN_NM) {
            return Err(ConfigError::Order);
        }
        if self.max_vessels == 0 {
            return Err(ConfigError::NoVessels);
        }
        Ok(())
    }
}

/// Bounds on a boundary document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BoundaryLimits {
    pub max_file_bytes: u64,
    pub max_vertices: usize,
}

impl Default for BoundaryLimits {
    fn default() -> Self {
        Self { max_file_bytes: 4 << 20, max_vertices: 100_000 }
    }
}
