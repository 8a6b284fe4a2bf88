//! A scenario run: a generated city on virtual time, the scenario's workload and fault
//! schedule, a heal, and the checks that say whether the run kept its promises.
//!
//! One run is a pure function of (scenario, seed, injected bugs, code): the runtime is a paused
//! current-thread tokio runtime with a fixed RNG seed, every node and voter takes its seed from
//! the run's, every store is a simulated disk flushing in virtual time, and the network is the
//! in-memory fabric. [`RunReport::trace_hash`] is the proof: the same run gives the same hash
//! in any process.
//!
//! The loop is one schedule of actions in virtual time: operations of each node's workload,
//! sanctions writes at a voter, the begin and end of every fault window, power cuts of crash
//! storms (each armed at a seeded moment and falling inside the node's next flush, since a
//! flush under way is where a power cut can take what a careless node already sent), restarts,
//! samples for the checks and timelines, and the end. At the end every fault still in force
//! ends, every site is started, and the mesh has `invariants.converge_within` to converge.
//!
//! `yiwang-sim trace` is a scenario too: [`TraceOptions::scenario`].

use crate::checks::{self, Check, Conflict, HealTime, Heals, Sampler};
use crate::cluster::{Cluster, ClusterOptions, SimError};
use crate::demo::Live;
use crate::fabric::{Fabric, FabricConfig};
use crate::faults::{self, Baseline, DiskFault, Links};
use crate::scenario::{parse_offset, FaultKind, Invariants, Scenario, TopologySpec, WorkloadSpec};
use crate::topology;
use crate::trace::Trace;
use crate::workload::{self, Handles, Outcome, Workload};
use control_plane::dashboard::FaultRequest;
use node::clock::Clock;
use node::rng::{Rng, Seed};
use node::store::{InjectedBugs, SimDisk};
use node::workflow::Tier;
use proto::{Kind, NodeId, Role};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How long an armed crash waits for its node's next flush before it falls anyway.
pub const ARMED_LIMIT: Duration = Duration::from_secs(5);
/// Shortest and longest time a storm's crashed node stays down.
const DOWN_MIN: Duration = Duration::from_secs(2);
const DOWN_MAX: Duration = Duration::from_secs(30);
/// Crashes of `yiwang-sim trace` fall within this share of the run, so every node is back
/// well before its end.
const CRASH_WINDOW: (f64, f64) = (0.05, 0.8);
/// How often convergence is checked after the heal.
const HEAL_POLL: Duration = Duration::from_secs(1);
/// How often the checks sample every node (list versions, raft leaders).
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// How long a node that stopped on a failed store waits before its supervisor starts it again
/// (systemd's RestartSec in deploy/), and between tries while it cannot start.
pub const SUPERVISOR_RESTART: Duration = Duration::from_secs(5);
/// How often the timelines take a point per node.
pub const TIMELINE_EVERY: Duration = Duration::from_secs(10);

/// How a scenario runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub seed: u64,
    pub bugs: InjectedBugs,
    /// The simulator's own injected bug: one-way cuts are not applied (the fault log still
    /// says they began), which the `faults_happened` check must catch.
    pub ignore_one_way_cuts: bool,
    /// Print progress to standard error every this much virtual time (`None`: quiet).
    pub progress: Option<Duration>,
}

/// One fault window as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    /// Its place in the scenario's list, from 1.
    pub fault: usize,
    pub kind: &'static str,
    /// The sites it was applied to (selectors resolved when it began).
    pub targets: Vec<String>,
    /// Virtual seconds from the start.
    pub began_s: f64,
    pub ended_s: Option<f64>,
    /// What moved, or why it did not.
    pub evidence: Result<String, String>,
}

/// One node's timeline, a point every [`TIMELINE_EVERY`].
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub node: String,
    pub role: Role,
    /// Running at the point.
    pub up: Vec<bool>,
    /// Operations tried and acknowledged since the previous point.
    pub tried: Vec<u32>,
    pub acked: Vec<u32>,
    /// Entries of its own the city did not hold yet.
    pub lag: Vec<u64>,
    /// Sanctions lists version enforced (0 while down).
    pub list_version: Vec<u64>,
}

/// What a run found.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub scenario: String,
    pub seed: u64,
    /// The code the run was built from (`git describe` at build time, when known).
    pub commit: &'static str,
    /// The whole scenario, so `yiwang-sim replay` reruns it from the report alone.
    pub spec: Scenario,
    pub bugs: Vec<&'static str>,
    pub checks: Vec<Check>,
    pub faults: Vec<FaultRecord>,
    /// Virtual seconds from the final heal until the mesh converged (`None`: not within the
    /// bound).
    pub converged_after_s: Option<f64>,
    /// Catch-up after each fault window that ended while the work went on.
    pub heals: Vec<HealTime>,
    pub timeline_every_s: f64,
    pub timelines: Vec<Timeline>,
    pub trace_hash: String,
    pub datagrams: u64,
    pub durable_writes: u64,
    pub crashes: usize,
    /// Crashes that fell inside a flush.
    pub crashes_in_flush: usize,
    pub ops_acknowledged: u64,
    pub ops_refused: u64,
    pub list_writes_committed: u64,
    pub list_writes_refused: u64,
    /// Restarts of nodes that stopped on a failed store.
    pub supervised_restarts: u64,
    /// Sanctions hits raised by the nodes running at the end, in their current lives.
    pub sanctions_hits: u64,
    pub lost_acked: u64,
    pub seq_conflicts: Vec<Conflict>,
    pub virtual_s: f64,
    pub wall_s: f64,
}

