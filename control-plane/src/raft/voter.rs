//! One voter of the sanctions lists' raft group, as a library instance: it takes its identity,
//! clock, store, seed, UDP socket and runtime from whoever builds it (the `yiwang-control`
//! binary, a test, the simulator), like a node does.
//!
//! Writes and linearizable reads may be sent to any voter: a follower forwards a write to the
//! leader over the raft transport, and answers a read once it has applied everything the leader
//! had committed when asked (the leader's read index). Every call has a deadline: on the
//! minority side of a partition a write fails with [`CallError::NoQuorum`] when it runs out,
//! rather than waiting for a quorum that is not there.

use super::changes::{self, Change};
use super::log_store::LogStore;
use super::network::{Admission, Dialer, RaftReply, RaftRequest};
use super::runtime;
use super::state_machine::{ListsMachine, ListsView};
use super::{voter_id, ListsRaft, StoreFault, Voter, VoterId};
use node::clock::SharedClock;
use node::mesh::quic_config;
use node::mesh::tls::{self, MeshIdentity};
use node::rng::Seed;
use node::sanctions::{ListKind, Lists, Outcome, Proposal, SubjectId};
use node::store::Store;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{Raft, RaftMetrics, ServerState};
use proto::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Longest one forwarded write or read-index request may take before it is tried again. A
/// write retried after its answer was lost may be committed twice: an add then comes back
/// refused as already listed, an import row replaces itself; the lists say what is in force.
const FORWARD_ATTEMPT: Duration = Duration::from_secs(1);

/// Longest a restarting voter may take to re-apply its committed log.
const REPLAY_LIMIT: Duration = Duration::from_secs(120);

/// Timings of the group. openraft 0.9 lets a follower of a committed leader stand for
/// election only after `election_timeout_max` (its lease on the leader) plus a random timeout
/// in `[election_timeout_min, election_timeout_max)` without a heartbeat, so losing a leader
/// costs 400 to 560 ms with the defaults, and a new leader takes writes within a second (the
/// raft benchmark's `failover_p99`). The heartbeat interval also bounds one AppendEntries (see
/// `network::MAX_APPEND_BYTES`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftSettings {
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    #[serde(with = "humantime_serde")]
    pub election_timeout_min: Duration,
    #[serde(with = "humantime_serde")]
    pub election_timeout_max: Duration,
    /// Deadline of a client call (write or linearizable read) when the caller gives none.
    #[serde(with = "humantime_serde")]
    pub call_deadline: Duration,
    /// Log entries between snapshots.
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot, so a follower that lags by less catches up from
    /// the log rather than by a whole snapshot.
    pub logs_kept: u64,
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            heartbeat: Duration::from_millis(40),
            election_timeout_min: Duration::from_millis(120),
            election_timeout_max: Duration::from_millis(280),
            call_deadline: Duration::from_secs(3),
            snapshot_every: 5_000,
            logs_kept: 1_000,
        }
    }
}

impl RaftSettings {
    fn openraft(&self, name: &NodeId) -> Result<openraft::Config, VoterError> {
        let ms = |d: Duration| d.as_millis() as u64;
        let config = openraft::Config {
            cluster_name: format!("yiwang-lists-{name}"),
            heartbeat_interval: ms(self.heartbeat),
            election_timeout_min: ms(self.election_timeout_min),
            election_timeout_max: ms(self.election_timeout_max),
            // A chunk is one frame of the mesh's codec; installing it may take a flush.
            snapshot_max_chunk_size: 1 << 20,
            install_snapshot_timeout: 10_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.logs_kept,
            ..Default::default()
        };
        config.validate().map_err(|e| VoterError::Settings(e.to_string()))
    }
}

