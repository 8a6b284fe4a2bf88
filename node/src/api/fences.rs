//! `/api/v1/fences`: the latest vessel fence alerts this node holds, its own and those the
//! sites below sent up (at the city: every harbour's), newest first, for the operators'
//! dashboard to draw vessels against the boundary.

use super::error::ApiError;
use super::{ApiState, Caller};
use crate::records::Alert;
use crate::workflow::Role;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use proto::Kind;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn routes() -> Router<ApiState> {
    Router::new().route("/api/v1/fences", get(latest))
}

/// Largest `limit`.
pub const MAX_FENCE_ALERTS: usize = 500;
/// Alerts read per origin, newest first, looking for fence alerts: bounds the work of one call
/// whatever an origin's other alerts are (a town's are all plate hits).
const SCAN_PER_ORIGIN: usize = 2_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FenceQuery {
    limit: Option<usize>,
}

async fn latest(
    State(s): State<ApiState>,
    Caller(who): Caller,
    q: Result<Query<FenceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    if who.role == Role::GridWorker {
        return Err(ApiError::forbidden("fence alerts are for operators and auditors"));
    }
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_FENCE_ALERTS {
        return Err(ApiError::bad_request(format!("limit must be 1 to {MAX_FENCE_ALERTS}")));
    }
    let store = s.ingest.store();
    let mut found = Vec::new();
    for (origin, _) in store.heads(Kind::Alert).iter() {
        let mut taken = 0;
        for entry in store.entries(Kind::Alert, origin, 1).rev().take(SCAN_PER_ORIGIN) {
            let entry = entry?;
            if let Ok(Alert::Fence { mmsi, shipname, zone, previous_zone, distance_m, inside, lat, lon, seen_ms }) =
                crate::records::decode::<Alert>(&entry.payload)
            {
                found.push((
                    seen_ms,
                    json!({
                        "origin": origin.as_str(),
                        "seq": entry.seq,
                        "mmsi": mmsi,
                        "shipname": shipname,
                        "zone": zone,
                        "previous_zone": previous_zone,
                        "distance_m": distance_m,
                        "inside": inside,
                        "lat": lat,
                        "lon": lon,
                        "seen": super::time::rfc3339(seen_ms),
                    }),
                ));
                taken += 1;
                if taken == limit {
                    break;
                }
            }
        }
    }
    found.sort_by_key(|(seen_ms, _)| std::cmp::Reverse(*seen_ms));
    found.truncate(limit);
    Ok(Json(json!({ "alerts": found.into_iter().map(|(_, v)| v).collect::<Vec<_>>() })))
}