impl RunReport {
    pub fn virtual_vs_wall(&self) -> f64 {
        self.virtual_s / self.wall_s.max(1e-9)
    }

    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    pub fn converged_after(&self) -> Option<Duration> {
        self.converged_after_s.map(Duration::from_secs_f64)
    }
}

/// What `yiwang-sim trace` does: a generated city, steady work, power cuts at seeded moments.
#[derive(Debug, Clone)]
pub struct TraceOptions {
    pub nodes: usize,
    pub seed: u64,
    /// Virtual time the workload runs.
    pub duration: Duration,
    /// Power cuts (each followed by a restart on the same disk).
    pub crashes: usize,
    pub bugs: InjectedBugs,
    /// Longest the heal may take before the run gives up waiting for convergence.
    pub heal_limit: Duration,
    /// Mean time between two operations of one node.
    pub op_interval: Duration,
    /// Print progress to standard error every this much virtual time (`None`: quiet).
    pub progress: Option<Duration>,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions {
            nodes: 20,
            seed: 1,
            duration: Duration::from_secs(600),
            crashes: 0,
            bugs: InjectedBugs::default(),
            heal_limit: Duration::from_secs(600),
            op_interval: Duration::from_secs(15),
            progress: None,
        }
    }
}

impl TraceOptions {
    /// The trace as a scenario: its crashes are one storm over every site within
    /// [`CRASH_WINDOW`] of the run.
    pub fn scenario(&self) -> Scenario {
        let (from, to) = (self.duration.mul_f64(CRASH_WINDOW.0), self.duration.mul_f64(CRASH_WINDOW.1));
        let faults = (self.crashes > 0)
            .then(|| crate::scenario::FaultSpec {
                kind: FaultKind::CrashStorm { nodes: vec!["all".into()], count: self.crashes },
                at: from,
                lasts: Some(to - from),
                every: None,
            })
            .into_iter()
            .collect();
        Scenario {
            name: "trace".into(),
            summary: "a generated city, steady work, power cuts at seeded moments".into(),
            duration: self.duration,
            topology: TopologySpec { nodes: Some(self.nodes), ..TopologySpec::default() },
            workload: WorkloadSpec {
                op_interval: self.op_interval,
                list_write_interval: Duration::ZERO,
                ..WorkloadSpec::default()
            },
            faults,
            invariants: Invariants { converge_within: self.heal_limit, availability: 0.0 },
        }
    }
}

/// Run `yiwang-sim trace`.
pub fn run_trace(options: &TraceOptions) -> Result<RunReport, SimError> {
    let run_options =
        RunOptions { seed: options.seed, bugs: options.bugs, ignore_one_way_cuts: false, progress: options.progress };
    run(&options.scenario(), &run_options)
}

/// Run a scenario: builds its own runtime, so call it from outside any.
pub fn run(scenario: &Scenario, options: &RunOptions) -> Result<RunReport, SimError> {
    run_with(scenario, options, None)
}

/// Run a scenario live (`yiwang-sim demo`, see [`crate::demo`]): paced to the wall clock, with
/// real sockets served beside it and faults asked for while it runs.
pub fn run_live(scenario: &Scenario, options: &RunOptions, live: Live) -> Result<RunReport, SimError> {
    run_with(scenario, options, Some(live))
}

fn run_with(scenario: &Scenario, options: &RunOptions, live: Option<Live>) -> Result<RunReport, SimError> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    if live.is_some() {
        builder.enable_all();
    } else {
        builder.enable_time();
    }
    builder.start_paused(true);
    #[cfg(tokio_unstable)]
    builder.rng_seed(tokio::runtime::RngSeed::from_bytes(&Seed(options.seed).derive_bytes("tokio")));
    let runtime = builder.build().map_err(|e| SimError::Runtime(e.to_string()))?;
    let wall = std::time::Instant::now();
    // What runs (and what the report keeps) is the scenario with its random faults drawn.
    let scenario = &scenario.with_random_faults(options.seed);
    let run = Run { scenario, options, seed: Seed(options.seed), start: Instant::now() };
    let mut report = runtime.block_on(run.go(live))?;
    report.wall_s = wall.elapsed().as_secs_f64();
    Ok(report)
}

#[cfg(not(tokio_unstable))]
compile_error!(
    "the simulator needs tokio's seeded runtime: build with `--cfg tokio_unstable` \
     (.cargo/config.toml sets it; a RUSTFLAGS variable replaces that setting)"
);

/// A live run's next fault request.
async fn next_fault(live: &mut Option<Live>) -> Option<FaultRequest> {
    match live {
        Some(live) => live.next_fault().await,
        None => None,
    }
}

/// Something the run does at a moment of virtual time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Op(NodeId),
    ListWrite,
    /// Fault `.0`'s window `.1` begins.
    Begin(usize, usize),
    End(usize, usize),
    /// A storm of fault `.0` arms a power cut aimed at a site of its targets.
    Arm(usize, NodeId),
    Restart(NodeId),
    /// The supervisor starts a node that stopped on a failed store.
    Supervise(NodeId),
    Sample,
    Timeline,
    Progress,
    /// A live run waits for the wall clock.
    Pace,
    Finish,
}

