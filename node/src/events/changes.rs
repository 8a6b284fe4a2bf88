//! The entries that record what happens to events, and the one pure function that applies each
//! to an event's state. The live path and crash repair both go through [`apply`], so a replayed
//! entry has exactly the effect it had the first time.

use crate::workflow::deadlines::DeadlineConfig;
use crate::workflow::{
    Action, Answer, EscalationState, EscalationStatus, EventRecord, EventSource, HistoryItem, Location, Step, Tier,
};
use proto::{EntryId, Hlc, Kind};
use serde::{Deserialize, Serialize};

/// Payload of a `Kind::Event` entry: a new event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventCreated {
    pub category: String,
    pub source: EventSource,
    pub location: Location,
    pub description: String,
    pub reporter: String,
    pub contact: Vec<(String, String)>,
    pub attributes: Vec<(String, String)>,
}

/// Payload of a `Kind::Transition` entry: a step action or a note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionEntry {
    pub event: EntryId,
    pub action: Action,
    pub actor: String,
    pub note: String,
}

/// Payload of a `Kind::Escalation` entry: an event escalated to a department at a higher tier.
/// Carries what the department needs to know, since it will not see the event itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationEntry {
    pub event: EntryId,
    pub n: u32,
    pub department: String,
    pub tier: Tier,
    pub reason: String,
    pub actor: String,
    pub category: String,
    pub description: String,
    pub location: Location,
}

/// Payload of a `Kind::Command` entry: something another tier asks the event's owner to apply.
/// Until the mesh carries them, the owner's operators enter them on the department's behalf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandEntry {
    pub event: EntryId,
    pub command: EventCommand,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EventCommand {
    /// A department's answer to escalation `n`. `source` is the command entry of the tier that
    /// answered, when it came over the mesh (`None` when entered here on its behalf): it is how
    /// the owner knows which remote answers it has applied.
    EscalationAnswer { n: u32, answer: Answer, by: String, note: String, entered_by: String, source: Option<EntryId> },
}

/// One change to one event, as stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Created(EventCreated),
    Transition(TransitionEntry),
    Escalation(EscalationEntry),
    Command(CommandEntry),
}

impl Change {
    pub fn kind(&self) -> Kind {
        match self {
            Change::Created(_) => Kind::Event,
            Change::Transition(_) => Kind::Transition,
            Change::Escalation(_) => Kind::Escalation,
            Change::Command(_) => Kind::Command,
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, proto::CodecError> {
        match self {
            Change::Created(c) => crate::records::encode(c),
            Change::Transition(c) => crate::records::encode(c),
            Change::Escalation(c) => crate::records::encode(c),
            Change::Command(c) => crate::records::encode(c),
        }
    }

    pub fn decode(kind: Kind, payload: &[u8]) -> Result<Change, proto::CodecError> {
        use crate::records::decode;
        Ok(match kind {
            Kind::Event => Change::Created(decode(payload)?),
            Kind::Transition => Change::Transition(decode(payload)?),
            Kind::Escalation => Change::Escalation(decode(payload)?),
            Kind::Command => Change::Command(decode(payload)?),
            other => return Err(proto::CodecError::Malformed(format!("{other} entries do not change events"))),
        })
    }

    /// The event this change is about (`None` for a creation: its own entry names it).
    pub fn target(&self) -> Option<&EntryId> {
        match self {
            Change::Created(_) => None,
            Change::Transition(t) => Some(&t.event),
            Change::Escalation(e) => Some(&e.event),
            Change::Command(c) => Some(&c.event),
        }
    }

    /// Whether `record` already reflects the entry `seq` of this change.
    pub fn is_applied(&self, record: &EventRecord, seq: u64) -> bool {
        match self {
            Change::Created(_) => true,
            Change::Transition(_) => record.applied_transition >= seq,
            Change::Escalation(_) => record.applied_escalation >= seq,
            Change::Command(_) => record.applied_command >= seq,
        }
    }
}

/// What applying a change did, for the summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Reported,
    Entered(Step),
    Noted,
    Escalated,
    Answered,
}

/// Apply entry `(kind, seq)` stamped `hlc` to `prev` (the event's state before it; `None` for a
/// creation, whose id is `id`). The change was validated when it was made; here it is only
/// applied, so replay never refuses what was once accepted.
pub fn apply(
    prev: Option<EventRecord>,
    id: &EntryId,
    change: &Change,
    seq: u64,
    hlc: Hlc,
    deadlines: &DeadlineConfig,
) -> Option<(EventRecord, Effect)> {
    match (prev, change) {
        (None, Change::Created(c)) => {
            let record = EventRecord {
                id: id.clone(),
                category: c.category.clone(),
                source: c.source.clone(),
                location: c.location.clone(),
                description: c.description.clone(),
                reporter: c.reporter.clone(),
                contact: c.contact.clone(),
                attributes: c.attributes.clone(),
                created: hlc,
                updated: hlc,
                step: Step::Reported,
                assignee: None,
                deadline_ms: deadlines.due(&c.category, Step::Reported, hlc.wall_ms),
                overdue: false,
                score: None,
                history: vec![HistoryItem {
                    at: hlc,
                    actor: c.reporter.clone(),
                    action: "report".into(),
                    from: Step::Reported,
                    to: Step::Reported,
                    note: String::new(),
                }],
                escalations: vec![],
                applied_transition: 0,
                applied_escalation: 0,
                applied_command: 0,
            };
            Some((record, Effect::Reported))
        }
        (Some(mut r), Change::Transition(t)) => {
            let to = t.action.edge().map_or(r.step, |(_, to)| to);
            let moved = to != r.step || matches!(t.action, Action::SendBack);
            r.apply_action(&t.action, &t.actor, &t.note, hlc, to);
            if moved {
                r.deadline_ms = deadlines.due(&r.category, to, hlc.wall_ms);
            }
            r.applied_transition = seq;
            Some((r, if moved { Effect::Entered(to) } else { Effect::Noted }))
        }
        (Some(mut r), Change::Escalation(e)) => {
            r.escalations.push(EscalationState {
                n: e.n,
                department: e.department.clone(),
                tier: e.tier,
                reason: e.reason.clone(),
                by: e.actor.clone(),
                at: hlc,
                entry_seq: seq,
                status: EscalationStatus::Pending,
                outcome: None,
            });
            r.history.push(HistoryItem {
                at: hlc,
                actor: e.actor.clone(),
                action: "escalate".into(),
                from: r.step,
                to: r.step,
                note: format!("to {} ({}): {}", e.department, e.tier.as_str(), e.reason),
            });
            r.updated = hlc;
            r.applied_escalation = seq;
            Some((r, Effect::Escalated))
        }
        (
            Some(mut r),
            Change::Command(CommandEntry {
                command: EventCommand::EscalationAnswer { n, answer, by, note, entered_by, .. },
                ..
            }),
        ) => {
            if let Some(esc) = r.escalation_mut(*n) {
                match answer {
                    Answer::Acknowledge => esc.status = EscalationStatus::Acknowledged,
                    Answer::Result { outcome } => {
                        esc.status = EscalationStatus::Answered;
                        esc.outcome = Some(outcome.clone());
                    }
                }
            }
            let step = r.step;
            r.history.push(HistoryItem {
                at: hlc,
                actor: format!("{by} (entered by {entered_by})"),
                action: answer.name().into(),
                from: step,
                to: step,
                note: note.clone(),
            });
            r.updated = hlc;
            r.applied_command = seq;
            Some((r, Effect::Answered))
        }
        // A change to an event that does not exist, or a second creation: nothing to apply.
        _ => None,
    }
}
