//! The operators' dashboard, served by `yiwang-control` at `/dashboard` (docs/dashboard.md):
//! a map of every site with its links, per node lag, backlog, lists version and clock offset,
//! open and overdue events by town, escalations waiting for an answer, fence alerts drawn
//! against the boundary, and the sanctions lists with their history. Live by server-sent
//! events.
//!
//! No build step and nothing fetched from elsewhere: the page, its script and its style are
//! files of this crate, embedded in the binary and served under a content security policy
//! that allows only this origin. The page holds no data: it asks for a token (or takes it from
//! the `#token=` fragment, which never reaches a server) and reads everything through the
//! API with it, the lists through the operator API's own endpoints.
//!
//! [`poller`] refreshes the [`view::CityView`] from the site's node API; `yiwang-sim demo`
//! runs the same poller against its city node, and also hands the dashboard a channel of
//! [`FaultRequest`]s so operators can cut links and crash sites while they watch.

pub mod poller;
pub mod view;

use crate::api::{may_read, may_write, ControlState};
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use node::api::{ApiError, Caller};
use proto::NodeId;
use serde::Deserialize;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use view::CityView;

/// How often the view is refreshed by default, and at least.
pub const DEFAULT_POLL: Duration = Duration::from_secs(2);
pub const MIN_POLL: Duration = Duration::from_millis(200);
/// A comment on an idle event stream this often, so proxies keep it open.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Largest boundary file read.
pub const MAX_BOUNDARY_BYTES: u64 = 4 << 20;
/// How long a fault request waits for the simulator to carry it out.
const FAULT_DEADLINE: Duration = Duration::from_secs(10);

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("style.css");
/// Only this origin: no CDN, no tiles, no inline script.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                      img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What the dashboard's routes serve from.
#[derive(Clone)]
pub struct Dashboard {
    pub views: watch::Receiver<Arc<CityView>>,
    /// The fence boundaries as one GeoJSON FeatureCollection.
    pub boundaries: Arc<Value>,
    /// Where fault requests go (`yiwang-sim demo`); `None` in a real deployment.
    pub faults: Option<mpsc::Sender<FaultRequest>>,
}

/// What an operator can do to a site in the demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// Cut every link between the site and the rest of the city.
    Isolate,
    /// Undo an isolation.
    Heal,
    /// A power cut: the site's node and voter stop where they stand.
    Crash,
    /// Power back.
    Restart,
}

/// A fault asked for from the page, and where to say how it went.
#[derive(Debug)]
pub struct FaultRequest {
    pub action: FaultAction,
    pub site: NodeId,
    pub reply: oneshot::Sender<Result<String, String>>,
}

pub fn routes() -> Router<ControlState> {
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/app.js", get(script))
        .route("/dashboard/style.css", get(style))
        .route("/dashboard/view", get(current))
        .route("/dashboard/stream", get(stream))
        .route("/dashboard/boundaries", get(boundaries))
        .route("/dashboard/faults", post(fault))
}

/// Start refreshing the view of `topology` from `source`: the dashboard to serve and the task
/// that refreshes it (its owner aborts it when it stops).
pub fn start(
    source: poller::Source,
    topology: &node::mesh::topology::Topology,
    boundaries: Value,
    faults: Option<mpsc::Sender<FaultRequest>>,
) -> (Dashboard, tokio::task::JoinHandle<()>) {
    let (tx, views) = watch::channel(Arc::new(CityView::empty(topology, faults.is_some())));
    let task = tokio::spawn(poller::refresh(source, tx));
    (Dashboard { views, boundaries: Arc::new(boundaries), faults }, task)
}

fn dashboard(state: &ControlState) -> Result<&Dashboard, ApiError> {
    state.dashboard.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "this voter serves no dashboard: add a [dashboard] section to its config (docs/dashboard.md)",
        )
    })
}

fn asset(state: &ControlState, content_type: &'static str, body: &'static str) -> Result<impl IntoResponse, ApiError> {
    dashboard(state)?;
    Ok((
        [
            (CONTENT_TYPE, content_type),
            (CONTENT_SECURITY_POLICY, POLICY),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    ))
}

async fn page(State(state): State<ControlState>) -> Result<impl IntoResponse, ApiError> {
    asset(&state, "text/html; charset=utf-8", PAGE)
}

async fn script(State(state): State<ControlState>) -> Result<impl IntoResponse, ApiError> {
    asset(&state, "text/javascript; charset=utf-8", SCRIPT)
}

async fn style(State(state): State<ControlState>) -> Result<impl IntoResponse, ApiError> {
    asset(&state, "text/css; charset=utf-8", STYLE)
}

async fn current(State(state): State<ControlState>, caller: Caller) -> Result<Json<CityView>, ApiError> {
    may_read(&caller)?;
    let view = dashboard(&state)?.views.borrow().clone();
    Ok(Json((*view).clone()))
}

/// `text/event-stream`: a `view` event with the whole view now, then one on every refresh.
async fn stream(State(state): State<ControlState>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    may_read(&caller)?;
    let views = dashboard(&state)?.views.clone();
    let events = futures_util::stream::unfold((views, true), |(mut views, first)| async move {
        if !first && views.changed().await.is_err() {
            return None;
        }
        let view = views.borrow_and_update().clone();
        let data = serde_json::to_string(&*view).unwrap_or_else(|e| json!({ "error": e.to_string() }).to_string());
        Some((Ok::<_, Infallible>(Event::default().event("view").data(data)), (views, false)))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEPALIVE)))
}

