//! The materialised state of one event, and how each change applies to it.

use super::{Action, Step};
use proto::{EntryId, Hlc};
use serde::{Deserialize, Serialize};

/// Where an event came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EventSource {
    /// Reported by a grid worker or the centre through the API.
    Grid,
    /// Raised by an ingest rule; the alert entry's sequence number and label.
    Alert { alert_seq: u64, label: String },
    /// Posted through Open311 GeoReport v2 with this API key's name.
    Open311 { key_name: String },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub address: Option<String>,
}

/// The tier an escalation goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tier {
    County,
    City,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::County => "county",
            Tier::City => "city",
        }
    }
    pub fn parse(s: &str) -> Option<Tier> {
        match s {
            "county" => Some(Tier::County),
            "city" => Some(Tier::City),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EscalationStatus {
    /// Sent; the department has not answered.
    Pending,
    /// The department acknowledged and is working on it.
    Acknowledged,
    /// The department reported its result back.
    Answered,
}

impl EscalationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationStatus::Pending => "pending",
            EscalationStatus::Acknowledged => "acknowledged",
            EscalationStatus::Answered => "answered",
        }
    }
}

/// A department's answer to an escalation ("report back").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Answer {
    Acknowledge,
    Result { outcome: String },
}

impl Answer {
    pub fn name(&self) -> &'static str {
        match self {
            Answer::Acknowledge => "acknowledge",
            Answer::Result { .. } => "result",
        }
    }
}

/// One escalation ("whistle") of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationState {
    /// 1 for the event's first escalation, 2 for the next, ...
    pub n: u32,
    pub department: String,
    pub tier: Tier,
    pub reason: String,
    pub by: String,
    pub at: Hlc,
    /// The escalation entry that carries it up the tiers.
    pub entry_seq: u64,
    pub status: EscalationStatus,
    pub outcome: Option<String>,
}

/// One line of an event's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryItem {
    pub at: Hlc,
    pub actor: String,
    /// `report`, a step action (`dispatch`, `start`, ...), `note`, `escalate`, or an answer
    /// (`acknowledge`, `result`).
    pub action: String,
    pub from: Step,
    pub to: Step,
    pub note: String,
}

/// An event as it stands now, with its whole history. Stored in the `state/events` tree and
/// rebuilt from the entries if a crash left it behind them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: EntryId,
    pub category: String,
    pub source: EventSource,
    pub location: Location,
    pub description: String,
    /// Who reported it: a token's name, `rule:<alert>` or `open311:<key name>`.
    pub reporter: String,
    /// Contact details a citizen gave through Open311, if any.
    pub contact: Vec<(String, String)>,
    /// Open311 `attribute[code]=value` pairs.
    pub attributes: Vec<(String, String)>,
    pub created: Hlc,
    pub updated: Hlc,
    pub step: Step,
    pub assignee: Option<String>,
    /// When the current step is due, ms since the epoch (`None` once evaluated).
    pub deadline_ms: Option<u64>,
    /// The current step's deadline passed (cleared by the next step).
    pub overdue: bool,
    pub score: Option<u8>,
    pub history: Vec<HistoryItem>,
    pub escalations: Vec<EscalationState>,
    /// Highest transition, escalation and command entry applied, so replay after a crash
    /// applies each exactly once.
    pub applied_transition: u64,
    pub applied_escalation: u64,
    pub applied_command: u64,
}

impl EventRecord {
    /// Apply a step action or note (already validated) recorded at `at` by `actor`.
    pub fn apply_action(&mut self, action: &Action, actor: &str, note: &str, at: Hlc, to: Step) {
        let from = self.step;
        match action {
            Action::Dispatch { to } => self.assignee = Some(to.clone()),
            Action::Evaluate { score } => self.score = Some(*score),
            _ => {}
        }
        if to != from {
            self.overdue = false;
        }
        self.step = to;
        self.updated = at;
        self.history.push(HistoryItem {
            at,
            actor: actor.to_string(),
            action: action.name().to_string(),
            from,
            to,
            note: note.to_string(),
        });
    }

    pub fn escalation_mut(&mut self, n: u32) -> Option<&mut EscalationState> {
        self.escalations.iter_mut().find(|e| e.n == n)
    }
}
