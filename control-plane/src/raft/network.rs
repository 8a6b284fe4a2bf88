//! Raft RPCs over QUIC with mutual TLS: each voter's raft endpoint speaks the mesh's ALPN and
//! certificates, and every RPC is one bidirectional stream of kind [`StreamKind::Raft`]
//! carrying one request frame and one reply frame (the mesh's frame format and bounded codec).
//! Snapshots go as openraft's chunks (`snapshot_max_chunk_size`), each its own RPC.
//!
//! Authorization is by certificate: only a site whose certificate names a voting role (city,
//! county; `proto::authz::may_vote`) and which is a member of the group, or configured as a
//! voter, is served. Anyone else gets the stream refused with `StreamRefusal::Unauthorized`.
//! A certificate the applied lists revoke is refused both ways: its connections are closed when
//! the revocation is applied, and new ones are closed as soon as they are made.

use super::feed::FeedServer;
use super::state_machine::ListsView;
use super::voter::{self, CallError, Forward, MemberChange, Written};
use super::{voter_id, ListsRaft, Voter, VoterId};
use node::mesh::frames::{self, FrameError};
use node::mesh::streams;
use node::mesh::tls::{self, TlsError};
use node::sanctions::feed::FeedRequest;
use node::sanctions::Proposal;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::Raft;
use proto::wire::{StreamKind, StreamRefusal};
use proto::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One raft RPC.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    Append(AppendEntriesRequest<ListsRaft>),
    Vote(VoteRequest<VoterId>),
    Snapshot(InstallSnapshotRequest<ListsRaft>),
    /// A write forwarded by a follower to the leader.
    Propose(Proposal),
    /// A follower asking the leader for the read index of a linearizable read.
    ReadIndex,
    /// A membership change forwarded to the leader.
    Members(MemberChange),
}