/// What a voter is built from.
pub struct VoterParts {
    pub identity: MeshIdentity,
    pub clock: SharedClock,
    pub store: Store,
    pub seed: Seed,
    pub socket: Arc<dyn quinn::AsyncUdpSocket>,
    pub runtime: Arc<dyn quinn::Runtime>,
    pub settings: RaftSettings,
    /// The configured voters (this one included), with the address each listens on. A group
    /// with no committed membership yet starts with exactly these.
    pub voters: Vec<(NodeId, String)>,
    /// How this site reaches a voter when that differs from the address in the membership
    /// (a NAT, a relay): local routing, never replicated.
    pub routes: BTreeMap<NodeId, SocketAddr>,
    /// A site joining a group that already runs: it forms no group of its own and waits for
    /// an operator to add it ([`VoterNode::change_members`] at any voter of the group).
    pub join: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VoterError {
    #[error("raft settings: {0}")]
    Settings(String),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot open the raft endpoint: {0}")]
    Endpoint(std::io::Error),
    #[error(transparent)]
    Machine(#[from] StoreFault),
    #[error("raft failed to start: {0}")]
    Start(String),
    #[error("two voters, {0} and {1}, map to the same raft id; rename one")]
    IdCollision(String, String),
    #[error("this site, {0}, is not among the configured voters")]
    NotAVoter(String),
}

/// Why a client call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CallError {
    /// No quorum answered within the deadline: this voter is on the minority side of a
    /// partition, or too many voters are down. A write that timed out may still be committed
    /// later by a leader that had it; the lists' version says what is in force.
    #[error("no quorum within {deadline_ms} ms (leader seen: {leader}; {detail}); this voter holds version {version}")]
    NoQuorum { deadline_ms: u64, leader: String, version: u64, detail: String },
    /// The command was committed and refused by the state machine.
    #[error("refused at version {version}: {reason}")]
    Refused { version: u64, reason: String },
    #[error("invalid command: {0}")]
    Invalid(String),
    #[error("raft: {0}")]
    Raft(String),
}

/// A committed, applied write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    pub version: u64,
    pub changed: u32,
}

/// A running voter.
pub struct VoterNode {
    name: NodeId,
    store: Store,
    raft: Raft<ListsRaft>,
    view: ListsView,
    dialer: Dialer,
    endpoint: quinn::Endpoint,
    accept: tokio::task::JoinHandle<()>,
    settings: RaftSettings,
}

impl VoterNode {
    pub async fn start(parts: VoterParts) -> Result<VoterNode, VoterError> {
        let name = parts.identity.id().clone();
        let mut members: BTreeMap<VoterId, Voter> = BTreeMap::new();
        for (voter, addr) in &parts.voters {
            let voter_entry = Voter { name: voter.to_string(), addr: addr.clone() };
            if let Some(other) = members.insert(voter_id(voter), voter_entry) {
                if other.name != voter.as_str() {
                    return Err(VoterError::IdCollision(other.name, voter.to_string()));
                }
            }
        }
        if !members.contains_key(&voter_id(&name)) {
            return Err(VoterError::NotAVoter(name.to_string()));
        }
        let config = Arc::new(parts.settings.openraft(&name)?);
        let transport = tls::transport_config();
        // The raft endpoint's own stream of the seed, apart from the site's mesh endpoint's.
        let endpoint_seed = parts.seed.derive("raft endpoint");
        let server = quic_config::server_config(&parts.identity, &parts.clock, endpoint_seed, transport)?;
        let client = quic_config::client_config(&parts.identity, &parts.clock, tls::transport_config())?;
        let mut endpoint_config = quic_config::endpoint_config(endpoint_seed);
        endpoint_config.reset_key(Arc::new(stable_reset_key(&parts.store, parts.seed).await?));
        let endpoint =
            quinn::Endpoint::new_with_abstract_socket(endpoint_config, Some(server), parts.socket, parts.runtime)
                .map_err(VoterError::Endpoint)?;
        let machine = ListsMachine::open(parts.store.clone())?;
        let view = machine.view();
        let routes = parts.routes.iter().map(|(n, a)| (voter_id(n), *a)).collect();
        let dialer = Dialer::new(endpoint.clone(), client, routes, view.clone());
        let mut log = LogStore::new(parts.store.clone());
        let committed = openraft::storage::RaftLogStorage::read_committed(&mut log)
            .await
            .map_err(|e| VoterError::Start(e.to_string()))?
            .map_or(0, |l| l.index);
        let id = voter_id(&name);
        let raft = runtime::seeded(parts.seed.derive("raft"), Raft::new(id, config, dialer.clone(), log, machine))
            .await
            .map_err(|e| VoterError::Start(e.to_string()))?;
        // Every configured voter proposes the same first membership; openraft takes it only on
        // a voter whose log and vote are empty, so a restart or a second proposal changes
        // nothing.
        if !parts.join {
            match raft.initialize(members.clone()).await {
                Ok(()) | Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(VoterError::Start(e.to_string())),
            }
        }
        // The state machine lives in memory: openraft re-applies the committed log at start.
        // Nothing is served until that is done, so this voter never reports a lower version
        // than it did before it stopped.
        let mut applied = view.version();
        let replayed =
            tokio::time::timeout(REPLAY_LIMIT, async { applied.wait_for(|v| *v >= committed).await.is_ok() });
        if !matches!(replayed.await, Ok(true)) {
            let _ = raft.shutdown().await;
            return Err(VoterError::Start(format!(
                "the committed log up to {committed} was not re-applied within {REPLAY_LIMIT:?}"
            )));
        }
        let feed = super::feed::FeedServer::new(parts.store.clone(), view.clone());
        let admission =
            Admission::new(raft.clone(), members.keys().copied().collect::<BTreeSet<_>>(), view.clone(), feed);
        let accept = tokio::spawn(accept_loop(endpoint.clone(), admission));
        Ok(VoterNode { name, store: parts.store, raft, view, dialer, endpoint, accept, settings: parts.settings })
    }
}

