//! The on-site event workflow as a plain state machine: the seven steps every grid event and
//! every alert event goes through, escalation to a higher tier and that tier's answers. No I/O
//! here: [`crate::events`] stores what this decides.
//!
//! ```text
//! reported → dispatched → in_hand → handled → verified → archived → evaluated
//!                            ↑                     │
//!                            └──── sent back ──────┘
//! ```

pub mod deadlines;
pub mod record;

pub use record::{Answer, EscalationState, EscalationStatus, EventRecord, EventSource, HistoryItem, Location, Tier};

use serde::{Deserialize, Serialize};
use std::fmt;

/// The seven steps (网格巡查、事件上报 → … → 评估考核).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Step {
    Reported,
    Dispatched,
    InHand,
    Handled,
    Verified,
    Archived,
    Evaluated,
}

impl Step {
    pub const ALL: [Step; 7] = [
        Step::Reported,
        Step::Dispatched,
        Step::InHand,
        Step::Handled,
        Step::Verified,
        Step::Archived,
        Step::Evaluated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Reported => "reported",
            Step::Dispatched => "dispatched",
            Step::InHand => "in_hand",
            Step::Handled => "handled",
            Step::Verified => "verified",
            Step::Archived => "archived",
            Step::Evaluated => "evaluated",
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Closed for the public (Open311 `closed`): the work is done and filed.
    pub fn is_closed(self) -> bool {
        matches!(self, Step::Archived | Step::Evaluated)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something done to an event. Each is one durable transition entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Action {
    /// reported → dispatched, to a department or a worker.
    Dispatch { to: String },
    /// dispatched → in hand: the assignee has taken it up.
    Start,
    /// in hand → handled.
    Handle,
    /// handled → verified: the centre checked the result.
    Verify,
    /// handled → in hand: the result did not pass the check.
    SendBack,
    /// verified → archived.
    Archive,
    /// archived → evaluated, with a score from 1 to 5.
    Evaluate { score: u8 },
    /// A note that changes no step.
    Note,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Dispatch { .. } => "dispatch",
            Action::Start => "start",
            Action::Handle => "handle",
            Action::Verify => "verify",
            Action::SendBack => "send_back",
            Action::Archive => "archive",
            Action::Evaluate { .. } => "evaluate",
            Action::Note => "note",
        }
    }

    /// The step this action leads from, and the step it leads to (`None` for a note).
    pub fn edge(&self) -> Option<(Step, Step)> {
        Some(match self {
            Action::Dispatch { .. } => (Step::Reported, Step::Dispatched),
            Action::Start => (Step::Dispatched, Step::InHand),
            Action::Handle => (Step::InHand, Step::Handled),
            Action::Verify => (Step::Handled, Step::Verified),
            Action::SendBack => (Step::Handled, Step::InHand),
            Action::Archive => (Step::Verified, Step::Archived),
            Action::Evaluate { .. } => (Step::Archived, Step::Evaluated),
            Action::Note => return None,
        })
    }
}

/// Who is acting, as the API's token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Reports events and adds notes to the events they reported; takes up and handles what
    /// is dispatched to them.
    GridWorker,
    /// Runs the centre: dispatches, verifies, archives, evaluates, escalates.
    Operator,
    /// Reads everything, changes nothing.
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::GridWorker => "grid_worker",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::GridWorker, Role::Operator, Role::Auditor].into_iter().find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkflowError {
    #[error("cannot {action} an event that is {step}; {action} applies to events that are {expected}")]
    WrongStep { action: &'static str, step: Step, expected: Step },
    #[error("{role} may not {action} this event")]
    Forbidden { role: &'static str, action: &'static str },
    #[error("score must be between 1 and 5, not {0}")]
    BadScore(u8),
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("{field} is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("event has no escalation number {0}")]
    NoEscalation(u32),
    #[error("escalation {n} is {status}; {answer} is not accepted now")]
    WrongEscalationState { n: u32, status: &'static str, answer: &'static str },
    #[error("an archived or evaluated event cannot be escalated")]
    ClosedEvent,
}

impl WorkflowError {
    /// Whether the caller lacks the right (403) rather than sent something invalid (409/400).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, WorkflowError::Forbidden { .. })
    }
}

/// Longest note, description or comment, in characters.
pub const MAX_TEXT: usize = 4000;
/// Longest name (category, department, actor), in characters.
pub const MAX_NAME: usize = 128;

pub fn check_text(field: &'static str, s: &str, max: usize, required: bool) -> Result<(), WorkflowError> {
    if required && s.trim().is_empty() {
        return Err(WorkflowError::Empty(field));
    }
    // Characters, not bytes: a limit in bytes would give Chinese text a third of the room.
    if s.len() > max && s.chars().count() > max {
        return Err(WorkflowError::TooLong { field, max });
    }
    Ok(())
}

/// May `actor` with `role` do `action` to `event`? Grid workers add notes to events they
/// reported and take up and handle work dispatched to them; operators do everything else;
/// auditors change nothing.
pub fn authorize(event: &EventRecord, action: &Action, role: Role, actor: &str) -> Result<(), WorkflowError> {
    let allowed = match role {
        Role::Operator => true,
        Role::Auditor => false,
        Role::GridWorker => match action {
            Action::Note => event.reporter == actor || event.assignee.as_deref() == Some(actor),
            Action::Start | Action::Handle => event.assignee.as_deref() == Some(actor),
            _ => false,
        },
    };
    if allowed {
        Ok(())
    } else {
        Err(WorkflowError::Forbidden { role: role.as_str(), action: action.name() })
    }
}

/// Check `action` against the event's step and the action's own fields; returns the step the
/// event moves to.
pub fn validate(event: &EventRecord, action: &Action) -> Result<Step, WorkflowError> {
    match action {
        Action::Dispatch { to } => check_text("to", to, MAX_NAME, true)?,
        Action::Evaluate { score } if !(1..=5).contains(score) => return Err(WorkflowError::BadScore(*score)),
        _ => {}
    }
    match action.edge() {
        None => Ok(event.step),
        Some((from, to)) if from == event.step => Ok(to),
        Some((from, _)) => Err(WorkflowError::WrongStep { action: action.name(), step: event.step, expected: from }),
    }
}

#[cfg(test)]
mod tests;
