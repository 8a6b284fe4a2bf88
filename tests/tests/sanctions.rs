//! The sanctions lists reaching every node, as real processes on loopback: a city and two
//! counties, each running `yiwang-node` and its `yiwang-control` voter, and a town under each
//! county, all configured by `yiwangctl deploy generate` from one topology.
//!
//! A list change made at any voter reaches every node; a town's checkpoint hit names the list
//! version it matched. Cut from everything above, a town keeps enforcing the version it has,
//! while the other county's town still gets new versions from its own county (whose voter is in
//! the majority); when its parent returns it catches up. A restarted town never reports a lower
//! version than before. A revoked town certificate is refused by its parents, and the town gets
//! nothing after.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;
use yiwang_tests::voters::now_ms;
use yiwang_tests::{bin, get_as, post_json, post_json_as, wait_until, Documented, NodeProcess};

/// (id, role, parents, votes)
const SITES: &[(&str, &str, &[&str], bool)] = &[
    ("city", "city", &[], true),
    ("county-a", "county", &["city"], true),
    ("county-b", "county", &["city"], true),
    ("town-a1", "town", &["county-a", "city"], false),
    ("town-b1", "town", &["county-b", "city"], false),
];
const LIMIT: Duration = Duration::from_secs(30);
const DAY_MS: u64 = 86_400_000;

fn free_udp() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

struct City {
    gen: PathBuf,
    nodes: BTreeMap<&'static str, NodeProcess>,
    controls: BTreeMap<&'static str, NodeProcess>,
    tokens: BTreeMap<&'static str, String>,
    control_tokens: BTreeMap<&'static str, String>,
}

impl City {
    fn generate(dir: &Path) -> City {
        let mut topology = String::new();
        for (id, role, parents, votes) in SITES {
            let parents: Vec<String> = parents.iter().map(|p| format!("{p:?}")).collect();
            topology.push_str(&format!(
                "[[site]]\nid = \"{id}\"\nrole = \"{role}\"\nmesh = \"{}\"\nparents = [{}]\n",
                free_udp(),
                parents.join(", ")
            ));
            if *votes {
                topology.push_str(&format!("raft = \"{}\"\n", free_udp()));
            }
            if *role == "city" {
                // A fixed HTTP port: the city's voter serves the dashboard from this node API.
                let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
                topology.push_str(&format!("http = \"127.0.0.1:{port}\"\nposition = [37.5131, 122.1204]\n"));
            }
            topology.push('\n');
        }
        let gen = yiwang_tests::deploy_generate(dir, &topology);
        for (id, role, _, _) in SITES {
            let config = gen.join(id).join("node.toml");
            let mut text = std::fs::read_to_string(&config).unwrap();
            // A short idle timeout, so a dead parent is noticed in seconds.
            text.push_str("idle_timeout = \"3s\"\n");
            if *role == "town" {
                text.push_str("\n[[feeds.checkpoint]]\nname = \"roads\"\nhttp = \"127.0.0.1:0\"\n");
            }
            std::fs::write(&config, text).unwrap();
        }
        City {
            gen,
            nodes: BTreeMap::new(),
            controls: BTreeMap::new(),
            tokens: BTreeMap::new(),
            control_tokens: BTreeMap::new(),
        }
    }

    fn start_node(&mut self, id: &'static str) {
        let data = self.gen.join(id).join("data");
        let node = NodeProcess::start(&self.gen.join(id).join("node.toml"), &data);
        self.tokens.insert(id, yiwang_tests::operator_token(&data));
        self.nodes.insert(id, node);
    }

    fn start_control(&mut self, id: &'static str) {
        let data = self.gen.join(id).join("control-data");
        let config = self.gen.join(id).join("control.toml");
        let control = NodeProcess::start_bin("yiwang-control", &data, &["--config".as_ref(), config.as_os_str()]);
        self.control_tokens.insert(id, yiwang_tests::operator_token(&data));
        self.controls.insert(id, control);
    }

    fn kill_node(&mut self, id: &str) {
        self.nodes.remove(id).expect("running").kill();
    }

