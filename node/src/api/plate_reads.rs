//! `/api/v1/plate-reads/counts`: how many plate reads each checkpoint sent per hour. What a
//! node keeps of plate reads that hit no list once their retention has removed them (or
//! instead of them, with `store.plate_read_retention_hours = 0`); see [`crate::plate_counts`].

use super::error::ApiError;
use super::time::{parse_rfc3339, rfc3339};
use super::{ApiState, Caller};
use crate::clock::{DAY_MS, HOUR_MS};
use crate::plate_counts;
use crate::workflow::Role;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn routes() -> Router<ApiState> {
    Router::new().route("/api/v1/plate-reads/counts", get(counts))
}

/// Largest `limit`: a month of one checkpoint's hours, and then some.
pub const MAX_COUNTS: usize = 1_000;
const DEFAULT_COUNTS: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CountsQuery {
    checkpoint: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
}

fn time(name: &str, value: Option<&str>, default: u64) -> Result<u64, ApiError> {
    match value {
        None => Ok(default),
        Some(t) => {
            parse_rfc3339(t).ok_or_else(|| ApiError::bad_request(format!("{name}: {t:?} is not an RFC 3339 time")))
        }
    }
}

async fn counts(
    State(s): State<ApiState>,
    Caller(who): Caller,
    q: Result<Query<CountsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    if who.role == Role::GridWorker {
        return Err(ApiError::forbidden("plate read counts are for operators and auditors"));
    }
    let limit = q.limit.unwrap_or(DEFAULT_COUNTS);
    if limit == 0 || limit > MAX_COUNTS {
        return Err(ApiError::bad_request(format!("limit must be 1 to {MAX_COUNTS}")));
    }
    let now = s.ingest.clock().now_ms();
    // By default the last day, the current hour included.
    let to = time("to", q.to.as_deref(), plate_counts::hour_of(now) + HOUR_MS)?;
    let from = time("from", q.from.as_deref(), to.saturating_sub(DAY_MS))?;
    if from >= to {
        return Err(ApiError::bad_request("from must be before to"));
    }
    let store = s.ingest.store();
    let rows = plate_counts::counts(store, q.checkpoint.as_deref(), from, to, limit)?;
    let config = store.config();
    Ok(Json(json!({
        "from": rfc3339(from),
        "to": rfc3339(to),
        "plate_read_retention_hours": config.plate_read_retention_hours,
        "counts": rows.iter().map(|r| json!({
            "checkpoint": r.checkpoint,
            "hour": rfc3339(r.hour_ms),
            "reads": r.reads,
        })).collect::<Vec<_>>(),
    })))
}