/// The run's schedule: actions in time order (ties in insertion order).
struct Schedule {
    heap: BinaryHeap<Reverse<(Instant, u64, Action)>>,
    order: u64,
}

impl Schedule {
    fn at(&mut self, at: Instant, action: Action) {
        self.order += 1;
        self.heap.push(Reverse((at, self.order, action)));
    }

    fn next_at(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    fn pop(&mut self) -> Option<Action> {
        self.heap.pop().map(|Reverse((_, _, a))| a)
    }
}

/// Wait for `disk`'s next flush and return the moment inside it for a power cut (`fraction`
/// of the way through, whole milliseconds, so before it completes); `None` if no flush began
/// within [`ARMED_LIMIT`].
async fn inside_next_flush(disk: SimDisk, fraction: f64) -> Option<Instant> {
    let began = disk.flush_began();
    let deadline = Instant::now() + ARMED_LIMIT;
    loop {
        let notified = began.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some((start, due)) = disk.flush_window() {
            let into = ((due - start).as_millis() as f64 * fraction) as u64;
            return Some(start + Duration::from_millis(into));
        }
        tokio::select! {
            biased;
            _ = notified => {}
            _ = tokio::time::sleep_until(deadline) => return None,
        }
    }
}

/// What the faults in force have done to the run, and what they have come to.
#[derive(Default)]
struct InForce {
    links: Links,
    /// Sites whose processes are stopped (a `pause` fault): they take no operations.
    paused: BTreeSet<NodeId>,
    /// One record per fault window begun, in order.
    records: Vec<FaultRecord>,
    /// Power cuts each storm (by fault index) has made.
    storm_done: BTreeMap<usize, usize>,
}

/// A fault window in force: what it did, so its end can undo it.
struct Active {
    record: usize,
    baseline: Baseline,
    undo: Undo,
}

enum Undo {
    Heal(Vec<faults::Link>),
    /// Heal, and let the sites take operations again.
    Resume(Vec<faults::Link>, Vec<NodeId>),
    Restore(Vec<faults::Link>),
    Restart(Vec<NodeId>),
    Clock(Vec<(NodeId, i64)>),
    Disk(Vec<NodeId>, DiskFault),
    Nothing,
}

/// Per node: operations tried and acknowledged, in all and since the last timeline point.
#[derive(Default, Clone, Copy)]
struct Tally {
    tried: u64,
    acked: u64,
    point_tried: u32,
    point_acked: u32,
}

struct Run<'a> {
    scenario: &'a Scenario,
    options: &'a RunOptions,
    seed: Seed,
    start: Instant,
}

/// What an operation in flight was started under: its node's life, to tell a refusal from a
/// power cut that took the node away under it.
struct Flight {
    life: u64,
}

impl<'a> Run<'a> {
    fn at(&self, d: Duration) -> Instant {
        self.start + d
    }

