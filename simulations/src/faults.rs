//! Applying a scenario's faults to a running cluster, and proving each one happened.
//!
//! Link faults overlap (a county cut inside a city-wide flap): [`Links`] counts, per directed
//! link, how many active faults cut it, so one fault's end never heals another's cut, and
//! restores a degraded link to perfect (or cut, if still cut) when its fault ends.
//!
//! Every fault keeps a [`Baseline`] of the counters it should move when it begins; when it
//! ends, [`Baseline::evidence`] says whether they moved (datagrams dropped on the cut links,
//! lost or duplicated on the degraded ones, refusals on the full disk, failed flushes, the
//! clock reading off), which the `faults_happened` check reads.

use crate::cluster::Cluster;
use crate::fabric::{Fabric, LinkCounters, LinkFaults};
use node::clock::Clock;
use node::store::DiskStats;
use proto::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

/// A directed link between two hosts.
pub type Link = (IpAddr, IpAddr);

/// The cuts and degradations in force, by directed link.
#[derive(Default)]
pub struct Links {
    cuts: BTreeMap<Link, u32>,
}

impl Links {
    /// Cut `links` (one more fault cutting each).
    pub fn cut(&mut self, fabric: &Fabric, links: &[Link]) {
        for &(a, b) in links {
            *self.cuts.entry((a, b)).or_default() += 1;
            fabric.update_faults(a, b, |f| f.cut = true);
        }
    }

    /// One fault fewer cutting each of `links`; a link no fault cuts any more is healed.
    pub fn heal(&mut self, fabric: &Fabric, links: &[Link]) {
        for &(a, b) in links {
            if let Some(n) = self.cuts.get_mut(&(a, b)) {
                *n -= 1;
                if *n == 0 {
                    self.cuts.remove(&(a, b));
                    fabric.update_faults(a, b, |f| f.cut = false);
                }
            }
        }
    }

    /// Set `links`' loss, duplication and delay (keeping their cuts).
    pub fn degrade(&mut self, fabric: &Fabric, links: &[Link], degraded: LinkFaults) {
        for &(a, b) in links {
            let cut = self.cuts.contains_key(&(a, b));
            fabric.set_faults(a, b, LinkFaults { cut, ..degraded });
        }
    }

    /// Make `links` perfect again, except for their cuts.
    pub fn restore(&mut self, fabric: &Fabric, links: &[Link]) {
        self.degrade(fabric, links, LinkFaults::default());
    }
}

