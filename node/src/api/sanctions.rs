//! `/api/v1/sanctions`: the sanctions lists this node enforces, and which version that is.
//! Read-only: the lists are changed only through the control plane's operator API.

use super::error::ApiError;
use super::{ApiState, Caller};
use crate::sanctions::SubjectId;
use crate::workflow::Role;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn routes() -> Router<ApiState> {
    Router::new().route("/api/v1/sanctions", get(status))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusQuery {
    /// `kind:value`, e.g. `registration:鲁K12345` or `mmsi:412000001`: the entries for it.
    subject: Option<String>,
}

async fn status(
    State(s): State<ApiState>,
    Caller(who): Caller,
    q: Result<Query<StatusQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    if who.role == Role::GridWorker {
        return Err(ApiError::forbidden("the sanctions lists are for operators and auditors"));
    }
    let lists = s.sanctions.current();
    let now_ms = s.ingest.clock().now_ms();
    let digest: String = lists.digest().iter().map(|b| format!("{b:02x}")).collect();
    let in_force = lists.entries().filter(|e| e.in_force(now_ms)).count();
    let mut body = json!({
        "version": lists.version(),
        "digest": digest,
        "entries": lists.len(),
        "in_force": in_force,
        "revoked": lists.revoked().map(|(fp, node)| json!({ "node": node, "fingerprint": fp })).collect::<Vec<_>>(),
    });
    if let Some(subject) = q.subject {
        let subject: SubjectId = subject.parse().map_err(|e| ApiError::bad_request(format!("subject: {e}")))?;
        let entries: Vec<Value> = crate::sanctions::ListKind::ALL
            .into_iter()
            .filter_map(|list| lists.get(list, &subject))
            .map(|e| {
                json!({
                    "list": e.list.as_str(),
                    "subject": e.subject.to_string(),
                    "name": e.name,
                    "authority": e.authority,
                    "legal_basis": e.legal_basis,
                    "effective_ms": e.effective_ms,
                    "expires_ms": e.expires_ms,
                    "in_force": e.in_force(now_ms),
                })
            })
            .collect();
        body["subject"] = json!({ "subject": subject.to_string(), "listed": entries });
    }
    Ok(Json(body))
}