/// Its answer: what the receiving voter's `Raft` returned.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftReply {
    Append(Result<AppendEntriesResponse<VoterId>, RaftError<VoterId>>),
    Vote(Result<VoteResponse<VoterId>, RaftError<VoterId>>),
    Snapshot(Result<InstallSnapshotResponse<VoterId>, RaftError<VoterId, InstallSnapshotError>>),
    Propose(Result<Written, CallError>),
    ReadIndex(Result<u64, CallError>),
    Members(Result<u64, CallError>),
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("voter {voter} has an unusable address {addr:?}")]
    Address { voter: String, addr: String },
    #[error("voter name {0:?} is not a node id: {1}")]
    Name(String, proto::IdError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Open(#[from] streams::OpenError),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("the peer answered a {0} request with another kind of reply")]
    Mismatch(&'static str),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("no connection within {0:?}")]
    ConnectTimeout(Duration),
    #[error("the certificate of voter {0} is revoked")]
    Revoked(String),
}

/// How long a connection may go without a single answer, while calls on it time out, before it
/// is taken for dead and dialled afresh. Longer than any one call's wait on a live but slow
/// peer (an election timeout at most), so slowness alone never drops a connection.
const STALE_AFTER: Duration = Duration::from_secs(1);

/// A connection to a voter, the fingerprint of the certificate it showed, and when it last
/// carried an answer.
struct Link {
    conn: quinn::Connection,
    fingerprint: Option<String>,
    answered: Arc<Mutex<tokio::time::Instant>>,
}

/// Connections to the other voters, shared by every openraft client of this voter.
#[derive(Clone)]
pub struct Dialer {
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    conns: Arc<Mutex<BTreeMap<VoterId, Link>>>,
    /// Local address overrides (see `VoterParts::routes`).
    routes: Arc<BTreeMap<VoterId, SocketAddr>>,
    /// The applied lists, for revoked certificates.
    view: ListsView,
}

impl Dialer {
    pub fn new(
        endpoint: quinn::Endpoint,
        config: quinn::ClientConfig,
        routes: BTreeMap<VoterId, SocketAddr>,
        view: ListsView,
    ) -> Dialer {
        Dialer { endpoint, config, conns: Arc::default(), routes: Arc::new(routes), view }
    }

    /// Send `request` to `voter` (named as the membership names it).
    pub(crate) async fn request(
        &self,
        voter: &Voter,
        request: &RaftRequest,
        limit: Duration,
    ) -> Result<RaftReply, TransportError> {
        let name = NodeId::new(voter.name.clone()).map_err(|e| TransportError::Name(voter.name.clone(), e))?;
        self.call(voter_id(&name), voter, request, limit).await
    }

    /// The open connection to `voter` and its last-answer time, or a new one.
    #[allow(clippy::type_complexity)]
    async fn connection(
        &self,
        id: VoterId,
        voter: &Voter,
    ) -> Result<(quinn::Connection, Arc<Mutex<tokio::time::Instant>>), TransportError> {
        {
            let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(link) = conns.get(&id) {
                if revoked(&self.view, link.fingerprint.as_deref()) {
                    link.conn.close(quinn::VarInt::from_u32(REVOKED), b"certificate revoked");
                    conns.remove(&id);
                    return Err(TransportError::Revoked(voter.name.clone()));
                }
                if link.conn.close_reason().is_none() {
                    return Ok((link.conn.clone(), link.answered.clone()));
                }
            }
        }
        let addr: SocketAddr = match self.routes.get(&id) {
            Some(addr) => *addr,
            None => voter
                .addr
                .parse()
                .map_err(|_| TransportError::Address { voter: voter.name.clone(), addr: voter.addr.clone() })?,
        };
        let name = NodeId::new(voter.name.clone()).map_err(|e| TransportError::Name(voter.name.clone(), e))?;
        let (conn, _) = tls::connect(&self.endpoint, self.config.clone(), addr, &name).await?;
        let fingerprint = tls::peer_fingerprint(&conn);
        if revoked(&self.view, fingerprint.as_deref()) {
            conn.close(quinn::VarInt::from_u32(REVOKED), b"certificate revoked");
            return Err(TransportError::Revoked(voter.name.clone()));
        }
        tracing::debug!(voter = %voter.name, %addr, "raft connection open");
        let answered = Arc::new(Mutex::new(tokio::time::Instant::now()));
        let link = Link { conn: conn.clone(), fingerprint, answered: answered.clone() };
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).insert(id, link);
        Ok((conn, answered))
    }

    /// Drop the connection to `id` if it is still `conn`: the next call dials afresh.
    fn forget(&self, id: VoterId, conn: &quinn::Connection) {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        if conns.get(&id).is_some_and(|l| l.conn.stable_id() == conn.stable_id()) {
            tracing::debug!(voter = id, "raft connection unanswered for {STALE_AFTER:?}; dialling afresh");
            conns.remove(&id);
            conn.close(quinn::VarInt::from_u32(0), b"unanswered");
        }
    }

    /// Send one request to `voter` and wait for its reply, for at most `limit`.
    ///
    /// A voter that restarted resets a connection from its previous life when it first hears
    /// on it (its stateless-reset key survives restarts), and a reset says the peer never
    /// processed the request. A request that met one is sent again at once on a fresh
    /// connection: a lost vote request costs a whole election timeout (the five-voter
    /// benchmark found split votes that way, when the first vote request to a voter restarted
    /// since the last election died on the old connection).
    async fn call(
        &self,
        id: VoterId,
        voter: &Voter,
        request: &RaftRequest,
        limit: Duration,
    ) -> Result<RaftReply, TransportError> {
        let until = tokio::time::Instant::now() + limit;
        let (conn, result) = self.call_once(id, voter, request, limit).await;
        let reset = conn.and_then(|c| c.close_reason()).is_some_and(|r| matches!(r, quinn::ConnectionError::Reset));
        match result {
            Err(_) if reset => {
                tracing::debug!(voter = %voter.name, "connection reset by a restarted voter; sending again");
                let left = until.saturating_duration_since(tokio::time::Instant::now());
                self.call_once(id, voter, request, left).await.1
            }
            result => result,
        }
    }

    /// One attempt of [`Dialer::call`]: the connection it used, if it got one, and the outcome.
    async fn call_once(
        &self,
        id: VoterId,
        voter: &Voter,
        request: &RaftRequest,
        limit: Duration,
    ) -> (Option<quinn::Connection>, Result<RaftReply, TransportError>) {
        let (conn, answered) = match tokio::time::timeout(limit, self.connection(id, voter)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return (None, Err(e)),
            Err(_) => return (None, Err(TransportError::ConnectTimeout(limit))),
        };
        // Judged when the call ends, however it ends (openraft drops calls at its own timeout).
        let mut guard = StaleGuard { dialer: self, id, conn: conn.clone(), answered, ok: false };
        let exchange = async {
            let (mut send, mut recv) = streams::open(&conn, StreamKind::Raft).await?;
            frames::write(&mut send, request).await?;
            let _ = send.finish();
            Ok::<_, TransportError>(frames::read::<RaftReply>(&mut recv).await?)
        };
        let result = match tokio::time::timeout(limit, exchange).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout(limit)),
        };
        guard.ok = result.is_ok();
        drop(guard);
        // A closed connection is not used again: `connection` dials afresh.
        (Some(conn), result)
    }

    /// Close every connection (the voter is stopping).
    pub fn close(&self) {
        for link in std::mem::take(&mut *self.conns.lock().unwrap_or_else(|p| p.into_inner())).into_values() {
            link.conn.close(quinn::VarInt::from_u32(0), b"voter stopping");
        }
    }
}

