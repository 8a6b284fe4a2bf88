//! Whole yiwang meshes in one process on virtual time.
//!
//! - [`fabric`]: an in-memory datagram network whose sockets implement quinn's
//!   `AsyncUdpSocket`: hosts at virtual addresses, bounded receive queues, per-link cuts (both
//!   ways or one way), loss, duplication, delay and jitter drawn from a seeded RNG, sockets
//!   that go dark at a power cut, and counters of what every link delivered and dropped. O(1)
//!   per datagram, nothing per pair of hosts.
//! - [`cluster`]: real `node::instance` nodes built over the fabric (an in-memory Ed25519 CA
//!   and certificates, a simulated disk, a clock and a seed per node), started, stopped and
//!   crashed (power cuts) by id; and [`cluster::eventually`], a bounded wait that says what did
//!   not converge.
//! - [`time`]: each node's clock on tokio's virtual time, skewable alone.
//! - [`topology`]: generated cities in the reference city's proportions.
//! - [`workload`]: a steady, seeded workload through the nodes' own calls.
//! - [`trace`]: the hash of everything a run delivered and made durable, which proves a run
//!   replays from its seed.
//! - [`checks`]: what a run must hold to (no `(origin, seq)` held with two contents, nothing
//!   acknowledged lost, convergence after the heal).
//! - [`run`]: a scenario run from its options (`yiwang-sim run`, `trace`, `explore`).
//! - [`demo`]: `yiwang-sim demo`, a run paced to the wall clock with the city's node API and
//!   the operators' dashboard on localhost (the one thing here that is not deterministic).
//! - `tests/`: a three-node cut, fail-over and heal; a parent that drops every session at once,
//!   redialled with a growing backoff; certificates judged on each node's clock; `yiwang-sim
//!   trace` replayed across processes and its checks proven against an injected bug.
//!
//! Everything runs on a paused current-thread tokio runtime with a fixed RNG seed and no thread
//! of its own, so a run is a pure function of its options and the code.

pub mod checks;
pub mod cluster;
pub mod demo;
pub mod fabric;
pub mod faults;
pub mod report;
pub mod run;
pub mod scenario;
pub mod time;
pub mod topology;
pub mod trace;
pub mod workload;

/// The commit the simulator was built from, for reports (`unknown` outside a git checkout).
pub const COMMIT: &str = match option_env!("YIWANG_COMMIT") {
    Some(c) => c,
    None => "unknown",
};

pub use cluster::{eventually, Cluster, ClusterOptions, SimError, SimNode};
pub use fabric::{Fabric, FabricConfig, FabricSocket, LinkCounters, LinkFaults};
pub use time::SimClock;
