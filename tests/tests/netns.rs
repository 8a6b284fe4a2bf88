//! The simulator's scenarios on real processes: one city, three counties (the four of them
//! raft voters), six towns and three harbours, every site a `yiwang-node` (and a
//! `yiwang-control` at the voting sites) in a network namespace of its own
//! (`yiwang_tests::netns`), configured by `yiwangctl deploy generate`. The town-island,
//! leader-minority and lossy-harbour scenarios (`tests/netns/*.toml`, the simulator's format)
//! run in real time: a workload of grid events and escalations at every town and harbour and
//! sanctions writes at the voters through their HTTP APIs, cuts by nftables, loss and delay by
//! tc netem. They are judged by the simulator's own checks (`simulations::checks`), read from
//! the processes' APIs while they run and from their stores (`yiwang-node export`) once they
//! stop.
//!
//! Root, `ip`, `tc` and `nft` are needed; without them the tests say what is missing and pass,
//! unless `YIWANG_REQUIRE_NETNS=1` (as `.ci/run` sets), when they fail.

use proto::{Kind, NodeId, Role, VersionVector};
use serde_json::{json, Value};
use simulations::checks::{self, Check, Heals, Held, Observed, Sampler};
use simulations::run::FaultRecord;
use simulations::scenario::{FaultKind, Scenario};
use simulations::topology;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use yiwang_tests::netns::{Degradation, Lab};
use yiwang_tests::{bin, get_as, post_json_as, NodeProcess};

/// Ports every site uses on its own address.
const MESH_PORT: u16 = 7900;
const HTTP_PORT: u16 = 7800;
const RAFT_PORT: u16 = 7950;
const CONTROL_API_PORT: u16 = 7901;
/// How often the processes are sampled for the checks that need history.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// Each workload call's and each sample's deadline is the HTTP helper's own (30 s read).
const DAY_MS: u64 = 86_400_000;

/// One scenario at a time: each makes a lab of thirteen namespaces and seventeen processes.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn town_island_on_real_processes() {
    scenario("town-island", include_str!("../netns/town-island.toml"));
}

#[test]
fn leader_minority_on_real_processes() {
    scenario("leader-minority", include_str!("../netns/leader-minority.toml"));
}

#[test]
fn lossy_harbour_on_real_processes() {
    scenario("lossy-harbour", include_str!("../netns/lossy-harbour.toml"));
}

fn scenario(name: &str, text: &str) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(why) = Lab::unavailable() {
        assert!(std::env::var("YIWANG_REQUIRE_NETNS").is_err(), "the namespace tests cannot run: {why}");
        eprintln!("skipped: the namespace tests cannot run: {why}");
        return;
    }
    let scenario = Scenario::parse(name, text).unwrap_or_else(|e| panic!("{e}"));
    let dir = yiwang_tests::test_dir(&format!("netns-{name}"));
    let mut city = RealCity::start(&scenario, dir.path());
    let report = city.run(&scenario);
    for c in &report {
        eprintln!("[{name}] {} {}: {}", if c.passed { "PASS" } else { "FAIL" }, c.name, c.detail);
    }
    let failed: Vec<&Check> = report.iter().filter(|c| !c.passed).collect();
    assert!(failed.is_empty(), "{name} on real processes failed: {failed:#?}");
}

/// A site's processes and how to reach them.
struct Site {
    id: NodeId,
    role: Role,
    node: Option<NodeProcess>,
    config: PathBuf,
    api: SocketAddr,
    token: String,
    control: Option<(NodeProcess, SocketAddr, String)>,
}

struct RealCity {
    lab: Lab,
    city: NodeId,
    sites: Vec<Site>,
}

