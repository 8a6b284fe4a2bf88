//! A steady workload, as the sites' people and devices would make it, driven through the same
//! calls the HTTP API and the feed listeners make. Per node class:
//!
//! - towns: grid events reported and escalated, checkpoint plate reads that hit a watchlist
//!   (each an alert, which the node turns into an event), watchlist additions and removals;
//! - harbours: AIS position reports of the city's fleet, in batches (vessels the sanctions
//!   lists name raise hits carrying the version matched), grid events of the maritime grids
//!   and their escalations, watchlist edits;
//! - counties and the city: answers to the escalations sent up to them;
//! - the voters: sanctions writes listing vessels of the fleet.
//!
//! Every operation draws its kind and its arguments from a seeded generator per node, so a run
//! does the same things in the same order each time. An operation reports what its producer
//! was told: acknowledged (durable) or refused.

use node::events::{Events, Identity, NewEvent};
use node::ingest::Ingest;
use node::lists::Lists;
use node::records::PlateRead;
use node::rng::Rng;
use node::rules::watchlist::Subject;
use node::store::Store;
use node::workflow::{Answer, Location, Role as DeskRole, Tier};
use proto::{EntryId, Kind, NodeId, Role};
use std::collections::BTreeMap;
use std::time::Duration;

/// Longest an operation may take before the run counts it as failed (a node crashed under it
/// and it never heard back is the usual reason; the bound keeps a bug from stalling a run).
pub const OP_TIMEOUT: Duration = Duration::from_secs(120);
/// The watchlist the workload edits.
const LIST: &str = "sim-watch";

/// What one operation does.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Report {
        category: &'static str,
        lat: f64,
        lon: f64,
    },
    Escalate {
        event: EntryId,
        tier: Tier,
    },
    PlateRead {
        plate: String,
    },
    ListAdd {
        plate: String,
    },
    ListRemove {
        plate: String,
    },
    Answer {
        event: EntryId,
        n: u32,
    },
    /// A batch of AIS class A position reports from the harbour's receiver.
    Ais {
        mmsis: Vec<u32>,
        lat: f64,
        lon: f64,
    },
}

/// The city's fleet: the MMSIs the harbours see and the sanctions writes list.
pub const FLEET: u32 = 400;
const FLEET_BASE: u32 = 412_000_000;
/// Vessels in one AIS batch.
const AIS_BATCH: usize = 5;

/// A node's handles an operation runs with (clones of the running node's).
#[derive(Clone)]
pub struct Handles {
    pub node: NodeId,
    pub events: Events,
    pub lists: Lists,
    pub ingest: Ingest,
    pub store: Store,
}

/// What an operation came to.
#[derive(Debug)]
pub struct Outcome {
    pub node: NodeId,
    pub op: Op,
    /// `Ok` with the node's own durable heads right after, per kind (every entry of its own up
    /// to them was acknowledged to someone), or why it was refused.
    pub result: Result<BTreeMap<Kind, u64>, String>,
    /// The event a report created.
    pub reported: Option<EntryId>,
}

/// The kinds whose heads an outcome records: everything a node's own work puts on the mesh.
pub const RECORDED: [Kind; 7] = Kind::REPLICATED;

/// What the workload remembers of one node, to make operations that make sense.
#[derive(Default)]
struct NodeMemory {
    events: Vec<EntryId>,
    listed: Vec<String>,
    added: u64,
}

/// The workload: per node, a generator and what it has done.
pub struct Workload {
    rngs: BTreeMap<NodeId, Rng>,
    memory: BTreeMap<NodeId, NodeMemory>,
    /// Mean time between two operations, per node.
    intervals: BTreeMap<NodeId, Duration>,
}

fn operator(node: &NodeId) -> Identity {
    Identity { name: format!("operator-{node}"), role: DeskRole::Operator }
}

impl Workload {
    /// One generator per node of `nodes` (with its mean time between two operations), each
    /// from the run's `seed`.
    pub fn new(seed: node::rng::Seed, nodes: &[(NodeId, Duration)]) -> Workload {
        let rngs = nodes.iter().map(|(n, _)| (n.clone(), seed.rng(&format!("workload {n}")))).collect();
        Workload { rngs, memory: BTreeMap::new(), intervals: nodes.iter().cloned().collect() }
    }

    /// How long node `node` waits before its next operation: uniform within half to one and a
    /// half times its mean.
    pub fn next_delay(&mut self, node: &NodeId) -> Duration {
        let rng = self.rngs.get_mut(node).expect("a node of the workload");
        self.intervals[node].mul_f64(0.5 + rng.next_f64())
    }

