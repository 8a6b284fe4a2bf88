//! What the dashboard shows, built from the answers of the site's node API (its mesh view,
//! the escalations sent up to it, the fence alerts it holds) and the local voter's raft
//! status. A plain function of its inputs, so it is tested without a node.

use node::mesh::topology::{Position, Topology};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Radius, in degrees, of the ring a site without a position is placed on around its parent.
const PLACE_RING: f64 = 0.06;

/// One site on the map and in the tables.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SiteView {
    pub id: String,
    pub role: &'static str,
    pub position: Position,
    /// Preferred parent first.
    pub parents: Vec<String>,
    /// As the node's mesh view says: `self`, `up`, `catching_up`, `degraded`, `partitioned`,
    /// `stale`, `unknown`.
    pub state: String,
    /// The parent it is linked to now (its preferred one, or a fallback).
    pub uplink: Option<String>,
    pub age_ms: Option<u64>,
    /// Entries it holds that its parents have not acknowledged.
    pub backlog: u64,
    pub lists_version: Option<u64>,
    pub lists_behind: u64,
    pub clock_offset_ms: Option<i64>,
    pub open_events: u64,
    pub overdue_events: u64,
}

/// The whole view, sent to browsers as one JSON document on every change.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CityView {
    /// Increases with every refresh, so a browser can tell a new view from a repeated one.
    pub refresh: u64,
    /// The node whose mesh view this is, and the time it gave.
    pub node: Option<String>,
    pub at: Option<String>,
    /// Why the node's API could not be read this time (the rest is the last view it gave).
    pub node_error: Option<String>,
    /// The sanctions lists version that node enforces.
    pub lists_version: Option<u64>,
    /// The local voter's raft status (`GET /api/v1/raft`).
    pub raft: Value,
    pub sites: Vec<SiteView>,
    /// Escalations sent up to the node and not answered yet, oldest first.
    pub escalations: Vec<Value>,
    /// The latest fence alerts (warnings, alerts and recalls), newest first.
    pub fences: Vec<Value>,
    /// Whether links can be cut and sites crashed from the page (`yiwang-sim demo` only).
    pub controls: bool,
}

/// What the node's API answered this time; `Err` for a call that failed.
pub struct Answers {
    pub mesh: Result<Value, String>,
    pub escalations: Result<Value, String>,
    pub fences: Result<Value, String>,
}

impl CityView {
    /// Every site of `topology` placed on the map, with nothing heard yet.
    pub fn empty(topology: &Topology, controls: bool) -> CityView {
        let positions = place(topology);
        let sites = topology
            .sites()
            .iter()
            .zip(positions)
            .map(|(s, position)| SiteView {
                id: s.id.to_string(),
                role: s.role.as_str(),
                position,
                parents: s.parents.iter().map(|p| p.to_string()).collect(),
                state: "unknown".into(),
                uplink: None,
                age_ms: None,
                backlog: 0,
                lists_version: None,
                lists_behind: 0,
                clock_offset_ms: None,
                open_events: 0,
                overdue_events: 0,
            })
            .collect();
        CityView {
            refresh: 0,
            node: None,
            at: None,
            node_error: None,
            lists_version: None,
            raft: Value::Null,
            sites,
            escalations: Vec::new(),
            fences: Vec::new(),
            controls,
        }
    }

    /// The next view: this one updated with `answers` and `raft`. A call that failed keeps
    /// what the last one gave and says why in `node_error`.
    pub fn next(&self, answers: Answers, raft: Value) -> CityView {
        let mut v = self.clone();
        v.refresh += 1;
        v.raft = raft;
        let mut errors = Vec::new();
        match answers.mesh {
            Ok(mesh) => v.take_mesh(&mesh),
            Err(e) => errors.push(format!("mesh: {e}")),
        }
        match answers.escalations {
            Ok(e) => {
                let mut waiting: Vec<Value> = list(&e, "escalations")
                    .into_iter()
                    .filter(|x| x["answers_sent"].as_u64().unwrap_or(0) == 0)
                    .collect();
                waiting.sort_by(|a, b| a["at"].as_str().cmp(&b["at"].as_str()));
                v.escalations = waiting;
            }
            Err(e) => errors.push(format!("escalations: {e}")),
        }
        match answers.fences {
            Ok(f) => v.fences = list(&f, "alerts"),
            Err(e) => errors.push(format!("fences: {e}")),
        }
        v.node_error = (!errors.is_empty()).then(|| errors.join("; "));
        v
    }

    fn take_mesh(&mut self, mesh: &Value) {
        self.node = mesh["node"].as_str().map(str::to_string);
        self.at = mesh["at"].as_str().map(str::to_string);
        self.lists_version = mesh["lists_version"].as_u64();
        let rows: BTreeMap<&str, &Value> =
            mesh["nodes"].as_array().into_iter().flatten().filter_map(|r| Some((r["node"].as_str()?, r))).collect();
        for site in &mut self.sites {
            let Some(r) = rows.get(site.id.as_str()) else {
                // Not below the node whose view this is: nothing known.
                site.state = "unknown".into();
                continue;
            };
            site.state = r["state"].as_str().unwrap_or("unknown").to_string();
            site.uplink = r["uplink"]["peer"].as_str().map(str::to_string);
            site.age_ms = r["age_ms"].as_u64();
            site.backlog = r["backlog"].as_u64().unwrap_or(0);
            site.lists_version = r["lists_version"].as_u64();
            site.lists_behind = r["lists_behind"].as_u64().unwrap_or(0);
            site.clock_offset_ms = r["clock_offset_ms"].as_i64();
            site.open_events = r["open_events"].as_u64().unwrap_or(0);
            site.overdue_events = r["overdue_events"].as_u64().unwrap_or(0);
        }
    }
}

