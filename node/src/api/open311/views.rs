//! How services and service requests look in GeoReport v2 JSON: ids as strings (the published
//! `request.json` requires a string), times as RFC 3339, `null` where nothing is known.

use crate::api::time::rfc3339;
use crate::auth::Credentials;
use crate::events::{format_id, Category, Events};
use crate::workflow::{EventRecord, EventSource, Step};
use serde::Serialize;
use std::collections::BTreeSet;

/// Attribute codes the node keeps for Open311 fields the event record has no place for.
pub const MEDIA_URL_ATTRIBUTE: &str = "media_url";
pub const ADDRESS_ID_ATTRIBUTE: &str = "address_id";

#[derive(Serialize)]
pub struct ServiceView {
    pub service_code: String,
    pub service_name: String,
    pub description: Option<String>,
    /// No service has attributes (yet), so clients need not ask for a definition.
    pub metadata: bool,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub keywords: Option<String>,
    pub group: Option<String>,
}

fn non_empty(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_string())
}

impl From<&Category> for ServiceView {
    fn from(c: &Category) -> ServiceView {
        ServiceView {
            service_code: c.code.clone(),
            service_name: c.name.clone(),
            description: non_empty(&c.description),
            metadata: false,
            kind: "realtime",
            keywords: non_empty(&c.keywords),
            group: non_empty(&c.group),
        }
    }
}

/// A service definition: the service's attributes (none so far).
#[derive(Serialize)]
pub struct ServiceDefinition {
    pub service_code: String,
    pub attributes: Vec<serde_json::Value>,
}

/// The answer to a POST, its fields in the spec's order (which XML keeps).
#[derive(Serialize)]
pub struct Created {
    pub service_request_id: String,
    pub service_notice: String,
    /// Accounts are not kept: always `null`.
    pub account_id: Option<String>,
}

#[derive(Serialize)]
pub struct RequestView {
    pub service_request_id: String,
    /// `open`, or `closed` once archived or evaluated.
    pub status: &'static str,
    pub status_notes: Option<String>,
    pub service_name: Option<String>,
    pub service_code: String,
    pub description: Option<String>,
    /// The department or worker it is dispatched to.
    pub agency_responsible: Option<String>,
    pub service_notice: Option<String>,
    pub requested_datetime: String,
    /// When it was last changed; for a closed request, when it was closed (archived).
    pub updated_datetime: Option<String>,
    /// When the current step is due; `null` once closed.
    pub expected_datetime: Option<String>,
    pub address: Option<String>,
    pub address_id: Option<String>,
    pub zipcode: Option<String>,
    pub lat: Option<f64>,
    pub long: Option<f64>,
    pub media_url: Option<String>,
}

/// Whether Open311 shows an event: a request submitted through Open311, or an event people
/// reported in a category the config makes public (`api.open311_public_categories`). Grid
/// workers' own reports stay inside the centre, and events raised by the ingest rules
/// (watchlist hits, fences, cameras) never are service requests.
pub fn is_service_request(events: &Events, public: &BTreeSet<String>, e: &EventRecord) -> bool {
    events.category(&e.category).is_some()
        && match e.source {
            EventSource::Open311 { .. } => true,
            EventSource::Alert { .. } => false,
            _ => public.contains(&e.category),
        }
}

/// The department a request is dispatched to, for the public: never a person (a name the
/// node's API tokens carry, such as a grid worker's).
fn agency(e: &EventRecord, credentials: &Credentials) -> Option<String> {
    e.assignee.clone().filter(|a| !credentials.names_a_person(a))
}

/// What the public learns of where a request stands: its step, the department that has it,
/// and whether the step is overdue. Notes, escalations, scores and people stay inside the
/// centre.
pub fn status_notes(e: &EventRecord, credentials: &Credentials) -> String {
    let mut notes = format!("step: {}", e.step);
    if let Some(a) = agency(e, credentials) {
        notes.push_str(&format!("; dispatched to {a}"));
    }
    if e.overdue && !e.step.is_closed() {
        notes.push_str("; overdue");
    }
    notes
}

fn attribute<'a>(e: &'a EventRecord, code: &str) -> Option<&'a str> {
    match e.source {
        EventSource::Open311 { .. } => e.attributes.iter().find(|(k, _)| k == code).map(|(_, v)| v.as_str()),
        _ => None,
    }
}

impl RequestView {
    pub fn new(e: &EventRecord, events: &Events, credentials: &Credentials) -> RequestView {
        let closed = e.step.is_closed();
        let closed_at = e.history.iter().find(|h| h.to == Step::Archived).map(|h| h.at.wall_ms);
        let updated_ms = if closed { closed_at.unwrap_or(e.updated.wall_ms) } else { e.updated.wall_ms };
        RequestView {
            service_request_id: format_id(&e.id),
            status: if closed { "closed" } else { "open" },
            status_notes: Some(status_notes(e, credentials)),
            service_name: events.category(&e.category).map(|c| c.name.clone()),
            service_code: e.category.clone(),
            description: non_empty(&e.description),
            agency_responsible: agency(e, credentials),
            service_notice: None,
            requested_datetime: rfc3339(e.created.wall_ms),
            updated_datetime: Some(rfc3339(updated_ms)),
            expected_datetime: if closed { None } else { e.deadline_ms.map(rfc3339) },
            address: e.location.address.clone(),
            address_id: attribute(e, ADDRESS_ID_ATTRIBUTE).map(str::to_string),
            zipcode: None,
            lat: e.location.lat,
            long: e.location.lon,
            media_url: attribute(e, MEDIA_URL_ATTRIBUTE).map(str::to_string),
        }
    }
}
