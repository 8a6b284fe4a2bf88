//! `/api/v1/audit`: the audit log, newest first: this node's own records, or those of a site
//! below it that came up the mesh. Operators and auditors only.

use super::error::ApiError;
use super::{ApiState, Caller};
use crate::events::MAX_PAGE;
use crate::workflow::Role;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use proto::{Kind, NodeId};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn routes() -> Router<ApiState> {
    Router::new().route("/api/v1/audit", get(list))
}

/// Most records one call looks at, matching or not: a filter that matches little answers with
/// a cursor to go on from rather than scanning the whole log.
const MAX_SCAN: usize = 100_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Whose records (default: this node's).
    origin: Option<String>,
    /// Only records of this action (e.g. `watchlist_add`, `sanctions_hit`, `refused`).
    action: Option<String>,
    /// Only records whose subject contains this.
    subject: Option<String>,
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<u64>,
}

async fn list(
    State(s): State<ApiState>,
    Caller(who): Caller,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    if who.role == Role::GridWorker {
        return Err(ApiError::forbidden("the audit log is for operators and auditors"));
    }
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!("limit must be 1 to {MAX_PAGE}")));
    }
    let store = s.ingest.store();
    let origin = match q.origin.as_deref() {
        Some(o) => NodeId::new(o).map_err(|e| ApiError::bad_request(format!("origin: {e}")))?,
        None => store.node().clone(),
    };
    let upper = q.cursor.unwrap_or(u64::MAX);
    let mut records = Vec::new();
    let mut next = None;
    for (scanned, entry) in
        store.entries(Kind::Audit, &origin, 1).rev().filter(|e| !matches!(e, Ok(e) if e.seq >= upper)).enumerate()
    {
        let entry = entry?;
        if records.len() == limit || scanned == MAX_SCAN {
            next = Some(entry.seq + 1);
            break;
        }
        let Ok(r) = crate::audit_chain::record(&entry.payload) else { continue };
        if q.action.as_ref().is_some_and(|a| &r.action != a)
            || q.subject.as_ref().is_some_and(|t| !r.subject.contains(t.as_str()))
        {
            continue;
        }
        records.push(json!({
            "seq": entry.seq,
            "at": super::time::rfc3339(r.at_ms),
            "actor": r.actor,
            "action": r.action,
            "subject": r.subject,
            "why": r.why,
        }));
    }
    Ok(Json(json!({ "origin": origin.as_str(), "records": records, "next_cursor": next })))
}
