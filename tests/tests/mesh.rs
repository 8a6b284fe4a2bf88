//! A real mesh on loopback: one city, two counties, four towns, each a `yiwang-node` process
//! with certificates made by `yiwangctl deploy generate`. Towns report and escalate events
//! throughout while a county is killed (its towns fail over to the city) and brought back and
//! a town is killed and restarted. At the end every node holds exactly the entries its subtree
//! originated, nothing lost and nothing twice; answers sent down reach their owners once;
//! watchlist edits made at different tiers converge everywhere. Peers with a certificate from
//! another CA, an expired certificate, or entries under another town's id are refused, counted
//! and audited.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use yiwang_tests::{export, get_as, post_json_as, wait_until, NodeProcess};

const SITES: &[(&str, &str, &[&str])] = &[
    ("city", "city", &[]),
    ("county-a", "county", &["city"]),
    ("county-b", "county", &["city"]),
    ("town-a1", "town", &["county-a", "city"]),
    ("town-a2", "town", &["county-a", "city"]),
    ("town-b1", "town", &["county-b", "city"]),
    ("town-b2", "town", &["county-b", "city"]),
];
const TOWNS: &[&str] = &["town-a1", "town-a2", "town-b1", "town-b2"];
/// In the topology, never started.
const IDLE_TOWN: &str = "town-a3";
/// Audit entries per second a node takes of one origin in this test (a burst of ten seconds'
/// worth): a few times what a town's traffic writes.
const AUDIT_QUOTA: u64 = 200;
/// Audit entries `refusals` sends as the idle town: past the quota's burst.
const FLOOD_AUDIT: u64 = 2 + 12 * AUDIT_QUOTA;
/// Kinds that travel up, and what each node must end up holding of them.
const UP_KINDS: &[&str] = &["alert", "escalation", "summary", "audit"];

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Mesh {
    gen: PathBuf,
    nodes: BTreeMap<&'static str, Option<NodeProcess>>,
    mesh_addr: BTreeMap<&'static str, SocketAddr>,
    /// Where each node's API is now (it moves when a node restarts).
    api: Arc<Mutex<HashMap<&'static str, SocketAddr>>>,
    tokens: HashMap<&'static str, String>,
}

impl Mesh {
    fn generate(dir: &Path) -> Mesh {
        let mut topology = String::new();
        let mut mesh_addr = BTreeMap::new();
        for (id, role, parents) in SITES {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
            mesh_addr.insert(*id, addr);
            let parents: Vec<String> = parents.iter().map(|p| format!("{p:?}")).collect();
            topology.push_str(&format!(
                "[[site]]\nid = \"{id}\"\nrole = \"{role}\"\nmesh = \"{addr}\"\nparents = [{}]\n\n",
                parents.join(", ")
            ));
        }
        // A town that is in the topology (so it has a valid certificate) but never runs: the
        // test speaks as it, and no real node races it for its link.
        topology.push_str(&format!(
            "[[site]]\nid = \"{IDLE_TOWN}\"\nrole = \"town\"\nmesh = \"127.0.0.1:{}\"\nparents = [\"county-a\"]\n",
            free_udp_port()
        ));
        let gen = yiwang_tests::deploy_generate(dir, &topology);
        for (id, _, _) in SITES {
            // A short idle timeout, so a dead parent is noticed in seconds, and refused
            // handshakes audited in aggregate every second, so the test sees every record.
            let config = gen.join(id).join("node.toml");
            let mut text = std::fs::read_to_string(&config).unwrap();
            text.push_str("idle_timeout = \"3s\"\nrefusal_audit_interval = \"1s\"\n");
            // An audit quota the towns' traffic stays under and `refusals` goes past.
            text.push_str(&format!("\n[mesh.receive_quota]\naudit = {AUDIT_QUOTA}\n"));
            std::fs::write(&config, text).unwrap();
            std::fs::create_dir_all(gen.join(id).join("data")).unwrap();
        }
        Mesh {
            gen,
            nodes: BTreeMap::new(),
            mesh_addr,
            api: Arc::new(Mutex::new(HashMap::new())),
            tokens: HashMap::new(),
        }
    }

    fn config(&self, id: &str) -> PathBuf {
        self.gen.join(id).join("node.toml")
    }

    fn start(&mut self, id: &'static str) {
        let node = NodeProcess::start(&self.config(id), &self.gen.join(id).join("data"));
        self.api.lock().unwrap().insert(id, node.http());
        self.tokens.insert(id, yiwang_tests::operator_token(&self.gen.join(id).join("data")));
        self.nodes.insert(id, Some(node));
    }