impl RaftNetworkFactory<ListsRaft> for Dialer {
    type Network = VoterClient;

    async fn new_client(&mut self, target: VoterId, node: &Voter) -> VoterClient {
        VoterClient { dialer: self.clone(), target, voter: node.clone() }
    }
}

/// At the end of a call: an answer refreshes the connection's last-answer time; a call that
/// failed on a connection unanswered for [`STALE_AFTER`] drops it. A slow answer alone never
/// does (a new connection starts from a cold congestion window), and a peer that restarted
/// usually resets the old connection at once (its stateless-reset key survives restarts); this
/// catches what neither does, as the five-voter test found: connections dialled by a restarted
/// voter that stopped being answered.
struct StaleGuard<'a> {
    dialer: &'a Dialer,
    id: VoterId,
    conn: quinn::Connection,
    answered: Arc<Mutex<tokio::time::Instant>>,
    ok: bool,
}

impl Drop for StaleGuard<'_> {
    fn drop(&mut self) {
        let mut answered = self.answered.lock().unwrap_or_else(|p| p.into_inner());
        let now = tokio::time::Instant::now();
        if self.ok {
            *answered = now;
        } else if now.duration_since(*answered) > STALE_AFTER {
            drop(answered);
            self.dialer.forget(self.id, &self.conn);
        }
    }
}

/// openraft's client for one target voter.
pub struct VoterClient {
    dialer: Dialer,
    target: VoterId,
    voter: Voter,
}

