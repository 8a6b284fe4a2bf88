//! How long each step may take, per category, and when the current step of an event is due.
//!
//! ```toml
//! [deadlines.default]        # for every category
//! reported = "2h"            # to be dispatched within 2 hours of being reported
//! dispatched = "4h"          # to be taken up within 4 hours of dispatch
//! in_hand = "3d"
//! handled = "1d"
//! verified = "1d"
//! archived = "7d"
//!
//! [deadlines.category.hazard] # a category's own, where it differs
//! reported = "30m"
//! dispatched = "1h"
//! ```

use super::Step;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StepDeadlines {
    #[serde(with = "humantime_serde")]
    pub reported: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub dispatched: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub in_hand: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub handled: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub verified: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub archived: Option<Duration>,
}

impl StepDeadlines {
    fn get(&self, step: Step) -> Option<Duration> {
        match step {
            Step::Reported => self.reported,
            Step::Dispatched => self.dispatched,
            Step::InHand => self.in_hand,
            Step::Handled => self.handled,
            Step::Verified => self.verified,
            Step::Archived => self.archived,
            Step::Evaluated => None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeadlineConfig {
    pub default: StepDeadlines,
    pub category: BTreeMap<String, StepDeadlines>,
}

/// Built-in limits where the config says nothing: a working day to dispatch, a week to handle.
fn built_in(step: Step) -> Option<Duration> {
    const H: u64 = 3600;
    Some(Duration::from_secs(match step {
        Step::Reported => 2 * H,
        Step::Dispatched => 4 * H,
        Step::InHand => 3 * 24 * H,
        Step::Handled => 24 * H,
        Step::Verified => 24 * H,
        Step::Archived => 7 * 24 * H,
        Step::Evaluated => return None,
    }))
}

impl DeadlineConfig {
    /// How long `step` may take for `category`: the category's own, else the default, else
    /// the built-in one.
    pub fn limit(&self, category: &str, step: Step) -> Option<Duration> {
        self.category
            .get(category)
            .and_then(|c| c.get(step))
            .or_else(|| self.default.get(step))
            .or_else(|| built_in(step))
    }

    /// When an event of `category` entering `step` at `since_ms` is due.
    pub fn due(&self, category: &str, step: Step, since_ms: u64) -> Option<u64> {
        self.limit(category, step).map(|d| since_ms.saturating_add(d.as_millis() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_then_default_then_built_in() {
        let c: DeadlineConfig =
            toml::from_str("[default]\nreported = \"1h\"\n[category.hazard]\nreported = \"30m\"\n").unwrap();
        assert_eq!(c.limit("hazard", Step::Reported), Some(Duration::from_secs(1800)));
        assert_eq!(c.limit("sanitation", Step::Reported), Some(Duration::from_secs(3600)));
        assert_eq!(c.limit("hazard", Step::Dispatched), Some(Duration::from_secs(4 * 3600)));
        assert_eq!(c.limit("hazard", Step::Evaluated), None);
        assert_eq!(c.due("hazard", Step::Reported, 1_000), Some(1_000 + 1_800_000));
    }

    #[test]
    fn bad_durations_are_refused() {
        assert!(toml::from_str::<DeadlineConfig>("[default]\nreported = \"soon\"\n").is_err());
        assert!(toml::from_str::<DeadlineConfig>("[default]\nreportd = \"1h\"\n").is_err());
    }
}