    fn kill(&mut self, id: &'static str) {
        self.nodes.get_mut(id).and_then(Option::take).expect("running").kill();
    }

    fn stop_all(&mut self) {
        for node in self.nodes.values_mut() {
            if let Some(n) = node.take() {
                n.terminate();
            }
        }
    }

    fn addr(&self, id: &str) -> SocketAddr {
        self.api.lock().unwrap()[id]
    }

    fn get(&self, id: &'static str, path: &str) -> Value {
        let r = get_as(self.addr(id), &self.tokens[id], path).unwrap();
        assert_eq!(r.status, 200, "{id} GET {path}: {}", r.body);
        r.json()
    }

    fn post(&self, id: &'static str, path: &str, body: Value) -> Value {
        let r = post_json_as(self.addr(id), &self.tokens[id], path, &body.to_string()).unwrap();
        assert!((200..300).contains(&r.status), "{id} POST {path}: {} {}", r.status, r.body);
        r.json()
    }

    fn metrics(&self, id: &str) -> String {
        yiwang_tests::get(self.addr(id), "/metrics").unwrap().body
    }

    fn link_state(&self, id: &'static str, peer: &str) -> Option<String> {
        self.get(id, "/api/v1/links")["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["peer"] == peer)
            .map(|l| l["state"].as_str().unwrap().to_string())
    }

    /// Escalations (event, n) a node has received from the towns below it.
    fn incoming(&self, id: &'static str) -> BTreeSet<(String, u64)> {
        let mut out = BTreeSet::new();
        for town in TOWNS {
            let page = self.get(id, &format!("/api/v1/escalations?origin={town}&limit=500"));
            let list = page["escalations"].as_array().unwrap();
            assert!(list.len() < 500, "more escalations than one page holds");
            out.extend(list.iter().map(|e| (e["event"].as_str().unwrap().to_string(), e["n"].as_u64().unwrap())));
        }
        out
    }
}

/// Towns report events and escalate every other one for as long as `run` is set. Returns the
/// acknowledged escalations per town.
/// A town's acknowledged escalations: (event id, escalation number).
type Escalated = (String, BTreeSet<(String, u64)>);

fn traffic(mesh: &Mesh, run: Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<Escalated>> {
    TOWNS
        .iter()
        .map(|&town| {
            let api = mesh.api.clone();
            let token = mesh.tokens[town].clone();
            let run = run.clone();
            std::thread::spawn(move || {
                let mut escalated = BTreeSet::new();
                let mut i = 0;
                while run.load(Ordering::Relaxed) {
                    let addr = api.lock().unwrap()[town];
                    let body = json!({"category": "hazard", "address": format!("{town} street {i}"), "description": "cracked wall"});
                    match post_json_as(addr, &token, "/api/v1/events", &body.to_string()) {
                        Ok(r) if r.status == 201 => {
                            let id = r.json()["id"].as_str().unwrap().to_string();
                            if i % 2 == 0 {
                                let esc = json!({"department": "county-build", "tier": "county", "reason": "unsafe"});
                                if let Ok(r) = post_json_as(addr, &token, &format!("/api/v1/events/{id}/escalations"), &esc.to_string()) {
                                    if r.status == 201 {
                                        escalated.insert((id, 1));
                                    }
                                }
                            }
                            i += 1;
                        }
                        // The town is down for a moment: nothing was acknowledged; try again.
                        _ => std::thread::sleep(Duration::from_millis(200)),
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                (town.to_string(), escalated)
            })
        })
        .collect()
}

#[test]
fn a_mesh_converges_through_kills_restarts_and_failover() {
    let tmp = yiwang_tests::test_dir("mesh");
    let dir = tmp.path().to_path_buf();
    let mut mesh = Mesh::generate(&dir);
    for (id, _, _) in SITES {
        mesh.start(id);
    }
    wait_until("every link up", Duration::from_secs(30), || {
        for &town in TOWNS {
            let parent = if town.starts_with("town-a") { "county-a" } else { "county-b" };
            match mesh.link_state(town, parent).as_deref() {
                Some("up" | "catching_up") => {}
                other => return Err(format!("{town} → {parent}: {other:?}")),
            }
        }
        Ok(())
    });

    // Watchlist edits at three tiers, before any fault, each naming who ordered it, under
    // what law, and for how long.
    let month = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let basis = |authority: &str, legal_basis: &str| json!({"authority": authority, "legal_basis": legal_basis, "expires": month});
    let with = |mut entry: Value, basis: Value| {
        entry.as_object_mut().unwrap().extend(basis.as_object().unwrap().clone());
        entry
    };
    mesh.post(
        "city",
        "/api/v1/watchlist",
        with(
            json!({"kind": "plate", "subject": "鲁K00001", "list": "stolen", "reason": "city notice 1"}),
            basis("Weihai PSB", "notice 1"),
        ),
    );
    mesh.post(
        "county-b",
        "/api/v1/watchlist",
        with(
            json!({"kind": "mmsi", "subject": "412000001", "list": "detained", "reason": "county order 7"}),
            basis("Rongcheng MSA", "order 7"),
        ),
    );
    mesh.post(
        "town-a1",
        "/api/v1/watchlist",
        with(
            json!({"kind": "plate", "subject": "鲁K00002", "list": "unpaid", "reason": "town fine 3"}),
            basis("town office", "fine 3"),
        ),
    );

    let run = Arc::new(AtomicBool::new(true));
    let workers = traffic(&mesh, run.clone());
    std::thread::sleep(Duration::from_secs(2));

    // County A dies: its towns must fail over to the city.
    mesh.kill("county-a");
    wait_until("town-a1 failing over to the city", Duration::from_secs(30), || {
        match mesh.link_state("town-a1", "city").as_deref() {
            Some("up" | "catching_up") => Ok(()),
            other => Err(format!("town-a1 → city: {other:?}")),
        }
    });
    assert_eq!(mesh.link_state("town-a1", "county-a").as_deref(), Some("partitioned"));
    std::thread::sleep(Duration::from_secs(2));
    mesh.start("county-a");
    // A town dies mid-traffic and comes back.
    mesh.kill("town-b1");
    std::thread::sleep(Duration::from_millis(500));
    mesh.start("town-b1");
    std::thread::sleep(Duration::from_secs(3));
    run.store(false, Ordering::Relaxed);
    let acked: BTreeMap<String, BTreeSet<(String, u64)>> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let total: usize = acked.values().map(BTreeSet::len).sum();
    assert!(total >= 8, "too little traffic to prove anything: {total} escalations");

    // Every acknowledged escalation reaches its county (which missed some while it was dead)
    // and the city.
    let expect =
        |towns: &[&str]| -> BTreeSet<(String, u64)> { towns.iter().flat_map(|t| acked[*t].iter().cloned()).collect() };
    for (node, towns) in [("county-a", &TOWNS[..2]), ("county-b", &TOWNS[2..]), ("city", TOWNS)] {
        let want = expect(towns);
        wait_until(&format!("{node} holding every escalation"), Duration::from_secs(60), || {
            let have = mesh.incoming(node);
            let missing: Vec<_> = want.difference(&have).take(3).collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("{} missing, e.g. {missing:?}", want.difference(&have).count()))
            }
        });
    }
    wait_until("town-a1 back on its preferred parent", Duration::from_secs(30), || {
        match mesh.link_state("town-a1", "county-a").as_deref() {
            Some("up" | "catching_up") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });

    // The county answers one escalation of each of its towns; the answers reach the owners.
    for town in &TOWNS[..2] {
        let (event, n) = acked[*town].iter().next().unwrap().clone();
        mesh.post(
            "county-a",
            &format!("/api/v1/escalations/{event}/{n}/answers"),
            json!({"answer": "acknowledge", "by": "county-build", "note": "on our way"}),
        );
        wait_until(&format!("{town} applying the answer"), Duration::from_secs(30), || {
            let e = mesh.get(town, &format!("/api/v1/events/{event}"));
            match e["escalations"][0]["status"].as_str() {
                Some("acknowledged") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
    }

    // An escalation to the city passes through the county, which may not answer it: the answer
    // comes only from the tier it went to. The city may. (Town-b1: the towns of county-a are
    // checked below to have applied exactly one answer each.)
    let town = TOWNS[2];
    let event =
        mesh.post(town, "/api/v1/events", json!({"category": "hazard", "address": "pier 1", "description": "crane"}));
    let event = event["id"].as_str().unwrap().to_string();
    let esc = json!({"department": "city-fire", "tier": "city", "reason": "beyond the county"});
    mesh.post(town, &format!("/api/v1/events/{event}/escalations"), esc);
    wait_until("the city-tier escalation reaching the county and the city", Duration::from_secs(30), || {
        for tier in ["county-b", "city"] {
            if !mesh.incoming(tier).contains(&(event.clone(), 1)) {
                return Err(format!("not yet at {tier}"));
            }
        }
        Ok(())
    });
    let ack = json!({"answer": "acknowledge", "by": "county-build", "note": "not ours to answer"});
    let r = post_json_as(
        mesh.addr("county-b"),
        &mesh.tokens["county-b"],
        &format!("/api/v1/escalations/{event}/1/answers"),
        &ack.to_string(),
    )
    .unwrap();
    assert_eq!(r.status, 400, "the county answered a city-tier escalation: {}", r.body);
    assert!(r.body.contains("went to the city tier"), "{}", r.body);
    let ack = json!({"answer": "acknowledge", "by": "city-fire", "note": "on our way"});
    mesh.post("city", &format!("/api/v1/escalations/{event}/1/answers"), ack);
    wait_until(&format!("{town} applying the city's answer"), Duration::from_secs(30), || {
        let e = mesh.get(town, &format!("/api/v1/events/{event}"));
        match e["escalations"][0]["status"].as_str() {
            Some("acknowledged") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });

    // The city's picture of the summaries: the latest version of every town's windows equals
    // what each town counts for itself.
    let from = "2000-01-01T00:00:00Z";
    wait_until("town summaries reaching the city", Duration::from_secs(30), || {
        let city = mesh.get("city", &format!("/api/v1/summaries?scope=mesh&from={from}"));
        for &town in TOWNS {
            let own = mesh.get(town, &format!("/api/v1/summaries?from={from}"));
            let reported = |list: &Value, node: &str| -> u64 {
                list["summaries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|s| s["node"] == node)
                    .map(|s| s["reported"]["hazard"].as_u64().unwrap_or(0))
                    .sum()
            };
            let (here, there) = (reported(&own, town), reported(&city, town));
            if here == 0 || here != there {
                return Err(format!("{town} counts {here} reported, the city sees {there}"));
            }
        }
        Ok(())
    });

    // Watchlists converge everywhere.
    wait_until("watchlists converging", Duration::from_secs(30), || {
        for (id, _, _) in SITES {
            let listed = mesh.get(id, "/api/v1/watchlist")["entries"].as_array().map_or(0, Vec::len);
            if listed != 3 {
                return Err(format!("{id} lists {listed} of 3"));
            }
        }
        Ok(())
    });

    refusals(&mut mesh);

    // Let the last summaries and audit records drain, then compare the stores.
    std::thread::sleep(Duration::from_secs(3));
    mesh.stop_all();
    compare_stores(&mesh);

    // Every refusal is in the audit log of the node that refused, with why.
    let refused: Vec<String> = export(&mesh.config("county-a"), "audit")
        .iter()
        .filter(|a| a["record"]["action"] == "refused")
        .map(|a| a["record"]["why"].as_str().unwrap().to_string())
        .collect();
    // Both handshakes came from one address within a second: one record each, or one record
    // counting both.
    let handshakes: u64 = refused.iter().filter(|w| w.starts_with("handshake")).map(|w| refusals_in(w)).sum();
    assert!(handshakes >= 2, "{refused:?}");
    assert!(refused.iter().any(|w| w.starts_with("foreign_origin")), "{refused:?}");
}

/// Each node must hold, of every kind that travels up, exactly what its subtree originated:
/// the same (origin, seq) set with the same contents, nothing missing, nothing extra.
fn compare_stores(mesh: &Mesh) {
    fn subtree(id: &'static str) -> BTreeSet<&'static str> {
        let mut out = BTreeSet::from([id]);
        loop {
            let before = out.len();
            for (s, _, parents) in SITES {
                if parents.iter().any(|p| out.contains(p)) {
                    out.insert(s);
                }
            }
            if out.len() == before {
                return out;
            }
        }
    }
    let mut exported: HashMap<(&str, &str), Vec<Value>> = HashMap::new();
    for (id, _, _) in SITES {
        for kind in UP_KINDS.iter().chain(&["command", "watchlist"]) {
            exported.insert((*id, *kind), export(&mesh.config(id), kind));
        }
    }
    let key = |e: &Value| (e["origin"].as_str().unwrap().to_string(), e["seq"].as_u64().unwrap());
    for (id, _, _) in SITES {
        let below = subtree(id);
        for kind in UP_KINDS {
            let mut have: BTreeMap<_, _> = exported[&(*id, *kind)].iter().map(|e| (key(e), e.clone())).collect();
            assert_eq!(have.len(), exported[&(*id, *kind)].len(), "{id} holds a {kind} entry twice");
            // The audit records `refusals` sent as the idle town, chain broken, are stored
            // where they were sent and passed up, though the idle town holds none of them.
            let forged: Vec<_> = have.keys().filter(|(o, _)| o == IDLE_TOWN).cloned().collect();
            if *kind == "audit" && below.contains("county-a") {
                let all: Vec<_> = (1..=FLOOD_AUDIT).map(|seq| (IDLE_TOWN.to_string(), seq)).collect();
                assert!(forged == all, "{id} holds {} of the idle town's {FLOOD_AUDIT} audit records", forged.len());
            }
            for k in &forged {
                have.remove(k);
            }
            let mut want = BTreeMap::new();
            for origin in &below {
                for e in exported[&(*origin, *kind)].iter().filter(|e| e["origin"] == *origin) {
                    want.insert(key(e), e.clone());
                }
            }
            let missing: Vec<_> = want.keys().filter(|k| !have.contains_key(*k)).take(5).collect();
            let extra: Vec<_> = have.keys().filter(|k| !want.contains_key(*k)).take(5).collect();
            assert!(missing.is_empty() && extra.is_empty(), "{id} {kind}: missing {missing:?}, extra {extra:?}");
            for (k, e) in &want {
                assert_eq!(&have[k], e, "{id} holds {kind} {k:?} with different contents");
            }
        }
        // Every node holds every watchlist edit; commands flood down from the county.
        let watch: BTreeSet<_> = exported[&(*id, "watchlist")].iter().map(key).collect();
        assert_eq!(watch.len(), 3, "{id} watchlist entries: {watch:?}");
    }
    // Answers were applied once at their owners.
    for town in &TOWNS[..2] {
        let commands = &exported[&(*town, "command")];
        let local: Vec<_> = commands.iter().filter(|c| c["origin"] == *town).collect();
        assert_eq!(local.len(), 1, "{town} applied the county's answer once: {commands:#?}");
    }
}

/// A certificate from another CA, an expired certificate, and a town sending under another
/// town's id: refused, counted and audited by the county they tried.
fn refusals(mesh: &mut Mesh) {
    use node::mesh::pki::{CityCa, Validity};
    use node::mesh::tls::{client_config, MeshIdentity};
    use proto::{NodeIdentity, Role};
    let county = mesh.mesh_addr["county-a"];
    let gen = mesh.gen.clone();
    let real_ca = CityCa::load(&gen.join("ca")).unwrap();
    let town = NodeIdentity { id: proto::NodeId::new(IDLE_TOWN).unwrap(), role: Role::Town };
    let now = time::OffsetDateTime::now_utc();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let dial = |identity: MeshIdentity| {
            let endpoint = endpoint.clone();
            async move {
                let mut cfg = client_config(&identity).unwrap();
                cfg.transport_config(Arc::new(node::mesh::tls::transport_config()));
                let conn = endpoint.connect_with(cfg, county, "county-a").unwrap().await?;
                // The server checks the client certificate after the handshake completes on our
                // side: a refused client sees its connection closed straight away.
                // An accepted one is sent the county's receiving stream, a sync stream.
                let (send, mut recv) = tokio::time::timeout(Duration::from_secs(3), conn.accept_bi())
                    .await
                    .map_err(|_| quinn::ConnectionError::TimedOut)??;
                let kind = node::mesh::streams::read_kind(&mut recv, Duration::from_secs(3)).await.expect("a header");
                assert_eq!(kind, proto::wire::StreamKind::Sync);
                Ok::<_, quinn::ConnectionError>((conn, send, recv))
            }
        };

        // 1. Another CA. The client trusts the real CA (to check the county) but presents a
        // certificate of its own CA.
        let rogue_ca = CityCa::generate("rogue CA", Validity::days_from(now, 10).unwrap()).unwrap();
        let rogue = rogue_ca.issue(&town, Validity::days_from(now, 10).unwrap()).unwrap();
        let ca_pem = format!("{}{}", real_ca.cert_pem(), rogue_ca.cert_pem());
        let identity =
            MeshIdentity::from_pem(ca_pem.as_bytes(), rogue.cert_pem().as_bytes(), rogue.key_pem().as_bytes()).unwrap();
        assert!(dial(identity).await.is_err(), "a certificate from another CA must not connect");

        // 2. Expired, from the real CA.
        // Inside the CA's own validity (it was made a moment ago, backdated an hour), but over.
        let old = Validity::between(now - time::Duration::minutes(30), now - time::Duration::minutes(1)).unwrap();
        let expired = real_ca.issue(&town, old).unwrap();
        let identity = MeshIdentity::from_pem(
            real_ca.cert_pem().as_bytes(),
            expired.cert_pem().as_bytes(),
            expired.key_pem().as_bytes(),
        )
        .unwrap();
        assert!(dial(identity).await.is_err(), "an expired certificate must not connect");

        // 3. A town's own valid certificate, sending an alert under town-a2's id.
        let pki = gen.join(IDLE_TOWN).join("pki");
        let identity = MeshIdentity::load(&pki.join("ca.pem"), &pki.join("node.pem"), &pki.join("node.key")).unwrap();
        // The county opens its receiving stream to us and says what it holds.
        let (conn, mut send, mut recv) = dial(identity).await.expect("a valid certificate connects");
        let proto::wire::SyncMsg::Want { heads } = node::mesh::frames::read_sync(&mut recv).await.unwrap() else {
            panic!("no Want")
        };
        let victim = proto::NodeId::new("town-a2").unwrap();
        let next = heads.iter().find(|(k, _)| *k == proto::Kind::Alert).map_or(0, |(_, v)| v.get(&victim)) + 1;
        let forged = proto::Entry {
            origin: victim,
            seq: next,
            hlc: proto::Hlc::new(1, 0),
            kind: proto::Kind::Alert,
            payload: vec![],
        };
        let forged = proto::EntryBytes::encode(&forged).unwrap();
        node::mesh::frames::write_sync(&mut send, &proto::wire::SyncMsg::Batch { id: 1, entries: vec![forged] })
            .await
            .unwrap();
        let ack = node::mesh::frames::read_sync(&mut recv).await.unwrap();
        assert_eq!(ack, proto::wire::SyncMsg::Ack { id: 1, refused: 1 });

        // 3b. Audit records of its own whose chain does not hold: the second does not carry
        // the hash of the first. Stored (the ack refuses nothing), counted and audited.
        let me = proto::NodeId::new(IDLE_TOWN).unwrap();
        let first = heads.iter().find(|(k, _)| *k == proto::Kind::Audit).map_or(0, |(_, v)| v.get(&me)) + 1;
        assert_eq!(first, 1, "{IDLE_TOWN} never ran: its chain starts here");
        let record = |seq: u64, link: &node::audit_chain::Link| proto::Entry {
            origin: me.clone(),
            seq,
            hlc: proto::Hlc::new(1_764_000_000_000 + seq, 0),
            kind: proto::Kind::Audit,
            payload: node::audit_chain::payload(
                &node::records::AuditRecord {
                    at_ms: 1_764_000_000_000 + seq,
                    actor: "operator:test".into(),
                    action: "test".into(),
                    subject: format!("record/{seq}"),
                    why: "a chain that does not hold".into(),
                },
                link,
            )
            .unwrap(),
        };
        let chained = vec![
            proto::EntryBytes::encode(&record(1, &node::audit_chain::GENESIS)).unwrap(),
            proto::EntryBytes::encode(&record(2, &[7; 32])).unwrap(),
        ];
        node::mesh::frames::write_sync(&mut send, &proto::wire::SyncMsg::Batch { id: 2, entries: chained })
            .await
            .unwrap();
        let ack = node::mesh::frames::read_sync(&mut recv).await.unwrap();
        assert_eq!(ack, proto::wire::SyncMsg::Ack { id: 2, refused: 0 });

        // 3c. More of them, chained from there, past the audit quota's burst: all taken, the
        // link held back once past it.
        let mut link = node::audit_chain::link_to(&proto::codec::encode(&record(2, &[7; 32])).unwrap());
        let mut flood = Vec::new();
        for seq in 3..=FLOOD_AUDIT {
            let e = proto::EntryBytes::encode(&record(seq, &link)).unwrap();
            link = node::audit_chain::link_to(e.as_bytes());
            flood.push(e);
        }
        for (i, batch) in flood.chunks(proto::wire::MAX_BATCH_ENTRIES).enumerate() {
            let id = 3 + i as u64;
            let msg = proto::wire::SyncMsg::Batch { id, entries: batch.to_vec() };
            node::mesh::frames::write_sync(&mut send, &msg).await.unwrap();
            let ack = node::mesh::frames::read_sync(&mut recv).await.unwrap();
            assert_eq!(ack, proto::wire::SyncMsg::Ack { id, refused: 0 });
        }

        // 4. Streams the county does not serve: a raft stream (not yet), an unknown kind, and
        // one that never says what it is. Each is reset with its code; the connection lives.
        use node::mesh::streams;
        use proto::wire::{StreamKind, StreamRefusal};
        async fn reset_code(recv: &mut quinn::RecvStream) -> Option<u32> {
            let mut buf = [0u8; 16];
            match tokio::time::timeout(Duration::from_secs(15), recv.read(&mut buf)).await {
                Ok(Err(quinn::ReadError::Reset(code))) => u32::try_from(code.into_inner()).ok(),
                other => panic!("expected a reset, got {other:?}"),
            }
        }
        // Opened first and never written to: the county learns of it when the next stream's
        // bytes arrive, and gives up on its header after a few seconds.
        let (_silent_send, mut silent_recv) = conn.open_bi().await.unwrap();
        let (_raft_send, mut raft_recv) = streams::open(&conn, StreamKind::Raft).await.unwrap();
        assert_eq!(reset_code(&mut raft_recv).await, Some(StreamRefusal::NotServed.code()));
        let (mut odd_send, mut odd_recv) = conn.open_bi().await.unwrap();
        odd_send.write_all(&[0xee]).await.unwrap();
        assert_eq!(reset_code(&mut odd_recv).await, Some(StreamRefusal::UnknownKind.code()));
        assert_eq!(reset_code(&mut silent_recv).await, Some(StreamRefusal::NoHeader.code()));
        assert!(conn.close_reason().is_none(), "refusing streams keeps the connection");
        conn.close(0u32.into(), b"done");
    });

    let metrics = mesh.metrics("county-a");
    let count = |reason: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with("yiwang_mesh_refused_total") && l.contains(&format!("reason=\"{reason}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let handshake_failures: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("yiwang_mesh_handshake_failures_total{reason=\"handshake_tls\"}"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(handshake_failures >= 2.0, "handshake refusals counted: {metrics}");
    assert!(count("foreign_origin") >= 1.0, "forged origin counted");
    let breaks = format!("yiwang_audit_chain_breaks_total{{origin=\"{IDLE_TOWN}\"}} 1");
    assert!(metrics.lines().any(|l| l == breaks), "the broken chain counted once: {metrics}");
    let held = format!("yiwang_mesh_quota_holds_total{{origin=\"{IDLE_TOWN}\",kind=\"audit\"}}");
    assert!(metrics.lines().any(|l| l.starts_with(&held)), "the flood held back: {metrics}");
    for reason in ["stream_not_served", "stream_unknown_kind", "stream_no_header"] {
        assert!(count(reason) >= 1.0, "{reason} counted: {metrics}");
    }
}

/// An outsider's flood: 500 handshakes without a certificate, 100 at a time, against a county.
/// Every one is refused and counted; the county's audit log (and the city's copy of it) gets a
/// bounded number of records, and every refusal is counted in exactly one of them. Before the
/// sampled audit, this wrote 500 records at every tier.
#[test]
fn a_flood_of_bare_handshakes_leaves_a_bounded_trace() {
    const ATTEMPTS: usize = 500;
    const AT_ONCE: usize = 100;
    const INTERVAL_S: u64 = 2;
    let dir = yiwang_tests::test_dir("handshake-flood");
    let mut mesh = Mesh::generate(dir.path());
    let config = mesh.config("county-a");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "refusal_audit_interval = \"1s\"",
        &format!("max_handshakes = 16\nrefusal_audit_interval = \"{INTERVAL_S}s\""),
    );
    std::fs::write(&config, text).unwrap();
    mesh.start("city");
    mesh.start("county-a");
    wait_until("county-a linked to the city", Duration::from_secs(30), || {
        match mesh.link_state("county-a", "city").as_deref() {
            Some("up" | "catching_up") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });

    // While it is at it: the city measures the county's clock offset (the same clock here).
    wait_until("the city measuring county-a's clock", Duration::from_secs(30), || {
        let metrics = mesh.metrics("city");
        let line = metrics.lines().find(|l| l.starts_with("yiwang_peer_clock_offset_seconds{peer=\"county-a\"}"));
        match line.and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok()) {
            Some(seconds) if seconds.abs() < 2.0 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });

    let ca = std::fs::read(mesh.gen.join("county-a").join("pki").join("ca.pem")).unwrap();
    let county = mesh.mesh_addr["county-a"];
    let started = std::time::Instant::now();
    let connected = flood(county, &ca, ATTEMPTS, AT_ONCE);
    let flood_time = started.elapsed();
    assert_eq!(connected, 0, "no bare handshake may open a session");

    let failures = |m: &str| -> BTreeMap<String, f64> {
        m.lines()
            .filter(|l| l.starts_with("yiwang_mesh_handshake_failures_total{"))
            .filter_map(|l| {
                let reason = l.split("reason=\"").nth(1)?.split('"').next()?.to_string();
                Some((reason, l.rsplit(' ').next()?.parse().ok()?))
            })
            .collect()
    };
    let by_reason = failures(&mesh.metrics("county-a"));
    assert_eq!(by_reason.values().sum::<f64>(), ATTEMPTS as f64, "every refusal counted once: {by_reason:?}");
    assert!(by_reason.get("handshake_tls").is_some_and(|&n| n >= 1.0), "{by_reason:?}");
    assert!(
        by_reason.get("handshake_limit").is_some_and(|&n| n >= 1.0),
        "100 at once against a cap of 16: {by_reason:?}"
    );

    // The audit: every refusal in one record, once the last interval has ended.
    let audited = |node: &'static str, origin: &str| -> Vec<(u64, String)> {
        let page = mesh.get(node, &format!("/api/v1/audit?origin={origin}&action=refused&subject=127.0.0.1&limit=500"));
        page["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let why = r["why"].as_str().unwrap().to_string();
                (refusals_in(&why), why)
            })
            .collect()
    };
    for (node, what) in [("county-a", "the county's own log"), ("city", "the city's copy")] {
        wait_until(&format!("{what} accounting for every refusal"), Duration::from_secs(30), || {
            let records = audited(node, "county-a");
            let total: u64 = records.iter().map(|(n, _)| n).sum();
            if total == ATTEMPTS as u64 {
                Ok(())
            } else {
                Err(format!("{total} of {ATTEMPTS} in {records:#?}"))
            }
        });
        let records = audited(node, "county-a");
        // One record at once, then at most one per interval while the flood lasted, and one
        // for the interval it ended in.
        let bound = 2 + flood_time.as_secs() / INTERVAL_S;
        assert!(
            records.len() as u64 <= bound,
            "{what}: {} records for a {flood_time:?} flood: {records:#?}",
            records.len()
        );
        eprintln!(
            "figure handshake_flood_audit_records={} ({what}, {ATTEMPTS} refusals in {flood_time:?})",
            records.len()
        );
    }
    mesh.stop_all();
}

/// How many refusals an audit record of refused handshakes accounts for: an aggregate says
/// "<reason>: <n> refusals in <s> s (...)", a single one is "<reason>: <detail>".
fn refusals_in(why: &str) -> u64 {
    why.split_once(": ")
        .and_then(|(_, rest)| rest.split_once(" refusals in "))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(1)
}

/// Dial `target` `attempts` times, `at_once` at a time, as an outsider would: trusting the
/// city CA, speaking the mesh's protocol, with no certificate of its own. Returns how many got
/// a connection that stayed open long enough to be served a stream (none should).
fn flood(target: SocketAddr, ca_pem: &[u8], attempts: usize, at_once: usize) -> usize {
    use quinn::rustls;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile_certs(ca_pem) {
            roots.add(cert).unwrap();
        }
        let provider = node::mesh::tls::provider();
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![node::mesh::tls::ALPN.to_vec()];
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let config = quinn::ClientConfig::new(Arc::new(quic));
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut served = 0;
        for round in 0..attempts.div_ceil(at_once) {
            let mut dials = tokio::task::JoinSet::new();
            for _ in 0..at_once.min(attempts - round * at_once) {
                let connecting = endpoint.connect_with(config.clone(), target, "county-a").unwrap();
                dials.spawn(async move {
                    let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(10), connecting).await else {
                        return false;
                    };
                    // TLS 1.3 lets the client finish first; the county closes the connection
                    // once it sees there is no certificate, before serving any stream.
                    let accepted = tokio::time::timeout(Duration::from_secs(3), conn.accept_bi()).await;
                    conn.close(0u32.into(), b"flood");
                    matches!(accepted, Ok(Ok(_)))
                });
            }
            while let Some(r) = dials.join_next().await {
                served += usize::from(r.unwrap());
            }
        }
        endpoint.wait_idle().await;
        served
    })
}

/// The certificates of a PEM file.
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<quinn::rustls::pki_types::CertificateDer<'static>> {
    use quinn::rustls::pki_types::pem::PemObject;
    quinn::rustls::pki_types::CertificateDer::pem_slice_iter(pem).map(|c| c.unwrap()).collect()
}
