//! HTTP batch ingest for the checkpoint and camera feeds: `POST /ingest` with a JSON array.
//! The answer comes once the batch is durable; bad elements are listed by index and do not
//! hold back the good ones.

use super::sinks::JsonFeed;
use crate::store::StoreError;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

/// Most records in one HTTP batch.
pub const MAX_BATCH: usize = 10_000;

#[derive(Serialize)]
struct Rejected {
    index: usize,
    reason: &'static str,
    error: String,
}

pub fn router<F: JsonFeed>(feed: F) -> Router {
    Router::new().route("/ingest", post(ingest::<F>)).layer(DefaultBodyLimit::max(F::MAX_BODY_BYTES)).with_state(feed)
}

pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(json!({ "code": code, "message": message.into() }))).into_response()
}

pub fn store_error(e: &StoreError) -> Response {
    match e {
        StoreError::BudgetExceeded { .. } => error(StatusCode::INSUFFICIENT_STORAGE, "disk_budget", e.to_string()),
        _ => error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", e.to_string()),
    }
}

async fn ingest<F: JsonFeed>(State(feed): State<F>, headers: HeaderMap, body: Bytes) -> Response {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    if !is_json {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content_type",
            "send the batch as application/json: a JSON array of records",
        );
    }
    let elements: Vec<&serde_json::value::RawValue> = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            feed.count_error("json");
            return error(StatusCode::BAD_REQUEST, "bad_json", format!("body must be a JSON array of records: {e}"));
        }
    };
    if elements.len() > 10_000 {
        feed.count_error("too_many");
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many",
            format!("{} records in one batch; the limit is 10000", elements.len()),
        );
    }
    let mut items = Vec::with_capacity(elements.len());
    let mut rejected = Vec::new();
    for (index, raw) in elements.into_iter().enumerate() {
        match feed.decode(raw.get()) {
            Ok(item) => items.push(item),
            Err((reason, error)) => {
                feed.count_error(reason);
                rejected.push(Rejected { index, reason, error });
            }
        }
    }
    if items.is_empty() && !rejected.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "code": "no_valid_records", "message": "every record was refused", "rejected": rejected })),
        )
            .into_response();
    }
    match feed.commit(items).await {
        Ok(receipt) => (StatusCode::OK, Json(json!({ "receipt": receipt, "rejected": rejected }))).into_response(),
        Err(e) => store_error(&e),
    }
}