impl VoterNode {
    pub fn name(&self) -> &NodeId {
        &self.name
    }

    /// The applied lists, without asking the leader: what this voter enforces now (possibly
    /// behind the group's latest version; see [`VoterNode::read`] for a linearizable read).
    pub fn view(&self) -> &ListsView {
        &self.view
    }

    pub fn metrics(&self) -> RaftMetrics<VoterId, Voter> {
        self.raft.metrics().borrow().clone()
    }

    /// The address the raft endpoint listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.local_addr().ok()
    }

    /// The deadline of a call that names none.
    pub fn default_deadline(&self) -> Duration {
        self.settings.call_deadline
    }

    fn no_quorum(&self, deadline: Duration, detail: String) -> CallError {
        let m = self.metrics();
        let leader = match (m.current_leader, m.state) {
            (Some(l), _) => m.membership_config.membership().get_node(&l).map(|v| v.name.clone()).unwrap_or_default(),
            (None, _) => String::new(),
        };
        CallError::NoQuorum {
            deadline_ms: deadline.as_millis() as u64,
            leader: if leader.is_empty() { "none".into() } else { leader },
            version: self.view.read().lists.version(),
            detail,
        }
    }

    /// Commit `proposal`, through the leader wherever it is, within `deadline`. While no leader
    /// is known or the leader cannot be reached, it tries again (an election takes a few hundred
    /// milliseconds) until the deadline.
    pub async fn write(&self, proposal: Proposal, deadline: Duration) -> Result<Written, CallError> {
        Lists::validate(&proposal).map_err(|e| CallError::Invalid(e.to_string()))?;
        let until = tokio::time::Instant::now() + deadline;
        self.retrying(until, deadline, || async {
            match leader_write(&self.raft, proposal.clone()).await {
                Ok(written) => Ok(written),
                Err(Forward::Failed(e)) => Err(e),
                Err(Forward::To(voter)) => {
                    match self.forward(&voter, RaftRequest::Propose(proposal.clone()), until).await? {
                        RaftReply::Propose(r) => r,
                        _ => Err(CallError::Raft("the leader answered a write with another reply".into())),
                    }
                }
            }
        })
        .await
    }

    /// A linearizable read: the applied state once it includes every write committed before
    /// this call began, within `deadline`.
    pub async fn read<T>(&self, deadline: Duration, f: impl FnOnce(&Lists) -> T) -> Result<T, CallError> {
        let until = tokio::time::Instant::now() + deadline;
        let index = self
            .retrying(until, deadline, || async {
                match leader_read_index(&self.raft).await {
                    Ok(index) => Ok(index),
                    Err(Forward::Failed(e)) => Err(e),
                    Err(Forward::To(voter)) => match self.forward(&voter, RaftRequest::ReadIndex, until).await? {
                        RaftReply::ReadIndex(r) => r,
                        _ => Err(CallError::Raft("the leader answered a read with another reply".into())),
                    },
                }
            })
            .await?;
        let mut version = self.view.version();
        let applied = tokio::time::timeout_at(until, async { version.wait_for(|v| *v >= index).await.is_ok() }).await;
        match applied {
            Ok(true) => Ok(f(&self.view.read().lists)),
            Ok(false) => Err(CallError::Raft("the state machine stopped".into())),
            Err(_) => Err(self.no_quorum(deadline, format!("version {index} not applied here in time"))),
        }
    }

    /// Send `request` to `leader` and wait for its answer: at most what is left of the deadline,
    /// at most [`FORWARD_ATTEMPT`], and only while this voter still takes `leader` for the
    /// leader. When a follower stops hearing from a dead leader it stands for election and
    /// forgets it; the call is then abandoned at once and retried with the new leader, rather
    /// than waiting out a connection to a voter that is gone. A voter that names itself leader
    /// without being able to act as one (leadership restored after a restart, lost since)
    /// waits for the election instead.
    async fn forward(
        &self,
        leader: &Voter,
        request: RaftRequest,
        until: tokio::time::Instant,
    ) -> Result<RaftReply, CallError> {
        if leader.name == self.name.as_str() {
            return Err(CallError::Raft("this voter's leadership is not confirmed yet".into()));
        }
        let leader_id = NodeId::new(leader.name.clone()).map(|n| voter_id(&n)).ok();
        let limit = until.saturating_duration_since(tokio::time::Instant::now()).min(FORWARD_ATTEMPT);
        let mut metrics = self.raft.metrics();
        tokio::select! {
            reply = self.dialer.request(leader, &request, limit) => {
                reply.map_err(|e| CallError::Raft(format!("cannot reach the leader {}: {e}", leader.name)))
            }
            _ = metrics.wait_for(|m| m.current_leader != leader_id) => {
                Err(CallError::Raft(format!("{} is no longer the leader", leader.name)))
            }
        }
    }

    /// Run `attempt` until it succeeds, fails for good (refused, invalid), or `until` passes;
    /// transient failures (no leader yet, leader unreachable) are retried after a pause that
    /// grows to a heartbeat.
    async fn retrying<T, F, Fut>(
        &self,
        until: tokio::time::Instant,
        deadline: Duration,
        attempt: F,
    ) -> Result<T, CallError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, CallError>>,
    {
        let mut pause = Duration::from_millis(10);
        loop {
            let last = match tokio::time::timeout_at(until, attempt()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(CallError::Raft(why))) => why,
                Ok(Err(e)) => return Err(e),
                Err(_) => "timed out waiting for a quorum".to_string(),
            };
            if tokio::time::Instant::now() + pause >= until {
                return Err(self.no_quorum(deadline, last));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(self.settings.heartbeat);
        }
    }

    /// Add a site to the group (as a learner that receives the log, then, with `voter`, as a
    /// voter) or remove one, through the leader, within `deadline`. An added site must run
    /// `yiwang-control` with `join` set, and its certificate must name a voting role, or the
    /// group's traffic to it is refused. Returns the log index of the change.
    pub async fn change_members(&self, change: MemberChange, deadline: Duration) -> Result<u64, CallError> {
        change.check()?;
        let until = tokio::time::Instant::now() + deadline;
        self.retrying(until, deadline, || async {
            match leader_change_members(&self.raft, change.clone()).await {
                Ok(index) => Ok(index),
                Err(Forward::Failed(e)) => Err(e),
                Err(Forward::To(voter)) => {
                    match self.forward(&voter, RaftRequest::Members(change.clone()), until).await? {
                        RaftReply::Members(r) => r,
                        _ => Err(CallError::Raft("the leader answered a membership change with another reply".into())),
                    }
                }
            }
        })
        .await
    }

    /// The changes after version `after` (at most `limit`), as of a linearizable read: the
    /// version read at, this voter's horizon (see [`super::changes`]) and the changes.
    pub async fn changes(
        &self,
        deadline: Duration,
        after: u64,
        limit: usize,
    ) -> Result<(u64, u64, Vec<Change>), CallError> {
        let version = self.read(deadline, |l| l.version()).await?;
        let stored = || -> Result<_, StoreFault> {
            Ok((changes::horizon(&self.store)?, changes::page(&self.store, after, limit)?))
        };
        let (horizon, page) = stored().map_err(|e| CallError::Raft(e.to_string()))?;
        // Only what the read covers: a change applied since is for the next call.
        Ok((version, horizon, page.into_iter().filter(|c| c.version <= version).collect()))
    }

    /// Every change to `subject` on `list`, as of a linearizable read: (version, horizon,
    /// changes).
    pub async fn history(
        &self,
        deadline: Duration,
        list: ListKind,
        subject: &SubjectId,
        limit: usize,
    ) -> Result<(u64, u64, Vec<Change>), CallError> {
        let version = self.read(deadline, |l| l.version()).await?;
        let stored = || -> Result<_, StoreFault> {
            Ok((changes::horizon(&self.store)?, changes::history(&self.store, list, subject, limit)?))
        };
        let (horizon, history) = stored().map_err(|e| CallError::Raft(e.to_string()))?;
        Ok((version, horizon, history.into_iter().filter(|c| c.version <= version).collect()))
    }

    /// Stop: raft first (no more elections or replication), then the endpoint. Takes `&self`
    /// so a voter shared with calls in flight (they fail) still stops at once.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("raft did not stop cleanly: {e}");
        }
        // The accept loop ends at its next poll; its connections end with the endpoint.
        self.accept.abort();
        self.dialer.close();
        // Closing sends each peer a CONNECTION_CLOSE at once; waiting for the endpoint to go
        // idle would only wait out the draining period (up to the idle timeout for a peer that
        // is already gone), which nobody needs.
        self.endpoint.close(quinn::VarInt::from_u32(0), b"voter stopping");
    }
}

