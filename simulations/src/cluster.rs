//! Real node instances in one process, joined over a [`Fabric`], each on a simulated disk.
//!
//! A [`Cluster`] holds a topology, an in-memory city CA that certifies every site (Ed25519, so
//! handshakes have the same lengths every run), a [`SimDisk`] and a [`SimClock`] per site, and
//! the fabric. [`Cluster::start`] builds a node exactly as the binary does
//! (`node::instance::start` with its parts), except that its mesh socket is a fabric socket at
//! the site's `mesh` address, its store is on its simulated disk, its clock is its own
//! (skewable) virtual clock, its seed comes from the cluster's, and it serves no HTTP (tests
//! and the simulator drive it in-process).
//!
//! A node leaves in one of two ways: [`Cluster::stop`] (an orderly stop: peers see it go, its
//! store closes cleanly) or [`Cluster::crash`] (a power cut: its socket goes dark, its disk
//! keeps only what was durable, every task it had is dropped where it stood). Either way
//! [`Cluster::start`] brings it back on the same disk and address.
//!
//! A site with a `raft` address (the city and counties of a city generated with voters) also
//! runs a `yiwang-control` voter of the sanctions lists, as its box would: at that address on
//! the fabric, on a disk of its own, with the site's certificate, clock and a seed of its own.
//! It starts, stops and loses power with its site's node.
//!
//! [`eventually`] polls a condition until a deadline, in tokio time, and says what did not
//! converge.

use crate::fabric::{Fabric, FabricSocket};
use crate::time::SimClock;
use control_plane::raft::voter::{RaftSettings, VoterNode, VoterParts};
use node::auth::Credentials;
use node::clock::SharedClock;
use node::config::NodeConfig;
use node::instance::{self, Parts, RunningNode};
use node::mesh::pki::{CityCa, KeyAlgorithm, Validity};
use node::mesh::tls::MeshIdentity;
use node::mesh::topology::{Site, Topology};
use node::mesh::{LinkSettings, MeshParts};
use node::metrics::Metrics;
use node::rng::Seed;
use node::store::{DiskFaults, InjectedBugs, PowerCut, SimDisk, Store, StoreConfig};
use prometheus_client::registry::Registry;
use proto::{NodeId, NodeIdentity};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("topology: {0}")]
    Topology(#[from] node::mesh::topology::TopologyError),
    #[error("certificates: {0}")]
    Pki(#[from] node::mesh::pki::PkiError),
    #[error("mesh identity: {0}")]
    Tls(#[from] node::mesh::tls::TlsError),
    #[error("{0} is not a site of the topology")]
    UnknownSite(NodeId),
    #[error("{0} is already running")]
    Running(NodeId),
    #[error("{node}: {message}")]
    Node { node: NodeId, message: String },
    #[error("cannot build the simulation's runtime: {0}")]
    Runtime(String),
    #[error("scenario: {0}")]
    Scenario(String),
}

/// How the cluster builds its nodes.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Wall-clock time (ms since the epoch) the nodes' clocks read when the cluster is made;
    /// they advance with tokio's clock from there. Certificates are valid around it.
    pub epoch_ms: u64,
    /// Every node's seed, and its disk's, derives from this one.
    pub seed: u64,
    /// Link tuning of every node.
    pub link: LinkSettings,
    /// Store settings of every node.
    pub store: StoreConfig,
    /// Faults every disk starts with.
    pub disk: DiskFaults,
    /// Mechanisms broken on purpose in every node's store (see [`InjectedBugs`]).
    pub bugs: InjectedBugs,
    /// Timing of the voters at sites with a `raft` address.
    pub raft: RaftSettings,
    /// A site that serves its HTTP API on a real socket, with these bearer tokens
    /// (`yiwang-sim demo`'s city; everything else is driven in-process).
    pub http: Option<HttpSite>,
    /// The fence boundary every harbour watches (GeoJSON file), if any.
    pub fence: Option<std::path::PathBuf>,
}

/// A site whose node serves HTTP.
#[derive(Debug, Clone)]
pub struct HttpSite {
    pub site: NodeId,
    pub listen: SocketAddr,
    pub tokens: Vec<node::auth::TokenSpec>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        // 2026-01-01T00:00:00Z: a fixed start, so runs read the same times.
        ClusterOptions {
            epoch_ms: 1_767_225_600_000,
            seed: 1,
            link: LinkSettings::default(),
            store: StoreConfig { cache_mb: 8, ..StoreConfig::default() },
            disk: DiskFaults::default(),
            bugs: InjectedBugs::default(),
            raft: RaftSettings::default(),
            http: None,
            fence: None,
        }
    }
}