    /// A node's view of the lists it enforces (with `subject`'s entries if given).
    fn sanctions(&self, id: &str, subject: Option<&str>) -> Value {
        let path = match subject {
            Some(s) => format!("/api/v1/sanctions?subject={}", yiwang_tests::urlencode(s)),
            None => "/api/v1/sanctions".to_string(),
        };
        let r = get_as(self.nodes[id].http(), &self.tokens[id], &path).unwrap();
        assert_eq!(r.status, 200, "{id} GET {path}: {}", r.body);
        r.json()
    }

    fn version(&self, id: &str) -> u64 {
        self.sanctions(id, None)["version"].as_u64().unwrap()
    }

    /// Add `subject` to the black list through `voter`'s control plane; returns its version.
    fn list(&self, voter: &str, subject: &str) -> u64 {
        let now = now_ms();
        let body = json!({
            "entry": {
                "list": "black", "subject": subject, "name": format!("listed {subject}"),
                "authority": "City Transport Bureau", "legal_basis": "Road Traffic Safety Law art. 96",
                "effective": rfc3339(now - DAY_MS), "expires": rfc3339(now + 365 * DAY_MS),
            },
            "why": "committee decision 2026-41",
        });
        let api: SocketAddr = self.controls[voter].listening["api"].as_str().unwrap().parse().unwrap();
        let r = post_json_as(api, &self.control_tokens[voter], "/api/v1/lists", &body.to_string()).unwrap();
        assert_eq!(r.status, 201, "add {subject} at {voter}: {}", r.body);
        r.json()["version"].as_u64().unwrap()
    }

    /// Every node in `ids` enforces at least `version`; each never reports less than it did.
    fn wait_for_version(&self, ids: &[&str], version: u64, seen: &mut BTreeMap<String, u64>) {
        wait_until(&format!("{ids:?} at version {version}"), LIMIT, || {
            for id in ids {
                let v = self.version(id);
                let before = seen.insert(id.to_string(), v).unwrap_or(0);
                assert!(v >= before, "{id} went back from version {before} to {v}");
                if v < version {
                    return Err(format!("{id} at {v}"));
                }
            }
            Ok(())
        });
    }

    /// A checkpoint read of `plate` at `town`.
    fn read_plate(&self, town: &str, plate: &str) {
        let feed = self.nodes[town].feed("roads", "http");
        let read = json!([{
            "best_plate_number": plate, "best_confidence": 91, "checkpoint_id": "cp-harbour-road",
            "epoch_start": now_ms(),
        }]);
        let r = post_json(feed, "/ingest", &read.to_string()).unwrap();
        assert!((200..300).contains(&r.status), "ingest at {town}: {} {}", r.status, r.body);
    }

    /// The sanctions hits a node recorded, newest first.
    fn sanctions_hits(&self, id: &str) -> Vec<Value> {
        let r = get_as(self.nodes[id].http(), &self.tokens[id], "/api/v1/hits?limit=500").unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["hits"].as_array().unwrap().iter().filter_map(|h| h["hit"].get("SanctionsHit").cloned()).collect()
    }

