//! The mesh: nodes joined over QUIC with mutual TLS, replicating entries by version vector.
//!
//! A node dials its preferred parent (falling back down its list when that one is
//! unreachable) and accepts its children. Over every link, entries travel the way the
//! authorization table says (alerts, escalations, summaries and audit up; commands down;
//! watchlists both ways), each receiver judging every entry against the topology. Module map:
//! `sync` (the replication state machines, no I/O), `uplink` (which parent to link to, when
//! to retry and when to switch back: a state machine, no I/O), `link` (carrying out the
//! uplink's decisions, accepting children, the streams of a connection), `streams` (the kind
//! header every stream starts with), `frames` (messages on a stream), `holdings` (the store as
//! a sender reads it), `rate` (the per-link byte cap), `status` (link states), `tls` and `pki`
//! (certificates), `topology` (the mesh file), `publisher` (at a voting site: the committed
//! sanctions lists from its control plane onto the mesh), `reports` (each node's report of
//! itself, passed up to the city).
//!
//! A certificate the sanctions lists in force revoke is refused: its connection is closed as
//! soon as the handshake shows it, and an open one when the revocation arrives.

pub mod frames;
mod holdings;
mod link;
pub mod pki;
mod publisher;
pub mod quic_config;
pub mod quota;
mod rate;
pub mod refusals;
pub mod reports;
pub mod status;
pub mod streams;
pub mod summaries;
pub mod sync;
pub mod tls;
pub mod topology;
pub mod uplink;

use crate::clock::SharedClock;
use crate::enforcement::Enforced;
use crate::events::Events;
use crate::metrics::Metrics;
use crate::rng::Seed;
use crate::store::{Store, StoreError};
use proto::{Entry, Kind, NodeIdentity, VersionVector};
use status::{LinkStatus, StatusTable};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use topology::Topology;

/// Which side of a link the peer is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Parent,
    Child,
}

impl Relation {
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::Parent => "parent",
            Relation::Child => "child",
        }
    }
}

/// Link tuning, from `[mesh]` in the config.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// Batches sent before one must be acknowledged.
    pub window: usize,
    /// Per-link send cap in bytes per second; 0 for none.
    pub max_bytes_per_sec: u64,
    /// A silent peer counts as gone after this long (how fast a dead parent is noticed and a
    /// fallback taken).
    pub idle_timeout: std::time::Duration,
    /// Keep-alives, well below the idle timeout, so a quiet link is not mistaken for a dead one.
    pub keep_alive: std::time::Duration,
    /// Incoming handshakes under way at once; past this an incoming connection is refused
    /// before any cryptography is spent on it.
    pub max_handshakes: usize,
    /// Refused handshakes are audited at most once per source address per this interval,
    /// with their count (see `refusals`).
    pub refusal_audit_interval: std::time::Duration,
    /// Entries per second per origin this node takes of each kind travelling up (see `quota`).
    pub receive_quota: quota::ReceiveQuota,
}

/// Default of [`LinkSettings::max_handshakes`]: a county's towns reconnecting at once after a
/// partition number a few dozen, and their reconnect jitter spreads them.
pub const DEFAULT_MAX_HANDSHAKES: usize = 64;
/// Default of [`LinkSettings::refusal_audit_interval`].
pub const DEFAULT_REFUSAL_AUDIT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

impl Default for LinkSettings {
    fn default() -> Self {
        LinkSettings {
            window: 4,
            max_bytes_per_sec: 0,
            idle_timeout: std::time::Duration::from_secs(10),
            keep_alive: std::time::Duration::from_secs(2),
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            refusal_audit_interval: DEFAULT_REFUSAL_AUDIT_INTERVAL,
            receive_quota: quota::ReceiveQuota::default(),
        }
    }
}

impl LinkSettings {
    fn transport(&self) -> quinn::TransportConfig {
        let mut t = tls::transport_config();
        let idle = quinn::IdleTimeout::try_from(self.idle_timeout)
            .unwrap_or(quinn::IdleTimeout::from(quinn::VarInt::from_u32(10_000)));
        t.max_idle_timeout(Some(idle));
        t.keep_alive_interval(Some(self.keep_alive.min(self.idle_timeout / 3)));
        t
    }
}