    async fn go(mut self, mut live: Option<Live>) -> Result<RunReport, SimError> {
        self.start = Instant::now();
        let (scenario, seed, start) = (self.scenario, self.seed, self.start);
        let mut sites = topology::city(scenario.topology.shape());
        if scenario.topology.voters {
            sites = topology::with_voters(sites);
        }
        let mut raft = control_plane::raft::voter::RaftSettings::default();
        raft.snapshot_every = scenario.topology.raft.snapshot_every.unwrap_or(raft.snapshot_every);
        raft.logs_kept = scenario.topology.raft.logs_kept.unwrap_or(raft.logs_kept);
        let trace = Trace::new(start);
        let fabric = Fabric::new(FabricConfig { seed: seed.derive("fabric").0, ..FabricConfig::default() });
        trace.follow_fabric(&fabric);
        let cluster_options = ClusterOptions {
            seed: seed.derive("cluster").0,
            bugs: self.options.bugs,
            raft,
            http: live.as_ref().map(|l| l.http_site(sites[0].id.clone())),
            fence: live.as_ref().map(|l| l.boundary.clone()),
            ..ClusterOptions::default()
        };
        let mut cluster = Cluster::new(fabric, sites, cluster_options)?;
        let ids: Vec<NodeId> = cluster.topology.sites().iter().map(|s| s.id.clone()).collect();
        let late: BTreeSet<NodeId> =
            ids.iter().filter(|id| scenario.topology.late.iter().any(|l| l == id.as_str())).cloned().collect();
        if let Some(l) = scenario.topology.late.iter().find(|l| !ids.iter().any(|id| id.as_str() == l.as_str())) {
            return Err(SimError::Scenario(format!("topology.late names {l}, which is not a site of the city")));
        }
        for id in &ids {
            trace.follow_disk(id, cluster.disk(id));
        }
        for id in ids.iter().filter(|id| !late.contains(*id)) {
            cluster.start(id).await?;
        }
        if let Some(live) = &mut live {
            live.serve(&cluster).await?;
        }

        let mut rng = seed.rng("run");
        let intervals: Vec<(NodeId, Duration)> =
            ids.iter().map(|id| (id.clone(), scenario.workload.interval(cluster.site(id).role))).collect();
        let mut workload = Workload::new(seed.derive("workload"), &intervals);
        let mut schedule = Schedule { heap: BinaryHeap::new(), order: 0 };
        for id in &ids {
            schedule.at(start + workload.next_delay(id), Action::Op(id.clone()));
        }
        if !scenario.workload.list_write_interval.is_zero() {
            schedule.at(start + scenario.workload.list_write_interval.mul_f64(0.5 + rng.next_f64()), Action::ListWrite);
        }
        for (i, f) in scenario.faults.iter().enumerate() {
            for (w, (from, to)) in scenario.windows(f).into_iter().enumerate() {
                schedule.at(self.at(from), Action::Begin(i, w));
                if !matches!(f.kind, FaultKind::Join { .. }) {
                    schedule.at(self.at(to), Action::End(i, w));
                }
            }
        }
        schedule.at(start, Action::Sample);
        schedule.at(start, Action::Timeline);
        if let Some(every) = self.options.progress {
            schedule.at(start + every, Action::Progress);
        }
        schedule.at(start + scenario.duration, Action::Finish);
        if live.is_some() {
            schedule.at(start, Action::Pace);
        }

        let mut active: BTreeMap<(usize, usize), Active> = BTreeMap::new();
        let mut state = InForce::default();
        let mut sampler = Sampler::default();
        let mut heals = Heals::default();
        let bound = scenario.invariants.converge_within;
        let mut timelines: BTreeMap<NodeId, Timeline> = ids
            .iter()
            .map(|id| {
                let tl = Timeline {
                    node: id.to_string(),
                    role: cluster.site(id).role,
                    up: vec![],
                    tried: vec![],
                    acked: vec![],
                    lag: vec![],
                    list_version: vec![],
                };
                (id.clone(), tl)
            })
            .collect();
        let mut tallies: BTreeMap<NodeId, Tally> = BTreeMap::new();
        let mut ops: JoinSet<(Outcome, Flight)> = JoinSet::new();
        let mut writes: JoinSet<bool> = JoinSet::new();
        let mut armed: JoinSet<(usize, NodeId, bool)> = JoinSet::new();
        let mut acked: BTreeMap<NodeId, BTreeMap<Kind, u64>> = BTreeMap::new();
        let mut figures = Figures::default();

        loop {
            let next = schedule.next_at().expect("the finish is always scheduled");
            tokio::select! {
                biased;
                Some(done) = armed.join_next(), if !armed.is_empty() => {
                    let Ok((fault, id, inside)) = done else { continue };
                    if !cluster.is_running(&id) {
                        // Another power cut took it down meanwhile: aim this one elsewhere.
                        schedule.at(Instant::now(), Action::Arm(fault, id));
                        continue;
                    }
                    if let Some(cut) = cluster.crash(&id).await {
                        figures.crashes += 1;
                        *state.storm_done.entry(fault).or_default() += 1;
                        figures.crashes_in_flush += usize::from(inside && cut.during_flush);
                        tracing::info!(node = %id, ?cut, "power cut");
                        let down = DOWN_MIN + (DOWN_MAX - DOWN_MIN).mul_f64(rng.next_f64());
                        schedule.at(Instant::now() + down, Action::Restart(id));
                    }
                }
                Some(done) = ops.join_next(), if !ops.is_empty() => {
                    if let Ok((o, flight)) = done {
                        record(&cluster, o, flight, &mut workload, &mut acked, &mut tallies, &mut figures);
                    }
                }
                Some(done) = writes.join_next(), if !writes.is_empty() => figures.list_write(done),
                Some(request) = next_fault(&mut live), if live.is_some() => {
                    if let Some(live) = &mut live {
                        live.apply(request, &mut cluster, &mut state.links).await;
                    }
                }
                _ = tokio::time::sleep_until(next) => match schedule.pop().expect("peeked") {
                    Action::Op(id) => {
                        schedule.at(Instant::now() + workload.next_delay(&id), Action::Op(id.clone()));
                        if state.paused.contains(&id) {
                            continue;
                        }
                        if let Some((handles, op, now_ms)) = next_op(&cluster, &mut workload, &id) {
                            let t = tallies.entry(id.clone()).or_default();
                            t.tried += 1;
                            t.point_tried += 1;
                            let flight = Flight { life: cluster.lives(&id) };
                            ops.spawn(async move {
                                let node = handles.node.clone();
                                let o = match tokio::time::timeout(workload::OP_TIMEOUT, workload::perform(handles, op.clone(), now_ms)).await {
                                    Ok(o) => o,
                                    Err(_) => Outcome { node, op, result: Err("timed out".into()), reported: None },
                                };
                                (o, flight)
                            });
                        }
                    }
                    Action::ListWrite => {
                        schedule.at(Instant::now() + scenario.workload.list_write_interval.mul_f64(0.5 + rng.next_f64()), Action::ListWrite);
                        if let Some(write) = workload::list_write(&cluster, &mut rng) {
                            writes.spawn(write);
                        }
                    }
                    Action::Begin(i, w) => {
                        let f = &scenario.faults[i];
                        let targets = resolve(&cluster, f.kind.selectors(), &mut rng).map_err(SimError::Scenario)?;
                        let record = state.records.len();
                        let now = start.elapsed();
                        tracing::info!(fault = i + 1, kind = f.kind.name(), ?targets, "fault begins");
                        let (baseline, undo) = self.begin(&mut cluster, &mut state, &mut schedule, &mut rng, i, &f.kind, &targets, w).await?;
                        state.records.push(FaultRecord {
                            fault: i + 1,
                            kind: f.kind.name(),
                            targets: targets.iter().map(|t| t.to_string()).collect(),
                            began_s: now.as_secs_f64(),
                            ended_s: None,
                            evidence: Err("still in force".into()),
                        });
                        if matches!(f.kind, FaultKind::Join { .. }) {
                            state.records[record].evidence = baseline.evidence(&cluster, 0);
                        } else {
                            active.insert((i, w), Active { record, baseline, undo });
                        }
                    }
                    Action::End(i, w) => {
                        if let Some(a) = active.remove(&(i, w)) {
                            end(&mut cluster, &mut state, a, i, start).await?;
                            heals.healed(&cluster, i + 1, start.elapsed());
                        }
                    }
                    Action::Arm(fault, id) => {
                        // A node that is down already takes the next one that is up.
                        let from = ids.iter().position(|x| x == &id).unwrap_or(0);
                        let Some(target) =
                            (0..ids.len()).map(|i| &ids[(from + i) % ids.len()]).find(|n| cluster.is_running(n)).cloned()
                        else {
                            continue;
                        };
                        let disk = cluster.disk(&target).clone();
                        let fraction = rng.next_f64();
                        armed.spawn(async move {
                            let at = inside_next_flush(disk, fraction).await;
                            if let Some(at) = at {
                                tokio::time::sleep_until(at).await;
                            }
                            (fault, target, at.is_some())
                        });
                    }
                    // A site whose power came back, or whose supervisor starts it again after
                    // its store failed; one that cannot start (a full disk) is tried again.
                    Action::Restart(id) | Action::Supervise(id) => {
                        if !cluster.is_running(&id) {
                            if let Err(e) = cluster.start(&id).await {
                                tracing::info!(node = %id, error = %e, "the node could not start; trying again");
                                schedule.at(Instant::now() + SUPERVISOR_RESTART, Action::Supervise(id));
                            }
                        }
                    }
                    Action::Sample => {
                        // A node stops when its store fails (the binary exits); its supervisor
                        // starts it again on what is durable.
                        let failed: Vec<NodeId> = cluster.running().filter(|n| n.store.has_failed()).map(|n| n.id.clone()).collect();
                        for id in failed {
                            tracing::info!(node = %id, "the store failed: the node stops, its supervisor restarts it");
                            cluster.crash(&id).await;
                            figures.supervised_restarts += 1;
                            schedule.at(Instant::now() + SUPERVISOR_RESTART, Action::Supervise(id));
                        }
                        sampler.sample(&cluster, start.elapsed());
                        heals.poll(&cluster, start.elapsed(), bound);
                        schedule.at(Instant::now() + SAMPLE_EVERY, Action::Sample);
                    }
                    Action::Timeline => {
                        point(&cluster, &mut timelines, &mut tallies);
                        schedule.at(Instant::now() + TIMELINE_EVERY, Action::Timeline);
                    }
                    Action::Progress => {
                        progress(&cluster, &trace, start, figures.crashes, figures.ops_acknowledged);
                        if let Some(every) = self.options.progress {
                            schedule.at(Instant::now() + every, Action::Progress);
                        }
                    }
                    Action::Pace => {
                        if let Some(live) = &mut live {
                            live.pace(start.elapsed());
                        }
                        schedule.at(Instant::now() + crate::demo::PACE_TICK, Action::Pace);
                    }
                    Action::Finish => break,
                },
            }
        }

        // The heal: no more work, no more crashes; every fault ends, every site is up; the mesh
        // has its bound to agree.
        armed.abort_all();
        let keys: Vec<(usize, usize)> = active.keys().copied().collect();
        for key in keys {
            let a = active.remove(&key).expect("listed");
            end(&mut cluster, &mut state, a, key.0, start).await?;
        }
        while let Some(done) = ops.join_next().await {
            if let Ok((o, flight)) = done {
                record(&cluster, o, flight, &mut workload, &mut acked, &mut tallies, &mut figures);
            }
        }
        while let Some(done) = writes.join_next().await {
            figures.list_write(done);
        }
        cluster.start_all().await?;
        let healed = Instant::now();
        let limit = bound;
        let converged_after = loop {
            heals.poll(&cluster, start.elapsed(), bound);
            let state = checks::converged(&cluster);
            if state.is_ok() {
                break Some(healed.elapsed());
            }
            if healed.elapsed() >= limit {
                tracing::warn!(reason = %state.unwrap_err(), "the mesh did not converge after the heal");
                break None;
            }
            sampler.sample(&cluster, start.elapsed());
            tokio::time::sleep(HEAL_POLL).await;
        };
        sampler.sample(&cluster, start.elapsed());
        point(&cluster, &mut timelines, &mut tallies);

        let seq_conflicts = checks::seq_conflicts(&cluster);
        let lost_acked = checks::lost_acked(&cluster, &acked);
        let mut results = vec![
            checks::nothing_lost(lost_acked, &checks::holes(&cluster)),
            checks::no_conflicts(&seq_conflicts),
            checks::nothing_invented(&cluster),
            checks::nothing_duplicated(&cluster),
            checks::audit_chains(&cluster),
            checks::availability(&cluster, &tallies_of(&tallies), scenario.invariants.availability),
            sampler.versions_monotonic(),
            checks::convergence(converged_after, limit, &cluster, &heals),
            checks::faults_happened(&state.records),
        ];
        if scenario.topology.voters {
            results.push(sampler.raft_safety());
        }
        let virtual_elapsed = start.elapsed();
        let hit = node::metrics::AlertLabels { alert: "sanctions_hit" };
        let sanctions_hits = cluster.running().map(|n| n.metrics.alerts.get_or_create(&hit).get()).sum();
        cluster.stop_all().await;
        let summary = trace.summary();
        Ok(RunReport {
            scenario: scenario.name.clone(),
            seed: self.options.seed,
            commit: crate::COMMIT,
            spec: scenario.clone(),
            bugs: {
                let mut names = self.options.bugs.names();
                if self.options.ignore_one_way_cuts {
                    names.push("ignore-oneway-cut");
                }
                names
            },
            checks: results,
            faults: state.records,
            converged_after_s: converged_after.map(|d| d.as_secs_f64()),
            heals: heals.times,
            timeline_every_s: TIMELINE_EVERY.as_secs_f64(),
            timelines: timelines.into_values().collect(),
            trace_hash: summary.hash,
            datagrams: summary.datagrams,
            durable_writes: summary.durable_writes,
            crashes: figures.crashes,
            crashes_in_flush: figures.crashes_in_flush,
            ops_acknowledged: figures.ops_acknowledged,
            ops_refused: figures.ops_refused,
            list_writes_committed: figures.list_writes_committed,
            list_writes_refused: figures.list_writes_refused,
            supervised_restarts: figures.supervised_restarts,
            sanctions_hits,
            lost_acked,
            seq_conflicts,
            virtual_s: virtual_elapsed.as_secs_f64(),
            wall_s: 0.0,
        })
    }