/// The key of this voter's stateless resets, the same across restarts: a peer still holding a
/// connection to the voter's previous life gets a reset it recognises and drops the connection
/// at once, instead of sending into it until the idle timeout. Made from the seed on first
/// start and kept in the store.
async fn stable_reset_key(store: &Store, seed: Seed) -> Result<ring::hmac::Key, VoterError> {
    const TREE: &str = "raft/endpoint";
    const KEY: &[u8] = b"reset-key";
    let secret = match store.get(TREE, KEY).map_err(StoreFault::from)? {
        Some(secret) => secret,
        None => {
            let secret = seed.derive_bytes("raft stateless reset key").to_vec();
            let op = node::store::Op::Put { tree: TREE, key: KEY.to_vec(), value: secret.clone() };
            store.commit(vec![op]).await.map_err(StoreFault::from)?;
            secret
        }
    };
    Ok(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret))
}

/// Where a call goes when this voter is not the leader.
pub(crate) enum Forward {
    To(Voter),
    Failed(CallError),
}

fn forward_or_fail<E: std::fmt::Display>(
    e: RaftError<VoterId, E>,
    forward: impl FnOnce(&E) -> Option<Option<Voter>>,
) -> Forward {
    match &e {
        RaftError::APIError(api) => match forward(api) {
            Some(Some(leader)) => Forward::To(leader),
            // No leader known: an election is on, or this side has no quorum.
            Some(None) => Forward::Failed(CallError::Raft("no leader known".into())),
            None => Forward::Failed(CallError::Raft(e.to_string())),
        },
        RaftError::Fatal(f) => Forward::Failed(CallError::Raft(f.to_string())),
    }
}