impl VoterClient {
    async fn call<E: std::error::Error>(
        &self,
        request: RaftRequest,
        option: &RPCOption,
    ) -> Result<RaftReply, RPCError<VoterId, Voter, E>> {
        match self.dialer.call(self.target, &self.voter, &request, option.hard_ttl()).await {
            Ok(reply) => Ok(reply),
            Err(
                e @ (TransportError::Tls(_)
                | TransportError::Address { .. }
                | TransportError::Name(..)
                | TransportError::Revoked(_)),
            ) => Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }

    fn remote<E: std::error::Error>(&self, e: E) -> RPCError<VoterId, Voter, E> {
        RPCError::RemoteError(RemoteError::new_with_node(self.target, self.voter.clone(), e))
    }
}

/// Most bytes of log entries in one AppendEntries. openraft 0.9 gives an append one heartbeat
/// interval (40 ms by default) to be sent, made durable on the follower and answered, and has
/// no byte limit of its own: a catch-up batch of large import entries would never make it.
/// Past this, the call answers "payload too large" and openraft retries at once with fewer
/// entries.
pub const MAX_APPEND_BYTES: usize = 512 << 10;

fn fits(rpc: &AppendEntriesRequest<ListsRaft>) -> bool {
    // Sizing by encoding: the price of a byte limit openraft 0.9 lacks. Batches are one or a
    // few entries except during catch-up.
    let mut bytes = 0;
    for entry in &rpc.entries {
        bytes += proto::codec::encode(entry).map_or(usize::MAX, |b| b.len());
        if bytes > MAX_APPEND_BYTES {
            return false;
        }
    }
    true
}

impl RaftNetwork<ListsRaft> for VoterClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<ListsRaft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<VoterId>, RPCError<VoterId, Voter, RaftError<VoterId>>> {
        if rpc.entries.len() > 1 && !fits(&rpc) {
            let hint = (rpc.entries.len() as u64 / 2).max(1);
            return Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(hint)));
        }
        match self.call(RaftRequest::Append(rpc), &option).await? {
            RaftReply::Append(r) => r.map_err(|e| self.remote(e)),
            _ => Err(RPCError::Network(NetworkError::new(&TransportError::Mismatch("append")))),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<ListsRaft>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<VoterId>, RPCError<VoterId, Voter, RaftError<VoterId, InstallSnapshotError>>>
    {
        match self.call(RaftRequest::Snapshot(rpc), &option).await? {
            RaftReply::Snapshot(r) => r.map_err(|e| self.remote(e)),
            _ => Err(RPCError::Network(NetworkError::new(&TransportError::Mismatch("snapshot")))),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<VoterId>,
        option: RPCOption,
    ) -> Result<VoteResponse<VoterId>, RPCError<VoterId, Voter, RaftError<VoterId>>> {
        match self.call(RaftRequest::Vote(rpc), &option).await? {
            RaftReply::Vote(r) => r.map_err(|e| self.remote(e)),
            _ => Err(RPCError::Network(NetworkError::new(&TransportError::Mismatch("vote")))),
        }
    }
}

/// Who may send raft traffic to this voter.
#[derive(Clone)]
pub struct Admission {
    raft: Raft<ListsRaft>,
    /// Answers the site's node reading committed versions (`ListsFeed` streams).
    feed: FeedServer,
    /// Voters from the configuration, admitted before any membership is committed.
    configured: BTreeSet<VoterId>,
    /// The applied lists, for revoked certificates.
    view: ListsView,
}

impl Admission {
    pub fn new(raft: Raft<ListsRaft>, configured: BTreeSet<VoterId>, view: ListsView, feed: FeedServer) -> Admission {
        Admission { raft, configured, view, feed }
    }

    fn admits(&self, peer: &proto::NodeIdentity) -> bool {
        if !proto::authz::may_vote(peer.role) {
            return false;
        }
        let id = super::voter_id(&peer.id);
        if self.configured.contains(&id) {
            return true;
        }
        let metrics = self.raft.metrics();
        let membership = metrics.borrow();
        membership.membership_config.membership().get_node(&id).is_some()
    }
}

/// A forwarded call's answer: what the leader did, or that it leads no more (the caller's
/// deadline decides what happens next; calls are never forwarded twice).
fn led<T>(result: Result<T, Forward>) -> Result<T, CallError> {
    match result {
        Ok(v) => Ok(v),
        Err(Forward::Failed(e)) => Err(e),
        Err(Forward::To(_)) => Err(CallError::Raft("not the leader any more".into())),
    }
}

/// Whether the lists this voter applied revoke the certificate with `fingerprint`.
fn revoked(view: &ListsView, fingerprint: Option<&str>) -> bool {
    fingerprint.is_some_and(|f| view.read().lists.is_revoked(f))
}

/// Answer one feed request on its own stream.
async fn serve_feed(feed: FeedServer, mut send: quinn::SendStream, mut recv: quinn::RecvStream, peer: NodeId) {
    let request: FeedRequest = match frames::read(&mut recv).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(%peer, "unreadable lists feed request: {e}");
            streams::refuse(&mut send, &mut recv, StreamRefusal::Malformed);
            return;
        }
    };
    let reply = feed.answer(request).await;
    if frames::write(&mut send, &reply).await.is_ok() {
        let _ = send.finish();
    }
}