    /// Apply fault `i`'s window `w` to `targets`.
    #[allow(clippy::too_many_arguments)]
    async fn begin(
        &self,
        cluster: &mut Cluster,
        state: &mut InForce,
        schedule: &mut Schedule,
        rng: &mut Rng,
        i: usize,
        kind: &FaultKind,
        targets: &BTreeSet<NodeId>,
        w: usize,
    ) -> Result<(Baseline, Undo), SimError> {
        let all: BTreeSet<NodeId> = cluster.topology.sites().iter().map(|s| s.id.clone()).collect();
        Ok(match kind {
            FaultKind::Isolate { .. } | FaultKind::Pause { .. } => {
                let rest: BTreeSet<NodeId> = all.difference(targets).cloned().collect();
                let cut = faults::links_between(cluster, targets, &rest, true);
                state.links.cut(&cluster.fabric, &cut);
                let baseline = Baseline::cut(&cluster.fabric, cut.clone());
                if matches!(kind, FaultKind::Pause { .. }) {
                    state.paused.extend(targets.iter().cloned());
                    (baseline, Undo::Resume(cut, targets.iter().cloned().collect()))
                } else {
                    (baseline, Undo::Heal(cut))
                }
            }
            FaultKind::Cut { from, to, one_way } => {
                let from = resolve(cluster, from.iter().collect(), rng).map_err(SimError::Scenario)?;
                let to = resolve(cluster, to.iter().collect(), rng).map_err(SimError::Scenario)?;
                let cut = faults::links_between(cluster, &from, &to, !one_way);
                if !(*one_way && self.options.ignore_one_way_cuts) {
                    state.links.cut(&cluster.fabric, &cut);
                }
                (Baseline::cut(&cluster.fabric, cut.clone()), Undo::Heal(cut))
            }
            FaultKind::Degrade { loss, duplicate, delay, jitter, bandwidth, .. } => {
                let up = faults::uplinks(cluster, targets);
                state.links.degrade(
                    &cluster.fabric,
                    &up,
                    faults::degraded(*loss, *duplicate, *delay, *jitter, *bandwidth),
                );
                (Baseline::degrade(&cluster.fabric, up.clone(), *loss > 0.0, *duplicate > 0.0), Undo::Restore(up))
            }
            FaultKind::Crash { .. } => {
                let mut crashed = Vec::new();
                for t in targets {
                    crashed.push((t.clone(), cluster.crash(t).await.is_some()));
                }
                let down = crashed.iter().filter(|(_, d)| *d).map(|(n, _)| n.clone()).collect();
                (Baseline::Crashed(crashed), Undo::Restart(down))
            }
            FaultKind::CrashStorm { count, .. } => {
                let f = &self.scenario.faults[i];
                let (from, to) = self.scenario.windows(f)[w];
                let pool: Vec<&NodeId> = targets.iter().collect();
                // Each falls within ARMED_LIMIT of being armed (plus a flush): all have fallen
                // by the window's end, when the storm is judged.
                let last = to.saturating_sub(ARMED_LIMIT + Duration::from_secs(1)).max(from);
                let mut times: Vec<Duration> =
                    (0..*count).map(|_| from + (last - from).mul_f64(rng.next_f64())).collect();
                times.sort();
                for t in times {
                    let target = pool[rng.below(pool.len() as u64) as usize].clone();
                    schedule.at(self.at(t), Action::Arm(i, target));
                }
                (Baseline::Storm { asked: *count }, Undo::Nothing)
            }
            FaultKind::Clock { offset, .. } => {
                let offset_ms = parse_offset(offset).map_err(SimError::Scenario)?;
                let before = targets.iter().map(|t| (t.clone(), cluster.clock(t).skew_ms())).collect();
                for t in targets {
                    cluster.clock(t).set_skew_ms(offset_ms);
                }
                (Baseline::Clock { nodes: targets.iter().cloned().collect(), offset_ms }, Undo::Clock(before))
            }
            FaultKind::DiskFull { .. } | FaultKind::FailingFlushes { .. } => {
                let what = if matches!(kind, FaultKind::DiskFull { .. }) {
                    DiskFault::Full
                } else {
                    DiskFault::FailingFlushes
                };
                let nodes: Vec<(NodeId, _)> = targets.iter().map(|t| (t.clone(), cluster.disk(t).stats())).collect();
                for t in targets {
                    let disk = cluster.disk(t);
                    let bytes = disk.bytes();
                    disk.update_faults(|f| match what {
                        DiskFault::Full => f.capacity = Some(bytes),
                        DiskFault::FailingFlushes => f.fail_flushes = true,
                    });
                }
                (Baseline::Disk { nodes, what }, Undo::Disk(targets.iter().cloned().collect(), what))
            }
            FaultKind::Random { .. } => unreachable!("drawn before the run: Scenario::with_random_faults"),
            FaultKind::Join { .. } => {
                for t in targets {
                    if !cluster.is_running(t) {
                        cluster.start(t).await?;
                    }
                }
                (Baseline::Joined(targets.iter().cloned().collect()), Undo::Nothing)
            }
        })
    }
}