/// Every directed link between a host of `from` and a host of `to`, excluding a host to itself;
/// with `both`, the reverse links too.
pub fn links_between(cluster: &Cluster, from: &BTreeSet<NodeId>, to: &BTreeSet<NodeId>, both: bool) -> Vec<Link> {
    let ip = |id: &NodeId| cluster.site(id).mesh.ip();
    let mut out = Vec::new();
    for a in from {
        for b in to {
            if a == b {
                continue;
            }
            out.push((ip(a), ip(b)));
            if both {
                out.push((ip(b), ip(a)));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The links between each site of `nodes` and its parents, both ways.
pub fn uplinks(cluster: &Cluster, nodes: &BTreeSet<NodeId>) -> Vec<Link> {
    let mut out = Vec::new();
    for n in nodes {
        let a = cluster.site(n).mesh.ip();
        for p in &cluster.site(n).parents {
            let b = cluster.site(p).mesh.ip();
            out.push((a, b));
            out.push((b, a));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// What a fault should move, read when it begins.
pub enum Baseline {
    /// Datagrams dropped by cuts on these links should grow.
    Cut { links: Vec<Link>, before: LinkCounters },
    /// Losses, duplicates or deliveries on these links should grow, as the fault asks.
    Degrade { links: Vec<Link>, before: LinkCounters, loss: bool, duplicate: bool },
    /// These sites lost power (`true`) or were down already (`false`).
    Crashed(Vec<(NodeId, bool)>),
    /// Power cuts a storm made, of how many asked.
    Storm { asked: usize },
    /// The sites' clocks should read this far off the true time.
    Clock { nodes: Vec<NodeId>, offset_ms: i64 },
    /// Disk counters of these sites.
    Disk { nodes: Vec<(NodeId, DiskStats)>, what: DiskFault },
    /// These sites should be running.
    Joined(Vec<NodeId>),
}

#[derive(Debug, Clone, Copy)]
pub enum DiskFault {
    Full,
    FailingFlushes,
}

fn sum(fabric: &Fabric, links: &[Link]) -> LinkCounters {
    links.iter().fold(LinkCounters::default(), |acc, &(a, b)| acc + fabric.counters(a, b))
}

impl Baseline {
    pub fn cut(fabric: &Fabric, links: Vec<Link>) -> Baseline {
        let before = sum(fabric, &links);
        Baseline::Cut { links, before }
    }

    pub fn degrade(fabric: &Fabric, links: Vec<Link>, loss: bool, duplicate: bool) -> Baseline {
        let before = sum(fabric, &links);
        Baseline::Degrade { links, before, loss, duplicate }
    }

    /// `Ok(what moved)` if the fault did what it asked, else why not. `storm_done` is the
    /// number of power cuts a storm made; `cluster` is read for clocks, disks and joins.
    pub fn evidence(&self, cluster: &Cluster, storm_done: usize) -> Result<String, String> {
        match self {
            Baseline::Cut { links, before } => {
                let moved = sum(&cluster.fabric, links).since(before);
                if moved.cut > 0 {
                    Ok(format!("{} datagrams dropped on {} cut links", moved.cut, links.len()))
                } else {
                    Err(format!("no datagram was dropped on its {} cut links", links.len()))
                }
            }
            Baseline::Degrade { links, before, loss, duplicate } => {
                let moved = sum(&cluster.fabric, links).since(before);
                if *loss && moved.lost == 0 {
                    return Err(format!("no datagram was lost on its {} links", links.len()));
                }
                if *duplicate && moved.duplicated == 0 {
                    return Err(format!("no datagram was duplicated on its {} links", links.len()));
                }
                if moved.sent == 0 {
                    return Err("nothing was sent on its links".into());
                }
                Ok(format!(
                    "{} datagrams sent, {} lost, {} duplicated on {} links",
                    moved.sent,
                    moved.lost,
                    moved.duplicated,
                    links.len()
                ))
            }
            Baseline::Crashed(nodes) => {
                // A site another fault had already taken down is down all the same.
                let cut: Vec<&str> = nodes.iter().filter(|(_, d)| *d).map(|(n, _)| n.as_str()).collect();
                let was_down: Vec<&str> = nodes.iter().filter(|(_, d)| !*d).map(|(n, _)| n.as_str()).collect();
                match (cut.is_empty(), was_down.is_empty()) {
                    (false, true) => Ok(format!("power cut at {}", cut.join(", "))),
                    (false, false) => {
                        Ok(format!("power cut at {}; {} already down", cut.join(", "), was_down.join(", ")))
                    }
                    (true, _) => Ok(format!("{} already down", was_down.join(", "))),
                }
            }
            Baseline::Storm { asked } => {
                if storm_done == *asked {
                    Ok(format!("{storm_done} power cuts"))
                } else {
                    Err(format!("{storm_done} power cuts of {asked}"))
                }
            }
            Baseline::Clock { nodes, offset_ms } => {
                for n in nodes {
                    let c = cluster.clock(n);
                    let off = c.now_ms() as i64 - c.true_ms() as i64;
                    if off != *offset_ms {
                        return Err(format!("{n}'s clock reads {off} ms off, not {offset_ms}"));
                    }
                }
                Ok(format!("{} clocks {offset_ms} ms off", nodes.len()))
            }
            Baseline::Disk { nodes, what } => {
                let mut moved = 0;
                for (n, before) in nodes {
                    let now = cluster.disk(n).stats();
                    moved += match what {
                        DiskFault::Full => now.full_disk_refusals - before.full_disk_refusals,
                        DiskFault::FailingFlushes => now.failed_flushes - before.failed_flushes,
                    };
                }
                match (what, moved) {
                    (DiskFault::Full, 0) => Err("no write was refused by the full disk".into()),
                    (DiskFault::FailingFlushes, 0) => Err("no flush failed".into()),
                    (DiskFault::Full, n) => Ok(format!("{n} writes refused for want of space")),
                    (DiskFault::FailingFlushes, n) => Ok(format!("{n} flushes failed")),
                }
            }
            Baseline::Joined(nodes) => match nodes.iter().find(|n| !cluster.is_running(n)) {
                Some(n) => Err(format!("{n} is not running")),
                None => Ok(format!("{} joined", nodes.len())),
            },
        }
    }
}

/// A link fault's settings from a scenario's `degrade`.
pub fn degraded(
    loss: f64,
    duplicate: f64,
    delay: Option<Duration>,
    jitter: Option<Duration>,
    bandwidth: Option<u64>,
) -> LinkFaults {
    LinkFaults {
        cut: false,
        loss,
        duplicate,
        delay: delay.unwrap_or_default(),
        jitter: jitter.unwrap_or_default(),
        bandwidth,
    }
}