    /// `yiwangctl ARGS` against node `id`'s API; its standard output.
    fn yiwangctl(&self, id: &str, args: &[&str]) -> String {
        let out = std::process::Command::new(bin("yiwangctl"))
            .args(args)
            .env("YIWANG_NODE_API", self.nodes[id].http().to_string())
            .env("YIWANG_NODE_TOKEN", &self.tokens[id])
            .output()
            .unwrap();
        assert!(out.status.success(), "yiwangctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn metric(&self, id: &str, prefix: &str) -> f64 {
        self.nodes[id].metric(prefix).unwrap_or(0.0)
    }

    /// `id`'s view of the mesh below it, by node.
    fn mesh_view(&self, id: &str) -> BTreeMap<String, Value> {
        let r = get_as(self.nodes[id].http(), &self.tokens[id], "/api/v1/mesh").unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let view = r.json();
        view["nodes"].as_array().unwrap().iter().map(|n| (n["node"].as_str().unwrap().to_string(), n.clone())).collect()
    }

    /// Wait until the city sees every node in `states` in that state, at `version` at least
    /// where it has heard from it.
    fn wait_for_city_view(&self, states: &[(&str, &str)], version: u64) {
        wait_until(&format!("the city seeing {states:?} at {version}"), LIMIT, || {
            let view = self.mesh_view("city");
            for (id, state) in states {
                let row = &view[*id];
                if row["state"] != *state || (*state == "up" && row["lists_version"].as_u64() < Some(version)) {
                    return Err(format!("{id}: {row}"));
                }
            }
            Ok(())
        });
    }
}

fn rfc3339(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn every_node_enforces_the_committed_lists_through_partitions_and_revocations() {
    let dir = yiwang_tests::test_dir("sanctions");
    let mut city = City::generate(dir.path());
    for (id, _, _, votes) in SITES {
        if *votes {
            city.start_control(id);
        }
    }
    for (id, ..) in SITES {
        city.start_node(id);
    }
    let all: Vec<&str> = SITES.iter().map(|s| s.0).collect();
    let mut seen = BTreeMap::new();

    // A change made at a county's voter reaches every node, and a town's hit names the version.
    let v1 = city.list("county-a", "registration:鲁B00001");
    city.wait_for_version(&all, v1, &mut seen);
    let digests: Vec<Value> = all.iter().map(|id| city.sanctions(id, None)["digest"].clone()).collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "nodes at one version disagree: {digests:?}");
    let listed = city.sanctions("town-b1", Some("registration:鲁b00001"));
    assert_eq!(listed["subject"]["listed"][0]["list"], "black", "{listed}");
    city.read_plate("town-a1", "鲁B00001");
    city.read_plate("town-a1", "鲁B99999");
    wait_until("a sanctions hit at town-a1", LIMIT, || {
        match city.sanctions_hits("town-a1").first() {
            Some(hit) => Ok(hit.clone()),
            None => Err("no hit yet".into()),
        }
        .map(|hit| {
            assert_eq!(hit["subject"], json!({ "Registration": "鲁B00001" }));
            assert_eq!(hit["list"], "black");
            assert_eq!(hit["authority"], "City Transport Bureau");
            assert!(hit["list_version"].as_u64().unwrap() >= v1, "{hit}");
        })
    });
    assert_eq!(city.sanctions_hits("town-a1").len(), 1, "one plate of two is listed");

    // town-a1 loses both its parents. County-b's voter is in the majority (with the city's and
    // county-a's voters, which still run), so town-b1 keeps getting versions from county-b even
    // with the city's node down; town-a1 keeps enforcing what it has.
    city.kill_node("county-a");
    city.kill_node("city");
    let v2 = city.list("county-b", "registration:鲁B00002");
    city.wait_for_version(&["county-b", "town-b1"], v2, &mut seen);
    let stuck = city.version("town-a1");
    assert!(stuck < v2, "town-a1 reached {stuck} with no parent running");
    city.read_plate("town-a1", "鲁B00001");
    wait_until("a second hit at town-a1, cut off", LIMIT, || {
        let hits = city.sanctions_hits("town-a1");
        if hits.len() < 2 {
            return Err(format!("{} hits", hits.len()));
        }
        assert_eq!(hits[0]["list_version"].as_u64(), Some(stuck), "{:?}", hits[0]);
        Ok(())
    });
    city.start_node("county-a");
    city.wait_for_version(&["county-a", "town-a1"], v2, &mut seen);
    city.start_node("city");
    city.wait_for_version(&all, v2, &mut seen);
    // Every voter and every node: one version, one digest.
    wait_until("voters and nodes agreeing", LIMIT, || {
        let mut states = BTreeMap::new();
        for (id, control) in &city.controls {
            let api: SocketAddr = control.listening["api"].as_str().unwrap().parse().unwrap();
            let r = get_as(api, &city.control_tokens[id], "/api/v1/raft?digest=true").unwrap();
            let v = r.json();
            states.insert(format!("voter {id}"), (v["applied_version"].to_string(), v["lists_digest"].to_string()));
        }
        for id in &all {
            let v = city.sanctions(id, None);
            states.insert(format!("node {id}"), (v["version"].to_string(), v["digest"].to_string()));
        }
        let distinct: std::collections::BTreeSet<_> = states.values().collect();
        if distinct.len() == 1 {
            Ok(())
        } else {
            Err(format!("{states:#?}"))
        }
    });
    // The city's view of the mesh: every node heard from, up, at v2, no clock far off.
    let documented = Documented::fetch(city.nodes["city"].http());
    let towns_and_counties = [("county-a", "up"), ("county-b", "up"), ("town-a1", "up"), ("town-b1", "up")];
    city.wait_for_city_view(&towns_and_counties, v2);
    let r = get_as(city.nodes["city"].http(), &city.tokens["city"], "/api/v1/mesh").unwrap();
    documented.check("MeshView", &r.json());
    for (id, row) in city.mesh_view("city") {
        assert!(row["clock_offset_ms"].as_i64().unwrap_or(0).abs() < 5_000, "{id}: {row}");
        if id == "town-a1" {
            assert_eq!(row["open_events"], 2, "two hits, two alert events: {row}");
        }
    }
    let text = city.yiwangctl("city", &["mesh", "status"]);
    assert!(text.starts_with(&format!("city enforces lists version {v2}")), "{text}");
    for id in ["county-a", "county-b", "town-a1", "town-b1"] {
        let line = text.lines().find(|l| l.starts_with(&format!("{id} "))).unwrap_or_else(|| panic!("{id}: {text}"));
        assert!(line.contains(" up ") && line.contains(&format!(" {v2} ")), "{line}");
    }
    // The dashboard the city's voter serves shows the same mesh, from the city node's API.
    let api: SocketAddr = city.controls["city"].listening["api"].as_str().unwrap().parse().unwrap();
    let page = yiwang_tests::request_with_headers(api, "GET", "/dashboard", &[], b"").unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.header("content-security-policy").unwrap().contains("default-src 'none'"));
    assert!(page.body.contains("/dashboard/app.js"));
    assert_eq!(yiwang_tests::get(api, "/dashboard/view").unwrap().status, 401, "the view needs a token");
    wait_until("the dashboard shows every site up", LIMIT, || {
        let r = get_as(api, &city.control_tokens["city"], "/dashboard/view").unwrap();
        let v = r.json();
        let states: Vec<(String, String)> = v["sites"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| (s["id"].as_str().unwrap_or("").to_string(), s["state"].as_str().unwrap_or("").to_string()))
            .collect();
        let whole = states.len() == SITES.len() && states.iter().all(|(_, s)| s == "up" || s == "self");
        if whole && v["lists_version"] == v2 && v["node_error"].is_null() && v["raft"]["leader"].is_string() {
            Ok(())
        } else {
            Err(format!(
                "{states:?} lists {} error {} leader {}",
                v["lists_version"], v["node_error"], v["raft"]["leader"]
            ))
        }
    });
    let r =
        post_json_as(api, &city.control_tokens["city"], "/dashboard/faults", r#"{"action":"crash","site":"town-a1"}"#)
            .unwrap();
    assert_eq!(r.status, 404, "no faults from a real deployment's dashboard: {}", r.body);
    documented.check("SanctionsStatus", &city.sanctions("town-a1", Some("registration:鲁B00001")));
    // Every hit is audited with the version that matched; the audit log reads from the CLI.
    let audit = city.yiwangctl("town-a1", &["audit", "--action", "sanctions_hit"]);
    assert_eq!(audit.lines().count(), 2, "{audit}");
    assert!(audit.lines().all(|l| l.contains("rule:sanctions") && l.contains("registration:鲁B00001")), "{audit}");
    let r =
        get_as(city.nodes["town-a1"].http(), &city.tokens["town-a1"], "/api/v1/audit?action=sanctions_hit").unwrap();
    documented.check("AuditPage", &r.json());
    // An escalation from town-a1 to the city, answered from the CLI at the city.
    let event =
        json!({"category": "hazard", "address": "harbour road 3", "description": "listed truck parked on the quay"});
    let r = post_json_as(city.nodes["town-a1"].http(), &city.tokens["town-a1"], "/api/v1/events", &event.to_string())
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let esc = json!({"department": "city-transport", "tier": "city", "reason": "a listed vehicle"});
    let path = format!("/api/v1/events/{id}/escalations");
    let r = post_json_as(city.nodes["town-a1"].http(), &city.tokens["town-a1"], &path, &esc.to_string()).unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    wait_until("the escalation reaching the city", LIMIT, || {
        let listed = city.yiwangctl("city", &["escalations", "list", "--origin", "town-a1"]);
        if listed.contains(&format!("{id} #1")) {
            Ok(())
        } else {
            Err(listed)
        }
    });
    let answered = city.yiwangctl(
        "city",
        &["escalations", "answer", &id, "1", "--answer", "result", "--by", "city-transport", "--outcome", "towed"],
    );
    assert!(answered.starts_with(&format!("answered {id} #1")), "{answered}");
    wait_until("town-a1 applying the answer", LIMIT, || {
        let r = get_as(city.nodes["town-a1"].http(), &city.tokens["town-a1"], &format!("/api/v1/events/{id}")).unwrap();
        match r.json()["escalations"][0]["status"].as_str() {
            Some("answered") => Ok(()),
            other => Err(format!("{other:?}: {}", r.body)),
        }
    });
    let r = get_as(city.nodes["town-a1"].http(), &city.tokens["town-a1"], "/api/v1/hits").unwrap();
    documented.check("HitPage", &r.json());

    // A restart enforces at once what it enforced before.
    let before = city.version("town-a1");
    city.kill_node("town-a1");
    city.start_node("town-a1");
    let after = city.version("town-a1");
    assert!(after >= before, "town-a1 restarted at version {after}, below {before}");

    // Revoke town-b1's certificate: its parents refuse it, and it gets nothing after.
    let cert = node::mesh::pki::load_certs(&city.gen.join("town-b1").join("pki").join("node.pem")).unwrap();
    let fingerprint = node::mesh::pki::fingerprint(&cert[0]);
    let api: SocketAddr = city.controls["city"].listening["api"].as_str().unwrap().parse().unwrap();
    let body = json!({ "node": "town-b1", "fingerprint": fingerprint, "why": "device stolen from the depot" });
    let r = post_json_as(api, &city.control_tokens["city"], "/api/v1/revocations", &body.to_string()).unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let v3 = r.json()["version"].as_u64().unwrap();
    let others: Vec<&str> = all.iter().copied().filter(|id| *id != "town-b1").collect();
    city.wait_for_version(&others, v3, &mut seen);
    let refused = r#"yiwang_mesh_refused_total{peer="town-b1",reason="revoked"}"#;
    wait_until("county-b refusing town-b1", LIMIT, || {
        let n = city.metric("county-b", refused);
        if n >= 1.0 {
            Ok(())
        } else {
            Err(format!("{n} refusals"))
        }
    });
    let revoked_at = city.version("town-b1");
    wait_until("town-b1 without a link up", LIMIT, || {
        let r = get_as(city.nodes["town-b1"].http(), &city.tokens["town-b1"], "/api/v1/links").unwrap();
        let links = r.json()["links"].clone();
        match links.as_array().unwrap().iter().find(|l| l["state"] == "up") {
            Some(up) => Err(format!("still up: {up}")),
            None => Ok(()),
        }
    });
    let v4 = city.list("city", "registration:鲁B00004");
    city.wait_for_version(&others, v4, &mut seen);
    assert_eq!(city.version("town-b1"), revoked_at, "a revoked town still received versions");
    // The city sees the revoked town fall silent, and everyone else at v4.
    city.wait_for_city_view(&[("county-a", "up"), ("county-b", "up"), ("town-a1", "up"), ("town-b1", "stale")], v4);
    assert!(city.metric("city", refused) + city.metric("county-b", refused) >= 1.0);
    let listed = city.sanctions("town-a1", None);
    assert_eq!(listed["revoked"][0]["fingerprint"], fingerprint.as_str(), "{listed}");
}
