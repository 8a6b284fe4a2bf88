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
//!
//! The checks read a mesh through [`Observed`]: the simulator's [`Cluster`] in process, or real
//! processes' stores and APIs (the network-namespace tests in `tests/`), so both are judged by
//! the same code.

use crate::cluster::Cluster;
use crate::run::FaultRecord;
use control_plane::raft::voter::is_leader;
use node::store::content_digest;
use proto::authz::{self, Direction};
use proto::{Kind, NodeId, Role, VersionVector};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// One entry as a node holds it: its address and its contents' digest
/// ([`node::store::content_digest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub origin: NodeId,
    pub seq: u64,
    pub content: [u8; 32],
}

/// What the checks read of a mesh.
pub trait Observed {
    fn city(&self) -> NodeId;
    fn role(&self, node: &NodeId) -> Option<Role>;
    /// The nodes whose state can be read now (in a simulation, the running ones).
    fn nodes(&self) -> Vec<NodeId>;
    /// For each origin, the highest sequence of `kind` durable at `node`.
    fn heads(&self, node: &NodeId, kind: Kind) -> Arc<VersionVector>;
    /// Every entry of `kind` held at `node`.
    fn entries(&self, node: &NodeId, kind: Kind) -> Vec<Held>;
    /// The sanctions lists version `node` enforces, and their digest (asked only when needed:
    /// it may cost a pass over the lists).
    fn enforced_version(&self, node: &NodeId) -> u64;
    fn enforced_digest(&self, node: &NodeId) -> [u8; 32];
    /// The voters whose state can be read now; each one's applied lists, and the term it
    /// leads in, if it does.
    fn voters(&self) -> Vec<NodeId>;
    fn voter_version(&self, voter: &NodeId) -> u64;
    fn voter_digest(&self, voter: &NodeId) -> [u8; 32];
    fn leading(&self, voter: &NodeId) -> Option<u64>;
}

impl Observed for Cluster {
    fn city(&self) -> NodeId {
        self.topology.city().id.clone()
    }

    fn role(&self, node: &NodeId) -> Option<Role> {
        self.topology.site(node).map(|s| s.role)
    }

    fn nodes(&self) -> Vec<NodeId> {
        self.running().map(|n| n.id.clone()).collect()
    }

    fn heads(&self, node: &NodeId, kind: Kind) -> Arc<VersionVector> {
        self.get(node).map(|n| n.store.heads(kind)).unwrap_or_default()
    }

    fn entries(&self, node: &NodeId, kind: Kind) -> Vec<Held> {
        let Some(n) = self.get(node) else { return Vec::new() };
        n.store
            .all_entries(kind)
            .flatten()
            .map(|e| Held { content: content_digest(&e), origin: e.origin, seq: e.seq })
            .collect()
    }

    fn enforced_version(&self, node: &NodeId) -> u64 {
        self.get(node).map_or(0, |n| n.running.sanctions.version())
    }

    fn enforced_digest(&self, node: &NodeId) -> [u8; 32] {
        self.get(node).map(|n| n.running.sanctions.current().digest()).unwrap_or_default()
    }

    fn voters(&self) -> Vec<NodeId> {
        Cluster::voters(self).map(|(id, _)| id.clone()).collect()
    }

    fn voter_version(&self, voter: &NodeId) -> u64 {
        self.get(voter).and_then(|n| n.voter.as_ref()).map_or(0, |v| v.node.view().read().lists.version())
    }

    fn voter_digest(&self, voter: &NodeId) -> [u8; 32] {
        self.get(voter).and_then(|n| n.voter.as_ref()).map(|v| v.node.view().read().lists.digest()).unwrap_or_default()
    }

    fn leading(&self, voter: &NodeId) -> Option<u64> {
        let v = self.get(voter)?.voter.as_ref()?;
        let m = v.node.metrics();
        is_leader(&m).then_some(m.current_term)
    }
}

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
/// nodes that can be read.
pub fn seq_conflicts(mesh: &impl Observed) -> Vec<Conflict> {
    let mut seen: BTreeMap<(Kind, NodeId, u64), ([u8; 32], NodeId)> = BTreeMap::new();
    let mut conflicts: BTreeMap<(Kind, NodeId, u64), Conflict> = BTreeMap::new();
    for node in mesh.nodes() {
        for kind in Kind::REPLICATED {
            for e in mesh.entries(&node, kind) {
                let key = (kind, e.origin.clone(), e.seq);
                match seen.get(&key) {
                    None => {
                        seen.insert(key, (e.content, node.clone()));
                    }
                    Some((d, first)) if *d != e.content => {
                        conflicts.entry(key).or_insert(Conflict {
                            kind,
                            origin: e.origin.clone(),
                            seq: e.seq,
                            holders: (first.clone(), node.clone()),
                        });
                    }
                    Some(_) => {}
                }
            }
        }
    }
    conflicts.into_values().collect()
}