/// A change to the group's membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberChange {
    /// Add `name`, listening at `addr`: as a learner, and as a voter if `voter`.
    Add { name: String, addr: String, voter: bool },
    /// Remove `name` from the voters and the group.
    Remove { name: String },
}

impl MemberChange {
    fn check(&self) -> Result<(), CallError> {
        let name = match self {
            MemberChange::Add { name, addr, .. } => {
                addr.parse::<SocketAddr>()
                    .map_err(|_| CallError::Invalid(format!("addr {addr:?} is not an IP address and port")))?;
                name
            }
            MemberChange::Remove { name } => name,
        };
        NodeId::new(name.clone()).map(|_| ()).map_err(|e| CallError::Invalid(format!("name {name:?}: {e}")))
    }
}

/// Make `change` if this voter leads; otherwise say who does.
pub(crate) async fn leader_change_members(raft: &Raft<ListsRaft>, change: MemberChange) -> Result<u64, Forward> {
    let fail = |e: String| Forward::Failed(CallError::Raft(e));
    let id_of = |name: &str| NodeId::new(name.to_string()).map(|n| voter_id(&n)).map_err(|e| fail(e.to_string()));
    let forward = |e| {
        forward_or_fail(e, |api| match api {
            ClientWriteError::ForwardToLeader(f) => Some(f.leader_node.clone()),
            ClientWriteError::ChangeMembershipError(_) => None,
        })
    };
    let result = match &change {
        MemberChange::Add { name, addr, voter } => {
            let id = id_of(name)?;
            let members = raft.metrics().borrow().membership_config.membership().clone();
            if let Some(other) = members.get_node(&id).filter(|v| v.name != *name) {
                return Err(Forward::Failed(CallError::Invalid(format!(
                    "{name} maps to the same raft id as {}; rename one",
                    other.name
                ))));
            }
            // Blocking: returns once the learner has caught up, so promoting it next does not
            // leave the group waiting on a voter that holds nothing yet.
            let added =
                raft.add_learner(id, Voter { name: name.clone(), addr: addr.clone() }, true).await.map_err(forward)?;
            if *voter {
                raft.change_membership(openraft::ChangeMembers::AddVoterIds([id].into()), false)
                    .await
                    .map_err(forward)?
            } else {
                added
            }
        }
        MemberChange::Remove { name } => {
            let id = id_of(name)?;
            raft.change_membership(openraft::ChangeMembers::RemoveVoters([id].into()), false).await.map_err(forward)?
        }
    };
    Ok(result.log_id.index)
}

