//! What a run must hold to, checked over every node's store and, while it runs, over samples
//! of every node and voter. Each check gives a [`Check`]: its name, whether it passed, and the
//! figures or the first failures behind it.
//!
//! - [`seq_conflicts`]: an entry is its `(kind, origin, seq)`: two nodes holding different
//!   contents under one address means an origin numbered two entries alike (it sent one that a
//!   power cut then took away, and numbered a new one the same) and the mesh cannot tell.
//! - [`lost_acked`]: every entry a node acknowledged (made durable and said so) reaches the
//!   city, once links and nodes are back.
//! - [`converged`]: the city holds everything every node holds of what travels up, every
//!   node holds the same watchlist edits, and every voter and node the same sanctions lists.
//! - [`nothing_invented`], [`nothing_duplicated`]: the city holds no entry of a site beyond
//!   what the site itself holds, and no entry twice under two numbers.
//! - [`availability`]: towns and harbours acknowledged what they were asked to do, whatever
//!   the links did (an operation a power cut took away is not counted either way).
//! - [`Sampler`]: list versions never go back on any node or voter, one leader per raft term,
//!   one lists state per version everywhere (so every node's lists are the committed log's).
//! - [`faults_happened`]: every fault of the schedule moved what it should have.

use crate::cluster::Cluster;
use crate::run::FaultRecord;
use control_plane::raft::voter::is_leader;
use proto::authz::{self, Direction};
use proto::{Kind, NodeId, Role};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;

/// One check's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    /// The figures behind a pass, or the first failures.
    pub detail: String,
}

impl Check {
    fn new(name: &'static str, passed: bool, detail: String) -> Check {
        Check { name, passed, detail }
    }
}

/// Failures a check lists in full; past these it counts them.
const SHOWN: usize = 5;

fn listing(items: &[String]) -> String {
    let mut s = items.iter().take(SHOWN).cloned().collect::<Vec<_>>().join("; ");
    if items.len() > SHOWN {
        s.push_str(&format!("; and {} more", items.len() - SHOWN));
    }
    s
}

/// One `(kind, origin, seq)` held with different contents by different nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub kind: Kind,
    pub origin: NodeId,
    pub seq: u64,
    /// Two nodes that disagree.
    pub holders: (NodeId, NodeId),
}

/// Every `(kind, origin, seq)` of a replicated kind held with two contents anywhere among the
/// running nodes.
pub fn seq_conflicts(cluster: &Cluster) -> Vec<Conflict> {
    let mut seen: BTreeMap<(Kind, NodeId, u64), ([u8; 32], NodeId)> = BTreeMap::new();
    let mut conflicts: BTreeMap<(Kind, NodeId, u64), Conflict> = BTreeMap::new();
    for node in cluster.running() {
        for kind in Kind::REPLICATED {
            for entry in node.store.all_entries(kind) {
                let Ok(e) = entry else { continue };
                let digest = content(&e);
                let key = (kind, e.origin.clone(), e.seq);
                match seen.get(&key) {
                    None => {
                        seen.insert(key, (digest, node.id.clone()));
                    }
                    Some((d, first)) if *d != digest => {
                        conflicts.entry(key).or_insert(Conflict {
                            kind,
                            origin: e.origin.clone(),
                            seq: e.seq,
                            holders: (first.clone(), node.id.clone()),
                        });
                    }
                    Some(_) => {}
                }
            }
        }
    }
    conflicts.into_values().collect()
}

/// An entry's contents: its stamp and payload (a site stamps each of its entries with a
/// distinct hybrid time, so equal contents are one entry).
fn content(e: &proto::Entry) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(e.hlc.to_sortable_bytes());
    h.update(&e.payload);
    h.finalize().into()
}

/// The kinds a node's own work sends up to the city.
pub fn up_kinds() -> impl Iterator<Item = Kind> {
    authz::priority(Direction::Up)
}

/// Entries acknowledged at their origin (`acked`: per origin and kind, the highest sequence
/// acknowledged) that the city does not hold.
pub fn lost_acked(cluster: &Cluster, acked: &BTreeMap<NodeId, BTreeMap<Kind, u64>>) -> u64 {
    let city = &cluster.topology.city().id;
    let Some(city) = cluster.get(city) else { return acked.values().flat_map(|k| k.values()).sum() };
    let mut lost = 0;
    for (origin, kinds) in acked {
        if origin == &city.id {
            continue;
        }
        for kind in up_kinds() {
            let held = city.store.heads(kind).get(origin);
            lost += kinds.get(&kind).copied().unwrap_or(0).saturating_sub(held);
        }
    }
    lost
}