/// The application close code of a connection whose certificate is revoked.
const REVOKED: u32 = tls::REVOKED_CLOSE_CODE;

/// Serve raft RPCs on one accepted connection until it closes, or until the lists revoke the
/// peer's certificate (checked when it connects and again at every version applied).
pub async fn serve_connection(conn: quinn::Connection, peer: proto::NodeIdentity, admission: Admission) {
    let fingerprint = tls::peer_fingerprint(&conn);
    let mut version = admission.view.version();
    let mut streams = tokio::task::JoinSet::new();
    loop {
        if revoked(&admission.view, fingerprint.as_deref()) {
            tracing::warn!(peer = %peer.id, "closing a raft connection: the peer's certificate is revoked");
            conn.close(quinn::VarInt::from_u32(REVOKED), b"certificate revoked");
            break;
        }
        let (mut send, mut recv) = tokio::select! {
            biased;
            changed = version.changed() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
            accepted = conn.accept_bi() => match accepted {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        match streams::read_kind(&mut recv, streams::HEADER_TIMEOUT).await {
            Ok(StreamKind::Raft) if admission.admits(&peer) => {}
            Ok(StreamKind::ListsFeed) if admission.admits(&peer) => {
                let feed = admission.feed.clone();
                streams.spawn(serve_feed(feed, send, recv, peer.id.clone()));
                continue;
            }
            Ok(kind @ (StreamKind::Raft | StreamKind::ListsFeed)) => {
                tracing::warn!(peer = %peer.id, role = peer.role.as_str(), %kind, "a stream from a site that is not a voter refused");
                streams::refuse(&mut send, &mut recv, StreamRefusal::Unauthorized);
                continue;
            }
            Ok(_) => {
                streams::refuse(&mut send, &mut recv, StreamRefusal::NotServed);
                continue;
            }
            Err(e) => {
                tracing::debug!(peer = %peer.id, "raft stream without a header: {e}");
                continue;
            }
        }
        let raft = admission.raft.clone();
        let peer_id = peer.id.clone();
        streams.spawn(async move {
            let request: RaftRequest = match frames::read(&mut recv).await {
                Ok(r) => {
                    tracing::debug!(peer = %peer_id, "raft request");
                    r
                }
                Err(e) => {
                    tracing::warn!(peer = %peer_id, "unreadable raft request: {e}");
                    streams::refuse(&mut send, &mut recv, StreamRefusal::Malformed);
                    return;
                }
            };
            let reply = match request {
                RaftRequest::Append(rpc) => RaftReply::Append(raft.append_entries(rpc).await),
                RaftRequest::Vote(rpc) => RaftReply::Vote(raft.vote(rpc).await),
                RaftRequest::Snapshot(rpc) => RaftReply::Snapshot(raft.install_snapshot(rpc).await),
                // Forwarded calls are served only by the leader: a voter that lost the lead
                // since says so, and the caller's deadline decides what happens next.
                RaftRequest::Propose(proposal) => {
                    RaftReply::Propose(match voter::leader_write(&raft, proposal).await {
                        Ok(written) => Ok(written),
                        Err(Forward::Failed(e)) => Err(e),
                        Err(Forward::To(_)) => Err(CallError::Raft("not the leader any more".into())),
                    })
                }
                RaftRequest::ReadIndex => RaftReply::ReadIndex(led(voter::leader_read_index(&raft).await)),
                RaftRequest::Members(change) => {
                    RaftReply::Members(led(voter::leader_change_members(&raft, change).await))
                }
            };
            if frames::write(&mut send, &reply).await.is_ok() {
                let _ = send.finish();
            }
        });
        // Reap finished RPCs so a long-lived connection holds only the ones in flight.
        while streams.try_join_next().is_some() {}
    }
    streams.shutdown().await;
}
