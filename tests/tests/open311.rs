//! Open311 GeoReport v2 against a real `yiwang-node` on loopback: a client that knows only
//! GeoReport v2 posts and follows a request while the centre moves it through the seven steps;
//! the spec's errors; acknowledged requests survive SIGKILL; filters. Every Open311 answer is
//! validated against a JSON Schema of GeoReport v2 written from the specification
//! (tests/corpora/open311), with formats checked (date-time, uri); every call's XML answer is
//! compared with the spec's XML examples (tests/corpora/open311/xml).

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use yiwang_tests::{form, get, get_as, operator_token, post_form, post_json, post_json_as, request, NodeProcess};

const KEY: &str = "citizen-app-key-0001";
const BASE: &str = "/open311/v2";
const NODE_ID: &str = "town-311";

// ---- the schemas ------------------------------------------------------------------------

const SCHEMA: &str = include_str!("../corpora/open311/georeport-v2.schema.json");

/// One of the schema's definitions (or an array of it), its `#/definitions` refs resolved.
fn schema(doc: &Value, definition: &str, array: bool) -> jsonschema::Validator {
    let target = json!({ "$ref": format!("#/definitions/{definition}") });
    let schema = if array {
        json!({ "definitions": doc["definitions"], "type": "array", "items": target })
    } else {
        json!({ "definitions": doc["definitions"], "allOf": [target] })
    };
    jsonschema::options().should_validate_formats(true).build(&schema).unwrap_or_else(|e| panic!("{definition}: {e}"))
}

/// Which Open311 answer a body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Answer {
    Services,
    ServiceDefinition,
    Requests,
    Created,
    Token,
}