/// What the builder hands a mesh: its socket and runtime (real UDP, or the simulator's fabric),
/// its certificate, and the topology.
pub struct MeshParts {
    pub socket: Arc<dyn quinn::AsyncUdpSocket>,
    pub runtime: Arc<dyn quinn::Runtime>,
    pub identity: tls::MeshIdentity,
    pub topology: Arc<Topology>,
    pub settings: LinkSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    #[error("cannot start the QUIC endpoint: {0}")]
    Endpoint(String),
    #[error("this node ({0}) is not in the topology")]
    NotInTopology(String),
    #[error("the certificate names {cert}, but this node is {config}")]
    WrongCertificate { cert: String, config: String },
    #[error("{0}")]
    Store(#[from] StoreError),
}

pub(crate) struct Inner {
    me: NodeIdentity,
    topology: Arc<Topology>,
    endpoint: quinn::Endpoint,
    store: Store,
    clock: SharedClock,
    metrics: Metrics,
    settings: LinkSettings,
    replica: tokio::sync::Mutex<sync::Replica>,
    status: StatusTable,
    /// Open connections from children, so a reconnect replaces the old one.
    sessions: Mutex<HashMap<proto::NodeId, quinn::Connection>>,
    /// Received watchlist and command entries, once durable, for whoever applies them.
    applied: mpsc::Sender<Vec<Entry>>,
    /// What this node reports of itself, and the lists whose revocations close connections.
    local: Local,
    /// The latest reports of the sites below.
    reports: reports::ReportTable,
    /// Wakes the report to the parent early.
    report_wake: tokio::sync::Notify,
    /// Refused handshakes waiting to be audited in aggregate.
    refusals: Mutex<refusals::RefusalAudit>,
    /// Where each origin's audit chain stands, as received here (see `audit_chain`).
    audit_chains: Mutex<crate::audit_chain::ChainCheck>,
    /// What each origin below may still send of each kind (see `quota`).
    quotas: Mutex<quota::ReceiveQuotas>,
}

/// What the mesh needs from the rest of the node.
#[derive(Clone)]
pub struct Local {
    /// The sanctions lists in force: connections whose certificate they revoke are closed.
    pub enforced: Enforced,
    /// Open and overdue events, for this node's report.
    pub events: Events,
}

/// A running mesh endpoint. Cheap to clone.
#[derive(Clone)]
pub struct Mesh {
    inner: Arc<Inner>,
}

/// What this node holds of every kind that travels, per origin.
fn load_heads(store: &Store) -> Result<HashMap<Kind, VersionVector>, StoreError> {
    let mut heads = HashMap::new();
    for kind in Kind::REPLICATED {
        heads.insert(kind, VersionVector::clone(&store.heads(kind)));
    }
    Ok(heads)
}

impl Mesh {
    /// Start the endpoint, the accept loop and the parent dialer. Returns the mesh and the
    /// channel of replicated watchlist and command entries to apply. Every random choice the
    /// mesh makes comes from `seed`.
    pub fn start(
        parts: MeshParts,
        store: Store,
        clock: SharedClock,
        seed: Seed,
        metrics: Metrics,
        local: Local,
        tasks: &mut JoinSet<()>,
    ) -> Result<(Mesh, mpsc::Receiver<Vec<Entry>>), MeshError> {
        let me = parts.identity.identity().clone();
        if &me.id != store.node() {
            return Err(MeshError::WrongCertificate { cert: me.id.to_string(), config: store.node().to_string() });
        }
        let site = parts.topology.site(&me.id).ok_or_else(|| MeshError::NotInTopology(me.id.to_string()))?;
        if site.role != me.role {
            return Err(MeshError::WrongCertificate {
                cert: format!("{} as {}", me.id, me.role),
                config: format!("{} as {}", site.id, site.role),
            });
        }
        let parents: Vec<topology::Site> =
            site.parents.iter().filter_map(|p| parts.topology.site(p).cloned()).collect();
        let voter = site.raft;
        let server = quic_config::server_config(&parts.identity, &clock, seed, parts.settings.transport())?;
        let client = quic_config::client_config(&parts.identity, &clock, parts.settings.transport())?;
        let mut endpoint = quinn::Endpoint::new_with_abstract_socket(
            quic_config::endpoint_config(seed),
            Some(server),
            parts.socket,
            parts.runtime,
        )
        .map_err(|e| MeshError::Endpoint(e.to_string()))?;
        endpoint.set_default_client_config(client);
        let heads = load_heads(&store)?;
        let (applied, applied_rx) = mpsc::channel(64);
        let refusals = Mutex::new(refusals::RefusalAudit::new(parts.settings.refusal_audit_interval));
        let quotas = Mutex::new(quota::ReceiveQuotas::new(parts.settings.receive_quota));
        let inner = Arc::new(Inner {
            replica: tokio::sync::Mutex::new(sync::Replica::new(me.id.clone(), heads)),
            me,
            topology: parts.topology,
            endpoint,
            store,
            clock,
            metrics,
            settings: parts.settings,
            status: StatusTable::default(),
            sessions: Mutex::new(HashMap::new()),
            applied,
            local,
            reports: reports::ReportTable::default(),
            report_wake: tokio::sync::Notify::new(),
            refusals,
            audit_chains: Mutex::new(crate::audit_chain::ChainCheck::new()),
            quotas,
        });
        tasks.spawn(inner.clone().accept_loop());
        if let Some(voter) = voter {
            // A voting site publishes what its control plane commits, for every site below.
            tasks.spawn(inner.clone().publish_loop(voter, seed.rng("sanctions publisher")));
        }
        if !parents.is_empty() {
            // The reconnect jitter, like every random draw of the mesh, comes from the node's
            // seed: from the OS in the binary (so the sites behind one county spread their
            // redials apart), from the run's seed in a simulation (so a run replays).
            tasks.spawn(inner.clone().parents_loop(parents, seed.derive("uplink jitter").0));
        }
        Ok((Mesh { inner }, applied_rx))
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.endpoint.local_addr().ok()
    }

    /// The reports this node holds: its own, then the latest of each site below it (at the
    /// city, every node's).
    pub fn reports(&self) -> Vec<proto::wire::NodeReport> {
        self.inner.reports()
    }

    /// This node's topology.
    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    /// Every link this node has or wants, with its state.
    pub fn links(&self) -> Vec<LinkStatus> {
        self.inner.status.snapshot()
    }

    /// Close every connection (peers see the node leave at once rather than after a timeout).
    pub fn close(&self) {
        self.inner.endpoint.close(0u32.into(), b"node stopping");
    }
}
