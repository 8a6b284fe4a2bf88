//! `/api/v1/mesh`: the mesh as this node sees it, from the reports the sites below send up
//! (`mesh::reports`). At the city that is every node: when each was last heard, its link up,
//! its backlog, the lists version it enforces, its clock offset, and its open and overdue
//! events.

use super::error::ApiError;
use super::{ApiState, Caller};
use crate::mesh::reports::REPORT_EVERY;
use crate::workflow::Role;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use proto::wire::NodeReport;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/api/v1/mesh", get(view))
}

/// A report older than this many periods means the node (or the path to it) is down.
const STALE_PERIODS: u32 = 3;

fn link_state(code: u8) -> &'static str {
    match code {
        0 => "up",
        1 => "catching_up",
        2 => "degraded",
        _ => "partitioned",
    }
}

async fn view(State(s): State<ApiState>, Caller(who): Caller) -> Result<Json<Value>, ApiError> {
    if who.role == Role::GridWorker {
        return Err(ApiError::forbidden("the mesh view is for operators and auditors"));
    }
    let Some(mesh) = &s.mesh else {
        return Err(ApiError::not_found("this node has no mesh links"));
    };
    let now_ms = s.ingest.clock().now_ms();
    let version = s.sanctions.version();
    let mut reports: BTreeMap<proto::NodeId, NodeReport> =
        mesh.reports().into_iter().map(|r| (r.node.clone(), r)).collect();
    let me = s.ingest.store().node().clone();
    let stale_ms = (REPORT_EVERY * STALE_PERIODS).as_millis() as u64;
    let mut nodes = Vec::new();
    // Every site of the topology below this node, heard from or not.
    for site in mesh.topology().sites().iter().filter(|site| mesh.topology().in_subtree(&me, &site.id)) {
        let report = reports.remove(&site.id);
        let mut row = json!({ "node": site.id.as_str(), "role": site.role.as_str() });
        let Some(r) = report else {
            row["state"] = json!("unknown");
            nodes.push(row);
            continue;
        };
        let seen_ms = if r.node == me { now_ms } else { r.seen_ms };
        let age_ms = now_ms.saturating_sub(seen_ms);
        let uplinks: Vec<_> = r.links.iter().filter(|l| l.parent).collect();
        let uplink = uplinks.iter().min_by_key(|l| l.state);
        let state = if r.node == me {
            "self"
        } else if age_ms > stale_ms {
            "stale"
        } else {
            uplink.map_or("up", |l| link_state(l.state))
        };
        row["state"] = json!(state);
        row["last_seen"] = json!(super::time::rfc3339(seen_ms));
        row["age_ms"] = json!(age_ms);
        row["via"] = json!(r.via.as_ref().map(|v| v.as_str()));
        row["uplink"] = json!(uplink.map(|l| json!({ "peer": l.peer.as_str(), "state": link_state(l.state) })));
        row["backlog"] = json!(uplinks.iter().map(|l| l.backlog).sum::<u64>());
        row["lists_version"] = json!(r.lists_version);
        row["lists_behind"] = json!(version.saturating_sub(r.lists_version));
        row["clock_offset_ms"] = json!(if r.node == me { 0 } else { r.clock_offset_ms });
        row["open_events"] = json!(r.open_events);
        row["overdue_events"] = json!(r.overdue_events);
        nodes.push(row);
    }
    Ok(Json(
        json!({ "node": me.as_str(), "lists_version": version, "at": super::time::rfc3339(now_ms), "nodes": nodes }),
    ))
}