/// How long certificates are valid before and after the cluster's epoch.
const CERT_BEFORE_EPOCH: time::Duration = time::Duration::days(1);
const CERT_AFTER_EPOCH: time::Duration = time::Duration::days(365);

/// One running node of a cluster.
pub struct SimNode {
    pub id: NodeId,
    /// Its mesh address on the fabric.
    pub addr: SocketAddr,
    pub running: RunningNode,
    pub store: Store,
    pub metrics: Metrics,
    pub registry: Arc<Registry>,
    /// The site's voter, if it has a `raft` address.
    pub voter: Option<SimVoter>,
    socket: Arc<FabricSocket>,
}

/// A site's running voter.
pub struct SimVoter {
    pub node: Arc<VoterNode>,
    pub store: Store,
    socket: Arc<FabricSocket>,
}

/// What the cluster keeps of a site across its lives.
struct SiteState {
    disk: SimDisk,
    /// The voter's disk, at a site that runs one.
    voter_disk: Option<SimDisk>,
    clock: SimClock,
    identity: MeshIdentity,
    /// Times started, so each life draws fresh (but repeatable) randomness.
    lives: u64,
}

/// Many nodes over one fabric.
pub struct Cluster {
    pub fabric: Fabric,
    pub topology: Arc<Topology>,
    ca: CityCa,
    sites: BTreeMap<NodeId, SiteState>,
    options: ClusterOptions,
    nodes: BTreeMap<NodeId, SimNode>,
}

fn offset_time(epoch_ms: u64) -> time::OffsetDateTime {
    time::OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(epoch_ms as i64)
}

impl Cluster {
    /// A cluster of `sites` over `fabric`: a CA and a certificate for every site, an empty disk
    /// and a clock for each. No node runs yet. Call from inside the tokio runtime.
    pub fn new(fabric: Fabric, sites: Vec<Site>, options: ClusterOptions) -> Result<Cluster, SimError> {
        let topology = Arc::new(Topology::from_sites(sites)?);
        let epoch = offset_time(options.epoch_ms);
        let validity = Validity::between(epoch - CERT_BEFORE_EPOCH, epoch + CERT_AFTER_EPOCH)?;
        let ca = CityCa::generate_with("yiwang simulation CA", validity, KeyAlgorithm::Ed25519)?;
        let start = tokio::time::Instant::now();
        let seed = Seed(options.seed);
        let mut states = BTreeMap::new();
        for site in topology.sites() {
            let cert = ca.issue(&NodeIdentity { id: site.id.clone(), role: site.role }, validity)?;
            let identity =
                MeshIdentity::from_der(vec![ca.cert_der().clone()], vec![cert.cert_der().clone()], cert.key_der())?;
            let disk = SimDisk::new(seed.derive(&format!("disk {}", site.id)).0);
            disk.set_faults(options.disk.clone());
            let clock = SimClock::new(options.epoch_ms, start);
            let voter_disk = site.raft.map(|_| {
                let d = SimDisk::new(seed.derive(&format!("voter disk {}", site.id)).0);
                d.set_faults(options.disk.clone());
                d
            });
            states.insert(site.id.clone(), SiteState { disk, voter_disk, clock, identity, lives: 0 });
        }
        Ok(Cluster { fabric, topology, ca, sites: states, options, nodes: BTreeMap::new() })
    }

    pub fn ca(&self) -> &CityCa {
        &self.ca
    }

    fn state(&self, id: &NodeId) -> &SiteState {
        self.sites.get(id).unwrap_or_else(|| panic!("{id} is not a site of the topology"))
    }