impl RealCity {
    fn start(scenario: &Scenario, dir: &Path) -> RealCity {
        let generated = topology::with_voters(topology::city(scenario.topology.shape()));
        let ids: Vec<String> = generated.iter().map(|s| s.id.to_string()).collect();
        let lab = Lab::new(&ids).unwrap_or_else(|e| panic!("the lab: {e}"));
        let mut text = String::new();
        for s in &generated {
            let ip = lab.site(s.id.as_str()).ip;
            let parents: Vec<String> = s.parents.iter().map(|p| format!("{:?}", p.as_str())).collect();
            text.push_str(&format!(
                "[[site]]\nid = {:?}\nrole = {:?}\nmesh = \"{ip}:{MESH_PORT}\"\nhttp = \"{ip}:{HTTP_PORT}\"\nparents = [{}]\n",
                s.id.as_str(),
                s.role.as_str(),
                parents.join(", ")
            ));
            if s.raft.is_some() {
                text.push_str(&format!("raft = \"{ip}:{RAFT_PORT}\"\n"));
            }
            text.push('\n');
        }
        let gen = yiwang_tests::deploy_generate(dir, &text);
        let mut sites = Vec::new();
        for s in &generated {
            let id = s.id.as_str();
            let ip = lab.site(id).ip;
            let config = gen.join(id).join("node.toml");
            let mut node_text = std::fs::read_to_string(&config).unwrap();
            // The [mesh] section is last: a short idle timeout, so a cut link is noticed in seconds.
            node_text.push_str("idle_timeout = \"3s\"\n");
            std::fs::write(&config, node_text).unwrap();
            let data = gen.join(id).join("data");
            let prefix = lab.exec_prefix(id);
            let node =
                NodeProcess::start_prefixed(&prefix, "yiwang-node", &data, &["--config".as_ref(), config.as_os_str()]);
            let token = yiwang_tests::operator_token(&data);
            let control = s.raft.map(|_| {
                let path = gen.join(id).join("control.toml");
                let text = std::fs::read_to_string(&path).unwrap();
                // The operator API on the site's address, where the test reaches it.
                let text = text.replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{ip}:{CONTROL_API_PORT}\""));
                std::fs::write(&path, text).unwrap();
                let data = gen.join(id).join("control-data");
                let p = NodeProcess::start_prefixed(
                    &prefix,
                    "yiwang-control",
                    &data,
                    &["--config".as_ref(), path.as_os_str()],
                );
                (p, SocketAddr::from((ip, CONTROL_API_PORT)), yiwang_tests::operator_token(&data))
            });
            sites.push(Site {
                id: s.id.clone(),
                role: s.role,
                node: Some(node),
                config,
                api: SocketAddr::from((ip, HTTP_PORT)),
                token,
                control,
            });
        }
        RealCity { lab, city: generated[0].id.clone(), sites }
    }

    /// The scenario: workload and faults for its duration, the heal, convergence, the checks.
    fn run(&mut self, scenario: &Scenario) -> Vec<Check> {
        let start = Instant::now();
        self.wait_until_whole(Duration::from_secs(60)).unwrap_or_else(|e| panic!("the mesh never formed: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let tallies: Arc<Mutex<BTreeMap<NodeId, (u64, u64)>>> = Arc::default();
        let acked: Arc<Mutex<BTreeMap<NodeId, BTreeMap<Kind, u64>>>> = Arc::default();
        let sampler: Arc<Mutex<Sampler>> = Arc::default();
        let views: Arc<Mutex<Vec<CityView>>> = Arc::default();
        let handles = self.handles();
        let began = Instant::now();
        let (records, converged_after) = std::thread::scope(|scope| {
            // However this scope ends (a failed step panics), the threads it started stop.
            let _stop_on_exit = StopOnDrop(&stop);
            for h in handles.iter().filter(|h| matches!(h.role, Role::Town | Role::Harbour)) {
                let (stop, tallies, acked) = (stop.clone(), tallies.clone(), acked.clone());
                scope.spawn(move || workload(h, scenario.workload.interval(h.role), &stop, &tallies, &acked));
            }
            let voters: Vec<&Handle> = handles.iter().filter(|h| h.control.is_some()).collect();
            {
                let (stop, voters) = (stop.clone(), voters.clone());
                scope.spawn(move || list_writes(&voters, scenario.workload.list_write_interval, &stop));
            }
            {
                let (stop, sampler, views, handles) = (stop.clone(), sampler.clone(), views.clone(), &handles);
                let city = handles.iter().find(|h| h.role == Role::City).expect("the city");
                scope.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let seen = Live::read(handles);
                        sampler.lock().unwrap().sample(&seen, began.elapsed());
                        if let Some(view) = CityView::read(city, began.elapsed()) {
                            views.lock().unwrap().push(view);
                        }
                        std::thread::sleep(SAMPLE_EVERY);
                    }
                });
            }
            let records = self.faults(scenario, began, &handles);
            // The heal is done; the work stops; the mesh has its bound to converge.
            stop.store(true, Ordering::Relaxed);
            let healed = Instant::now();
            let converged = self.wait_until_whole(scenario.invariants.converge_within).map(|()| healed.elapsed());
            // The view once whole, for a heal too late in the run for the samples to see its end.
            let city = handles.iter().find(|h| h.role == Role::City).expect("the city");
            if let Some(view) = CityView::read(city, began.elapsed()) {
                views.lock().unwrap().push(view);
            }
            if let Err(e) = &converged {
                eprintln!("[{}] not converged: {e}", scenario.name);
            }
            (records, converged.ok())
        });
        // What the processes say last, then what their stores hold once they stop.
        let last = Live::read(&handles);
        sampler.lock().unwrap().sample(&last, began.elapsed());
        let stores = self.stop_and_export(last);
        let acked = acked.lock().unwrap().clone();
        let tallies = tallies.lock().unwrap().clone();
        let sampler = sampler.lock().unwrap();
        let heals = catch_up(&records, &views.lock().unwrap());
        for h in &heals.times {
            let after = h.converged_after_s.map_or("not within the run".to_string(), |s| format!("{s:.1} s"));
            eprintln!("[{}] caught up after fault {} ended at {:.0} s: {after}", scenario.name, h.fault, h.healed_s);
        }
        eprintln!("[{}] ran {:.0} s in all", scenario.name, start.elapsed().as_secs_f64());
        let mut results = vec![
            checks::nothing_lost(checks::lost_acked(&stores, &acked), &checks::holes(&stores)),
            checks::no_conflicts(&checks::seq_conflicts(&stores)),
            checks::nothing_invented(&stores),
            checks::nothing_duplicated(&stores),
            checks::availability(&stores, &tallies, scenario.invariants.availability),
            sampler.versions_monotonic(),
            checks::convergence(converged_after, scenario.invariants.converge_within, &stores, &heals),
            checks::faults_happened(&records),
            sampler.raft_safety(),
        ];
        if let Err(e) = checks::converged(&stores) {
            results.push(Check { name: "stores_converged", passed: false, detail: e });
        }
        results
    }

    fn handles(&self) -> Vec<Handle> {
        self.sites
            .iter()
            .map(|s| Handle {
                id: s.id.clone(),
                role: s.role,
                api: s.api,
                token: s.token.clone(),
                control: s.control.as_ref().map(|(_, a, t)| (*a, t.clone())),
            })
            .collect()
    }

    /// Apply the scenario's faults at their times; every one has ended when this returns, at
    /// the scenario's end.
    fn faults(&mut self, scenario: &Scenario, began: Instant, handles: &[Handle]) -> Vec<FaultRecord> {
        let mut schedule: Vec<(Duration, bool, usize)> = Vec::new();
        for (i, f) in scenario.faults.iter().enumerate() {
            for (from, to) in scenario.windows(f) {
                schedule.push((from, true, i));
                schedule.push((to, false, i));
            }
        }
        schedule.sort();
        let mut records: Vec<FaultRecord> = Vec::new();
        let mut in_force: BTreeMap<usize, (usize, Vec<String>)> = BTreeMap::new();
        for (at, begins, i) in schedule {
            if let Some(wait) = at.checked_sub(began.elapsed()) {
                std::thread::sleep(wait);
            }
            let kind = &scenario.faults[i].kind;
            if begins {
                let targets = self.resolve(kind.selectors(), handles);
                eprintln!("[{}] {:.0} s: {} {targets:?}", scenario.name, began.elapsed().as_secs_f64(), kind.name());
                self.begin(kind, &targets);
                records.push(FaultRecord {
                    fault: i + 1,
                    kind: kind.name(),
                    targets: targets.clone(),
                    began_s: began.elapsed().as_secs_f64(),
                    ended_s: None,
                    evidence: Err("still in force".into()),
                });
                in_force.insert(i, (records.len() - 1, targets));
            } else if let Some((record, targets)) = in_force.remove(&i) {
                let evidence = self.end(kind, &targets);
                eprintln!(
                    "[{}] {:.0} s: {} ends: {evidence:?}",
                    scenario.name,
                    began.elapsed().as_secs_f64(),
                    kind.name()
                );
                records[record].ended_s = Some(began.elapsed().as_secs_f64());
                records[record].evidence = evidence;
            }
        }
        if let Some(wait) = scenario.duration.checked_sub(began.elapsed()) {
            std::thread::sleep(wait);
        }
        records
    }

    /// The sites the selectors name: ids, `role:ROLE`, `leader`, `all`.
    fn resolve(&self, selectors: Vec<&String>, handles: &[Handle]) -> Vec<String> {
        let mut out = BTreeSet::new();
        for s in selectors {
            match s.as_str() {
                "all" => out.extend(self.sites.iter().map(|x| x.id.to_string())),
                "leader" => {
                    let seen = Live::read(handles);
                    let leader = checks::leader(&seen).expect("selector \"leader\": no voter leads");
                    out.insert(leader.to_string());
                }
                other => match other.strip_prefix("role:") {
                    Some(role) => {
                        out.extend(self.sites.iter().filter(|x| x.role.as_str() == role).map(|x| x.id.to_string()))
                    }
                    None => {
                        assert!(self.sites.iter().any(|x| x.id.as_str() == other), "no site {other}");
                        out.insert(other.to_string());
                    }
                },
            }
        }
        out.into_iter().collect()
    }

    fn begin(&mut self, kind: &FaultKind, targets: &[String]) {
        match kind {
            FaultKind::Isolate { .. } => {
                let rest: Vec<String> =
                    self.sites.iter().map(|s| s.id.to_string()).filter(|id| !targets.contains(id)).collect();
                for t in targets {
                    self.lab.cut(t, &rest).unwrap();
                }
            }
            FaultKind::Degrade { loss, duplicate, delay, jitter, bandwidth, .. } => {
                let d = Degradation {
                    loss: *loss,
                    duplicate: *duplicate,
                    delay: delay.unwrap_or_default(),
                    jitter: jitter.unwrap_or_default(),
                    rate: *bandwidth,
                };
                for t in targets {
                    let note = self.lab.degrade(t, &d).unwrap();
                    if !note.is_empty() {
                        eprintln!("[lab] {t}: {note}");
                    }
                }
            }
            other => panic!("the namespace tests do not make {} faults", other.name()),
        }
    }

    /// End a fault; what it did, or why it seems to have done nothing.
    fn end(&mut self, kind: &FaultKind, targets: &[String]) -> Result<String, String> {
        let mut dropped = 0;
        for t in targets {
            match kind {
                FaultKind::Isolate { .. } => {
                    dropped += self.lab.dropped_by_cuts(t);
                    self.lab.heal(t).unwrap();
                }
                _ => {
                    dropped += self.lab.dropped_by_degrade(t);
                    self.lab.restore(t);
                }
            }
        }
        if dropped > 0 {
            Ok(format!("{dropped} packets dropped"))
        } else {
            Err("no packet was dropped".into())
        }
    }

    /// Wait until every node is up at the city with nothing waiting to go up, and every node
    /// and voter holds the same lists version.
    fn wait_until_whole(&self, limit: Duration) -> Result<(), String> {
        let city = self.sites.iter().find(|s| s.id == self.city).expect("the city");
        let deadline = Instant::now() + limit;
        loop {
            let state = (|| -> Result<(), String> {
                let mesh = get_as(city.api, &city.token, "/api/v1/mesh").map_err(|e| e.to_string())?.json();
                let rows = mesh["nodes"].as_array().cloned().unwrap_or_default();
                if rows.len() != self.sites.len() {
                    return Err(format!("{} rows in the city's view", rows.len()));
                }
                for r in &rows {
                    let fine = (r["state"] == "up" || r["state"] == "self") && r["backlog"].as_u64().unwrap_or(0) == 0;
                    if !fine {
                        return Err(format!("{} is {} with backlog {}", r["node"], r["state"], r["backlog"]));
                    }
                }
                let mut versions = BTreeSet::new();
                for s in &self.sites {
                    let v = get_as(s.api, &s.token, "/api/v1/sanctions").map_err(|e| e.to_string())?.json();
                    versions.insert(v["version"].as_u64().unwrap_or(0));
                    if let Some((api, token, ..)) = s.control.as_ref().map(|(_, a, t)| (a, t)) {
                        let r = get_as(*api, token, "/api/v1/raft").map_err(|e| e.to_string())?.json();
                        versions.insert(r["applied_version"].as_u64().unwrap_or(0));
                    }
                }
                if versions.len() > 1 {
                    return Err(format!("lists versions {versions:?}"));
                }
                Ok(())
            })();
            match state {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }

    /// SIGTERM every process, then read every node's store.
    fn stop_and_export(&mut self, last: Live) -> Exported {
        for s in &mut self.sites {
            if let Some((p, ..)) = s.control.take() {
                p.terminate();
            }
        }
        let mut stores = BTreeMap::new();
        for s in &mut self.sites {
            if let Some(p) = s.node.take() {
                p.terminate();
            }
            stores.insert(s.id.clone(), export_all(&s.config));
        }
        let roles = self.sites.iter().map(|s| (s.id.clone(), s.role)).collect();
        Exported { city: self.city.clone(), roles, stores, last }
    }
}

/// The city's view of the mesh at one moment: per node, its state and backlog.
struct CityView {
    at: Duration,
    nodes: BTreeMap<String, (String, u64)>,
}

impl CityView {
    fn read(city: &Handle, at: Duration) -> Option<CityView> {
        let r = get_as(city.api, &city.token, "/api/v1/mesh").ok().filter(|r| r.status == 200)?;
        let nodes = r.json()["nodes"]
            .as_array()?
            .iter()
            .filter_map(|n| {
                let state = n["state"].as_str()?.to_string();
                Some((n["node"].as_str()?.to_string(), (state, n["backlog"].as_u64().unwrap_or(0))))
            })
            .collect();
        Some(CityView { at, nodes })
    }

    /// Every node up as the city sees it, and `targets` with nothing waiting to go up.
    fn caught_up(&self, targets: &[String]) -> bool {
        self.nodes.values().all(|(state, _)| state == "up" || state == "self")
            && targets.iter().all(|t| self.nodes.get(t).is_some_and(|(_, backlog)| *backlog == 0))
    }
}

/// After each fault window that ended while the work went on, how long until the city saw
/// every node up and the fault's sites with nothing left to send up (the workload does not
/// stop for it).
fn catch_up(records: &[FaultRecord], views: &[CityView]) -> Heals {
    let mut heals = Heals::default();
    for r in records {
        let Some(ended) = r.ended_s else { continue };
        let after = views
            .iter()
            .find(|v| v.at.as_secs_f64() >= ended && v.caught_up(&r.targets))
            .map(|v| v.at.as_secs_f64() - ended);
        heals.times.push(checks::HealTime { fault: r.fault, healed_s: ended, converged_after_s: after });
    }
    heals
}

/// Sets its flag when dropped, also while a panic unwinds.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What the workload and the sampler need of a site.
struct Handle {
    id: NodeId,
    role: Role,
    api: SocketAddr,
    token: String,
    control: Option<(SocketAddr, String)>,
}

/// A town's or harbour's work until told to stop: a grid event every `interval`, every other
/// one escalated to its county. Each call is an operation tried; a 201 is one acknowledged.
fn workload(
    h: &Handle,
    interval: Duration,
    stop: &AtomicBool,
    tallies: &Mutex<BTreeMap<NodeId, (u64, u64)>>,
    acked: &Mutex<BTreeMap<NodeId, BTreeMap<Kind, u64>>>,
) {
    let mut n = 0u64;
    let tally = |ok: bool| {
        let mut t = tallies.lock().unwrap();
        let e = t.entry(h.id.clone()).or_default();
        e.0 += 1;
        e.1 += u64::from(ok);
    };
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let body = json!({ "category": "sanitation", "description": format!("report {n} at {}", h.id), "lat": 37.4, "lon": 122.1 });
        let r = post_json_as(h.api, &h.token, "/api/v1/events", &body.to_string());
        let created = r.ok().filter(|r| r.status == 201).map(|r| r.json()["id"].as_str().unwrap_or("").to_string());
        tally(created.is_some());
        if let (Some(id), true) = (created, n % 2 == 0) {
            let body = json!({ "department": "roads department", "tier": "county", "reason": "needs the county" });
            let path = format!("/api/v1/events/{}/escalations", yiwang_tests::urlencode(&id));
            let ok = post_json_as(h.api, &h.token, &path, &body.to_string()).is_ok_and(|r| r.status == 201);
            tally(ok);
            if ok {
                // Each escalation is one entry of the town's own, numbered from 1.
                *acked.lock().unwrap().entry(h.id.clone()).or_default().entry(Kind::Escalation).or_default() += 1;
            }
        }
        std::thread::sleep(interval);
    }
}

