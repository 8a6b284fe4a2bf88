//! `/api/v1`: events, transitions, escalations, the overdue view, vessels, hits, summaries.

use super::views::{EventView, VesselView};
use super::{ApiError, ApiState, Caller};
use crate::events::{format_id, hidden_from, parse_id, Filter, Identity, NewEvent, MAX_PAGE};
use crate::records::Alert;
use crate::workflow::{Action, Answer, Location, Role, Step, Tier};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use proto::{EntryId, Kind};
use serde::Deserialize;
use serde_json::{json, Value};

type Result<T> = std::result::Result<T, ApiError>;
type JsonBody<T> = std::result::Result<Json<T>, axum::extract::rejection::JsonRejection>;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/events", post(create).get(list))
        .route("/api/v1/events/{id}", get(show))
        .route("/api/v1/events/{id}/transitions", post(transition))
        .route("/api/v1/events/{id}/escalations", post(escalate))
        .route("/api/v1/events/{id}/escalations/{n}/answers", post(answer))
        .route("/api/v1/overdue", get(overdue))
        .route("/api/v1/vessels", get(vessels))
        .route("/api/v1/vessels/{mmsi}", get(vessel))
        .route("/api/v1/hits", get(hits))
        .route("/api/v1/summaries", get(summaries))
        .route("/api/v1/links", get(links))
        .route("/api/v1/escalations", get(incoming))
        .route("/api/v1/escalations/{event}/{n}/answers", post(answer_from_above))
}

fn event_id(s: &str) -> Result<EntryId> {
    parse_id(s).ok_or_else(|| ApiError::bad_request(format!("{s:?} is not an event id (origin:seq, e.g. town-a:12)")))
}

fn body<T>(b: JsonBody<T>) -> Result<T> {
    Ok(b?.0)
}

async fn whoami(Caller(who): Caller) -> Json<Value> {
    Json(json!({ "name": who.name, "role": who.role.as_str() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEvent {
    category: String,
    lat: Option<f64>,
    lon: Option<f64>,
    address: Option<String>,
    description: String,
}

async fn create(
    State(s): State<ApiState>,
    Caller(who): Caller,
    b: JsonBody<CreateEvent>,
) -> Result<(StatusCode, Json<EventView>)> {
    let c = body(b)?;
    let new = NewEvent {
        category: c.category,
        location: Location { lat: c.lat, lon: c.lon, address: c.address },
        description: c.description,
        ..NewEvent::default()
    };
    let e = s.events.report(new, &who).await?;
    Ok((StatusCode::CREATED, Json((&e).into())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    category: Option<String>,
    step: Option<String>,
    overdue: Option<bool>,
    reporter: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list(
    State(s): State<ApiState>,
    Caller(who): Caller,
    q: std::result::Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>> {
    let Query(q) = q?;
    let step = match q.step.as_deref() {
        Some(name) => Some(Step::parse(name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown step {name:?}; one of: {}",
                Step::ALL.map(|s| s.as_str()).join(", ")
            ))
        })?),
        None => None,
    };
    let cursor = q.cursor.as_deref().map(event_id).transpose()?;
    let hidden_categories = hidden_from(who.role);
    if let Some(c) = q.category.as_deref() {
        may_read_category(&who, c)?;
    }
    let filter = Filter {
        category: q.category,
        step,
        overdue: q.overdue,
        reporter: q.reporter,
        hidden_categories,
        ..Filter::default()
    };
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!("limit must be 1 to {MAX_PAGE}")));
    }
    let (page, next) = s.events.list(&filter, cursor.as_ref(), limit)?;
    let events: Vec<EventView> = page.iter().map(Into::into).collect();
    Ok(Json(json!({ "events": events, "next_cursor": next.as_ref().map(format_id) })))
}

async fn show(State(s): State<ApiState>, Caller(who): Caller, Path(id): Path<String>) -> Result<Json<EventView>> {
    let id = event_id(&id)?;
    let e = s.events.get(&id)?.ok_or_else(|| ApiError::not_found(format!("no event {}", format_id(&id))))?;
    may_read_category(&who, &e.category)?;
    Ok(Json((&e).into()))
}

/// Refuse a category the caller's role may not read (hits are for operators and auditors).
fn may_read_category(who: &Identity, category: &str) -> Result<()> {
    if hidden_from(who.role).contains(&category) {
        return Err(ApiError::forbidden(format!("{category} events are for operators and auditors")));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransitionBody {
    /// dispatch, start, handle, verify, send_back, archive, evaluate, note.
    action: String,
    /// For dispatch: the department or worker.
    to: Option<String>,
    /// For evaluate: 1 to 5.
    score: Option<u8>,
    #[serde(default)]
    note: String,
}

fn parse_action(b: &TransitionBody) -> Result<Action> {
    let missing = |field: &str| ApiError::bad_request(format!("{} needs {field}", b.action));
    // A field the action does not take is a mistake worth saying, not something to drop.
    if b.to.is_some() && b.action != "dispatch" {
        return Err(ApiError::bad_request(format!("{} does not take `to`", b.action)));
    }
    if b.score.is_some() && b.action != "evaluate" {
        return Err(ApiError::bad_request(format!("{} does not take `score`", b.action)));
    }
    Ok(match b.action.as_str() {
        "dispatch" => Action::Dispatch { to: b.to.clone().ok_or_else(|| missing("to"))? },
        "start" => Action::Start,
        "handle" => Action::Handle,
        "verify" => Action::Verify,
        "send_back" => Action::SendBack,
        "archive" => Action::Archive,
        "evaluate" => Action::Evaluate { score: b.score.ok_or_else(|| missing("score"))? },
        "note" => Action::Note,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown action {other:?}; one of: dispatch, start, handle, verify, send_back, archive, evaluate, note"
            )))
        }
    })
}