    /// Site `id`'s clock (skew it with [`SimClock::set_skew_ms`]).
    pub fn clock(&self, id: &NodeId) -> &SimClock {
        &self.state(id).clock
    }

    /// Site `id`'s disk, running or not (set faults on it, cut its power).
    pub fn disk(&self, id: &NodeId) -> &SimDisk {
        &self.state(id).disk
    }

    /// Site `id`'s voter's disk, if it runs a voter.
    pub fn voter_disk(&self, id: &NodeId) -> Option<&SimDisk> {
        self.state(id).voter_disk.as_ref()
    }

    /// The running voters.
    pub fn voters(&self) -> impl Iterator<Item = (&NodeId, &SimVoter)> {
        self.nodes.iter().filter_map(|(id, n)| n.voter.as_ref().map(|v| (id, v)))
    }

    /// The site `id`, which must be in the topology.
    pub fn site(&self, id: &NodeId) -> &Site {
        self.topology.site(id).unwrap_or_else(|| panic!("{id} is not a site of the topology"))
    }

    /// Start node `id` on its disk and its fabric address.
    pub async fn start(&mut self, id: &NodeId) -> Result<&SimNode, SimError> {
        if self.nodes.contains_key(id) {
            return Err(SimError::Running(id.clone()));
        }
        let site = self.topology.site(id).ok_or_else(|| SimError::UnknownSite(id.clone()))?.clone();
        let fail = |message: String| SimError::Node { node: id.clone(), message };
        let state = self.sites.get_mut(id).ok_or_else(|| SimError::UnknownSite(id.clone()))?;
        state.lives += 1;
        let seed = Seed(self.options.seed).derive(&format!("node {} life {}", site.id, state.lives));
        let mut config = NodeConfig::empty();
        config.node.id = site.id.clone();
        config.node.role = site.role;
        config.store = self.options.store.clone();
        if let (Some(boundary), proto::Role::Harbour) = (&self.options.fence, site.role) {
            config.fence = Some(node::config::FenceConfig { boundary: boundary.clone(), zones: Default::default() });
        }
        let http = self.options.http.as_ref().filter(|h| h.site == site.id);
        let credentials = match http {
            Some(h) => {
                config.http.listen = h.listen;
                Credentials::from_specs(&h.tokens, &[]).map_err(fail)?
            }
            None => Credentials::default(),
        };

        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let clock: SharedClock = Arc::new(state.clock.clone());
        let store = Store::simulated(
            &state.disk,
            site.id.clone(),
            clock.clone(),
            config.store.clone(),
            metrics.clone(),
            self.options.bugs,
        )
        .map_err(|e| fail(format!("store: {e}")))?;
        let voter = match (site.raft, &state.voter_disk) {
            (Some(addr), Some(disk)) => {
                let socket = self.fabric.bind(addr).map_err(|e| fail(format!("raft socket: {e}")))?;
                let store = Store::simulated(
                    disk,
                    site.id.clone(),
                    clock.clone(),
                    config.store.clone(),
                    metrics.clone(),
                    InjectedBugs::default(),
                )
                .map_err(|e| fail(format!("voter store: {e}")))?;
                let voters = self
                    .topology
                    .sites()
                    .iter()
                    .filter_map(|s| s.raft.map(|a| (s.id.clone(), a.to_string())))
                    .collect();
                let parts = VoterParts {
                    identity: state.identity.clone(),
                    clock: clock.clone(),
                    store: store.clone(),
                    seed: seed.derive("voter"),
                    socket: socket.clone(),
                    runtime: self.fabric.runtime(),
                    settings: self.options.raft.clone(),
                    voters,
                    routes: BTreeMap::new(),
                    join: false,
                };
                let node = VoterNode::start(parts).await.map_err(|e| fail(format!("voter: {e}")))?;
                Some(SimVoter { node: Arc::new(node), store, socket })
            }
            _ => None,
        };
        let socket = self.fabric.bind(site.mesh).map_err(|e| fail(format!("mesh socket: {e}")))?;
        let mesh = MeshParts {
            socket: socket.clone(),
            runtime: self.fabric.runtime(),
            identity: state.identity.clone(),
            topology: self.topology.clone(),
            settings: self.options.link.clone(),
        };
        let registry = Arc::new(registry);
        let parts = Parts {
            clock,
            store: store.clone(),
            metrics: metrics.clone(),
            registry: registry.clone(),
            credentials,
            mesh: Some(mesh),
            seed,
            serve_http: http.is_some(),
        };
        let running = instance::start(&config, parts).await.map_err(|e| fail(e.to_string()))?;
        let node = SimNode { id: site.id.clone(), addr: site.mesh, running, store, metrics, registry, voter, socket };
        Ok(self.nodes.entry(id.clone()).or_insert(node))
    }