/// `Ok` once the city holds all that every running node holds of what goes up, and every
/// running node the same watchlist edits; otherwise the first difference.
pub fn converged(cluster: &Cluster) -> Result<(), String> {
    let city_id = &cluster.topology.city().id;
    let city = cluster.get(city_id).ok_or("the city is not running")?;
    for node in cluster.running() {
        if &node.id == city_id {
            continue;
        }
        for kind in up_kinds() {
            let own = node.store.heads(kind).get(&node.id);
            let at_city = city.store.heads(kind).get(&node.id);
            if at_city < own {
                return Err(format!("the city holds {kind} of {} up to {at_city}, it has {own}", node.id));
            }
        }
        let lists = node.store.heads(Kind::Watchlist);
        let city_lists = city.store.heads(Kind::Watchlist);
        if lists != city_lists {
            return Err(format!("{} and the city hold different watchlist edits", node.id));
        }
    }
    let mut want: Option<(u64, [u8; 32], &NodeId)> = None;
    for (id, v) in cluster.voters() {
        let state = v.node.view().read();
        let here = (state.lists.version(), state.lists.digest());
        match want {
            None => want = Some((here.0, here.1, id)),
            Some((version, digest, other)) if (version, digest) != here => {
                return Err(format!(
                    "the voters at {other} and {id} hold different lists (versions {version} and {})",
                    here.0
                ));
            }
            Some(_) => {}
        }
    }
    if let Some((version, digest, voter)) = want {
        for node in cluster.running() {
            let lists = node.running.sanctions.current();
            if (lists.version(), lists.digest()) != (version, digest) {
                return Err(format!(
                    "{} enforces lists version {}, the voter at {voter} holds {version}",
                    node.id,
                    lists.version()
                ));
            }
        }
    }
    Ok(())
}

/// Entries the city's heads say it holds but it does not: per origin and kind, the sequences
/// below the head that are missing (each site numbers its entries from 1, and no run is long
/// enough for retention to delete any).
pub fn holes(cluster: &Cluster) -> Vec<String> {
    let city_id = &cluster.topology.city().id;
    let Some(city) = cluster.get(city_id) else { return vec![] };
    let mut out = Vec::new();
    for kind in up_kinds() {
        for (origin, head) in city.store.heads(kind).iter() {
            if origin == city_id {
                continue;
            }
            let held =
                city.store.entries(kind, origin, 1).take_while(|e| e.as_ref().is_ok_and(|e| e.seq <= head)).count()
                    as u64;
            if held < head {
                out.push(format!("{} of {kind} from {origin} below its head {head}", head - held));
            }
        }
    }
    out
}

pub fn nothing_lost(lost_acked: u64, holes: &[String]) -> Check {
    let mut detail = format!("{lost_acked} entries acknowledged at their site are missing at the city");
    if !holes.is_empty() {
        detail.push_str(&format!("; missing under heads it claims: {}", listing(holes)));
    }
    Check::new("nothing_lost", lost_acked == 0 && holes.is_empty(), detail)
}

pub fn no_conflicts(conflicts: &[Conflict]) -> Check {
    let items: Vec<String> = conflicts
        .iter()
        .map(|c| format!("{} {}/{} differs between {} and {}", c.kind, c.origin, c.seq, c.holders.0, c.holders.1))
        .collect();
    let detail = if items.is_empty() {
        "no (origin, seq) is held with two contents".into()
    } else {
        format!("{} held with two contents: {}", items.len(), listing(&items))
    };
    Check::new("no_seq_conflicts", conflicts.is_empty(), detail)
}

/// The city holds no entry of a site past what the site itself holds.
pub fn nothing_invented(cluster: &Cluster) -> Check {
    let city_id = &cluster.topology.city().id;
    let mut found = Vec::new();
    if let Some(city) = cluster.get(city_id) {
        for node in cluster.running().filter(|n| &n.id != city_id) {
            for kind in up_kinds() {
                let own = node.store.heads(kind).get(&node.id);
                let at_city = city.store.heads(kind).get(&node.id);
                if at_city > own {
                    found.push(format!("the city holds {kind} of {} up to {at_city}, the site only {own}", node.id));
                }
            }
        }
    }
    let detail = if found.is_empty() { "the city holds nothing a site did not make".into() } else { listing(&found) };
    Check::new("nothing_invented", found.is_empty(), detail)
}