/// Sanctions writes at the voters in turn (a vessel listed black), each with a deadline; on the
/// minority side they fail with no quorum, which is fine.
fn list_writes(voters: &[&Handle], interval: Duration, stop: &AtomicBool) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) && !interval.is_zero() {
        let v = voters[n as usize % voters.len()];
        n += 1;
        let (api, token) = v.control.as_ref().expect("a voter");
        let now = yiwang_tests::voters::now_ms();
        let body = json!({
            "entry": {
                "list": "black", "subject": format!("mmsi:41290{n:04}"), "name": format!("Test vessel {n}"),
                "authority": "Municipal Ocean and Fisheries Bureau", "legal_basis": "Fisheries Law art. 38",
                "effective": node::api::time::rfc3339(now - DAY_MS), "expires": node::api::time::rfc3339(now + 365 * DAY_MS),
            },
            "why": "namespace test",
        });
        let _ = post_json_as(*api, token, "/api/v1/lists?deadline_ms=2000", &body.to_string());
        std::thread::sleep(interval);
    }
}

fn hex32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = s.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()).unwrap_or(0);
    }
    out
}

/// The processes as their APIs answer now: lists enforced and voters' raft state. A process
/// that does not answer is left out, as a stopped node is in a simulation.
#[derive(Default)]
struct Live {
    city: Option<NodeId>,
    roles: BTreeMap<NodeId, Role>,
    enforced: BTreeMap<NodeId, (u64, [u8; 32])>,
    voters: BTreeMap<NodeId, (u64, [u8; 32], Option<u64>)>,
}

