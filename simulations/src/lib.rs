//! Whole yiwang meshes in one process over a virtual network.
//!
//! What it holds now:
//! - [`fabric`]: an in-memory datagram network whose sockets implement quinn's
//!   `AsyncUdpSocket`: hosts at virtual addresses, bounded receive queues, per-link cuts (both
//!   ways or one way), loss, duplication, delay and jitter drawn from a seeded RNG, and counters
//!   of what every link delivered and dropped. O(1) per datagram, nothing per pair of hosts.
//! - [`cluster`]: real `node::instance` nodes built over the fabric (an in-memory CA and
//!   certificates, a store per node, the nodes' clock), started and stopped by id; and
//!   [`cluster::eventually`], a bounded wait that says what did not converge.
//! - [`time`]: the nodes' clock on tokio's (virtual) time, readable from the stores' flusher
//!   threads, and [`time::SpeedLimit`], which keeps a paused runtime's virtual time from racing
//!   ahead while those threads work.
//! - `tests/three_nodes.rs`: city ← county ← town on a paused runtime; the town↔county link is
//!   cut, the town fails over to the city, the link heals, the town switches back and the county
//!   catches up.
//! - `tests/uplink_backoff.rs`: a parent that drops every session at once is redialled with a
//!   growing backoff, not in a loop.
//!
//! What the next issue adds: the partition simulator proper: scenario files (topology,
//! workloads per feed, a fault schedule, invariants), node kills and restarts and clock skew in
//! the schedule, checkers for the invariants of ARCHITECTURE.md §10, a report with the seed to
//! replay it, and the `yiwang-sim` binary.

pub mod cluster;
pub mod fabric;
pub mod time;

pub use cluster::{eventually, Cluster, ClusterOptions, SimNode};
pub use fabric::{Fabric, FabricConfig, FabricSocket, LinkCounters, LinkFaults};
pub use time::{SimClock, SpeedLimit};