struct Schemas(BTreeMap<Answer, (&'static str, jsonschema::Validator)>);

impl Schemas {
    fn load() -> Schemas {
        let doc: Value = serde_json::from_str(SCHEMA).expect("the GeoReport v2 schema is JSON");
        let answers = [
            (Answer::Services, "Service", true),
            (Answer::ServiceDefinition, "ServiceDefinition", false),
            (Answer::Requests, "Request", true),
            (Answer::Created, "RequestResponse", true),
            (Answer::Token, "TokenResponse", true),
        ];
        Schemas(answers.into_iter().map(|(answer, def, array)| (answer, (def, schema(&doc, def, array)))).collect())
    }

    /// Panic with every violation if `body` is not a valid `answer`.
    fn check(&self, answer: Answer, body: &Value) {
        let (name, v) = &self.0[&answer];
        let errors: Vec<String> = v.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{answer:?} does not validate against {name}: {errors:#?}\n{body:#}");
    }

    fn rejects(&self, answer: Answer, body: &Value) -> bool {
        !self.0[&answer].1.is_valid(body)
    }
}

// ---- the node ---------------------------------------------------------------------------

struct Node {
    process: NodeProcess,
    addr: SocketAddr,
    operator: String,
    config: PathBuf,
    dir: tempfile::TempDir,
}

/// A node with one Open311 key (`citizen-app`); `extra` is appended to its config.
fn start(extra: &str) -> Node {
    start_with(extra, &[])
}

/// [`start`], with `files` (name, contents) written beside the config first.
fn start_with(extra: &str, files: &[(&str, &str)]) -> Node {
    let dir = tempfile::tempdir().unwrap();
    for (name, contents) in files {
        std::fs::write(dir.path().join(name), contents).unwrap();
    }
    let rest = format!("[[api.open311_keys]]\nname = \"citizen-app\"\nkey = \"{KEY}\"\n{extra}");
    let config = yiwang_tests::write_config(dir.path(), NODE_ID, "town", &rest);
    let process = NodeProcess::start(&config, dir.path());
    let addr = process.http();
    let operator = operator_token(dir.path());
    Node { process, addr, operator, config, dir }
}

impl Node {
    fn restart(self) -> Node {
        let Node { process, config, dir, .. } = self;
        process.kill();
        let process = NodeProcess::start(&config, dir.path());
        let addr = process.http();
        let operator = operator_token(dir.path());
        Node { process, addr, operator, config, dir }
    }

    /// GET an Open311 path that must answer 200, validated as `answer`.
    fn get_ok(&self, schemas: &Schemas, path: &str, answer: Answer) -> Value {
        let r = get(self.addr, &format!("{BASE}/{path}")).unwrap();
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        let body = r.json();
        schemas.check(answer, &body);
        body
    }

    /// The one request `GET requests/{id}.json` answers.
    fn request(&self, schemas: &Schemas, id: &str) -> Value {
        let body = self.get_ok(schemas, &format!("requests/{id}.json"), Answer::Requests);
        assert_eq!(body.as_array().unwrap().len(), 1, "{body}");
        body[0].clone()
    }

    /// The ids `GET requests.json?<query>` answers, in order.
    fn list(&self, schemas: &Schemas, query: &str) -> Vec<String> {
        let body = self.get_ok(schemas, &format!("requests.json?{query}"), Answer::Requests);
        let items = body.as_array().unwrap();
        let times: Vec<&str> = items.iter().map(|r| r["requested_datetime"].as_str().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] >= w[1]), "not newest first: {times:?}");
        items.iter().map(|r| r["service_request_id"].as_str().unwrap().to_string()).collect()
    }

    /// POST a request that must be accepted; returns its id.
    fn post(&self, schemas: &Schemas, pairs: &[(&str, &str)]) -> String {
        let r = post_form(self.addr, &format!("{BASE}/requests.json"), &form(pairs)).unwrap();
        assert_eq!(r.status, 201, "POST {pairs:?}: {}", r.body);
        let body = r.json();
        schemas.check(Answer::Created, &body);
        assert_eq!(body.as_array().unwrap().len(), 1);
        assert_eq!(body[0]["account_id"], Value::Null);
        body[0]["service_request_id"].as_str().unwrap().to_string()
    }

    fn post_simple(&self, schemas: &Schemas, service: &str, description: &str) -> String {
        self.post(
            schemas,
            &[
                ("api_key", KEY),
                ("service_code", service),
                ("lat", "36.0671"),
                ("long", "120.3826"),
                ("description", description),
            ],
        )
    }

    /// The centre moves an event along: `POST /api/v1/events/{id}/transitions`.
    fn act(&self, id: &str, body: Value) {
        let r = post_json_as(self.addr, &self.operator, &format!("/api/v1/events/{id}/transitions"), &body.to_string())
            .unwrap();
        assert_eq!(r.status, 200, "{body} on {id}: {}", r.body);
    }

    /// Dispatch through archive: the request is then closed.
    fn close(&self, id: &str) {
        self.act(id, json!({ "action": "dispatch", "to": "roads" }));
        for action in ["start", "handle", "verify", "archive"] {
            self.act(id, json!({ "action": action }));
        }
    }
}

fn seq(id: &str) -> u64 {
    id.rsplit_once(':').and_then(|(_, s)| s.parse().ok()).unwrap_or_else(|| panic!("{id} is not origin:seq"))
}

fn time_of(rfc3339: &str) -> OffsetDateTime {
    OffsetDateTime::parse(rfc3339, &Rfc3339).unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
}

fn format_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

// ---- 1. a GeoReport-only client follows its request through the seven steps -------------

#[test]
fn a_request_is_followed_through_the_seven_steps() {
    let started = Instant::now();
    let schemas = Schemas::load();
    // The validators do check what they are meant to: refs resolved, formats on.
    let good = json!([{ "service_request_id": "town-a:1", "status": "open", "service_code": "hazard",
                         "requested_datetime": "2026-11-05T08:15:30Z" }]);
    schemas.check(Answer::Requests, &good);
    let mut numeric_id = good.clone();
    numeric_id[0]["service_request_id"] = json!(1);
    let mut bad_date = good.clone();
    bad_date[0]["requested_datetime"] = json!("yesterday");
    let mut bad_url = good.clone();
    bad_url[0]["media_url"] = json!("not a url");
    for bad in [&numeric_id, &bad_date, &bad_url] {
        assert!(schemas.rejects(Answer::Requests, bad), "a schema accepts {bad}");
    }
    assert!(
        schemas.rejects(Answer::Services, &json!([{ "service_code": "x" }])),
        "a service without its required fields"
    );

    let node = start("");

    // The services are the grid categories.
    let services = node.get_ok(&schemas, "services.json", Answer::Services);
    let codes: Vec<&str> = services.as_array().unwrap().iter().map(|s| s["service_code"].as_str().unwrap()).collect();
    assert_eq!(
        codes,
        [
            "illegal_parking",
            "abandoned_vehicle",
            "property_dispute",
            "neighbour_dispute",
            "hazard",
            "sanitation",
            "other"
        ]
    );
    let hazard = services.as_array().unwrap().iter().find(|s| s["service_code"] == "hazard").unwrap();
    assert_eq!(hazard["service_name"], "Hazard");
    assert_eq!(hazard["group"], "safety");
    assert_eq!(hazard["type"], "realtime");
    assert_eq!(hazard["metadata"], false);
    let definition = node.get_ok(&schemas, "services/hazard.json", Answer::ServiceDefinition);
    assert_eq!(definition, json!({ "service_code": "hazard", "attributes": [] }));

    // A citizen reports a fallen tree, with contact details and a photo.
    let description = "Fallen tree across the cycle path by the pier, 海滨路 12";
    let id = node.post(
        &schemas,
        &[
            ("api_key", KEY),
            ("jurisdiction_id", "yiwang.example"),
            ("service_code", "hazard"),
            ("lat", "36.0671"),
            ("long", "120.3826"),
            ("address_string", "Binhai Road 12, by the pier"),
            ("description", description),
            ("email", "resident@example.org"),
            ("first_name", "Li"),
            ("last_name", "Wei"),
            ("phone", "+86 532 0000 0000"),
            ("device_id", "phone-7"),
            ("media_url", "https://photos.example.org/tree.jpg"),
            ("attribute[blocking]", "yes"),
        ],
    );
    assert!(id.starts_with(&format!("{NODE_ID}:")), "{id}");

    let r = node.request(&schemas, &id);
    assert_eq!(r["service_request_id"], id.as_str());
    assert_eq!(r["status"], "open");
    assert_eq!(r["status_notes"], "step: reported");
    assert_eq!(r["service_code"], "hazard");
    assert_eq!(r["service_name"], "Hazard");
    assert_eq!(r["description"], description);
    assert_eq!(r["address"], "Binhai Road 12, by the pier");
    assert_eq!(r["lat"], 36.0671);
    assert_eq!(r["long"], 120.3826);
    assert_eq!(r["media_url"], "https://photos.example.org/tree.jpg");
    assert_eq!(r["agency_responsible"], Value::Null);
    assert_eq!(r["zipcode"], Value::Null);
    let requested = time_of(r["requested_datetime"].as_str().unwrap());
    let expected = time_of(r["expected_datetime"].as_str().expect("a deadline to dispatch"));
    assert!(expected > requested);
    let raw = get(node.addr, &format!("{BASE}/requests/{id}.json")).unwrap().body;
    for private in ["resident@example.org", "0000 0000", "phone-7", "Wei"] {
        assert!(!raw.contains(private), "contact detail {private:?} served publicly: {raw}");
    }
    // swagger.json's singular path answers the same.
    assert_eq!(node.get_ok(&schemas, &format!("request/{id}.json"), Answer::Requests)[0], r);

    // Created synchronously: the token is the id.
    let token = node.get_ok(&schemas, &format!("tokens/{id}.json"), Answer::Token);
    assert_eq!(token, json!([{ "service_request_id": id, "token": id }]));

    // The centre sees an Open311 event with the contact details and attributes.
    let event = get_as(node.addr, &node.operator, &format!("/api/v1/events/{id}")).unwrap();
    assert_eq!(event.status, 200, "{}", event.body);
    let event = event.json();
    assert_eq!(event["source"], "open311");
    assert_eq!(event["reporter"], "open311:citizen-app");
    assert_eq!(event["attributes"]["blocking"], "yes");
    assert_eq!(event["attributes"]["media_url"], "https://photos.example.org/tree.jpg");

    // The centre moves it through the seven steps; the citizen sees each one.
    let steps: [(Value, &str, &str); 6] = [
        (json!({ "action": "dispatch", "to": "roads" }), "open", "step: dispatched; dispatched to roads"),
        (json!({ "action": "start" }), "open", "step: in_hand; dispatched to roads"),
        (json!({ "action": "handle" }), "open", "step: handled; dispatched to roads"),
        (json!({ "action": "verify" }), "open", "step: verified; dispatched to roads"),
        (json!({ "action": "archive" }), "closed", "step: archived; dispatched to roads"),
        (json!({ "action": "evaluate", "score": 4 }), "closed", "step: evaluated; dispatched to roads"),
    ];
    let mut closed_at = None;
    for (action, status, notes) in steps {
        node.act(&id, action.clone());
        let r = node.request(&schemas, &id);
        assert_eq!(r["status"], status, "after {action}");
        assert_eq!(r["status_notes"], notes, "after {action}");
        assert_eq!(r["agency_responsible"], "roads");
        assert_eq!(r["requested_datetime"], r["requested_datetime"]);
        if status == "open" {
            assert!(r["expected_datetime"].is_string(), "open requests have a deadline: {r}");
        } else {
            assert_eq!(r["expected_datetime"], Value::Null, "closed requests expect nothing more: {r}");
            // updated_datetime of a closed request is when it was closed (archived).
            let updated = r["updated_datetime"].as_str().unwrap().to_string();
            assert_eq!(closed_at.get_or_insert(updated.clone()), &updated);
        }
        // The same through the list, as a client polling several requests would.
        let listed = node.get_ok(&schemas, &format!("requests.json?service_request_id={id}"), Answer::Requests);
        assert_eq!(listed, json!([r]));
    }
    assert_eq!(node.list(&schemas, "status=closed"), std::slice::from_ref(&id));
    assert!(node.list(&schemas, "status=open").is_empty());
    node.process.terminate();
    eprintln!("seven steps: {:.1} s", started.elapsed().as_secs_f64());
}

// ---- 2. errors as the spec has them -----------------------------------------------------

/// Check a GeoReport error: the status, and `[{"code": status, "description": "...<needle>..."}]`.
fn assert_error(r: &yiwang_tests::Response, status: u16, needle: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    let body = r.json();
    let errors = body.as_array().unwrap_or_else(|| panic!("{what}: not an error array: {body}"));
    assert_eq!(errors.len(), 1, "{what}: {body}");
    assert_eq!(errors[0]["code"], status, "{what}: {body}");
    let description = errors[0]["description"].as_str().unwrap_or_else(|| panic!("{what}: {body}"));
    assert!(description.contains(needle), "{what}: {description:?} does not mention {needle:?}");
}

#[test]
fn errors_are_the_specs_error_arrays() {
    let node = start("");
    let post = |pairs: &[(&str, &str)]| post_form(node.addr, &format!("{BASE}/requests.json"), &form(pairs)).unwrap();
    let valid: Vec<(&str, &str)> = vec![
        ("api_key", KEY),
        ("service_code", "sanitation"),
        ("lat", "36.06"),
        ("long", "120.38"),
        ("description", "Rubbish dumped behind the bus stop"),
    ];
    // `valid` with `name` replaced by `value` (or left out when `value` is None).
    let with = |changes: &[(&'static str, Option<&'static str>)]| -> Vec<(&str, &str)> {
        let mut pairs: Vec<(&str, &str)> =
            valid.iter().filter(|(k, _)| !changes.iter().any(|(c, _)| c == k)).copied().collect();
        pairs.extend(changes.iter().filter_map(|(k, v)| v.map(|v| (*k, v))));
        pairs
    };

    // (parameters, status, what the description says, what the case is)
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (with(&[("api_key", None)]), 403, "api_key is required", "no key"),
        (with(&[("api_key", Some("not-a-key-at-all"))]), 403, "api_key is not valid", "bad key"),
        (with(&[("service_code", Some("potholes"))]), 404, "\"potholes\"", "unknown service"),
        (with(&[("service_code", None)]), 400, "service_code is required", "no service"),
        (with(&[("lat", Some("north"))]), 400, "lat \"north\" is not a number", "lat not a number"),
        (with(&[("long", Some("120,38"))]), 400, "long \"120,38\" is not a number", "decimal comma"),
        (with(&[("lat", Some("91"))]), 400, "lat \"91\" is outside -90..90", "lat out of range"),
        (with(&[("long", Some("-180.5"))]), 400, "outside -180..180", "long out of range"),
        (with(&[("lat", Some("NaN"))]), 400, "lat \"NaN\" is outside", "NaN"),
        (with(&[("long", Some("inf"))]), 400, "outside", "infinity"),
        (with(&[("long", None)]), 400, "lat is given without long", "lat alone"),
        (with(&[("lat", None)]), 400, "long is given without lat", "long alone"),
        (with(&[("lat", None), ("long", None)]), 400, "a location is required", "no location"),
        (
            with(&[("lat", None), ("long", None), ("address_id", Some("A-17"))]),
            400,
            "address_id alone",
            "address_id only",
        ),
        (with(&[("description", None)]), 400, "description is required", "no description"),
        (with(&[("description", Some("   "))]), 400, "description is required", "blank description"),
        (with(&[("lon", Some("120.38"))]), 400, "unknown parameter \"lon\"", "typo"),
        (with(&[("media_url", Some("javascript:alert(1)"))]), 400, "media_url", "bad media_url"),
        (with(&[("attribute[media_url]", Some("x"))]), 400, "attribute[media_url]", "reserved attribute"),
    ];
    let n_cases = cases.len();
    for (pairs, status, needle, what) in cases {
        assert_error(&post(&pairs), status, needle, what);
    }

    let long = "x".repeat(4001);
    assert_error(&post(&with(&[("description", Some(long.leak()))])), 400, "4001 characters", "4001 chars");
    // The limit is the spec's 4000 characters, whatever their size in UTF-8.
    let chinese = "海".repeat(4001);
    assert_error(&post(&with(&[("description", Some(chinese.leak()))])), 400, "4001 characters", "CJK description");
    let twice = format!("{}&lat=36.07", form(&valid));
    assert_error(
        &post_form(node.addr, &format!("{BASE}/requests.json"), &twice).unwrap(),
        400,
        "lat is given more than once",
        "lat twice",
    );
    let bad_escape = format!("{}&description=50%zz", form(&with(&[("description", None)])));
    assert_error(
        &post_form(node.addr, &format!("{BASE}/requests.json"), &bad_escape).unwrap(),
        400,
        "percent-escape",
        "bad escape",
    );
    // A body over the API's 64 KiB limit.
    let huge = format!("{}&attribute[notes]={}", form(&valid), "y".repeat(70 * 1024));
    assert_error(
        &post_form(node.addr, &format!("{BASE}/requests.json"), &huge).unwrap(),
        413,
        "65536-byte limit",
        "oversized body",
    );
    // JSON is not how GeoReport v2 posts.
    let r = post_json(node.addr, &format!("{BASE}/requests.json"), &json!({ "api_key": KEY }).to_string()).unwrap();
    assert_error(&r, 415, "application/x-www-form-urlencoded", "JSON body");

    let gets: [(&str, u16, &str); 14] = [
        ("services/potholes.json", 404, "no service with service_code \"potholes\""),
        ("services/hazard", 400, "does not end in .json or .xml"),
        ("requests/town-311:999.json", 404, "no service request with service_request_id \"town-311:999\""),
        ("requests/garbage.json", 404, "no service request"),
        ("tokens/nope.json", 404, "no service request with token \"nope\""),
        ("requests.json?status=pending", 400, "status \"pending\" is not open or closed"),
        ("requests.json?start_date=yesterday", 400, "start_date \"yesterday\" is not a W3C date-time"),
        ("requests.json?end_date=2026-13-01T00:00:00Z", 400, "end_date"),
        ("requests.json?start_date=2026-02-01T00:00:00Z&end_date=2026-01-01T00:00:00Z", 400, "after end_date"),
        ("requests.json?start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z", 400, "more than 90 days"),
        ("requests.json?service_code=potholes", 404, "\"potholes\""),
        ("requests.json?service_request_id=12", 400, "not a request id"),
        ("requests.json?sort=desc", 400, "unknown parameter \"sort\""),
        ("nothing.json", 404, "no such GeoReport v2 resource"),
    ];
    for (path, status, needle) in gets {
        assert_error(&get(node.addr, &format!("{BASE}/{path}")).unwrap(), status, needle, path);
    }
    let r = request(node.addr, "PUT", &format!("{BASE}/requests.json"), &[], b"").unwrap();
    assert_error(&r, 405, "method not allowed", "PUT");

    // Nothing refused was stored.
    let events = get_as(node.addr, &node.operator, "/api/v1/events").unwrap();
    assert_eq!(events.json()["events"], json!([]), "a refused request left an event");
    // ...and the valid request is accepted, with its key in the query string as swagger.json has it.
    let without_key: Vec<(&str, &str)> = valid.iter().filter(|(k, _)| *k != "api_key").copied().collect();
    let r = post_form(node.addr, &format!("{BASE}/requests.json?api_key={KEY}"), &form(&without_key)).unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    eprintln!("{} error cases checked", n_cases + gets.len() + 11);
    node.process.terminate();
}

