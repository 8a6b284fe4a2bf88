//! Per-window counters of the event workflow: what was reported (by category), which steps were
//! entered, what went overdue, escalations and answers. One record per (node, window), rewritten
//! in place as the window fills (and later, if late data lands in it), with a version that
//! grows on every rewrite: the idempotent upsert the mesh will carry up the tiers.

use super::changes::Effect;
use proto::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SUMMARIES_TREE: &str = "state/summaries";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub node: NodeId,
    pub window_start_ms: u64,
    pub window_ms: u64,
    /// Grows by one on every rewrite of this window.
    pub version: u64,
    /// New events by category.
    pub reported: BTreeMap<String, u64>,
    /// Steps entered, by step.
    pub entered: BTreeMap<String, u64>,
    /// Deadlines missed, by the step that was late.
    pub overdue: BTreeMap<String, u64>,
    pub escalations: u64,
    pub answers: u64,
}

impl Summary {
    pub fn empty(node: NodeId, window_start_ms: u64, window_ms: u64) -> Summary {
        Summary {
            node,
            window_start_ms,
            window_ms,
            version: 0,
            reported: BTreeMap::new(),
            entered: BTreeMap::new(),
            overdue: BTreeMap::new(),
            escalations: 0,
            answers: 0,
        }
    }

    pub fn window_of(at_ms: u64, window_ms: u64) -> u64 {
        at_ms - at_ms % window_ms.max(1)
    }

    pub fn key(window_start_ms: u64) -> [u8; 8] {
        window_start_ms.to_be_bytes()
    }

    pub fn count(&mut self, effect: Effect, category: &str) {
        match effect {
            Effect::Reported => *self.reported.entry(category.to_string()).or_default() += 1,
            Effect::Entered(step) => *self.entered.entry(step.as_str().to_string()).or_default() += 1,
            Effect::Noted => return,
            Effect::Escalated => self.escalations += 1,
            Effect::Answered => self.answers += 1,
        }
        self.version += 1;
    }

    pub fn count_overdue(&mut self, step: &str) {
        *self.overdue.entry(step.to_string()).or_default() += 1;
        self.version += 1;
    }
}
