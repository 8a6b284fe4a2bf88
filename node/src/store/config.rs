//! Store settings, as they appear under `[store]` in the node's TOML config.

use super::BudgetState;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// sled's page cache. sled's own default is 1 GiB, too much for a small site box.
    pub cache_mb: u64,
    /// Disk the store may use. Past `warn_percent` of it a metric warns; past it, raw
    /// detections are refused; past it plus `reserve_percent`, everything is.
    pub disk_budget_mb: u64,
    pub warn_percent: u8,
    /// Headroom above the budget kept for alerts and events once detections are refused.
    pub reserve_percent: u8,
    /// How long raw detections are kept on site (plate reads that hit a list among them).
    pub retention_days: f64,
    /// How long plate reads that matched no list are kept, in hours: default 24, at most
    /// `retention_days`. At 0 they are not stored at all. Either way each checkpoint's reads
    /// are counted per hour (`state/plate-read-counts`), so traffic figures survive them.
    pub plate_read_retention_hours: f64,
    /// Most writes made durable by one flush; bounds commit latency under load.
    pub max_ops_per_flush: usize,
    /// Commits that may wait for the flusher before writers are held back.
    pub queue_jobs: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            cache_mb: 64,
            disk_budget_mb: 16 * 1024,
            warn_percent: 80,
            reserve_percent: 10,
            retention_days: 7.0,
            plate_read_retention_hours: 24.0,
            max_ops_per_flush: 16_384,
            queue_jobs: 1_024,
        }
    }
}

impl StoreConfig {
    pub fn cache_capacity_bytes(&self) -> u64 {
        self.cache_mb.saturating_mul(1 << 20)
    }

    pub fn disk_budget_bytes(&self) -> u64 {
        self.disk_budget_mb.saturating_mul(1 << 20)
    }

    pub fn retention_ms(&self) -> u64 {
        (self.retention_days.max(0.0) * crate::clock::DAY_MS as f64) as u64
    }

    pub fn plate_read_retention_ms(&self) -> u64 {
        (self.plate_read_retention_hours.max(0.0) * crate::clock::HOUR_MS as f64) as u64
    }

    /// Whether plate reads that matched no list are stored at all.
    pub fn keeps_plate_reads(&self) -> bool {
        self.plate_read_retention_ms() > 0
    }

    pub fn budget_state(&self, size: u64) -> BudgetState {
        let budget = self.disk_budget_bytes() as u128;
        let size = size as u128;
        if size * 100 >= budget * (100 + self.reserve_percent as u128) {
            BudgetState::RefusingAll
        } else if size >= budget {
            BudgetState::RefusingDetections
        } else if size * 100 >= budget * self.warn_percent as u128 {
            BudgetState::Warning
        } else {
            BudgetState::Ok
        }
    }

    /// Refuse settings that cannot work, with a message naming the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.disk_budget_mb == 0 {
            return Err("store.disk_budget_mb must be above 0".into());
        }
        if self.warn_percent == 0 || self.warn_percent > 100 {
            return Err("store.warn_percent must be within 1..=100".into());
        }
        if !(self.retention_days.is_finite() && self.retention_days > 0.0) {
            return Err("store.retention_days must be a positive number of days".into());
        }
        let hours = self.plate_read_retention_hours;
        if !(hours.is_finite() && hours >= 0.0 && hours <= self.retention_days * 24.0) {
            return Err(format!(
                "store.plate_read_retention_hours must be 0 (not stored) to {} (store.retention_days), not {hours}",
                self.retention_days * 24.0
            ));
        }
        if self.max_ops_per_flush == 0 || self.queue_jobs == 0 {
            return Err("store.max_ops_per_flush and store.queue_jobs must be above 0".into());
        }
        Ok(())
    }
}