// ---- 3. SIGKILL between POST and GET ----------------------------------------------------

#[test]
fn acknowledged_requests_survive_sigkill() {
    let schemas = Schemas::load();
    let node = start("");
    let addr = node.addr;
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let stop_at = Instant::now() + Duration::from_secs(20);
    let clients: Vec<_> = (0..3)
        .map(|client| {
            let acked = acked.clone();
            std::thread::spawn(move || {
                for n in 0.. {
                    let description = format!("client {client} report {n}: broken street light");
                    let body = form(&[
                        ("api_key", KEY),
                        ("service_code", ["hazard", "sanitation", "other"][client]),
                        ("address_string", &format!("Lamp post {client}-{n}, Harbour Road")),
                        ("description", &description),
                    ]);
                    match post_form(addr, &format!("{BASE}/requests.json"), &body) {
                        Ok(r) if r.status == 201 => {
                            let id = r.json()[0]["service_request_id"].as_str().unwrap().to_string();
                            assert!(acked.lock().unwrap().insert(id, description).is_none(), "an id given twice");
                        }
                        Ok(r) => panic!("unexpected answer {}: {}", r.status, r.body),
                        // Killed: what was not answered was not acknowledged.
                        Err(_) => return,
                    }
                    if Instant::now() > stop_at {
                        return;
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    while acked.lock().unwrap().len() < 200 {
        assert!(Instant::now() < deadline, "too few requests acknowledged; log:\n{}", node.process.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    // Kill while the clients are still posting.
    let node = node.restart();
    for c in clients {
        c.join().unwrap();
    }
    let acked = Arc::try_unwrap(acked).unwrap().into_inner().unwrap();
    eprintln!("acknowledged before SIGKILL: {} requests", acked.len());

    for (id, description) in &acked {
        let r = node.request(&schemas, id);
        assert_eq!(r["description"], description.as_str(), "{id}");
        assert_eq!(r["status"], "open");
    }
    // The list has them all, once each, and ids go on past them.
    let listed = node.list(&schemas, "");
    let unique: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "a request listed twice");
    assert!(acked.keys().all(|id| unique.contains(id)), "an acknowledged request is missing from the list");
    let after = node.post_simple(&schemas, "hazard", "after the restart");
    assert!(acked.keys().all(|id| seq(id) < seq(&after)), "id {after} reused after restart");
    node.process.terminate();
}

// ---- 4. filters -------------------------------------------------------------------------

#[test]
fn requests_filter_by_service_status_date_and_id() {
    let schemas = Schemas::load();
    // Grid workers' reports of `other` are public; their other reports are not.
    let node = start_with(
        "[[api.tokens]]\nname = \"worker-chen\"\nrole = \"grid_worker\"\ntoken = \"worker-chen-token-0001\"\n\
         [api]\nopen311_public_categories = [\"other\"]\n\
         [watchlist]\nfile = \"watchlist.csv\"\n[[feeds.checkpoint]]\nname = \"roads\"\nhttp = \"127.0.0.1:0\"\n",
        &[(
            "watchlist.csv",
            &yiwang_tests::watchlist_line("plate", "LUB311XX", "stolen", "reported stolen", "officer-test"),
        )],
    );

    // Two batches more than a second apart (requested_datetime is to the second).
    let a_hazard: Vec<String> =
        (0..3).map(|i| node.post_simple(&schemas, "hazard", &format!("batch A hazard {i}"))).collect();
    let a_sanitation: Vec<String> =
        (0..2).map(|i| node.post_simple(&schemas, "sanitation", &format!("batch A sanitation {i}"))).collect();
    std::thread::sleep(Duration::from_millis(1100));
    let b_hazard: Vec<String> =
        (0..2).map(|i| node.post_simple(&schemas, "hazard", &format!("batch B hazard {i}"))).collect();
    let b_parking = node.post_simple(&schemas, "illegal_parking", "batch B parking");
    let a: Vec<&String> = a_hazard.iter().chain(&a_sanitation).collect();
    let b: Vec<&String> = b_hazard.iter().chain([&b_parking]).collect();
    // Newest first: descending ids of one node.
    let newest_first = |ids: Vec<&String>| -> Vec<String> {
        let mut ids: Vec<String> = ids.into_iter().cloned().collect();
        ids.sort_by_key(|id| std::cmp::Reverse(seq(id)));
        ids
    };

    // By date: start_date and end_date bound requested_datetime, inclusive.
    let a_first = time_of(node.request(&schemas, a[0])["requested_datetime"].as_str().unwrap());
    let a_last = time_of(node.request(&schemas, a[4])["requested_datetime"].as_str().unwrap());
    let b_first = node.request(&schemas, b[0])["requested_datetime"].as_str().unwrap().to_string();
    let q = |name: &str, t: &str| format!("{name}={}", yiwang_tests::urlencode(t));
    assert_eq!(node.list(&schemas, &q("start_date", &b_first)), newest_first(b.clone()));
    let a_end = format_time(a_last + time::Duration::seconds(1));
    assert_eq!(node.list(&schemas, &q("end_date", &a_end)), newest_first(a.clone()));
    let both = format!("{}&{}", q("start_date", &format_time(a_first)), q("end_date", &a_end));
    assert_eq!(node.list(&schemas, &both), newest_first(a.clone()));
    // Another zone's offset names the same instant.
    let b_first_offset = format_time(time_of(&b_first).to_offset(time::UtcOffset::from_hms(8, 0, 0).unwrap()));
    assert!(b_first_offset.ends_with("+08:00"), "{b_first_offset}");
    assert_eq!(node.list(&schemas, &q("start_date", &b_first_offset)), newest_first(b.clone()));
    let long_ago = "start_date=2020-01-01T00:00:00Z&end_date=2020-03-01T00:00:00Z";
    assert!(node.list(&schemas, long_ago).is_empty());

    // The centre closes one, and reports a grid event of its own; an alert becomes an event too.
    node.close(&a_sanitation[0]);
    let grid = post_json_as(
        node.addr,
        &node.operator,
        "/api/v1/events",
        &json!({ "category": "other", "address": "Harbour gate", "description": "gate left open" }).to_string(),
    )
    .unwrap();
    assert_eq!(grid.status, 201, "{}", grid.body);
    let grid = grid.json()["id"].as_str().unwrap().to_string();
    let private = post_json_as(
        node.addr,
        "worker-chen-token-0001",
        "/api/v1/events",
        &json!({ "category": "hazard", "lat": 22.5, "lon": 114.1, "description": "loose cable, reported by a worker" })
            .to_string(),
    )
    .unwrap();
    assert_eq!(private.status, 201, "{}", private.body);
    let private = private.json()["id"].as_str().unwrap().to_string();
    let detection = r#"[{"data_type":"alpr_group","best_plate_number":"LUB311XX","best_confidence":92.5,"checkpoint_id":"cp-7","epoch_start":1764146400000}]"#;
    let r = post_json(node.process.feed("roads", "http"), "/ingest", detection).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let deadline = Instant::now() + Duration::from_secs(10);
    let alert = loop {
        let r = get_as(node.addr, &node.operator, "/api/v1/events?category=watchlist_hit").unwrap().json();
        if let Some(id) = r["events"][0]["id"].as_str() {
            break id.to_string();
        }
        assert!(Instant::now() < deadline, "the watchlist hit did not become an event; log:\n{}", node.process.log());
        std::thread::sleep(Duration::from_millis(50));
    };

    // Everything people reported is listed, newest first; the alert is not a service request.
    let mut all: Vec<&String> = a.iter().chain(&b).copied().collect();
    all.push(&grid);
    assert_eq!(node.list(&schemas, ""), newest_first(all.clone()));
    let r = get(node.addr, &format!("{BASE}/requests/{alert}.json")).unwrap();
    assert_error(&r, 404, "no service request", "an alert event");
    // A grid worker's report in a category that is not public is not shown either.
    let r = get(node.addr, &format!("{BASE}/requests/{private}.json")).unwrap();
    assert_error(&r, 404, "no service request", "a worker's report");
    assert!(!get(node.addr, &format!("{BASE}/requests.json")).unwrap().body.contains("loose cable"));
    assert!(node.list(&schemas, &format!("service_request_id={alert}")).is_empty());
    assert!(!get(node.addr, &format!("{BASE}/requests.json")).unwrap().body.contains("LUB311XX"));

    // By service.
    assert_eq!(node.list(&schemas, "service_code=hazard"), newest_first(a_hazard.iter().chain(&b_hazard).collect()));
    assert_eq!(
        node.list(&schemas, "service_code=sanitation,illegal_parking"),
        newest_first(a_sanitation.iter().chain([&b_parking]).collect())
    );
    assert_eq!(node.list(&schemas, "service_code=other"), std::slice::from_ref(&grid));
    assert!(node.list(&schemas, "service_code=abandoned_vehicle").is_empty());

    // By status.
    assert_eq!(node.list(&schemas, "status=closed"), std::slice::from_ref(&a_sanitation[0]));
    let open: Vec<&String> = all.iter().copied().filter(|id| **id != a_sanitation[0]).collect();
    assert_eq!(node.list(&schemas, "status=open"), newest_first(open));
    assert_eq!(node.list(&schemas, "status=open,closed"), newest_first(all.clone()));
    assert_eq!(node.list(&schemas, "status=closed&status=open"), newest_first(all.clone()));
    assert!(node.list(&schemas, "status=closed&service_code=hazard").is_empty());
    assert_eq!(node.list(&schemas, "status=closed&service_code=sanitation"), std::slice::from_ref(&a_sanitation[0]));
    let closed = node.request(&schemas, &a_sanitation[0]);
    assert_eq!(closed["status"], "closed");
    assert_eq!(closed["status_notes"], "step: archived; dispatched to roads");

    // By id: a list overrides every other filter; unknown ids are left out.
    let ids = format!("{},{},{NODE_ID}:9999,{}", a_hazard[0], b_parking, a_hazard[0]);
    let by_id = node.list(&schemas, &format!("service_request_id={}&status=closed&service_code=sanitation", ids));
    assert_eq!(by_id, [b_parking.clone(), a_hazard[0].clone()]);
    let repeated = format!("service_request_id={}&service_request_id={}", a_hazard[1], grid);
    assert_eq!(node.list(&schemas, &repeated), [grid.clone(), a_hazard[1].clone()]);

    // Dispatched to a person, a request names no one: not the worker, not in the notes.
    node.act(&b_parking, json!({ "action": "dispatch", "to": "worker-chen" }));
    let r = node.request(&schemas, &b_parking);
    assert_eq!(r["agency_responsible"], Value::Null, "{r}");
    assert_eq!(r["status_notes"], "step: dispatched", "{r}");
    assert!(!get(node.addr, &format!("{BASE}/requests.json")).unwrap().body.contains("worker-chen"));
    node.process.terminate();
}

// ---- XML ----------------------------------------------------------------------------------

/// An XML element as a test compares it: its name, its text, its children in order.
#[derive(Debug, Clone, PartialEq)]
struct Element {
    name: String,
    text: String,
    children: Vec<Element>,
}

impl Element {
    /// Parse a whole document with quick-xml; panics on anything ill-formed.
    fn parse(doc: &str) -> Element {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_str(doc);
        let mut stack: Vec<Element> = Vec::new();
        let element = |name: &[u8]| Element {
            name: String::from_utf8(name.to_vec()).unwrap(),
            text: String::new(),
            children: vec![],
        };
        loop {
            match reader.read_event().unwrap_or_else(|e| panic!("not well-formed XML ({e}): {doc}")) {
                Event::Start(e) => stack.push(element(e.name().as_ref())),
                Event::Empty(e) => stack.last_mut().expect("inside the root").children.push(element(e.name().as_ref())),
                Event::Text(t) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&t.unescape().unwrap());
                    }
                }
                Event::End(_) => {
                    let done = stack.pop().unwrap();
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(done),
                        None => return done,
                    }
                }
                Event::Eof => panic!("the document ended inside an element: {doc}"),
                _ => {}
            }
        }
    }

    /// The element's shape: names only, each child's shape in order.
    fn shape(&self) -> String {
        if self.children.is_empty() {
            return self.name.clone();
        }
        let children: Vec<String> = self.children.iter().map(Element::shape).collect();
        format!("{}({})", self.name, children.join(","))
    }

    fn child(&self, name: &str) -> &Element {
        self.children.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no <{name}> in {self:?}"))
    }
}

/// The spec's example answer `name` (tests/corpora/open311/xml).
fn spec_example(name: &str) -> Element {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpora/open311/xml").join(format!("{name}.xml"));
    Element::parse(&std::fs::read_to_string(path).unwrap())
}

/// The shape of an answer's first item, or of the whole answer when it has no items.
fn item_shape(doc: &Element) -> String {
    match doc.name.as_str() {
        "service_definition" => doc.shape(),
        _ => doc.children.first().unwrap_or_else(|| panic!("no items in {doc:?}")).shape(),
    }
}

/// Every GeoReport v2 call answers at its `.xml` URL as the spec's examples show: the same root,
/// item and field elements in the same order, errors included. (A third-party Open311 client
/// in XML mode got 400 for every call before.)
#[test]
fn every_call_answers_in_xml_as_the_spec_shows() {
    let node = start("");
    let xml_get = |path: &str, status: u16| -> Element {
        let r = yiwang_tests::request_with_headers(node.addr, "GET", &format!("{BASE}/{path}"), &[], b"").unwrap();
        assert_eq!(r.status, status, "GET {path}: {}", r.body);
        assert_eq!(r.header("content-type"), Some("text/xml; charset=utf-8"), "GET {path}");
        Element::parse(&r.body)
    };

    let services = xml_get("services.xml", 200);
    let example = spec_example("services");
    assert_eq!((services.name.as_str(), services.children[0].name.as_str()), ("services", "service"));
    assert_eq!(item_shape(&services), item_shape(&example));
    let hazard = services.children.iter().find(|s| s.child("service_code").text == "hazard").expect("hazard");
    assert_eq!(hazard.child("metadata").text, "false");

    let definition = xml_get("services/hazard.xml", 200);
    assert_eq!(definition.name, "service_definition");
    assert_eq!(
        definition.children.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        spec_example("service_definition").children.iter().map(|c| c.name.as_str()).collect::<Vec<_>>()
    );

    // A POST to requests.xml answers in XML too.
    let pairs = [
        ("api_key", KEY),
        ("service_code", "hazard"),
        ("lat", "36.0671"),
        ("long", "120.3826"),
        ("description", "a fallen <sign> & a pole"),
    ];
    let r = post_form(node.addr, &format!("{BASE}/requests.xml"), &form(&pairs)).unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let created = Element::parse(&r.body);
    assert_eq!(created.name, "service_requests");
    assert_eq!(item_shape(&created), item_shape(&spec_example("post_request")));
    let id = created.children[0].child("service_request_id").text.clone();

    for path in [format!("requests/{id}.xml"), "requests.xml".to_string()] {
        let requests = xml_get(&path, 200);
        assert_eq!(requests.name, "service_requests", "{path}");
        assert_eq!(item_shape(&requests), item_shape(&spec_example("requests")), "{path}");
        let request = &requests.children[0];
        assert_eq!(request.child("service_request_id").text, id);
        assert_eq!(request.child("description").text, "a fallen <sign> & a pole", "escaped and read back");
        assert_eq!(request.child("lat").text.parse::<f64>().unwrap(), 36.0671);
    }
    let token = xml_get(&format!("tokens/{id}.xml"), 200);
    assert_eq!(item_shape(&token), item_shape(&spec_example("token")));

    // Errors: the spec's <errors>, with the HTTP status as the code.
    let error_shape = item_shape(&spec_example("error"));
    for (path, status) in [
        (format!("requests/{NODE_ID}:999.xml"), 404),
        ("services/potholes.xml".to_string(), 404),
        ("requests.xml?status=pending".to_string(), 400),
        ("nothing.xml".to_string(), 404),
    ] {
        let e = xml_get(&path, status);
        assert_eq!(e.name, "errors", "{path}");
        assert_eq!(item_shape(&e), error_shape, "{path}");
        assert_eq!(e.children[0].child("code").text, status.to_string(), "{path}");
    }
    let r = post_form(node.addr, &format!("{BASE}/requests.xml"), &form(&[("service_code", "hazard")])).unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(item_shape(&Element::parse(&r.body)), error_shape);
    // JSON is unchanged.
    assert!(get(node.addr, &format!("{BASE}/services.json")).unwrap().json().is_array());
    node.process.terminate();
}