/// End a fault window: undo it and judge whether it happened.
async fn end(
    cluster: &mut Cluster,
    state: &mut InForce,
    a: Active,
    fault: usize,
    start: Instant,
) -> Result<(), SimError> {
    // Judge before undoing: a clock's offset or a disk's refusals are read while in force.
    let record = &mut state.records[a.record];
    record.evidence = a.baseline.evidence(cluster, state.storm_done.get(&fault).copied().unwrap_or(0));
    record.ended_s = Some(start.elapsed().as_secs_f64());
    tracing::info!(fault = fault + 1, evidence = ?record.evidence, "fault ends");
    match a.undo {
        Undo::Heal(l) => state.links.heal(&cluster.fabric, &l),
        Undo::Resume(l, nodes) => {
            state.links.heal(&cluster.fabric, &l);
            for n in nodes {
                state.paused.remove(&n);
            }
        }
        Undo::Restore(l) => state.links.restore(&cluster.fabric, &l),
        Undo::Restart(nodes) => {
            for n in nodes {
                if !cluster.is_running(&n) {
                    cluster.start(&n).await?;
                }
            }
        }
        Undo::Clock(before) => {
            for (n, skew) in before {
                cluster.clock(&n).set_skew_ms(skew);
            }
        }
        Undo::Disk(nodes, what) => {
            for n in nodes {
                cluster.disk(&n).update_faults(|f| match what {
                    DiskFault::Full => f.capacity = None,
                    DiskFault::FailingFlushes => f.fail_flushes = false,
                });
            }
        }
        Undo::Nothing => {}
    }
    Ok(())
}