/// No entry is held at the city under two sequence numbers.
pub fn nothing_duplicated(cluster: &Cluster) -> Check {
    let mut found = Vec::new();
    let mut held = 0u64;
    if let Some(city) = cluster.get(&cluster.topology.city().id) {
        for kind in Kind::REPLICATED {
            let mut seen: BTreeMap<(NodeId, [u8; 32]), u64> = BTreeMap::new();
            for e in city.store.all_entries(kind).flatten() {
                held += 1;
                if let Some(first) = seen.insert((e.origin.clone(), content(&e)), e.seq) {
                    found.push(format!("{kind} of {} held as {first} and {}", e.origin, e.seq));
                }
            }
        }
    }
    let detail = if found.is_empty() { format!("{held} entries at the city, each once") } else { listing(&found) };
    Check::new("nothing_duplicated", found.is_empty(), detail)
}

/// Every town and harbour acknowledged at least `least` of the operations it was asked for
/// while it ran. `tallies`: per site, (tried, acknowledged).
pub fn availability(cluster: &Cluster, tallies: &BTreeMap<NodeId, (u64, u64)>, least: f64) -> Check {
    let mut worst: Option<(f64, &NodeId)> = None;
    let mut judged = 0;
    let mut below = Vec::new();
    for (id, &(tried, acked)) in tallies {
        if !matches!(cluster.site(id).role, Role::Town | Role::Harbour) || tried == 0 {
            continue;
        }
        judged += 1;
        let share = acked as f64 / tried as f64;
        if share < least {
            below.push(format!("{id} acknowledged {acked} of {tried}"));
        }
        if worst.is_none_or(|(w, _)| share < w) {
            worst = Some((share, id));
        }
    }
    let detail = match worst {
        None => "no town or harbour was asked for anything".into(),
        Some(_) if !below.is_empty() => format!("below {least}: {}", listing(&below)),
        Some((w, id)) => {
            format!("{judged} towns and harbours; the least available, {id}, acknowledged {:.1}%", w * 100.0)
        }
    };
    Check::new("availability", below.is_empty(), detail)
}

/// How long the mesh took to catch up after one fault window ended.
#[derive(Debug, Clone, Serialize)]
pub struct HealTime {
    /// The fault, from 1.
    pub fault: usize,
    /// Virtual seconds from the start when it ended.
    pub healed_s: f64,
    /// Seconds until the catch-up (`None`: not within the bound).
    pub converged_after_s: Option<f64>,
}

/// What must hold after a heal: the city holds every site's own entries up to what the site
/// held at the heal, and every node enforces at least the lists version the voters held.
struct Heal {
    record: usize,
    at: Duration,
    want: Vec<(NodeId, Kind, u64)>,
    version: u64,
}

/// Catch-up after every fault window that ends while the workload goes on (the workload does
/// not stop for it, so "converged" means: caught up with what existed at the heal).
#[derive(Default)]
pub struct Heals {
    pending: Vec<Heal>,
    pub times: Vec<HealTime>,
}

impl Heals {
    /// Fault `fault` ended at `t`: note what must reach where.
    pub fn healed(&mut self, cluster: &Cluster, fault: usize, t: Duration) {
        let city = &cluster.topology.city().id;
        let mut want = Vec::new();
        for node in cluster.running().filter(|n| &n.id != city) {
            for kind in up_kinds() {
                want.push((node.id.clone(), kind, node.store.heads(kind).get(&node.id)));
            }
        }
        let version = cluster.voters().map(|(_, v)| v.node.view().read().lists.version()).max().unwrap_or(0);
        self.times.push(HealTime { fault, healed_s: t.as_secs_f64(), converged_after_s: None });
        self.pending.push(Heal { record: self.times.len() - 1, at: t, want, version });
    }

    /// Check the heals still waiting at `t`; one past `bound` is given up (left `None`).
    pub fn poll(&mut self, cluster: &Cluster, t: Duration, bound: Duration) {
        let Some(city) = cluster.get(&cluster.topology.city().id) else { return };
        let times = &mut self.times;
        self.pending.retain(|h| {
            let entries = h.want.iter().all(|(n, k, seq)| city.store.heads(*k).get(n) >= *seq);
            let lists = cluster.running().all(|n| n.running.sanctions.version() >= h.version);
            if entries && lists {
                times[h.record].converged_after_s = Some((t - h.at).as_secs_f64());
                return false;
            }
            t - h.at <= bound
        });
    }
}