async fn boundaries(State(state): State<ControlState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    may_read(&caller)?;
    Ok(Json((*dashboard(&state)?.boundaries).clone()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultBody {
    action: FaultAction,
    site: String,
}

async fn fault(
    State(state): State<ControlState>,
    caller: Caller,
    body: Result<Json<FaultBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    may_write(&caller)?;
    let Some(faults) = &dashboard(&state)?.faults else {
        return Err(ApiError::not_found("faults can be made only in `yiwang-sim demo`, not in a real deployment"));
    };
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let site = NodeId::new(body.site).map_err(|e| ApiError::bad_request(format!("site: {e}")))?;
    let (reply, answer) = oneshot::channel();
    let unavailable = || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the simulation has stopped");
    faults.send(FaultRequest { action: body.action, site, reply }).await.map_err(|_| unavailable())?;
    match tokio::time::timeout(FAULT_DEADLINE, answer).await {
        Ok(Ok(Ok(done))) => Ok(Json(json!({ "done": done }))),
        Ok(Ok(Err(refused))) => Err(ApiError::new(StatusCode::CONFLICT, "refused", refused)),
        Ok(Err(_)) => Err(unavailable()),
        Err(_) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the simulation did not answer")),
    }
}

/// The fence boundaries of `paths` as one FeatureCollection. Each file is a FeatureCollection,
/// a Feature or a bare geometry, at most [`MAX_BOUNDARY_BYTES`].
pub fn load_boundaries(paths: &[PathBuf]) -> Result<Value, String> {
    let mut features = Vec::new();
    for path in paths {
        let shown = path.display();
        let size = std::fs::metadata(path).map_err(|e| format!("boundary {shown}: {e}"))?.len();
        if size > MAX_BOUNDARY_BYTES {
            return Err(format!("boundary {shown}: {size} bytes; the limit is {MAX_BOUNDARY_BYTES}"));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("boundary {shown}: {e}"))?;
        features.extend(boundary_features(&text).map_err(|e| format!("boundary {shown}: {e}"))?);
    }
    Ok(json!({ "type": "FeatureCollection", "features": features }))
}

/// The features of one GeoJSON text.
pub fn boundary_features(text: &str) -> Result<Vec<Value>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    match v["type"].as_str() {
        Some("FeatureCollection") => Ok(v["features"].as_array().cloned().unwrap_or_default()),
        Some("Feature") => Ok(vec![v]),
        Some("Polygon" | "MultiPolygon" | "LineString" | "MultiLineString") => {
            Ok(vec![json!({ "type": "Feature", "properties": {}, "geometry": v })])
        }
        other => Err(format!("not a GeoJSON boundary (type {other:?})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_of_every_shape_merge_into_one_collection() {
        let polygon = r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}"#;
        assert_eq!(boundary_features(polygon).unwrap()[0]["geometry"]["type"], "Polygon");
        let feature = format!(r#"{{"type":"Feature","properties":{{"name":"a"}},"geometry":{polygon}}}"#);
        assert_eq!(boundary_features(&feature).unwrap()[0]["properties"]["name"], "a");
        let pmz = include_str!("../../../deploy/boundaries/china-rok-pmz.geojson");
        assert!(!boundary_features(pmz).unwrap().is_empty());
        assert!(boundary_features(r#"{"type":"Point","coordinates":[0,0]}"#).unwrap_err().contains("Point"));
        assert!(boundary_features("nope").unwrap_err().contains("not JSON"));
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.geojson"), dir.path().join("b.geojson"));
        std::fs::write(&a, polygon).unwrap();
        std::fs::write(&b, &feature).unwrap();
        let all = load_boundaries(&[a, b]).unwrap();
        assert_eq!(all["features"].as_array().unwrap().len(), 2);
        assert!(load_boundaries(&[dir.path().join("none")]).unwrap_err().contains("none"));
    }
}