/// Commit `proposal` if this voter leads; otherwise say who does.
pub(crate) async fn leader_write(raft: &Raft<ListsRaft>, proposal: Proposal) -> Result<Written, Forward> {
    match raft.client_write(proposal).await {
        Ok(resp) => match resp.data {
            Outcome::Applied { version, changed } => Ok(Written { version, changed }),
            Outcome::Refused { version, reason } => Err(Forward::Failed(CallError::Refused { version, reason })),
        },
        Err(e) => Err(forward_or_fail(e, |api| match api {
            ClientWriteError::ForwardToLeader(f) => Some(f.leader_node.clone()),
            ClientWriteError::ChangeMembershipError(_) => None,
        })),
    }
}

/// The log index a linearizable read must wait for, if this voter leads.
pub(crate) async fn leader_read_index(raft: &Raft<ListsRaft>) -> Result<u64, Forward> {
    match raft.ensure_linearizable().await {
        Ok(read) => Ok(read.map(|l| l.index).unwrap_or(0)),
        Err(e) => Err(forward_or_fail(e, |api| match api {
            openraft::error::CheckIsLeaderError::ForwardToLeader(f) => Some(f.leader_node.clone()),
            openraft::error::CheckIsLeaderError::QuorumNotEnough(_) => Some(None),
        })),
    }
}

/// Accept connections on the raft endpoint, each served in its own task until it closes.
async fn accept_loop(endpoint: quinn::Endpoint, admission: Admission) {
    let mut conns = tokio::task::JoinSet::new();
    while let Some(incoming) = endpoint.accept().await {
        let admission = admission.clone();
        conns.spawn(async move {
            match tls::accept(incoming).await {
                Ok((conn, peer)) => super::network::serve_connection(conn, peer, admission).await,
                Err(e) => tracing::warn!("raft handshake failed: {e}"),
            }
        });
        while conns.try_join_next().is_some() {}
    }
    conns.shutdown().await;
}

/// Whether this voter leads now.
pub fn is_leader(metrics: &RaftMetrics<VoterId, Voter>) -> bool {
    metrics.state == ServerState::Leader
}