async fn transition(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    b: JsonBody<TransitionBody>,
) -> Result<Json<EventView>> {
    let id = event_id(&id)?;
    let b = body(b)?;
    let action = parse_action(&b)?;
    let e = s.events.act(&id, action, b.note, &who).await?;
    Ok(Json((&e).into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EscalateBody {
    department: String,
    /// county or city.
    tier: String,
    reason: String,
}

async fn escalate(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    b: JsonBody<EscalateBody>,
) -> Result<(StatusCode, Json<EventView>)> {
    let id = event_id(&id)?;
    let b = body(b)?;
    let tier = Tier::parse(&b.tier).ok_or_else(|| ApiError::bad_request("tier must be county or city"))?;
    let e = s.events.escalate(&id, b.department, tier, b.reason, &who).await?;
    Ok((StatusCode::CREATED, Json((&e).into())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerBody {
    /// acknowledge or result.
    answer: String,
    /// The department answering.
    by: String,
    outcome: Option<String>,
    #[serde(default)]
    note: String,
}

async fn answer(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path((id, n)): Path<(String, String)>,
    b: JsonBody<AnswerBody>,
) -> Result<Json<EventView>> {
    let id = event_id(&id)?;
    let n: u32 = n.parse().map_err(|_| ApiError::bad_request(format!("{n:?} is not an escalation number")))?;
    let b = body(b)?;
    let answer = parse_answer(&b)?;
    let e = s.events.answer(&id, n, answer, b.by, b.note, &who).await?;
    Ok(Json((&e).into()))
}

fn parse_answer(b: &AnswerBody) -> Result<Answer> {
    match b.answer.as_str() {
        "acknowledge" => Ok(Answer::Acknowledge),
        "result" => Ok(Answer::Result {
            outcome: b.outcome.clone().ok_or_else(|| ApiError::bad_request("a result needs an outcome"))?,
        }),
        other => Err(ApiError::bad_request(format!("answer {other:?} is not acknowledge or result"))),
    }
}

async fn overdue(State(s): State<ApiState>, Caller(who): Caller) -> Result<Json<Value>> {
    let events: Vec<EventView> = s.events.overdue(MAX_PAGE, hidden_from(who.role))?.iter().map(Into::into).collect();
    Ok(Json(json!({ "events": events })))
}

async fn vessels(State(s): State<ApiState>, Caller(_): Caller) -> Json<Value> {
    let vessels: Vec<VesselView> = s.ingest.vessels(|desk| desk.all().map(Into::into).collect());
    Json(json!({ "vessels": vessels }))
}

async fn vessel(State(s): State<ApiState>, Caller(_): Caller, Path(mmsi): Path<String>) -> Result<Json<VesselView>> {
    let mmsi: u32 = mmsi.parse().map_err(|_| ApiError::bad_request(format!("{mmsi:?} is not an MMSI")))?;
    s.ingest
        .vessels(|desk| desk.get(mmsi).map(VesselView::from))
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no reports from MMSI {mmsi}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<u64>,
}

/// Watchlist and sanctions hits, newest first: the alert entries that are hits.
async fn hits(
    State(s): State<ApiState>,
    Caller(who): Caller,
    q: std::result::Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>> {
    let Query(q) = q?;
    if who.role == Role::GridWorker {
        return Err(ApiError::forbidden("hits are for operators and auditors"));
    }
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!("limit must be 1 to {MAX_PAGE}")));
    }
    let store = s.ingest.store();
    let mut out = Vec::new();
    let mut next = None;
    let upper = q.cursor.unwrap_or(u64::MAX);
    for entry in store.entries(Kind::Alert, store.node(), 1).rev() {
        let entry = entry?;
        if entry.seq >= upper {
            continue;
        }
        if let Ok(alert @ (Alert::WatchlistHit { .. } | Alert::WatchlistHitV1 { .. } | Alert::SanctionsHit { .. })) =
            crate::records::decode::<Alert>(&entry.payload)
        {
            if out.len() == limit {
                next = Some(out.last().map_or(entry.seq, |(seq, _): &(u64, Value)| *seq));
                break;
            }
            out.push((
                entry.seq,
                json!({ "alert_seq": entry.seq, "at": super::time::rfc3339(entry.hlc.wall_ms), "hit": alert }),
            ));
        }
    }
    Ok(Json(json!({ "hits": out.into_iter().map(|(_, v)| v).collect::<Vec<_>>(), "next_cursor": next })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SummaryQuery {
    /// RFC 3339; default 24 hours ago.
    from: Option<String>,
    /// RFC 3339; default now.
    to: Option<String>,
    /// `node` (this node's own windows, the default) or `mesh` (the latest version of every
    /// window the nodes below sent up).
    scope: Option<String>,
}

async fn summaries(
    State(s): State<ApiState>,
    Caller(_): Caller,
    q: std::result::Result<Query<SummaryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>> {
    let Query(q) = q?;
    let now = s.ingest.clock().now_ms();
    let parse = |v: Option<String>, default: u64| -> Result<u64> {
        match v {
            Some(t) => super::time::parse_rfc3339(&t)
                .ok_or_else(|| ApiError::bad_request(format!("{t:?} is not an RFC 3339 time"))),
            None => Ok(default),
        }
    };
    let from = parse(q.from, now.saturating_sub(86_400_000))?;
    let to = parse(q.to, now)?;
    if from > to {
        return Err(ApiError::bad_request("from is after to"));
    }
    let summaries = match q.scope.as_deref() {
        None | Some("node") => s.events.summaries(from, to)?,
        Some("mesh") => crate::mesh::summaries::latest(s.ingest.store(), from, to)?,
        Some(other) => return Err(ApiError::bad_request(format!("scope {other:?} is not node or mesh"))),
    };
    Ok(Json(json!({ "summaries": summaries })))
}

/// The mesh links and their states.
async fn links(State(s): State<ApiState>, Caller(_): Caller) -> Json<Value> {
    let links = s.mesh.as_ref().map(|m| m.links()).unwrap_or_default();
    Json(json!({ "mesh": s.mesh.is_some(), "links": links }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncomingQuery {
    /// Only those sent by this node.
    origin: Option<String>,
    limit: Option<usize>,
}

/// Escalations sent up to this node by the nodes below it, newest first.
async fn incoming(
    State(s): State<ApiState>,
    Caller(who): Caller,
    q: std::result::Result<Query<IncomingQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>> {
    let Query(q) = q?;
    if who.role == Role::GridWorker {
        return Err(ApiError::forbidden("escalations from other nodes are for operators and auditors"));
    }
    let origin = match q.origin.as_deref() {
        Some(o) => Some(proto::NodeId::new(o).map_err(|e| ApiError::bad_request(format!("origin: {e}")))?),
        None => None,
    };
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!("limit must be 1 to {MAX_PAGE}")));
    }
    let list: Vec<Value> = s
        .events
        .incoming_escalations(origin.as_ref(), limit)?
        .into_iter()
        .map(|i| {
            let e = &i.escalation;
            json!({
                "event": format_id(&e.event),
                "n": e.n,
                "department": e.department,
                "tier": e.tier.as_str(),
                "reason": e.reason,
                "by": e.actor,
                "at": super::time::rfc3339(i.at.wall_ms),
                "category": e.category,
                "description": e.description,
                "lat": e.location.lat,
                "lon": e.location.lon,
                "address": e.location.address,
                "answers_sent": i.answers_sent,
            })
        })
        .collect();
    Ok(Json(json!({ "escalations": list })))
}

/// Answer, at this tier, an escalation a node below sent up; the answer travels down to it.
async fn answer_from_above(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path((event, n)): Path<(String, String)>,
    b: JsonBody<AnswerBody>,
) -> Result<(StatusCode, Json<Value>)> {
    let event = event_id(&event)?;
    let n: u32 = n.parse().map_err(|_| ApiError::bad_request(format!("{n:?} is not an escalation number")))?;
    let b = body(b)?;
    let answer = parse_answer(&b)?;
    let command = s.events.answer_from_above(&event, n, answer, b.by, b.note, &who).await?;
    Ok((StatusCode::CREATED, Json(json!({ "command": format_id(&command), "event": format_id(&event), "n": n }))))
}