impl Live {
    fn read(handles: &[Handle]) -> Live {
        let mut live = Live::default();
        for h in handles {
            if h.role == Role::City {
                live.city = Some(h.id.clone());
            }
            live.roles.insert(h.id.clone(), h.role);
            if let Ok(r) = get_as(h.api, &h.token, "/api/v1/sanctions") {
                if r.status == 200 {
                    let v = r.json();
                    let version = v["version"].as_u64().unwrap_or(0);
                    live.enforced.insert(h.id.clone(), (version, hex32(v["digest"].as_str().unwrap_or(""))));
                }
            }
            if let Some((api, token)) = &h.control {
                if let Ok(r) = get_as(*api, token, "/api/v1/raft?digest=true") {
                    if r.status == 200 {
                        let v: Value = r.json();
                        let leading = (v["state"] == "leader").then(|| v["term"].as_u64().unwrap_or(0));
                        let state = (
                            v["applied_version"].as_u64().unwrap_or(0),
                            hex32(v["lists_digest"].as_str().unwrap_or("")),
                            leading,
                        );
                        live.voters.insert(h.id.clone(), state);
                    }
                }
            }
        }
        live
    }
}

impl Observed for Live {
    fn city(&self) -> NodeId {
        self.city.clone().expect("a city")
    }
    fn role(&self, node: &NodeId) -> Option<Role> {
        self.roles.get(node).copied()
    }
    fn nodes(&self) -> Vec<NodeId> {
        self.enforced.keys().cloned().collect()
    }
    fn heads(&self, _: &NodeId, _: Kind) -> Arc<VersionVector> {
        Arc::default()
    }
    fn entries(&self, _: &NodeId, _: Kind) -> Vec<Held> {
        Vec::new()
    }
    fn enforced_version(&self, node: &NodeId) -> u64 {
        self.enforced.get(node).map_or(0, |e| e.0)
    }
    fn enforced_digest(&self, node: &NodeId) -> [u8; 32] {
        self.enforced.get(node).map(|e| e.1).unwrap_or_default()
    }
    fn voters(&self) -> Vec<NodeId> {
        self.voters.keys().cloned().collect()
    }
    fn voter_version(&self, voter: &NodeId) -> u64 {
        self.voters.get(voter).map_or(0, |v| v.0)
    }
    fn voter_digest(&self, voter: &NodeId) -> [u8; 32] {
        self.voters.get(voter).map(|v| v.1).unwrap_or_default()
    }
    fn leading(&self, voter: &NodeId) -> Option<u64> {
        self.voters.get(voter).and_then(|v| v.2)
    }
}