/// The sites `selectors` name (see the scenario module's docs).
pub fn resolve(cluster: &Cluster, selectors: Vec<&String>, rng: &mut Rng) -> Result<BTreeSet<NodeId>, String> {
    let sites = cluster.topology.sites();
    let mut out = BTreeSet::new();
    for sel in selectors {
        let role = |r: &str| -> Result<Role, String> {
            r.parse::<Role>()
                .map_err(|_| format!("selector {sel:?}: {r:?} is not a role (city, county, town, harbour)"))
        };
        if sel == "all" {
            out.extend(sites.iter().map(|s| s.id.clone()));
        } else if sel == "voters" {
            out.extend(sites.iter().filter(|s| s.raft.is_some()).map(|s| s.id.clone()));
        } else if sel == "leader" {
            out.insert(checks::leader(cluster).ok_or("selector \"leader\": no voter leads now")?);
        } else if let Some(r) = sel.strip_prefix("role:") {
            let r = role(r)?;
            out.extend(sites.iter().filter(|s| s.role == r).map(|s| s.id.clone()));
        } else if let Some(r) = sel.strip_prefix("random:") {
            let r = role(r)?;
            let pool: Vec<&NodeId> = sites.iter().filter(|s| s.role == r).map(|s| &s.id).collect();
            if pool.is_empty() {
                return Err(format!("selector {sel:?}: the city has no site of that role"));
            }
            out.insert(pool[rng.below(pool.len() as u64) as usize].clone());
        } else if let Some(c) = sel.strip_prefix("parents:") {
            let c = sites.iter().find(|s| s.id.as_str() == c).ok_or(format!("selector {sel:?}: no site {c}"))?;
            if c.parents.is_empty() {
                return Err(format!("selector {sel:?}: {} has no parents", c.id));
            }
            out.extend(c.parents.iter().cloned());
        } else if let Some(p) = sel.strip_prefix("subtree:") {
            let p = sites.iter().find(|s| s.id.as_str() == p).ok_or(format!("selector {sel:?}: no site {p}"))?;
            out.insert(p.id.clone());
            out.extend(sites.iter().filter(|s| s.parents.first() == Some(&p.id)).map(|s| s.id.clone()));
        } else {
            let s = sites
                .iter()
                .find(|s| s.id.as_str() == sel.as_str())
                .ok_or(format!("selector {sel:?}: no such site"))?;
            out.insert(s.id.clone());
        }
    }
    Ok(out)
}

