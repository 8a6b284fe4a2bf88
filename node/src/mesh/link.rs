//! Mesh links over QUIC: dialing parents (preferred first, then fallbacks, switching back when
//! the preferred one returns), accepting children, and on each connection one sync stream per
//! direction. The receiving side opens its stream and speaks first (what it holds); the sending
//! side answers with the gaps.

use super::frames::{self, FrameError};
use super::holdings::StoreHoldings;
use super::rate::Bucket;
use super::status::LinkState;
use super::sync::{Origins, Outbound, ProtocolError, Verdict};
use super::topology::Site;
use super::{Inner, Relation};
use crate::records::AuditRecord;
use crate::store::{Op, StoreError};
use proto::authz::{self, Direction};
use proto::wire::SyncMsg;
use proto::{Entry, Kind, NodeId, NodeIdentity};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

fn summaries_upserts(store: &crate::store::Store, ops: &[Op]) -> Result<Vec<Op>, StoreError> {
    let entries: Vec<Entry> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Insert(e) if e.kind == Kind::Summary => Some(e.clone()),
            _ => None,
        })
        .collect();
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    super::summaries::upserts(store, &entries)
}

/// How long a dial may take before the next parent is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a node on a fallback parent checks whether its preferred parent is back.
const PROBE_EVERY: Duration = Duration::from_secs(10);
/// Reconnect backoff: doubling from the first to the last, with jitter.
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Entries stamped further ahead of our clock than this are flagged.
const CLOCK_LEAD_TOLERANCE_MS: u64 = 60_000;
/// A link whose round trip exceeds this is degraded.
const DEGRADED_RTT: Duration = Duration::from_millis(750);

