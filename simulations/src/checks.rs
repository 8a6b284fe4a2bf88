//! What a run must hold to, checked over every node's store.
//!
//! - [`seq_conflicts`]: an entry is its `(kind, origin, seq)`: two nodes holding different
//!   contents under one address means an origin numbered two entries alike (it sent one that a
//!   power cut then took away, and numbered a new one the same) and the mesh cannot tell.
//! - [`lost_acked`]: every entry a node acknowledged (made durable and said so) reaches the
//!   city, once links and nodes are back.
//! - [`converged`]: the city holds everything every node holds of what travels up, and every
//!   node holds the same watchlist edits.

use crate::cluster::Cluster;
use proto::authz::{self, Direction};
use proto::{Kind, NodeId};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// One `(kind, origin, seq)` held with different contents by different nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
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
                let mut h = Sha256::new();
                h.update(e.hlc.to_sortable_bytes());
                h.update(&e.payload);
                let digest: [u8; 32] = h.finalize().into();
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

/// The kinds a node's own work sends up to the city.
fn to_the_city() -> impl Iterator<Item = Kind> {
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
        for kind in to_the_city() {
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
        for kind in to_the_city() {
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
    Ok(())
}
