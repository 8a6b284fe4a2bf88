//! `yiwang-sim trace`: a generated city on virtual time, a steady workload, power cuts at
//! seeded moments, a heal, and the figures that say whether the run kept its promises.
//!
//! One run is a pure function of its options (seed included) and the code: the runtime is a
//! paused current-thread tokio runtime with a fixed RNG seed, every node takes its seed from
//! the run's, every store is a simulated disk flushing in virtual time, and the network is the
//! in-memory fabric. [`TraceReport::trace_hash`] is the proof: the same options give the same
//! hash in any process.
//!
//! Power cuts aim at flushes: a crash is armed at a seeded moment and falls at a seeded point
//! inside the node's next flush (or, if none comes within [`ARMED_LIMIT`], at once), since a
//! flush under way is where a power cut can take what a careless node already sent.

use crate::checks;
use crate::cluster::{Cluster, ClusterOptions, SimError};
use crate::fabric::{Fabric, FabricConfig};
use crate::topology;
use crate::trace::Trace;
use crate::workload::{self, Handles, Outcome, Workload};
use node::clock::Clock;
use node::rng::Seed;
use node::store::{InjectedBugs, SimDisk};
use node::workflow::Tier;
use proto::{Kind, NodeId, Role};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How long an armed crash waits for its node's next flush before it falls anyway.
pub const ARMED_LIMIT: Duration = Duration::from_secs(5);
/// Shortest and longest time a crashed node stays down.
const DOWN_MIN: Duration = Duration::from_secs(2);
const DOWN_MAX: Duration = Duration::from_secs(30);
/// Crashes fall within this share of the run, so every node is back well before its end.
const CRASH_WINDOW: (f64, f64) = (0.05, 0.8);
/// How often convergence is checked after the heal.
const HEAL_POLL: Duration = Duration::from_secs(1);

/// What a trace run does.
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

/// What a trace run found.
#[derive(Debug, Clone)]
pub struct TraceReport {
    pub trace_hash: String,
    pub seq_conflicts: Vec<checks::Conflict>,
    pub lost_acked: u64,
    pub virtual_elapsed: Duration,
    pub wall_elapsed: Duration,
    /// Virtual time the mesh took to converge after the heal (`None`: not within the limit).
    pub converged_after: Option<Duration>,
    pub datagrams: u64,
    pub durable_writes: u64,
    pub crashes: usize,
    /// Crashes that fell inside a flush.
    pub crashes_in_flush: usize,
    pub ops_acknowledged: u64,
    pub ops_refused: u64,
}

impl TraceReport {
    pub fn virtual_vs_wall(&self) -> f64 {
        self.virtual_elapsed.as_secs_f64() / self.wall_elapsed.as_secs_f64().max(1e-9)
    }

    /// Whether the run kept every promise it checks.
    pub fn passed(&self) -> bool {
        self.seq_conflicts.is_empty() && self.lost_acked == 0 && self.converged_after.is_some()
    }
}

/// Something the run does at a moment of virtual time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Op(NodeId),
    Arm(NodeId),
    Restart(NodeId),
    Progress,
    End,
}

/// Run a trace: builds its own runtime, so call it from outside any.
pub fn run_trace(options: &TraceOptions) -> Result<TraceReport, SimError> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_time().start_paused(true);
    #[cfg(tokio_unstable)]
    builder.rng_seed(tokio::runtime::RngSeed::from_bytes(&Seed(options.seed).derive_bytes("tokio")));
    let runtime = builder.build().map_err(|e| SimError::Runtime(e.to_string()))?;
    let wall = std::time::Instant::now();
    let mut report = runtime.block_on(trace(options))?;
    report.wall_elapsed = wall.elapsed();
    Ok(report)
}

#[cfg(not(tokio_unstable))]
compile_error!(
    "the simulator needs tokio's seeded runtime: build with `--cfg tokio_unstable` \
     (.cargo/config.toml sets it; a RUSTFLAGS variable replaces that setting)"
);

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