    /// Start every site not running yet, in topology order.
    pub async fn start_all(&mut self) -> Result<(), SimError> {
        let ids: Vec<NodeId> = self.topology.sites().iter().map(|s| s.id.clone()).collect();
        for id in ids {
            if !self.nodes.contains_key(&id) {
                self.start(&id).await?;
            }
        }
        Ok(())
    }

    /// The running node `id`; panics if it is not running.
    pub fn node(&self, id: &NodeId) -> &SimNode {
        self.nodes.get(id).unwrap_or_else(|| panic!("{id} is not running"))
    }

    pub fn get(&self, id: &NodeId) -> Option<&SimNode> {
        self.nodes.get(id)
    }

    /// Times site `id` has been started: a crash and restart make a new life.
    pub fn lives(&self, id: &NodeId) -> u64 {
        self.state(id).lives
    }

    pub fn is_running(&self, id: &NodeId) -> bool {
        self.nodes.contains_key(id)
    }

    pub fn running(&self) -> impl Iterator<Item = &SimNode> {
        self.nodes.values()
    }

    /// Stop node `id` in order (its peers see it leave) and close its store; its address is
    /// free again.
    pub async fn stop(&mut self, id: &NodeId) {
        if let Some(n) = self.nodes.remove(id) {
            n.running.stop().await;
            n.store.close().await;
            // quinn may hold the socket a little longer; the address is free now all the same.
            n.socket.close();
            if let Some(v) = n.voter {
                v.node.shutdown().await;
                v.store.close().await;
                v.socket.close();
            }
        }
    }

    /// Cut site `id`'s power: its sockets go dark at once (nothing more leaves or arrives),
    /// its disks keep only what was durable (see [`SimDisk::power_cut`]), and every task its
    /// node had is dropped where it stood. All of that happens before the first await, so
    /// nothing the site does can slip in between; then its voter's raft tasks, dark and with
    /// a dead store, are stopped. `None` if it was not running.
    pub async fn crash(&mut self, id: &NodeId) -> Option<PowerCut> {
        let n = self.nodes.remove(id)?;
        n.socket.close();
        if let Some(v) = &n.voter {
            v.socket.close();
        }
        let cut = self.state(id).disk.power_cut();
        if let Some(d) = self.voter_disk(id) {
            d.power_cut();
        }
        // The endpoint's close frames go nowhere (the socket is dark); closing only lets quinn's
        // connection drivers end now rather than at their idle timeout.
        if let Some(mesh) = &n.running.mesh {
            mesh.close();
        }
        let SimNode { voter, .. } = n;
        if let Some(v) = voter {
            // openraft's tasks are not the node's: they stop only when told.
            v.node.shutdown().await;
        }
        Some(cut)
    }

    /// Stop every node in order.
    pub async fn stop_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().cloned().collect();
        for id in ids {
            self.stop(&id).await;
        }
    }
}

/// Poll `check` every `every` of tokio time until it returns `Ok`, for at most `limit`.
/// Returns the value and how long it took; on timeout, an error naming `what` and the last
/// thing `check` said was missing.
pub async fn eventually<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<(T, Duration), String> {
    let start = tokio::time::Instant::now();
    loop {
        let last = match check() {
            Ok(v) => return Ok((v, start.elapsed())),
            Err(e) => e,
        };
        if start.elapsed() >= limit {
            return Err(format!("{what}: did not converge within {limit:?}; last state: {last}"));
        }
        tokio::time::sleep(every).await;
    }
}