#[derive(Default)]
struct Figures {
    crashes: usize,
    crashes_in_flush: usize,
    ops_acknowledged: u64,
    ops_refused: u64,
    list_writes_committed: u64,
    list_writes_refused: u64,
    supervised_restarts: u64,
}

impl Figures {
    /// Count a sanctions write's outcome (committed, or refused, failed or cut short).
    fn list_write(&mut self, done: Result<bool, tokio::task::JoinError>) {
        match done {
            Ok(true) => self.list_writes_committed += 1,
            _ => self.list_writes_refused += 1,
        }
    }
}

/// The next operation of node `id`, if it runs and has something to do.
fn next_op(cluster: &Cluster, workload: &mut Workload, id: &NodeId) -> Option<(Handles, workload::Op, u64)> {
    let node = cluster.get(id)?;
    let site = cluster.site(id);
    let tier = if site.parents.first().is_some_and(|p| cluster.site(p).role == Role::County) {
        Tier::County
    } else {
        Tier::City
    };
    let incoming = match site.role {
        Role::City => workload::unanswered(&node.running.events, Tier::City),
        Role::County => workload::unanswered(&node.running.events, Tier::County),
        _ => Vec::new(),
    };
    let op = workload.next_op(id, site.role, tier, &incoming)?;
    let handles = Handles {
        node: id.clone(),
        events: node.running.events.clone(),
        lists: node.running.lists.clone(),
        ingest: node.running.ingest.clone(),
        store: node.store.clone(),
    };
    Some((handles, op, cluster.clock(id).now_ms()))
}

/// Take an operation's outcome: acknowledged entries, the workload's memory, the tallies. An
/// operation whose node lost power under it was neither acknowledged nor refused: its producer
/// never heard back, so it does not count against availability.
fn record(
    cluster: &Cluster,
    o: Outcome,
    flight: Flight,
    workload: &mut Workload,
    acked: &mut BTreeMap<NodeId, BTreeMap<Kind, u64>>,
    tallies: &mut BTreeMap<NodeId, Tally>,
    figures: &mut Figures,
) {
    workload.learn(&o);
    let t = tallies.entry(o.node.clone()).or_default();
    match &o.result {
        Ok(heads) => {
            let mine = acked.entry(o.node.clone()).or_default();
            for (k, h) in heads {
                let a = mine.entry(*k).or_default();
                *a = (*a).max(*h);
            }
            figures.ops_acknowledged += 1;
            t.acked += 1;
            t.point_acked += 1;
        }
        Err(e) => {
            if cluster.lives(&o.node) != flight.life || !cluster.is_running(&o.node) {
                t.tried -= 1;
                t.point_tried = t.point_tried.saturating_sub(1);
            } else {
                tracing::debug!(node = %o.node, op = ?o.op, error = %e, "operation refused");
                figures.ops_refused += 1;
            }
        }
    }
}

fn tallies_of(tallies: &BTreeMap<NodeId, Tally>) -> BTreeMap<NodeId, (u64, u64)> {
    tallies.iter().map(|(n, t)| (n.clone(), (t.tried, t.acked))).collect()
}

/// A timeline point for every node.
fn point(cluster: &Cluster, timelines: &mut BTreeMap<NodeId, Timeline>, tallies: &mut BTreeMap<NodeId, Tally>) {
    let city = cluster.get(&cluster.topology.city().id);
    for (id, tl) in timelines.iter_mut() {
        let t = tallies.entry(id.clone()).or_default();
        tl.tried.push(std::mem::take(&mut t.point_tried));
        tl.acked.push(std::mem::take(&mut t.point_acked));
        match cluster.get(id) {
            Some(n) => {
                tl.up.push(true);
                tl.list_version.push(n.running.sanctions.version());
                let lag = match city {
                    Some(c) if c.id != *id => checks::up_kinds()
                        .map(|k| n.store.heads(k).get(id).saturating_sub(c.store.heads(k).get(id)))
                        .sum(),
                    _ => 0,
                };
                tl.lag.push(lag);
            }
            None => {
                tl.up.push(false);
                tl.list_version.push(0);
                tl.lag.push(tl.lag.last().copied().unwrap_or(0));
            }
        }
    }
}

fn progress(cluster: &Cluster, trace: &Trace, start: Instant, crashes: usize, acknowledged: u64) {
    let up = cluster.running().count();
    let s = trace.summary();
    let t = start.elapsed().as_secs();
    eprintln!(
        "[yiwang-sim] {:>3}m{:02}s virtual: {up}/{} nodes up, {crashes} power cuts, {acknowledged} operations acknowledged, {} datagrams, {} durable writes",
        t / 60,
        t % 60,
        cluster.topology.sites().len(),
        s.datagrams,
        s.durable_writes,
    );
}
