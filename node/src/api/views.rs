//! How events, vessels and hits look on the API: ids as `origin:seq`, times as RFC 3339.

use super::time::rfc3339;
use crate::events::format_id;
use crate::vessels::VesselState;
use crate::workflow::{EventRecord, EventSource};
use serde::Serialize;

#[derive(Serialize)]
pub struct HistoryView {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub from: &'static str,
    pub to: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

#[derive(Serialize)]
pub struct EscalationView {
    pub n: u32,
    pub department: String,
    pub tier: &'static str,
    pub reason: String,
    pub by: String,
    pub at: String,
    pub status: &'static str,
    pub outcome: Option<String>,
}

#[derive(Serialize)]
pub struct EventView {
    pub id: String,
    pub category: String,
    /// `grid`, `alert` or `open311`.
    pub source: &'static str,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub address: Option<String>,
    pub description: String,
    pub reporter: String,
    pub step: &'static str,
    pub assignee: Option<String>,
    pub deadline: Option<String>,
    pub overdue: bool,
    pub score: Option<u8>,
    pub created: String,
    pub updated: String,
    pub attributes: std::collections::BTreeMap<String, String>,
    pub history: Vec<HistoryView>,
    pub escalations: Vec<EscalationView>,
}

impl From<&EventRecord> for EventView {
    fn from(e: &EventRecord) -> EventView {
        EventView {
            id: format_id(&e.id),
            category: e.category.clone(),
            source: match e.source {
                EventSource::Grid => "grid",
                EventSource::Alert { .. } => "alert",
                EventSource::Open311 { .. } => "open311",
            },
            lat: e.location.lat,
            lon: e.location.lon,
            address: e.location.address.clone(),
            description: e.description.clone(),
            reporter: e.reporter.clone(),
            step: e.step.as_str(),
            assignee: e.assignee.clone(),
            deadline: e.deadline_ms.map(rfc3339),
            overdue: e.overdue,
            score: e.score,
            created: rfc3339(e.created.wall_ms),
            updated: rfc3339(e.updated.wall_ms),
            attributes: e.attributes.iter().cloned().collect(),
            history: e
                .history
                .iter()
                .map(|h| HistoryView {
                    at: rfc3339(h.at.wall_ms),
                    actor: h.actor.clone(),
                    action: h.action.clone(),
                    from: h.from.as_str(),
                    to: h.to.as_str(),
                    note: h.note.clone(),
                })
                .collect(),
            escalations: e
                .escalations
                .iter()
                .map(|x| EscalationView {
                    n: x.n,
                    department: x.department.clone(),
                    tier: x.tier.as_str(),
                    reason: x.reason.clone(),
                    by: x.by.clone(),
                    at: rfc3339(x.at.wall_ms),
                    status: x.status.as_str(),
                    outcome: x.outcome.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
pub struct VesselView {
    pub mmsi: u32,
    pub shipname: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub speed: Option<f32>,
    pub course: Option<f32>,
    pub heading: Option<u16>,
    pub last_heard: String,
    /// Fence zone: `clear`, `warning`, `alert` or `recall`.
    pub zone: String,
}

impl From<&VesselState> for VesselView {
    fn from(v: &VesselState) -> VesselView {
        VesselView {
            mmsi: v.mmsi,
            shipname: v.shipname.clone(),
            lat: v.lat,
            lon: v.lon,
            speed: v.speed,
            course: v.course,
            heading: v.heading,
            last_heard: rfc3339(v.last_heard_ms),
            zone: v.zone.clone(),
        }
    }
}