    /// The next operation of `node`, which has `role` and escalates to `tier`.
    pub fn next_op(&mut self, node: &NodeId, role: Role, tier: Tier, incoming: &[(EntryId, u32)]) -> Option<Op> {
        let rng = self.rngs.get_mut(node).expect("a node of the workload");
        let mem = self.memory.entry(node.clone()).or_default();
        let roll = rng.below(100);
        if matches!(role, Role::City | Role::County) {
            // The tiers above answer what was escalated to them.
            if incoming.is_empty() {
                return None;
            }
            let (event, n) = incoming[rng.below(incoming.len() as u64) as usize].clone();
            return Some(Op::Answer { event, n });
        }
        if role == Role::Harbour && roll < 50 {
            let mmsis = (0..AIS_BATCH).map(|_| FLEET_BASE + rng.below(u64::from(FLEET)) as u32).collect();
            return Some(Op::Ais { mmsis, lat: 37.3 + rng.next_f64() * 0.2, lon: 122.3 + rng.next_f64() * 0.2 });
        }
        // Watchlist edits go to every node of the city (the rest goes up one branch), so they
        // are the rarest: operators edit lists, devices read plates.
        Some(match roll {
            0..35 => Op::Report {
                category: if rng.chance(0.5) { "hazard" } else { "sanitation" },
                lat: 37.0 + rng.next_f64() * 0.5,
                lon: 122.0 + rng.next_f64() * 0.5,
            },
            35..55 if !mem.events.is_empty() => {
                Op::Escalate { event: mem.events[rng.below(mem.events.len() as u64) as usize].clone(), tier }
            }
            55..92 if !mem.listed.is_empty() => {
                Op::PlateRead { plate: mem.listed[rng.below(mem.listed.len() as u64) as usize].clone() }
            }
            92..95 if mem.listed.len() > 1 => {
                let i = rng.below(mem.listed.len() as u64) as usize;
                Op::ListRemove { plate: mem.listed.swap_remove(i) }
            }
            _ => {
                mem.added += 1;
                // A plate of this node's own: 鲁K, then five digits from the node's name and count.
                let digits = node.as_str().bytes().fold(mem.added * 7919, |a, b| a * 31 + b as u64) % 100_000;
                // Remembered as listed once acknowledged (see `learn`): a power cut can take an
                // addition away before it is.
                Op::ListAdd { plate: format!("鲁K{digits:05}") }
            }
        })
    }

    /// Remember what an acknowledged operation made (events to escalate later, plates listed).
    pub fn learn(&mut self, outcome: &Outcome) {
        if outcome.result.is_err() {
            return;
        }
        let mem = self.memory.entry(outcome.node.clone()).or_default();
        if let Some(e) = &outcome.reported {
            mem.events.push(e.clone());
        }
        if let Op::ListAdd { plate } = &outcome.op {
            mem.listed.push(plate.clone());
        }
    }
}