async fn trace(options: &TraceOptions) -> Result<TraceReport, SimError> {
    let seed = Seed(options.seed);
    let start = Instant::now();
    let sites = topology::reference_city(options.nodes);
    let trace = Trace::new(start);
    let fabric = Fabric::new(FabricConfig { seed: seed.derive("fabric").0, ..FabricConfig::default() });
    trace.follow_fabric(&fabric);
    let cluster_options =
        ClusterOptions { seed: seed.derive("cluster").0, bugs: options.bugs, ..ClusterOptions::default() };
    let mut cluster = Cluster::new(fabric, sites, cluster_options)?;
    let ids: Vec<NodeId> = cluster.topology.sites().iter().map(|s| s.id.clone()).collect();
    for id in &ids {
        trace.follow_disk(id, cluster.disk(id));
    }
    cluster.start_all().await?;

    let mut rng = seed.rng("run");
    let mut workload = Workload::new(seed.derive("workload"), &ids, options.op_interval);
    let mut schedule = Schedule { heap: BinaryHeap::new(), order: 0 };
    for id in &ids {
        schedule.at(start + workload.next_delay(id), Action::Op(id.clone()));
    }
    let mut crash_times: Vec<Duration> = (0..options.crashes)
        .map(|_| options.duration.mul_f64(CRASH_WINDOW.0 + rng.next_f64() * (CRASH_WINDOW.1 - CRASH_WINDOW.0)))
        .collect();
    crash_times.sort();
    for t in crash_times {
        let target = ids[rng.below(ids.len() as u64) as usize].clone();
        schedule.at(start + t, Action::Arm(target));
    }
    if let Some(every) = options.progress {
        schedule.at(start + every, Action::Progress);
    }
    schedule.at(start + options.duration, Action::End);

    let mut ops: JoinSet<Outcome> = JoinSet::new();
    let mut armed: JoinSet<(NodeId, bool)> = JoinSet::new();
    let mut acked: BTreeMap<NodeId, BTreeMap<Kind, u64>> = BTreeMap::new();
    let (mut acknowledged, mut refused, mut crashes, mut in_flush) = (0u64, 0u64, 0usize, 0usize);
    let record = |o: Outcome, workload: &mut Workload, acked: &mut BTreeMap<NodeId, BTreeMap<Kind, u64>>| {
        workload.learn(&o);
        match &o.result {
            Ok(heads) => {
                let mine = acked.entry(o.node.clone()).or_default();
                for (k, h) in heads {
                    let a = mine.entry(*k).or_default();
                    *a = (*a).max(*h);
                }
                true
            }
            Err(e) => {
                tracing::debug!(node = %o.node, op = ?o.op, error = %e, "operation refused");
                false
            }
        }
    };

    loop {
        let next = schedule.next_at().expect("the end is always scheduled");
        tokio::select! {
            biased;
            Some(done) = armed.join_next(), if !armed.is_empty() => {
                let Ok((id, inside)) = done else { continue };
                if let Some(cut) = cluster.crash(&id) {
                    crashes += 1;
                    in_flush += usize::from(inside && cut.during_flush);
                    tracing::info!(node = %id, ?cut, "power cut");
                    let down = DOWN_MIN + (DOWN_MAX - DOWN_MIN).mul_f64(rng.next_f64());
                    schedule.at(Instant::now() + down, Action::Restart(id));
                }
            }
            Some(done) = ops.join_next(), if !ops.is_empty() => {
                if let Ok(o) = done {
                    if record(o, &mut workload, &mut acked) { acknowledged += 1 } else { refused += 1 }
                }
            }
            _ = tokio::time::sleep_until(next) => match schedule.pop().expect("peeked") {
                Action::Op(id) => {
                    schedule.at(Instant::now() + workload.next_delay(&id), Action::Op(id.clone()));
                    let Some(node) = cluster.get(&id) else { continue };
                    let role = cluster.site(&id).role;
                    let tier = if cluster.site(&id).parents.first().is_some_and(|p| cluster.site(p).role == Role::County) {
                        Tier::County
                    } else {
                        Tier::City
                    };
                    let incoming = match role {
                        Role::City => workload::unanswered(&node.running.events, Tier::City),
                        Role::County => workload::unanswered(&node.running.events, Tier::County),
                        _ => Vec::new(),
                    };
                    let Some(op) = workload.next_op(&id, role, tier, &incoming) else { continue };
                    let handles = Handles {
                        node: id.clone(),
                        events: node.running.events.clone(),
                        lists: node.running.lists.clone(),
                        ingest: node.running.ingest.clone(),
                        store: node.store.clone(),
                    };
                    let now_ms = cluster.clock(&id).now_ms();
                    ops.spawn(async move {
                        let node = handles.node.clone();
                        match tokio::time::timeout(workload::OP_TIMEOUT, workload::perform(handles, op.clone(), now_ms)).await {
                            Ok(o) => o,
                            Err(_) => Outcome { node, op, result: Err("timed out".into()), reported: None },
                        }
                    });
                }
                Action::Arm(id) => {
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
                        (target, at.is_some())
                    });
                }
                Action::Restart(id) => {
                    if !cluster.is_running(&id) {
                        cluster.start(&id).await?;
                    }
                }
                Action::Progress => {
                    progress(&cluster, &trace, start, crashes, acknowledged);
                    if let Some(every) = options.progress {
                        schedule.at(Instant::now() + every, Action::Progress);
                    }
                }
                Action::End => break,
            },
        }
    }

    // The heal: no more work, no more crashes; every node up; wait for the mesh to agree.
    armed.abort_all();
    while let Some(done) = ops.join_next().await {
        if let Ok(o) = done {
            if record(o, &mut workload, &mut acked) {
                acknowledged += 1
            } else {
                refused += 1
            }
        }
    }
    cluster.start_all().await?;
    let healed = Instant::now();
    let converged_after = loop {
        if checks::converged(&cluster).is_ok() {
            break Some(healed.elapsed());
        }
        if healed.elapsed() >= options.heal_limit {
            tracing::warn!(reason = %checks::converged(&cluster).unwrap_err(), "the mesh did not converge after the heal");
            break None;
        }
        tokio::time::sleep(HEAL_POLL).await;
    };
    let seq_conflicts = checks::seq_conflicts(&cluster);
    let lost_acked = checks::lost_acked(&cluster, &acked);
    let virtual_elapsed = start.elapsed();
    cluster.stop_all().await;
    let summary = trace.summary();
    Ok(TraceReport {
        trace_hash: summary.hash,
        seq_conflicts,
        lost_acked,
        virtual_elapsed,
        wall_elapsed: Duration::ZERO,
        converged_after,
        datagrams: summary.datagrams,
        durable_writes: summary.durable_writes,
        crashes,
        crashes_in_flush: in_flush,
        ops_acknowledged: acknowledged,
        ops_refused: refused,
    })
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