fn list(v: &Value, key: &str) -> Vec<Value> {
    v[key].as_array().cloned().unwrap_or_default()
}

/// Each site's place on the map: its own position, or a ring around its preferred parent's
/// (then around the city; a city without one stands at 0, 0).
pub fn place(topology: &Topology) -> Vec<Position> {
    let sites = topology.sites();
    let mut placed: BTreeMap<&str, Position> =
        sites.iter().filter_map(|s| s.position.map(|p| (s.id.as_str(), p))).collect();
    let city = topology.city();
    let city_at = *placed.entry(city.id.as_str()).or_insert(Position { lat: 0.0, lon: 0.0 });
    // Parents are of a higher tier, so three passes (city, counties, the rest) place everyone.
    for _ in 0..3 {
        let mut around: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for s in sites.iter().filter(|s| !placed.contains_key(s.id.as_str())) {
            if let Some(p) = s.parents.first().filter(|p| placed.contains_key(p.as_str())) {
                around.entry(p.as_str()).or_default().push(s.id.as_str());
            }
        }
        for (parent, children) in around {
            let centre = placed[parent];
            for (i, c) in children.iter().enumerate() {
                placed.insert(c, centre.on_ring(PLACE_RING, i, children.len(), 0.0));
            }
        }
    }
    sites.iter().map(|s| placed.get(s.id.as_str()).copied().unwrap_or(city_at)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOPOLOGY: &str = r#"
[[site]]
id = "city"
role = "city"
mesh = "127.0.0.1:7900"
position = [37.5, 122.1]
[[site]]
id = "county-a"
role = "county"
mesh = "127.0.0.1:7901"
parents = ["city"]
[[site]]
id = "town-a1"
role = "town"
mesh = "127.0.0.1:7902"
parents = ["county-a", "city"]
position = [37.2, 122.0]
[[site]]
id = "harbour-a2"
role = "harbour"
mesh = "127.0.0.1:7903"
parents = ["county-a"]
"#;

    #[test]
    fn sites_without_a_position_are_placed_around_their_parent() {
        let t = Topology::parse(TOPOLOGY).unwrap();
        let p = place(&t);
        assert_eq!(p[0], Position { lat: 37.5, lon: 122.1 });
        assert_eq!(p[2], Position { lat: 37.2, lon: 122.0 }, "a position from the file is kept");
        let near = |a: Position, b: Position| (a.lat - b.lat).abs() < 0.1 && (a.lon - b.lon).abs() < 0.1;
        assert!(near(p[1], p[0]) && p[1] != p[0], "the county rings the city: {:?}", p[1]);
        assert!(near(p[3], p[1]) && p[3] != p[1], "the harbour rings its county: {:?}", p[3]);
    }

    #[test]
    fn a_view_takes_the_mesh_and_keeps_the_last_one_when_a_call_fails() {
        let t = Topology::parse(TOPOLOGY).unwrap();
        let empty = CityView::empty(&t, false);
        assert!(empty.sites.iter().all(|s| s.state == "unknown"));
        let mesh = json!({ "node": "city", "lists_version": 7, "at": "2026-12-01T00:00:00Z", "nodes": [
            { "node": "city", "role": "city", "state": "self", "lists_version": 7 },
            { "node": "county-a", "role": "county", "state": "stale", "age_ms": 20000, "backlog": 3,
              "uplink": { "peer": "city", "state": "partitioned" },
              "lists_version": 5, "lists_behind": 2, "clock_offset_ms": -40, "open_events": 2, "overdue_events": 1 },
        ]});
        let escalations = json!({ "escalations": [
            { "event": "town-a1:9", "n": 1, "at": "2026-12-01T00:00:02Z", "answers_sent": 0 },
            { "event": "town-a1:4", "n": 1, "at": "2026-12-01T00:00:01Z", "answers_sent": 0 },
            { "event": "town-a1:2", "n": 1, "at": "2026-12-01T00:00:00Z", "answers_sent": 1 },
        ]});
        let fences = json!({ "alerts": [{ "mmsi": 412000001, "zone": "recall", "lat": 37.4, "lon": 122.4 }] });
        let answers = Answers { mesh: Ok(mesh), escalations: Ok(escalations), fences: Ok(fences) };
        let v = empty.next(answers, json!({ "leader": "city" }));
        assert_eq!(v.refresh, 1);
        assert_eq!(v.node_error, None);
        let county = &v.sites[1];
        assert_eq!((county.state.as_str(), county.backlog, county.lists_behind), ("stale", 3, 2));
        assert_eq!((county.clock_offset_ms, county.overdue_events), (Some(-40), 1));
        assert_eq!(county.uplink.as_deref(), Some("city"));
        assert_eq!(v.sites[2].state, "unknown", "not in the mesh view: nothing known");
        let waiting: Vec<&str> = v.escalations.iter().map(|e| e["event"].as_str().unwrap()).collect();
        assert_eq!(waiting, ["town-a1:4", "town-a1:9"], "unanswered only, oldest first");
        assert_eq!(v.fences.len(), 1);

        let failed = Answers {
            mesh: Err("cannot reach 127.0.0.1:7800".into()),
            escalations: Err("cannot reach 127.0.0.1:7800".into()),
            fences: Err("cannot reach 127.0.0.1:7800".into()),
        };
        let after = v.next(failed, json!({ "leader": null }));
        assert_eq!(after.refresh, 2);
        assert!(after.node_error.as_deref().unwrap().starts_with("mesh: cannot reach"), "{:?}", after.node_error);
        assert_eq!(after.sites, v.sites, "the last view stays on the page, marked as such");
        assert_eq!(after.raft["leader"], Value::Null);
    }
}