/// Run `op` on a node; what its producer is told.
pub async fn perform(h: Handles, op: Op, now_ms: u64) -> Outcome {
    let who = operator(&h.node);
    let mut reported = None;
    let done: Result<(), String> = async {
        match &op {
            Op::Report { category, lat, lon } => {
                let new = NewEvent {
                    category: (*category).into(),
                    location: Location { lat: Some(*lat), lon: Some(*lon), address: None },
                    description: format!("{category} reported in the simulation"),
                    ..NewEvent::default()
                };
                let e = h.events.report(new, &who).await.map_err(|e| e.to_string())?;
                reported = Some(e.id);
            }
            Op::Escalate { event, tier } => {
                let dept = "roads department".to_string();
                h.events
                    .escalate(event, dept, *tier, "needs a higher tier".into(), &who)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Op::PlateRead { plate } => {
                let read = PlateRead {
                    plate: plate.clone(),
                    confidence: 92.0,
                    checkpoint: "cp-sim".into(),
                    lane: Some(1),
                    direction: Some("in".into()),
                    heading_deg: None,
                    make: None,
                    seen_ms: now_ms,
                };
                h.ingest.plates("sim", vec![read]).await.map_err(|e| e.to_string())?;
            }
            Op::ListAdd { plate } => {
                let subject = Subject::Plate(plate.clone());
                let entry = node::lists::NewEntry {
                    subject: &subject,
                    list: LIST,
                    reason: "seen at a smuggling landing",
                    authority: "Weihai maritime police",
                    legal_basis: "anti-smuggling notice 2026-41",
                    expires_ms: now_ms + WATCHED_FOR_MS,
                };
                h.lists.add(entry, &who).await.map_err(|e| e.to_string())?;
            }
            Op::ListRemove { plate } => {
                let subject = Subject::Plate(plate.clone());
                h.lists.remove(&subject, LIST, "cleared", &who).await.map_err(|e| e.to_string())?;
            }
            Op::Ais { mmsis, lat, lon } => {
                use node::feeds::ais::{AisMessage, PositionReportA, Report};
                let report = |mmsi: u32| AisMessage {
                    report: Report::PositionA(PositionReportA {
                        msg_type: 1,
                        repeat: 0,
                        mmsi,
                        status: 7,
                        turn: -128,
                        speed: 45,
                        accuracy: false,
                        // AIS positions are in 1/10000 minute.
                        lon: (lon * 600_000.0) as i32,
                        lat: (lat * 600_000.0) as i32,
                        course: 900,
                        heading: 511,
                        second: 60,
                        maneuver: 0,
                        raim: false,
                        radio: 0,
                    }),
                    channel: Some('A'),
                    own_ship: false,
                    tag_block: None,
                };
                let messages = mmsis.iter().map(|&m| report(m)).collect();
                h.ingest.ais_messages("sim-ais", messages).await.map_err(|e| e.to_string())?;
            }
            Op::Answer { event, n } => {
                let by = format!("duty officer at {}", h.node);
                h.events
                    .answer_from_above(event, *n, Answer::Acknowledge, by, "on it".into(), &who)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
    .await;
    let result = done.map(|()| RECORDED.iter().map(|&k| (k, h.store.heads(k).get(&h.node))).collect());
    Outcome { node: h.node, op, result, reported }
}

/// Escalations to `tier` that `events` has received and not answered yet, as (event, n).
pub fn unanswered(events: &Events, tier: Tier) -> Vec<(EntryId, u32)> {
    events
        .incoming_escalations(None, 50)
        .map(|list| {
            list.into_iter()
                .filter(|e| e.answers_sent.is_empty() && e.escalation.tier == tier)
                .map(|e| (e.escalation.event, e.escalation.n))
                .collect()
        })
        .unwrap_or_default()
}

/// Longest a sanctions write may take (on the minority side it fails with no quorum sooner).
pub const LIST_WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// How long a listing the workload writes is in force.
const LISTED_FOR_MS: u64 = 365 * 24 * 3600 * 1000;
/// How long the workload's watchlist adds run: well inside the longest listing a node allows,
/// whatever a skewed node's clock reads.
const WATCHED_FOR_MS: u64 = 30 * 24 * 3600 * 1000;

/// A sanctions write at a voter drawn from `rng` among the running ones: a vessel listed
/// black by its MMSI. `None` when no voter runs. The future says whether it committed.
pub fn list_write(
    cluster: &crate::cluster::Cluster,
    rng: &mut Rng,
) -> Option<impl std::future::Future<Output = bool> + 'static> {
    use node::clock::Clock;
    use node::sanctions::{Actor, Command, ListEntry, ListKind, Proposal, SubjectId};
    let voters: Vec<_> = cluster.voters().collect();
    if voters.is_empty() {
        return None;
    }
    let (site, voter) = voters[rng.below(voters.len() as u64) as usize];
    let now_ms = cluster.clock(site).now_ms();
    // A vessel of the fleet the harbours see, so listings turn into hits; one already listed
    // is refused as such (a write that committed all the same).
    let mmsi = FLEET_BASE + rng.below(u64::from(FLEET)) as u32;
    let proposal = Proposal {
        command: Command::Add {
            entry: ListEntry {
                list: ListKind::Black,
                subject: SubjectId::Mmsi(mmsi),
                name: format!("Sim vessel {mmsi}"),
                authority: "Municipal Ocean and Fisheries Bureau".into(),
                legal_basis: "Fisheries Law art. 38".into(),
                effective_ms: now_ms,
                expires_ms: now_ms + LISTED_FOR_MS,
                note: String::new(),
            },
        },
        actor: Actor { who: format!("operator at {site}"), why: "simulated decision".into() },
        proposed_ms: now_ms,
    };
    let voter = voter.node.clone();
    Some(async move { voter.write(proposal, LIST_WRITE_DEADLINE).await.is_ok() })
}