/// The kinds a node's own work sends up to the city.
pub fn up_kinds() -> impl Iterator<Item = Kind> {
    authz::priority(Direction::Up)
}

/// Entries acknowledged at their origin (`acked`: per origin and kind, the highest sequence
/// acknowledged) that the city does not hold.
pub fn lost_acked(mesh: &impl Observed, acked: &BTreeMap<NodeId, BTreeMap<Kind, u64>>) -> u64 {
    let city = mesh.city();
    if !mesh.nodes().contains(&city) {
        return acked.values().flat_map(|k| k.values()).sum();
    }
    let mut lost = 0;
    for (origin, kinds) in acked {
        if origin == &city {
            continue;
        }
        for kind in up_kinds() {
            let held = mesh.heads(&city, kind).get(origin);
            lost += kinds.get(&kind).copied().unwrap_or(0).saturating_sub(held);
        }
    }
    lost
}

/// `Ok` once the city holds all that every running node holds of what goes up, and every
/// running node the same watchlist edits; otherwise the first difference.
pub fn converged(mesh: &impl Observed) -> Result<(), String> {
    let city = mesh.city();
    let nodes = mesh.nodes();
    if !nodes.contains(&city) {
        return Err("the city is not running".into());
    }
    let city_lists = mesh.heads(&city, Kind::Watchlist);
    for node in nodes.iter().filter(|n| **n != city) {
        for kind in up_kinds() {
            let own = mesh.heads(node, kind).get(node);
            let at_city = mesh.heads(&city, kind).get(node);
            if at_city < own {
                return Err(format!("the city holds {kind} of {node} up to {at_city}, it has {own}"));
            }
        }
        if mesh.heads(node, Kind::Watchlist) != city_lists {
            return Err(format!("{node} and the city hold different watchlist edits"));
        }
    }
    let mut want: Option<(u64, [u8; 32], NodeId)> = None;
    for id in mesh.voters() {
        let here = (mesh.voter_version(&id), mesh.voter_digest(&id));
        match &want {
            None => want = Some((here.0, here.1, id)),
            Some((version, digest, other)) if (*version, *digest) != here => {
                return Err(format!(
                    "the voters at {other} and {id} hold different lists (versions {version} and {})",
                    here.0
                ));
            }
            Some(_) => {}
        }
    }
    if let Some((version, digest, voter)) = want {
        for node in &nodes {
            let enforced = mesh.enforced_version(node);
            if enforced != version || mesh.enforced_digest(node) != digest {
                return Err(format!("{node} enforces lists version {enforced}, the voter at {voter} holds {version}"));
            }
        }
    }
    Ok(())
}

