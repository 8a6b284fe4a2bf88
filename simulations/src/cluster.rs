//! Real node instances in one process, joined over a [`Fabric`].
//!
//! A [`Cluster`] holds a topology, an in-memory city CA that certifies every site, a directory
//! for the stores and a fabric. [`Cluster::start`] builds a node exactly as the binary does
//! (`node::instance::start` with its parts), except that its mesh socket is a fabric socket at
//! the site's `mesh` address, its clock follows tokio's (so a paused runtime's virtual time),
//! its store's flusher thread reads that same clock, and its HTTP API listens on a loopback port the OS picks. Nodes can be stopped and started
//! again on the same store and address.
//!
//! [`eventually`] polls a condition until a deadline, in tokio time, and says what did not
//! converge.

use crate::fabric::Fabric;
use crate::time::SimClock;
use node::auth::Credentials;
use node::clock::SharedClock;
use node::config::NodeConfig;
use node::instance::{self, Parts, RunningNode};
use node::mesh::pki::{CityCa, Validity};
use node::mesh::tls::MeshIdentity;
use node::mesh::topology::{Site, Topology};
use node::mesh::{LinkSettings, MeshParts};
use node::metrics::Metrics;
use node::store::{Store, StoreConfig};
use prometheus_client::registry::Registry;
use proto::{NodeId, NodeIdentity};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
}

/// How the cluster builds its nodes.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Wall-clock time (ms since the epoch) the nodes' clocks read when the cluster is made;
    /// they advance with tokio's clock from there.
    pub epoch_ms: u64,
    /// Link tuning of every node.
    pub link: LinkSettings,
    /// Store settings of every node (a small page cache by default: many stores share a host).
    pub store: StoreConfig,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        // 2026-01-01T00:00:00Z: a fixed start, so runs read the same times.
        ClusterOptions {
            epoch_ms: 1_767_225_600_000,
            link: LinkSettings::default(),
            store: StoreConfig { cache_mb: 8, ..StoreConfig::default() },
        }
    }
}

/// One running node of a cluster.
pub struct SimNode {
    pub id: NodeId,
    /// Its mesh address on the fabric.
    pub addr: SocketAddr,
    pub running: RunningNode,
    pub store: Store,
    pub metrics: Metrics,
    pub registry: Arc<Registry>,
}

/// Many nodes over one fabric.
pub struct Cluster {
    pub fabric: Fabric,
    pub topology: Arc<Topology>,
    ca: CityCa,
    identities: BTreeMap<NodeId, MeshIdentity>,
    dir: PathBuf,
    clock: SharedClock,
    options: ClusterOptions,
    nodes: BTreeMap<NodeId, SimNode>,
}

impl Cluster {
    /// A cluster of `sites` over `fabric`, stores under `dir/<node id>`, a fresh CA and a
    /// certificate for every site. No node runs yet. Call from inside the tokio runtime.
    pub fn new(fabric: Fabric, sites: Vec<Site>, dir: &Path, options: ClusterOptions) -> Result<Cluster, SimError> {
        let topology = Arc::new(Topology::from_sites(sites)?);
        // rustls checks certificate dates against the system clock, whatever the nodes' clocks
        // say, so certificates are valid around the real now.
        let validity = Validity::days_from(time::OffsetDateTime::now_utc(), 30)?;
        let ca = CityCa::generate("yiwang simulation CA", validity)?;
        let mut identities = BTreeMap::new();
        for site in topology.sites() {
            let cert = ca.issue(&NodeIdentity { id: site.id.clone(), role: site.role }, validity)?;
            let identity =
                MeshIdentity::from_der(vec![ca.cert_der().clone()], vec![cert.cert_der().clone()], cert.key_der())?;
            identities.insert(site.id.clone(), identity);
        }
        let clock: SharedClock = Arc::new(SimClock::starting_at(options.epoch_ms));
        Ok(Cluster { fabric, topology, ca, identities, dir: dir.to_path_buf(), clock, options, nodes: BTreeMap::new() })
    }

    pub fn ca(&self) -> &CityCa {
        &self.ca
    }

    /// The clock every node reads.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The site `id`, which must be in the topology.
    pub fn site(&self, id: &NodeId) -> &Site {
        self.topology.site(id).unwrap_or_else(|| panic!("{id} is not a site of the topology"))
    }

    /// Start node `id` on its store (created on first start) and its fabric address.
    pub async fn start(&mut self, id: &NodeId) -> Result<&SimNode, SimError> {
        if self.nodes.contains_key(id) {
            return Err(SimError::Running(id.clone()));
        }
        let site = self.topology.site(id).ok_or_else(|| SimError::UnknownSite(id.clone()))?.clone();
        let fail = |message: String| SimError::Node { node: id.clone(), message };
        let mut config = NodeConfig::empty();
        config.node.id = site.id.clone();
        config.node.role = site.role;
        config.data_dir = self.dir.join(site.id.as_str());
        config.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.store = self.options.store.clone();

        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let store = Store::open(
            &config.data_dir.join("store"),
            site.id.clone(),
            self.clock.clone(),
            config.store.clone(),
            metrics.clone(),
        )
        .map_err(|e| fail(format!("store: {e}")))?;
        let socket = self.fabric.bind(site.mesh).map_err(|e| fail(format!("mesh socket: {e}")))?;
        let mesh = MeshParts {
            socket,
            runtime: self.fabric.runtime(),
            identity: self.identities[id].clone(),
            topology: self.topology.clone(),
            settings: self.options.link.clone(),
            rng_seed: seed_of(id),
        };
        let registry = Arc::new(registry);
        let parts = Parts {
            clock: self.clock.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            registry: registry.clone(),
            credentials: Credentials::default(),
            mesh: Some(mesh),
        };
        let running = instance::start(&config, parts).await.map_err(|e| fail(e.to_string()))?;
        let node = SimNode { id: site.id.clone(), addr: site.mesh, running, store, metrics, registry };
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

    pub fn running(&self) -> impl Iterator<Item = &SimNode> {
        self.nodes.values()
    }

    /// Stop node `id` (its peers see it leave) and close its store; its address is free again.
    pub async fn stop(&mut self, id: &NodeId) {
        if let Some(n) = self.nodes.remove(id) {
            n.running.stop().await;
            n.store.close().await;
        }
    }

    /// Stop every node.
    pub async fn stop_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().cloned().collect();
        for id in ids {
            self.stop(&id).await;
        }
    }
}

/// A node's RNG seed, the same in every run: FNV-1a of its id. (Stand-in until the cluster
/// derives every node's seed from the run's seed.)
fn seed_of(id: &NodeId) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0100_0000_01b3;
    id.as_str().bytes().fold(FNV_OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
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
