//! The node's HTTP API (axum, JSON): events and their workflow, escalations, the overdue view,
//! vessels, watchlist hits and summaries under `/api/v1`, Open311 GeoReport v2 under
//! `/open311/v2`, and the OpenAPI document at `/openapi.json`.
//!
//! Every `/api/v1` call needs `Authorization: Bearer <token>` (401 without or with an unknown
//! one, 403 when the token's role may not do it). Errors are JSON `{"code", "message"}`.

mod audit;
mod error;
mod events;
mod fences;
mod mesh_view;
pub mod open311;
mod openapi;
mod plate_reads;
mod sanctions;
pub mod time;
mod views;
mod watchlist;

pub use error::ApiError;

use crate::auth::Credentials;
use crate::events::{Events, Identity};
use crate::ingest::Ingest;
use axum::extract::{DefaultBodyLimit, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// Largest JSON body the API reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    pub events: Events,
    pub ingest: Ingest,
    pub credentials: Arc<Credentials>,
    /// `None` on a node without mesh links.
    pub mesh: Option<crate::mesh::Mesh>,
    /// The watchlists: the file's entries and the mesh-wide edits.
    pub lists: crate::lists::Lists,
    /// The sanctions lists this node enforces.
    pub sanctions: crate::enforcement::Enforced,
    /// Categories whose events Open311 shows even when not submitted through it.
    pub open311_public: Arc<std::collections::BTreeSet<String>>,
}

/// The caller, from a valid bearer token.
pub struct Caller(pub Identity);

impl FromRef<ApiState> for Arc<Credentials> {
    fn from_ref(state: &ApiState) -> Arc<Credentials> {
        state.credentials.clone()
    }
}

/// Any API whose state can give its credentials (the node's, the control plane's) identifies
/// callers the same way.
impl<S: Send + Sync> FromRequestParts<S> for Caller
where
    Arc<Credentials>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let credentials = Arc::<Credentials>::from_ref(state);
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        // The scheme name is case-insensitive (RFC 9110 section 11.1).
        let token = header
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        let Some(token) = token else {
            return Err(ApiError::unauthorized("send Authorization: Bearer <token>"));
        };
        match credentials.identify(token) {
            Some(identity) => Ok(Caller(identity.clone())),
            None => Err(ApiError::unauthorized("unknown token")),
        }
    }
}

/// The whole HTTP surface of a node except `/metrics` (served beside it).
pub fn router(state: ApiState) -> Router {
    Router::new()
        .merge(events::routes())
        .merge(watchlist::routes())
        .merge(sanctions::routes())
        .merge(mesh_view::routes())
        .merge(fences::routes())
        .merge(audit::routes())
        .merge(plate_reads::routes())
        .nest("/open311/v2", open311::routes())
        .route("/openapi.json", get(openapi::document))
        .fallback(|| async { ApiError::not_found("no such endpoint; see /openapi.json") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