/// The stopped processes: every node's store as exported, and the lists as the APIs said last.
struct Exported {
    city: NodeId,
    roles: BTreeMap<NodeId, Role>,
    stores: BTreeMap<NodeId, BTreeMap<Kind, Vec<Held>>>,
    last: Live,
}

/// Every entry of a stopped node's store, by kind.
fn export_all(config: &Path) -> BTreeMap<Kind, Vec<Held>> {
    let out = Command::new(bin("yiwang-node")).args(["export", "--config"]).arg(config).output().unwrap();
    assert!(out.status.success(), "export {}: {}", config.display(), String::from_utf8_lossy(&out.stderr));
    let mut stores: BTreeMap<Kind, Vec<Held>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let kind = Kind::parse(v["kind"].as_str().unwrap()).unwrap();
        let held = Held {
            origin: NodeId::new(v["origin"].as_str().unwrap()).unwrap(),
            seq: v["seq"].as_u64().unwrap(),
            content: hex32(v["sha256"].as_str().unwrap()),
        };
        stores.entry(kind).or_default().push(held);
    }
    stores
}

impl Observed for Exported {
    fn city(&self) -> NodeId {
        self.city.clone()
    }
    fn role(&self, node: &NodeId) -> Option<Role> {
        self.roles.get(node).copied()
    }
    fn nodes(&self) -> Vec<NodeId> {
        self.stores.keys().cloned().collect()
    }
    fn heads(&self, node: &NodeId, kind: Kind) -> Arc<VersionVector> {
        // A store holds each origin's entries from 1 without a gap: its head is the highest.
        let mut vv = VersionVector::new();
        for e in self.stores.get(node).and_then(|s| s.get(&kind)).into_iter().flatten() {
            vv.raise(&e.origin, e.seq);
        }
        Arc::new(vv)
    }
    fn entries(&self, node: &NodeId, kind: Kind) -> Vec<Held> {
        self.stores.get(node).and_then(|s| s.get(&kind)).cloned().unwrap_or_default()
    }
    fn enforced_version(&self, node: &NodeId) -> u64 {
        self.last.enforced_version(node)
    }
    fn enforced_digest(&self, node: &NodeId) -> [u8; 32] {
        self.last.enforced_digest(node)
    }
    fn voters(&self) -> Vec<NodeId> {
        self.last.voters()
    }
    fn voter_version(&self, voter: &NodeId) -> u64 {
        self.last.voter_version(voter)
    }
    fn voter_digest(&self, voter: &NodeId) -> [u8; 32] {
        self.last.voter_digest(voter)
    }
    fn leading(&self, voter: &NodeId) -> Option<u64> {
        self.last.leading(voter)
    }
}