/// Entries the city's heads say it holds but it does not: per origin and kind, the sequences
/// below the head that are missing (each site numbers its entries from 1, and no run is long
/// enough for retention to delete any).
pub fn holes(mesh: &impl Observed) -> Vec<String> {
    let city = mesh.city();
    if !mesh.nodes().contains(&city) {
        return vec![];
    }
    let mut out = Vec::new();
    for kind in up_kinds() {
        let heads = mesh.heads(&city, kind);
        let mut held: BTreeMap<NodeId, u64> = BTreeMap::new();
        for e in mesh.entries(&city, kind) {
            if e.seq <= heads.get(&e.origin) {
                *held.entry(e.origin).or_default() += 1;
            }
        }
        for (origin, head) in heads.iter() {
            if *origin == city {
                continue;
            }
            let held = held.get(origin).copied().unwrap_or(0);
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
pub fn nothing_invented(mesh: &impl Observed) -> Check {
    let city = mesh.city();
    let nodes = mesh.nodes();
    let mut found = Vec::new();
    if nodes.contains(&city) {
        for node in nodes.iter().filter(|n| **n != city) {
            for kind in up_kinds() {
                let own = mesh.heads(node, kind).get(node);
                let at_city = mesh.heads(&city, kind).get(node);
                if at_city > own {
                    found.push(format!("the city holds {kind} of {node} up to {at_city}, the site only {own}"));
                }
            }
        }
    }
    let detail = if found.is_empty() { "the city holds nothing a site did not make".into() } else { listing(&found) };
    Check::new("nothing_invented", found.is_empty(), detail)
}

/// No entry is held at the city under two sequence numbers.
pub fn nothing_duplicated(mesh: &impl Observed) -> Check {
    let city = mesh.city();
    let mut found = Vec::new();
    let mut held = 0u64;
    if mesh.nodes().contains(&city) {
        for kind in Kind::REPLICATED {
            let mut seen: BTreeMap<(NodeId, [u8; 32]), u64> = BTreeMap::new();
            for e in mesh.entries(&city, kind) {
                held += 1;
                if let Some(first) = seen.insert((e.origin.clone(), e.content), e.seq) {
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
/// Every origin's audit chain holds in the city's copy of the log (docs/audit.md): each record
/// the city holds carries the hash of the record before it, through crashes, power cuts and
/// partitions. Read from the simulator's stores (the real processes' logs are checked by
/// `yiwang-node verify-audit` in the tests).
pub fn audit_chains(cluster: &Cluster) -> Check {
    let city = cluster.topology.city().id.clone();
    let Some(node) = cluster.get(&city) else {
        return Check::new("audit_chains", false, format!("{city} is not running"));
    };
    let mut chains = node::audit_chain::ChainCheck::new();
    let mut breaks = Vec::new();
    for entry in node.store.all_entries(Kind::Audit) {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => return Check::new("audit_chains", false, format!("{city}'s audit log unreadable: {e}")),
        };
        let Ok(stored) = proto::codec::encode(&entry) else { continue };
        if let Err(b) = chains.check(&entry.origin, entry.seq, &stored, &entry.payload) {
            breaks.push(b.to_string());
        }
    }
    let detail = if breaks.is_empty() {
        format!("{} records of {} origins at {city}, every link holds", chains.checked(), chains.origins())
    } else {
        format!("{} broken, first: {}", breaks.len(), breaks[0])
    };
    Check::new("audit_chains", breaks.is_empty(), detail)
}

pub fn availability(mesh: &impl Observed, tallies: &BTreeMap<NodeId, (u64, u64)>, least: f64) -> Check {
    let mut worst: Option<(f64, &NodeId)> = None;
    let mut judged = 0;
    let mut below = Vec::new();
    for (id, &(tried, acked)) in tallies {
        if !matches!(mesh.role(id), Some(Role::Town | Role::Harbour)) || tried == 0 {
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
    pub fn healed(&mut self, mesh: &impl Observed, fault: usize, t: Duration) {
        let city = mesh.city();
        let mut want = Vec::new();
        for node in mesh.nodes().into_iter().filter(|n| *n != city) {
            for kind in up_kinds() {
                want.push((node.clone(), kind, mesh.heads(&node, kind).get(&node)));
            }
        }
        let version = mesh.voters().iter().map(|v| mesh.voter_version(v)).max().unwrap_or(0);
        self.times.push(HealTime { fault, healed_s: t.as_secs_f64(), converged_after_s: None });
        self.pending.push(Heal { record: self.times.len() - 1, at: t, want, version });
    }

    /// Check the heals still waiting at `t`; one past `bound` is given up (left `None`).
    pub fn poll(&mut self, mesh: &impl Observed, t: Duration, bound: Duration) {
        let city = mesh.city();
        let nodes = mesh.nodes();
        if !nodes.contains(&city) {
            return;
        }
        let times = &mut self.times;
        self.pending.retain(|h| {
            let entries = h.want.iter().all(|(n, k, seq)| mesh.heads(&city, *k).get(n) >= *seq);
            let lists = nodes.iter().all(|n| mesh.enforced_version(n) >= h.version);
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
pub fn convergence(after: Option<Duration>, limit: Duration, mesh: &impl Observed, heals: &Heals) -> Check {
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
                converged(mesh).err().unwrap_or_else(|| "converged just after the bound".into())
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
pub fn leader(mesh: &impl Observed) -> Option<NodeId> {
    mesh.voters().into_iter().filter_map(|id| mesh.leading(&id).map(|term| (term, id))).max().map(|(_, id)| id)
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
    /// Look at every node and voter that can be read, at `t` from the start.
    pub fn sample(&mut self, mesh: &impl Observed, t: Duration) {
        self.samples += 1;
        for node in mesh.nodes() {
            let version = mesh.enforced_version(&node);
            self.version(format!("node {node}"), version, || mesh.enforced_digest(&node), t);
        }
        for id in mesh.voters() {
            if let Some(term) = mesh.leading(&id) {
                let first = self.leaders.entry(term).or_insert_with(|| id.clone());
                if *first != id {
                    self.two_leaders.push(format!("term {term}: {first} and {id} both led"));
                }
            }
            let version = mesh.voter_version(&id);
            self.version(format!("voter {id}"), version, || mesh.voter_digest(&id), t);
        }
    }

    /// `holder` holds lists version `v`, whose digest `digest` gives (asked once per version).
    fn version(&mut self, holder: String, v: u64, digest: impl FnOnce() -> [u8; 32], t: Duration) {
        let max = self.versions.entry(holder.clone()).or_default();
        if v < *max {
            self.regressions.push(format!("{holder} went from version {max} to {v} at {:.0} s", t.as_secs_f64()));
        }
        *max = (*max).max(v);
        if self.digested.get(&holder) != Some(&v) {
            self.digested.insert(holder.clone(), v);
            let digest = digest();
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