/// A received batch on its way to the disk.
struct Queued {
    id: u64,
    received: u64,
    refused: Vec<(NodeId, Kind, authz::Refusal)>,
    applied: Vec<Entry>,
    durable:
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<crate::store::Appended>, StoreError>> + Send>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("{0}")]
    Protocol(#[from] ProtocolError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl Inner {
    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    fn set_state(&self, peer: &NodeIdentity, relation: Relation, f: impl FnOnce(&mut super::status::LinkStatus)) {
        let state = self.status.update(&peer.id, peer.role, relation.as_str(), self.now(), f);
        self.metrics.link_state(&peer.id, state.code());
    }

    /// Record a refusal: count it, and write it to the audit log with who and why.
    pub(super) async fn refuse(&self, peer: &str, reason: &'static str, detail: String) {
        self.metrics.mesh_refused(peer, reason);
        tracing::warn!(peer, reason, %detail, "mesh refused");
        let audit = AuditRecord {
            at_ms: self.now(),
            actor: "mesh".into(),
            action: "refused".into(),
            subject: peer.to_string(),
            why: format!("{reason}: {detail}"),
        };
        if let Ok(payload) = crate::records::encode(&audit) {
            if let Err(e) = self.store.commit(vec![Op::Append { kind: Kind::Audit, payload }]).await {
                tracing::error!(error = %e, "refusal not audited");
            }
        }
    }

    /// Run one connection until it fails or closes.
    pub(super) async fn session(self: Arc<Self>, conn: quinn::Connection, peer: NodeIdentity, relation: Relation) {
        tracing::info!(peer = %peer.id, relation = relation.as_str(), "link up");
        self.set_state(&peer, relation, |s| {
            s.state = LinkState::CatchingUp;
            s.last_error = None;
        });
        let (out_dir, in_dir) = match relation {
            Relation::Parent => (Direction::Up, Direction::Down),
            Relation::Child => (Direction::Down, Direction::Up),
        };
        let result = tokio::select! {
            r = self.clone().outbound(conn.clone(), peer.clone(), relation, out_dir) => r,
            r = self.clone().inbound(conn.clone(), peer.clone(), relation, in_dir) => r,
        };
        let reason = match &result {
            Ok(()) => "closed".to_string(),
            Err(e) => e.to_string(),
        };
        conn.close(0u32.into(), b"session ended");
        tracing::warn!(peer = %peer.id, reason, "link down");
        self.set_state(&peer, relation, |s| {
            s.state = LinkState::Partitioned;
            s.last_error = Some(reason);
            s.rtt_ms = None;
        });
    }

    /// Send what the peer lacks, as it acknowledges.
    async fn outbound(
        self: Arc<Self>,
        conn: quinn::Connection,
        peer: NodeIdentity,
        relation: Relation,
        dir: Direction,
    ) -> Result<(), SessionError> {
        let (mut send, mut recv) = conn.accept_bi().await?;
        let SyncMsg::Want { heads } = frames::read(&mut recv).await? else {
            return Err(ProtocolError::Unexpected("something other than Want first").into());
        };
        // Going up, a node offers only what it and the sites below it originated: the parent
        // would refuse anything else.
        let origins = match dir {
            Direction::Down => Origins::All,
            Direction::Up => Origins::Only(self.topology.subtree(&self.me.id)),
        };
        let mut out = Outbound::new(dir, self.settings.window, origins);
        out.on_want(heads);
        // Acknowledgements are read by their own task: reading a frame is not safe to cancel
        // half-way, and the loop below waits on several things at once.
        let (ack_tx, mut acks) = mpsc::channel::<Result<SyncMsg, FrameError>>(16);
        let reader = tokio::spawn(async move {
            loop {
                let m = frames::read(&mut recv).await;
                let end = m.is_err();
                if ack_tx.send(m).await.is_err() || end {
                    break;
                }
            }
        });
        let result = async {
            let mut changes = self.store.changes();
            let mut bucket = Bucket::new(self.settings.max_bytes_per_sec);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut last_lost = 0u64;
            loop {
                loop {
                    let batch = out.next_batch(&StoreHoldings(&self.store))?;
                    let Some(msg) = batch else { break };
                    let n = match &msg {
                        SyncMsg::Batch { entries, .. } => entries.len() as u64,
                        _ => 0,
                    };
                    let bytes = frames::write(&mut send, &msg).await?;
                    bucket.take(bytes).await;
                    self.metrics.mesh_sent(&peer.id, n, bytes as u64);
                    self.set_state(&peer, relation, |s| s.entries_sent += n);
                }
                tokio::select! {
                    m = acks.recv() => match m {
                        Some(Ok(SyncMsg::Ack { id, .. })) => out.on_ack(id)?,
                        Some(Ok(_)) => return Err(ProtocolError::Unexpected("something other than Ack").into()),
                        Some(Err(e)) => return Err(e.into()),
                        None => return Err(FrameError::Closed.into()),
                    },
                    r = changes.changed() => if r.is_err() { return Ok(()) },
                    _ = tick.tick() => {
                        let backlog = out.backlog(&StoreHoldings(&self.store))?;
                        let stats = conn.stats();
                        let lost = stats.path.lost_packets;
                        let lossy = lost.saturating_sub(last_lost) > 10;
                        last_lost = lost;
                        let rtt = conn.rtt();
                        self.set_state(&peer, relation, |s| {
                            s.backlog = backlog;
                            s.rtt_ms = Some(rtt.as_millis() as u64);
                            s.state = if rtt > DEGRADED_RTT || lossy {
                                LinkState::Degraded
                            } else if backlog > 0 || out.in_flight() > 0 {
                                LinkState::CatchingUp
                            } else {
                                LinkState::Up
                            };
                        });
                    }
                }
            }
        }
        .await;
        reader.abort();
        result
    }

    /// Take what the peer sends: judge each entry, store the accepted ones durably, then
    /// acknowledge the batch. Pipelined: while one batch is being made durable the next ones
    /// (up to the sender's window) are already judged and queued, so batches that arrive
    /// during a flush share the next one and the disk never waits on the network.
    async fn inbound(
        self: Arc<Self>,
        conn: quinn::Connection,
        peer: NodeIdentity,
        relation: Relation,
        dir: Direction,
    ) -> Result<(), SessionError> {
        let (mut send, mut recv) = conn.open_bi().await?;
        let want = super::sync::want(dir, |k| proto::VersionVector::clone(&self.store.heads(k)));
        frames::write(&mut send, &want).await?;
        let (queued_tx, mut queued) = mpsc::channel::<Queued>(self.settings.window.max(1));
        let submitter = async {
            let below: HashSet<NodeId> = self.topology.subtree(&peer.id).into_iter().collect();
            loop {
                let SyncMsg::Batch { id, entries } = frames::read(&mut recv).await? else {
                    return Err(ProtocolError::Unexpected("something other than Batch").into());
                };
                let q = self.judge_and_queue(&peer, dir, &below, id, entries).await?;
                if queued_tx.send(q).await.is_err() {
                    return Ok(());
                }
            }
        };
        let acknowledger = async {
            while let Some(q) = queued.recv().await {
                if let Err(e) = q.durable.await {
                    self.reload_heads(&mut *self.replica.lock().await);
                    return Err(SessionError::from(e));
                }
                frames::write(&mut send, &SyncMsg::Ack { id: q.id, refused: q.refused.len() as u32 }).await?;
                self.metrics.mesh_received(&peer.id, q.received);
                self.set_state(&peer, relation, |s| {
                    s.entries_received += q.received;
                    s.refused += q.refused.len() as u64;
                });
                if let Some((origin, kind, reason)) = q.refused.first() {
                    let detail = format!("{} entries, e.g. {kind} from {origin}", q.refused.len());
                    self.refuse(peer.id.as_str(), reason.as_str(), detail).await;
                }
                if !q.applied.is_empty() && self.applied.send(q.applied).await.is_err() {
                    tracing::warn!("nothing applies replicated watchlist and command entries any more");
                }
            }
            Ok(())
        };
        tokio::try_join!(submitter, acknowledger).map(|_| ())
    }

    /// Judge one batch and queue its accepted entries for storage, under the replica lock so
    /// each origin's entries reach the disk in order whichever link brought them.
    async fn judge_and_queue(
        &self,
        peer: &NodeIdentity,
        dir: Direction,
        below: &HashSet<NodeId>,
        id: u64,
        entries: Vec<Entry>,
    ) -> Result<Queued, SessionError> {
        let received = entries.len() as u64;
        // A peer whose clock runs ahead is flagged, never silently dropped: its entries are
        // still its entries, but operators must hear that its timestamps cannot be trusted.
        let horizon = self.now().saturating_add(CLOCK_LEAD_TOLERANCE_MS);
        let ahead = entries.iter().filter(|e| e.hlc.wall_ms > horizon).count() as u64;
        if ahead > 0 {
            self.metrics.clock_ahead(&peer.id, ahead);
            tracing::warn!(peer = %peer.id, entries = ahead, "entries stamped more than a minute ahead of this node's clock");
        }
        let mut ops = Vec::with_capacity(entries.len());
        let mut refused = Vec::new();
        let mut applied = Vec::new();
        let mut replica = self.replica.lock().await;
        for e in entries {
            let role = self.topology.site(&e.origin).map(|s| s.role);
            match replica.judge(&e, |e| authz::check(e.kind, dir, role, below.contains(&e.origin))) {
                Verdict::Accept => {
                    if matches!(e.kind, Kind::Watchlist | Kind::Command) {
                        applied.push(e.clone());
                    }
                    ops.push(Op::Insert(e));
                }
                Verdict::Duplicate | Verdict::Gap => {}
                Verdict::Refuse(r) => refused.push((e.origin, e.kind, r)),
            }
        }
        // Summaries are upserted in the same commit as the entries that carry them.
        let queued = match summaries_upserts(&self.store, &ops) {
            Ok(mut up) => {
                ops.append(&mut up);
                self.store.submit(ops).await
            }
            Err(e) => Err(e),
        };
        match queued {
            Ok(durable) => Ok(Queued { id, received, refused, applied, durable: Box::pin(durable) }),
            Err(e) => {
                self.reload_heads(&mut replica);
                Err(e.into())
            }
        }
    }

    /// After a failed commit the heads may be ahead of the disk: take them from the store again.
    fn reload_heads(&self, replica: &mut super::sync::Replica) {
        match super::load_heads(&self.store) {
            Ok(heads) => *replica = super::sync::Replica::new(self.me.id.clone(), heads),
            Err(e) => tracing::error!(error = %e, "cannot reload replication heads"),
        }
    }

    /// Dial a parent and check it is who the topology says.
    async fn connect(&self, parent: &Site) -> Result<(quinn::Connection, NodeIdentity), String> {
        let connecting = self.endpoint.connect(parent.mesh, parent.id.as_str()).map_err(|e| e.to_string())?;
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()))?
            .map_err(|e| e.to_string())?;
        let peer = super::tls::peer_identity(&conn).map_err(|e| e.to_string())?;
        if peer.id != parent.id || peer.role != parent.role {
            conn.close(1u32.into(), b"unexpected identity");
            return Err(format!("{} answered as {} ({})", parent.id, peer.id, peer.role));
        }
        Ok((conn, peer))
    }

    /// Keep a link to the best parent reachable: the preferred one, else the first fallback
    /// that answers; while on a fallback, keep checking whether a better one is back.
    pub(super) async fn parents_loop(self: Arc<Self>, parents: Vec<Site>) {
        let mut backoff = BACKOFF_FIRST;
        loop {
            let mut linked = false;
            for (i, parent) in parents.iter().enumerate() {
                let identity = NodeIdentity { id: parent.id.clone(), role: parent.role };
                match self.connect(parent).await {
                    Ok((conn, peer)) => {
                        linked = true;
                        backoff = BACKOFF_FIRST;
                        let session = self.clone().session(conn.clone(), peer, Relation::Parent);
                        if i == 0 {
                            session.await;
                        } else {
                            tokio::select! {
                                _ = session => {}
                                _ = self.better_parent(&parents[..i]) => {
                                    tracing::info!(from = %parent.id, "preferred parent is back; switching");
                                    conn.close(0u32.into(), b"switching to preferred parent");
                                    // The session was dropped mid-way: say the link is down here.
                                    self.set_state(&identity, Relation::Parent, |s| {
                                        s.state = LinkState::Partitioned;
                                        s.last_error = Some("left for the preferred parent".into());
                                        s.rtt_ms = None;
                                    });
                                }
                            }
                        }
                        break;
                    }
                    Err(e) => {
                        self.set_state(&identity, Relation::Parent, |s| {
                            s.state = LinkState::Partitioned;
                            s.last_error = Some(e.clone());
                        });
                        tracing::debug!(parent = %parent.id, error = %e, "parent unreachable");
                    }
                }
            }
            if !linked {
                let jitter = self.now() % (backoff.as_millis() as u64 / 2 + 1);
                tokio::time::sleep(backoff / 2 + Duration::from_millis(jitter)).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }

    /// Resolves once one of `better` answers a handshake.
    async fn better_parent(&self, better: &[Site]) {
        loop {
            tokio::time::sleep(PROBE_EVERY).await;
            for p in better {
                if let Ok((conn, _)) = self.connect(p).await {
                    conn.close(0u32.into(), b"probe");
                    return;
                }
            }
        }
    }

    /// Accept children. A peer must present a certificate from the city CA (rustls checks
    /// that) and be a site that names this node as a parent (checked here).
    pub(super) async fn accept_loop(self: Arc<Self>) {
        while let Some(incoming) = self.endpoint.accept().await {
            let inner = self.clone();
            tokio::spawn(async move {
                let remote = incoming.remote_address();
                let conn = match incoming.await {
                    Ok(c) => c,
                    Err(e) => {
                        inner.refuse(&remote.to_string(), "handshake", e.to_string()).await;
                        return;
                    }
                };
                let peer = match super::tls::peer_identity(&conn) {
                    Ok(p) => p,
                    Err(e) => {
                        conn.close(2u32.into(), b"no identity");
                        inner.refuse(&remote.to_string(), "no_identity", e.to_string()).await;
                        return;
                    }
                };
                let known = inner.topology.site(&peer.id);
                let is_child = known.is_some_and(|s| s.role == peer.role && s.parents.contains(&inner.me.id));
                if !is_child {
                    conn.close(3u32.into(), b"not a child of this node");
                    inner
                        .refuse(peer.id.as_str(), "not_a_child", format!("{} ({}) from {remote}", peer.id, peer.role))
                        .await;
                    return;
                }
                // A new connection from a child replaces its old one.
                let old =
                    inner.sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(peer.id.clone(), conn.clone());
                if let Some(old) = old {
                    old.close(0u32.into(), b"replaced by a new connection");
                }
                inner.clone().session(conn.clone(), peer.clone(), Relation::Child).await;
                let mut sessions = inner.sessions.lock().unwrap_or_else(|p| p.into_inner());
                if sessions.get(&peer.id).is_some_and(|c| c.stable_id() == conn.stable_id()) {
                    sessions.remove(&peer.id);
                }
            });
        }
    }
}