/// The mesh caught up within `limit` after every heal while the work went on, and converged
/// within `limit` of the final heal.
pub fn convergence(after: Option<Duration>, limit: Duration, cluster: &Cluster, heals: &Heals) -> Check {
    let late: Vec<String> = heals
        .times
        .iter()
        .filter(|h| h.converged_after_s.is_none())
        .map(|h| format!("after fault {} ended at {:.0} s", h.fault, h.healed_s))
        .collect();
    let slowest = heals.times.iter().filter_map(|h| h.converged_after_s).reduce(f64::max);
    match after {
        Some(t) if late.is_empty() => Check::new(
            "converged",
            true,
            format!(
                "{} heals caught up{}; {:.1} s after the final heal (bound {limit:?})",
                heals.times.len(),
                slowest.map_or(String::new(), |s| format!(", the slowest in {s:.1} s")),
                t.as_secs_f64()
            ),
        ),
        Some(_) => Check::new("converged", false, format!("not caught up within {limit:?}: {}", listing(&late))),
        None => Check::new(
            "converged",
            false,
            format!(
                "not within {limit:?} of the final heal: {}",
                converged(cluster).err().unwrap_or_else(|| "converged just after the bound".into())
            ),
        ),
    }
}

/// Every fault window moved what it should have.
pub fn faults_happened(records: &[FaultRecord]) -> Check {
    let failed: Vec<String> = records
        .iter()
        .filter_map(|r| {
            r.evidence.as_ref().err().map(|e| format!("fault {} ({}) at {:.0} s: {e}", r.fault, r.kind, r.began_s))
        })
        .collect();
    let detail =
        if failed.is_empty() { format!("{} fault windows, each seen to act", records.len()) } else { listing(&failed) };
    Check::new("faults_happened", failed.is_empty(), detail)
}

/// The voter leading now (the one in the highest term, should two think they lead).
pub fn leader(cluster: &Cluster) -> Option<NodeId> {
    cluster
        .voters()
        .filter_map(|(id, v)| {
            let m = v.node.metrics();
            is_leader(&m).then(|| (m.current_term, id.clone()))
        })
        .max()
        .map(|(_, id)| id)
}

/// What the run samples while it goes, for the checks that need history.
#[derive(Default)]
pub struct Sampler {
    /// Highest lists version seen per node (`node x`) and voter (`voter x`).
    versions: BTreeMap<String, u64>,
    regressions: Vec<String>,
    /// The leader seen per term.
    leaders: BTreeMap<u64, NodeId>,
    two_leaders: Vec<String>,
    /// The lists state seen per version, and where first.
    states: BTreeMap<u64, ([u8; 32], String)>,
    /// Version last digested per holder, so a state is digested once per version.
    digested: BTreeMap<String, u64>,
    state_conflicts: Vec<String>,
    samples: u64,
}

impl Sampler {
    /// Look at every running node and voter at `t` from the start.
    pub fn sample(&mut self, cluster: &Cluster, t: Duration) {
        self.samples += 1;
        for node in cluster.running() {
            let lists = node.running.sanctions.current();
            self.version(format!("node {}", node.id), &lists, t);
        }
        for (id, v) in cluster.voters() {
            let m = v.node.metrics();
            if is_leader(&m) {
                let first = self.leaders.entry(m.current_term).or_insert_with(|| id.clone());
                if first != id {
                    self.two_leaders.push(format!("term {}: {first} and {id} both led", m.current_term));
                }
            }
            let state = v.node.view().read();
            self.version(format!("voter {id}"), &state.lists, t);
        }
    }

    fn version(&mut self, holder: String, lists: &node::sanctions::Lists, t: Duration) {
        let v = lists.version();
        let max = self.versions.entry(holder.clone()).or_default();
        if v < *max {
            self.regressions.push(format!("{holder} went from version {max} to {v} at {:.0} s", t.as_secs_f64()));
        }
        *max = (*max).max(v);
        if self.digested.get(&holder) != Some(&v) {
            self.digested.insert(holder.clone(), v);
            let digest = lists.digest();
            match self.states.get(&v) {
                None => {
                    self.states.insert(v, (digest, holder));
                }
                Some((d, first)) if *d != digest => {
                    self.state_conflicts.push(format!("version {v} differs between {first} and {holder}"));
                }
                Some(_) => {}
            }
        }
    }

    pub fn versions_monotonic(&self) -> Check {
        let detail = if self.regressions.is_empty() {
            format!(
                "{} holders over {} samples, none went back (highest version {})",
                self.versions.len(),
                self.samples,
                self.versions.values().max().copied().unwrap_or(0)
            )
        } else {
            listing(&self.regressions)
        };
        Check::new("list_versions_monotonic", self.regressions.is_empty(), detail)
    }

    pub fn raft_safety(&self) -> Check {
        let problems: Vec<String> = self.two_leaders.iter().chain(&self.state_conflicts).cloned().collect();
        let detail = if problems.is_empty() {
            format!(
                "{} terms with a leader seen, one leader each; {} list versions, one state each",
                self.leaders.len(),
                self.states.len()
            )
        } else {
            listing(&problems)
        };
        Check::new("raft_safety", problems.is_empty(), detail)
    }
}
