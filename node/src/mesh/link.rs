//! Mesh links over QUIC: dialing parents (the [`super::uplink`] machine decides which and
//! when; [`Inner::parents_loop`] carries it out), accepting children, and on each connection
//! its streams. Each stream starts with its kind ([`super::streams`]); a connection carries one
//! sync stream per direction, opened by the receiving side, which speaks first (what it
//! holds); the sending side answers with the gaps.
//!
//! Every task here belongs to an owner that aborts it when dropped: a connection's stream
//! tasks to its session, a child's session to the accept loop, dials, probes and the parent
//! session to the parents loop, and those two loops to the node.

use super::frames::{self, FrameError};
use super::holdings::StoreHoldings;
use super::rate::Bucket;
use super::status::LinkState;
use super::streams::{self, HeaderError, OpenError, HEADER_TIMEOUT};
use super::sync::{Origins, Outbound, ProtocolError, Verdict};
use super::topology::Site;
use super::uplink::{Action, Attempt, Event, Uplink, UplinkConfig};
use super::{Inner, Relation};
use crate::clock::{machine_now, sleep_until_timeout};
use crate::records::AuditRecord;
use crate::store::{Op, StoreError};
use proto::authz::{self, Direction};
use proto::wire::{StreamKind, StreamRefusal, SyncMsg};
use proto::{Entry, EntryBytes, Kind, NodeId, NodeIdentity};
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

fn summaries_upserts(store: &crate::store::Store, ops: &[Op], now_ms: u64) -> Result<Vec<Op>, StoreError> {
    let entries: Vec<Entry> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Insert(e) if e.kind() == Kind::Summary => Some(e.to_entry()),
            _ => None,
        })
        .collect();
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    super::summaries::upserts(store, &entries, now_ms)
}

/// Entries stamped further ahead of our clock than this are flagged.
const CLOCK_LEAD_TOLERANCE_MS: u64 = 60_000;
/// A link whose round trip exceeds this is degraded.
const DEGRADED_RTT: Duration = Duration::from_millis(750);
/// Streams of one connection whose kind header is still awaited; past this, the connection's
/// further streams wait in quinn's queue until one is read.
const MAX_PENDING_HEADERS: usize = 8;
/// Acknowledgements read ahead of the sender; the window bounds them anyway.
const ACK_QUEUE: usize = 16;
/// Connections from children (and peers still in their handshake) served at once; past this
/// an incoming connection is refused.
const MAX_CHILD_CONNECTIONS: usize = 1024;

/// Why a handshake failed, as the metric's `reason`: each starts with `handshake_`.
fn handshake_failure(e: &quinn::ConnectionError) -> &'static str {
    // TLS alerts are carried as QUIC CRYPTO_ERROR codes, 0x100 to 0x1ff.
    let tls = |code: u64| (0x100..=0x1ff).contains(&code);
    match e {
        quinn::ConnectionError::TimedOut => "handshake_timeout",
        quinn::ConnectionError::TransportError(t) if tls(u64::from(t.code)) => "handshake_tls",
        quinn::ConnectionError::ConnectionClosed(c) if tls(u64::from(c.error_code)) => "handshake_tls",
        quinn::ConnectionError::Reset => "handshake_reset",
        _ => "handshake_other",
    }
}

/// A received batch on its way to the disk.
struct Queued {
    id: u64,
    /// When the link may read its next batch, if an origin is past its receive quota.
    hold_until: Option<std::time::Instant>,
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
    Open(#[from] OpenError),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("{0}")]
    Protocol(#[from] ProtocolError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Revoked(String),
}

impl Inner {
    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    fn set_state(&self, peer: &NodeIdentity, relation: Relation, f: impl FnOnce(&mut super::status::LinkStatus)) {
        // The metric is set under the table's lock, so two writers (a session and the parents
        // loop) cannot leave it saying other than the table.
        self.status.update(&peer.id, peer.role, relation.as_str(), self.now(), |s| {
            f(s);
            self.metrics.link_state(&peer.id, s.state.code());
        });
    }

    /// Set a connected state from a session: only while `conn` is open. The parents loop
    /// closes a connection before it reports the link down, so a session it closes cannot
    /// overwrite that report afterwards (the check and the write are under the table's lock).
    fn set_connected_state(
        &self,
        conn: &quinn::Connection,
        peer: &NodeIdentity,
        relation: Relation,
        f: impl FnOnce(&mut super::status::LinkStatus),
    ) {
        self.set_state(peer, relation, |s| {
            if conn.close_reason().is_none() {
                f(s);
            }
        });
    }

    /// The link with `peer` is down, because of `reason`.
    fn set_partitioned(&self, peer: &NodeIdentity, relation: Relation, reason: String) {
        self.set_state(peer, relation, |s| {
            s.state = LinkState::Partitioned;
            s.last_error = Some(reason);
            s.rtt_ms = None;
        });
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

    /// Record an incoming connection refused before the peer proved who it is: count it, and
    /// audit it sampled and aggregated per source address (see `refusals`).
    async fn refuse_handshake(&self, remote: std::net::SocketAddr, reason: &'static str, detail: String) {
        self.metrics.handshake_failure(reason);
        self.audit_sampled(remote, reason, detail).await;
    }

    /// Audit a refusal a peer can repeat at will (a handshake, a revoked certificate's redial)
    /// sampled and aggregated per source address.
    async fn audit_sampled(&self, remote: std::net::SocketAddr, reason: &'static str, detail: String) {
        let reports = self.refusals.lock().unwrap_or_else(|p| p.into_inner()).refused(
            machine_now(),
            remote.ip(),
            reason,
            &detail,
        );
        self.audit_refusals(reports).await;
    }

    /// Write sampled refusals to the audit log, each as one record.
    async fn audit_refusals(&self, reports: Vec<super::refusals::Report>) {
        if reports.is_empty() {
            return;
        }
        let mut ops = Vec::with_capacity(reports.len());
        for r in reports {
            let why = r.why();
            tracing::warn!(source = %r.source, refusals = r.total(), %why, "mesh refused handshakes");
            let audit = AuditRecord {
                at_ms: self.now(),
                actor: "mesh".into(),
                action: "refused".into(),
                subject: r.source.to_string(),
                why,
            };
            if let Ok(payload) = crate::records::encode(&audit) {
                ops.push(Op::Append { kind: Kind::Audit, payload });
            }
        }
        if let Err(e) = self.store.commit(ops).await {
            tracing::error!(error = %e, "refused handshakes not audited");
        }
    }

    /// Run one connection until it fails or closes; returns why it ended. Whoever runs it
    /// reports the link down.
    pub(super) async fn session(
        self: Arc<Self>,
        conn: quinn::Connection,
        peer: NodeIdentity,
        relation: Relation,
    ) -> String {
        // A revoked certificate is refused before anything is served or the link counts as up.
        if let Some(why) = revocation(&self.local.enforced.current(), &conn) {
            conn.close(super::tls::REVOKED_CLOSE_CODE.into(), b"certificate revoked");
            // A revoked node redials with its backoff for as long as it runs: sampled.
            self.metrics.mesh_refused(peer.id.as_str(), "revoked");
            self.audit_sampled(conn.remote_address(), "revoked", format!("{}: {why}", peer.id)).await;
            return why;
        }
        tracing::info!(peer = %peer.id, relation = relation.as_str(), "link up");
        self.set_connected_state(&conn, &peer, relation, |s| {
            s.state = LinkState::CatchingUp;
            s.last_error = None;
        });
        let (out_dir, in_dir) = match relation {
            Relation::Parent => (Direction::Up, Direction::Down),
            Relation::Child => (Direction::Down, Direction::Up),
        };
        // A child reports to its parent (see `reports`); that never ends a session.
        let reporting = async {
            match relation {
                Relation::Parent => self.clone().report_up(conn.clone(), peer.id.clone()).await,
                Relation::Child => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            biased;
            why = until_revoked(&self.local.enforced, &conn) => {
                conn.close(super::tls::REVOKED_CLOSE_CODE.into(), b"certificate revoked");
                self.refuse(peer.id.as_str(), "revoked", why.clone()).await;
                Err(SessionError::Revoked(why))
            }
            r = self.clone().serve_streams(conn.clone(), peer.clone(), relation, out_dir) => r,
            r = self.clone().inbound(conn.clone(), peer.clone(), relation, in_dir) => r,
            () = reporting => Ok(()),
        };
        let reason = match &result {
            Ok(()) => "closed".to_string(),
            Err(e) => e.to_string(),
        };
        conn.close(0u32.into(), b"session ended");
        tracing::warn!(peer = %peer.id, reason, "link down");
        reason
    }

    /// Serve the streams the peer opens: read each one's kind (the reads run as tasks owned
    /// here, each bounded by [`HEADER_TIMEOUT`], so a slow header holds up no other stream) and
    /// hand the sync stream to the sender; refuse a second sync stream and every kind not
    /// served yet. Ends when the sender ends or the connection fails.
    async fn serve_streams(
        self: Arc<Self>,
        conn: quinn::Connection,
        peer: NodeIdentity,
        relation: Relation,
        dir: Direction,
    ) -> Result<(), SessionError> {
        type Sender = Pin<Box<dyn Future<Output = Result<(), SessionError>> + Send>>;
        let mut headers: JoinSet<Option<(quinn::SendStream, quinn::RecvStream)>> = JoinSet::new();
        let mut sender: Option<Sender> = None;
        loop {
            tokio::select! {
                biased;
                r = until_done(&mut sender) => return r,
                Some(joined) = headers.join_next() => {
                    let Some((mut send, mut recv)) = joined.unwrap_or_else(|e| {
                        tracing::error!(peer = %peer.id, error = %e, "a stream header task failed");
                        None
                    }) else {
                        continue;
                    };
                    if sender.is_some() {
                        streams::refuse(&mut send, &mut recv, StreamRefusal::Duplicate);
                        let inner = self.clone();
                        let id = peer.id.clone();
                        headers.spawn(async move {
                            let why = StreamRefusal::Duplicate;
                            inner.refuse(id.as_str(), why.as_str(), "a second sync stream on one connection".into()).await;
                            None
                        });
                    } else {
                        sender = Some(Box::pin(self.clone().send_sync(conn.clone(), send, recv, peer.clone(), relation, dir)));
                    }
                }
                accepted = conn.accept_bi(), if headers.len() < MAX_PENDING_HEADERS => {
                    let (send, recv) = accepted?;
                    headers.spawn(self.clone().stream_header(peer.id.clone(), relation, send, recv));
                }
            }
        }
    }

    /// Read what an accepted stream carries: the stream back if it is a sync stream; a child's
    /// control stream is read here until it ends; anything else is refused (counted and
    /// audited). `None` unless it is a sync stream.
    async fn stream_header(
        self: Arc<Self>,
        peer: NodeId,
        relation: Relation,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
    ) -> Option<(quinn::SendStream, quinn::RecvStream)> {
        let (why, detail) = match streams::read_kind(&mut recv, HEADER_TIMEOUT).await {
            Ok(StreamKind::Sync) => return Some((send, recv)),
            Ok(StreamKind::Control) if relation == Relation::Child => {
                // Read here, in this task the session owns, for as long as the child reports.
                self.take_reports(peer, recv).await;
                return None;
            }
            Ok(kind @ (StreamKind::Raft | StreamKind::Control | StreamKind::ListsFeed)) => {
                (StreamRefusal::NotServed, format!("a {kind} stream, which this node does not serve"))
            }
            Err(e @ HeaderError::Unknown(_)) => (StreamRefusal::UnknownKind, e.to_string()),
            Err(e @ HeaderError::Timeout(_)) => (StreamRefusal::NoHeader, e.to_string()),
            Err(e @ HeaderError::Read(_)) => {
                // The peer or the connection ended the stream first: nothing to refuse.
                tracing::debug!(%peer, error = %e, "stream ended before its header");
                return None;
            }
        };
        streams::refuse(&mut send, &mut recv, why);
        self.refuse(peer.as_str(), why.as_str(), detail).await;
        None
    }

    /// Send what the peer lacks on its sync stream, as it acknowledges.
    async fn send_sync(
        self: Arc<Self>,
        conn: quinn::Connection,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
        peer: NodeIdentity,
        relation: Relation,
        dir: Direction,
    ) -> Result<(), SessionError> {
        let SyncMsg::Want { heads } = frames::read_sync(&mut recv).await? else {
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
        // Acknowledgements are read by a future of their own, polled beside the sender until
        // both end: reading a frame is not safe to cancel half-way, so it cannot be a branch
        // of the sender's select. Being a future and not a task, it ends with the sender.
        let (ack_tx, mut acks) = mpsc::channel::<u64>(ACK_QUEUE);
        let reader = async move {
            loop {
                match frames::read_sync(&mut recv).await? {
                    SyncMsg::Ack { id, .. } => {
                        if ack_tx.send(id).await.is_err() {
                            return Ok(());
                        }
                    }
                    _ => return Err(SessionError::from(ProtocolError::Unexpected("something other than Ack"))),
                }
            }
        };
        let sender = async {
            let mut changes = self.store.changes();
            let mut bucket = Bucket::new(self.settings.max_bytes_per_sec);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut last_lost = 0u64;
            let mut seen = *changes.borrow_and_update();
            // Whether something may be ready to send: at the start, after an ack (the window
            // has room), after the durable heads of a kind this link sends moved. A county has a
            // sender per child; waking each to scan every origin on every flush would cost it
            // more than the flushes themselves.
            let mut dirty = true;
            loop {
                while dirty {
                    let Some(batch) = out.next_batch(&StoreHoldings(&self.store))? else {
                        dirty = false;
                        break;
                    };
                    let n = batch.entries as u64;
                    let bytes = frames::write_frame(&mut send, batch.frame).await?;
                    bucket.take(bytes).await;
                    self.metrics.mesh_sent(&peer.id, n, bytes as u64);
                    self.set_state(&peer, relation, |s| s.entries_sent += n);
                }
                tokio::select! {
                    biased;
                    id = acks.recv() => match id {
                        Some(id) => {
                            out.on_ack(id)?;
                            dirty = true;
                        }
                        None => return Err(FrameError::Closed.into()),
                    },
                    r = changes.changed() => {
                        if r.is_err() {
                            return Ok(());
                        }
                        let now = *changes.borrow_and_update();
                        dirty |= now.moved_since(&seen, out.kinds());
                        seen = now;
                    }
                    _ = tick.tick() => {
                        let backlog = out.backlog(&StoreHoldings(&self.store))?;
                        let stats = conn.stats();
                        let lost = stats.path.lost_packets;
                        let lossy = lost.saturating_sub(last_lost) > 10;
                        last_lost = lost;
                        let rtt = conn.rtt();
                        let in_flight = out.in_flight();
                        self.set_connected_state(&conn, &peer, relation, |s| {
                            s.backlog = backlog;
                            s.rtt_ms = Some(rtt.as_millis() as u64);
                            s.state = if rtt > DEGRADED_RTT || lossy {
                                LinkState::Degraded
                            } else if backlog > 0 || in_flight > 0 {
                                LinkState::CatchingUp
                            } else {
                                LinkState::Up
                            };
                        });
                    }
                }
            }
        };
        tokio::select! {
            biased;
            r = sender => r,
            r = reader => r,
        }
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
        let (mut send, mut recv) = streams::open(&conn, StreamKind::Sync).await?;
        let want = super::sync::want(dir, |k| proto::VersionVector::clone(&self.store.heads(k)));
        frames::write_sync(&mut send, &want).await?;
        let (queued_tx, mut queued) = mpsc::channel::<Queued>(self.settings.window.max(1));
        let submitter = async {
            let below: HashSet<NodeId> = self.topology.subtree(&peer.id).into_iter().collect();
            loop {
                let SyncMsg::Batch { id, entries } = frames::read_sync(&mut recv).await? else {
                    return Err(ProtocolError::Unexpected("something other than Batch").into());
                };
                let q = self.judge_and_queue(&peer, dir, &below, id, entries).await?;
                let hold_until = q.hold_until;
                if queued_tx.send(q).await.is_err() {
                    return Ok(());
                }
                // Backpressure: the sender's window fills while this link waits.
                if hold_until.is_some() {
                    sleep_until_timeout(hold_until).await;
                }
            }
        };
        let acknowledger = async {
            while let Some(q) = queued.recv().await {
                if let Err(e) = q.durable.await {
                    self.reload_heads(&mut *self.replica.lock().await);
                    return Err(SessionError::from(e));
                }
                frames::write_sync(&mut send, &SyncMsg::Ack { id: q.id, refused: q.refused.len() as u32 }).await?;
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
        entries: Vec<EntryBytes>,
    ) -> Result<Queued, SessionError> {
        let received = entries.len() as u64;
        // A peer whose clock runs ahead is flagged, never silently dropped: its entries are
        // still its entries, but operators must hear that its timestamps cannot be trusted.
        let horizon = self.now().saturating_add(CLOCK_LEAD_TOLERANCE_MS);
        let ahead = entries.iter().filter(|e| e.hlc().wall_ms > horizon).count() as u64;
        if ahead > 0 {
            self.metrics.clock_ahead(&peer.id, ahead);
            tracing::warn!(peer = %peer.id, entries = ahead, "entries stamped more than a minute ahead of this node's clock");
        }
        let mut ops = Vec::with_capacity(entries.len());
        let mut taken: std::collections::BTreeMap<(NodeId, Kind), u64> = std::collections::BTreeMap::new();
        let mut breaks = Vec::new();
        let mut refused = Vec::new();
        let mut applied = Vec::new();
        let mut replica = self.replica.lock().await;
        let authorize = |origin: &NodeId, kind| {
            authz::check(kind, dir, self.topology.site(origin).map(|s| s.role), below.contains(origin))
        };
        let verdicts = replica.judge_batch(&entries, authorize);
        for (e, verdict) in entries.into_iter().zip(verdicts) {
            match verdict {
                Verdict::Accept => {
                    if self.store.bugs().drop_acked_entry && e.seq() % crate::store::DROP_ACKED_EVERY == 0 {
                        // The simulator's injected bug: accepted, acknowledged, never stored.
                        continue;
                    }
                    if matches!(e.kind(), Kind::Watchlist | Kind::Command) {
                        applied.push(e.to_entry());
                    }
                    if e.kind() == Kind::Audit {
                        if let Err(b) = self.check_chain(&e) {
                            breaks.push(b);
                        }
                    }
                    *taken.entry((e.origin().clone(), e.kind())).or_default() += 1;
                    ops.push(Op::Insert(e));
                }
                Verdict::Duplicate | Verdict::Gap => {}
                Verdict::Refuse(r) => refused.push((e.origin().clone(), e.kind(), r)),
            }
        }
        let hold_until = {
            let now = machine_now();
            let mut quotas = self.quotas.lock().unwrap_or_else(|p| p.into_inner());
            let mut hold = None;
            for ((origin, kind), n) in &taken {
                if let Some(until) = quotas.charge(origin, *kind, *n, now) {
                    self.metrics.quota_hold(origin, *kind);
                    hold = hold.max(Some(until));
                }
            }
            hold
        };
        if let Some(first) = breaks.first() {
            // Stored all the same: what the origin holds is evidence, and refusing it would stop
            // every later record of that origin at the gap. Operators hear of it, once a batch.
            breaks.iter().for_each(|b| self.metrics.audit_chain_break(&b.origin));
            tracing::error!(peer = %peer.id, breaks = breaks.len(), first = %first, "audit records received whose chain does not hold");
            let audit = AuditRecord {
                at_ms: self.now(),
                actor: "mesh".into(),
                action: "audit.chain_broken".into(),
                subject: format!("audit/{}/{}", first.origin, first.seq),
                why: format!("{first}; {} such records in one batch from {}", breaks.len(), peer.id),
            };
            match crate::records::encode(&audit) {
                Ok(payload) => ops.push(Op::Append { kind: Kind::Audit, payload }),
                Err(e) => tracing::error!(error = %e, "broken audit chain not audited"),
            }
        }
        // Summaries are upserted in the same commit as the entries that carry them.
        let queued = match summaries_upserts(&self.store, &ops, self.now()) {
            Ok(mut up) => {
                ops.append(&mut up);
                self.store.submit(ops).await
            }
            Err(e) => Err(e),
        };
        match queued {
            Ok(durable) => Ok(Queued { id, hold_until, received, refused, applied, durable: Box::pin(durable) }),
            Err(e) => {
                self.reload_heads(&mut replica);
                Err(e.into())
            }
        }
    }

    /// Check a received audit record against the record before it from its origin, as held
    /// here (see `audit_chain`). The first record heard of an origin since this node started
    /// is checked against its predecessor in the store, if the store has it.
    fn check_chain(&self, e: &EntryBytes) -> Result<(), crate::audit_chain::Break> {
        let mut chains = self.audit_chains.lock().unwrap_or_else(|p| p.into_inner());
        if e.seq() > 1 && !chains.knows(e.origin(), e.seq()) {
            let before = self.store.stored_entries(Kind::Audit, e.origin(), e.seq() - 1).next();
            if let Some(Ok(stored)) =
                before.filter(|b| matches!(b, Ok(s) if EntryBytes::peek_seq(s).ok() == Some(e.seq() - 1)))
            {
                chains.seed(e.origin(), e.seq() - 1, &stored);
            }
        }
        chains.check(e.origin(), e.seq(), e.as_bytes(), e.payload())
    }

    /// After a failed commit the heads may be ahead of the disk: take them from the store again.
    fn reload_heads(&self, replica: &mut super::sync::Replica) {
        match super::load_heads(&self.store) {
            Ok(heads) => *replica = super::sync::Replica::new(self.me.id.clone(), heads),
            Err(e) => tracing::error!(error = %e, "cannot reload replication heads"),
        }
    }

    /// Dial a parent and check it is who the topology says. No timeout here: the uplink
    /// machine decides when a dial has taken too long, and its driver drops it.
    async fn connect(&self, parent: &Site) -> Result<(quinn::Connection, NodeIdentity), String> {
        let connecting = self.endpoint.connect(parent.mesh, parent.id.as_str()).map_err(|e| e.to_string())?;
        let conn = connecting.await.map_err(|e| e.to_string())?;
        let peer = super::tls::peer_identity(&conn).map_err(|e| e.to_string())?;
        if peer.id != parent.id || peer.role != parent.role {
            conn.close(1u32.into(), b"unexpected identity");
            return Err(format!("{} answered as {} ({})", parent.id, peer.id, peer.role));
        }
        Ok((conn, peer))
    }

    /// Keep a link to the best parent reachable: the [`Uplink`] machine decides (preferred
    /// first, fallbacks, backoff, probing, switching back), this loop carries out what it says
    /// and tells it what came of it. Dials, probes and the session run as tasks of a set owned
    /// here, so dropping the loop ends them all.
    pub(super) async fn parents_loop(self: Arc<Self>, parents: Vec<Site>, seed: u64) {
        let mut machine = Uplink::new(parents.len(), UplinkConfig::default(), seed, machine_now());
        let mut tasks: JoinSet<Done> = JoinSet::new();
        let mut live: Vec<Live> = Vec::new();
        loop {
            while let Some(action) = machine.poll_action() {
                self.carry_out(action, &parents, &mut tasks, &mut live);
            }
            let timeout = machine.poll_timeout();
            // The machine always waits on a deadline or a session (its property tests check
            // that); with neither, this loop would sleep forever without a word.
            assert!(timeout.is_some() || !live.is_empty(), "the uplink machine waits on nothing");
            tokio::select! {
                biased;
                Some(joined) = tasks.join_next_with_id() => {
                    let (id, done) = match joined {
                        Ok((id, done)) => (id, Ok(done)),
                        Err(e) => (e.id(), Err(e)),
                    };
                    // Not live: abandoned or closed by the machine's word, already accounted
                    // for. A connection it made is dropped (and so closed) here.
                    let Some(i) = live.iter().position(|l| l.task.id() == id) else { continue };
                    let l = live.swap_remove(i);
                    let now = machine_now();
                    match (l.what, done) {
                        (What::Dial, Ok(Done::Dialed(Ok((conn, peer))))) => {
                            machine.handle_event(Event::DialSucceeded { attempt: l.attempt }, now);
                            if machine.session() == Some((l.parent, l.attempt)) {
                                let task = tasks.spawn(self.clone().parent_session(conn.clone(), peer));
                                live.push(Live { attempt: l.attempt, parent: l.parent, what: What::Session(conn), task });
                            } else {
                                conn.close(0u32.into(), b"not needed");
                            }
                        }
                        (What::Dial, Ok(Done::Dialed(Err(error)))) => {
                            tracing::debug!(parent = %parents[l.parent].id, %error, "parent unreachable");
                            machine.handle_event(Event::DialFailed { attempt: l.attempt, error }, now);
                        }
                        (What::Probe, Ok(Done::Probed(Ok(())))) => {
                            machine.handle_event(Event::ProbeSucceeded { attempt: l.attempt }, now);
                        }
                        (What::Probe, Ok(Done::Probed(Err(error)))) => {
                            tracing::debug!(parent = %parents[l.parent].id, %error, "better parent still unreachable");
                            machine.handle_event(Event::ProbeFailed { attempt: l.attempt, error }, now);
                        }
                        (What::Session(_), Ok(Done::SessionEnded(error))) => {
                            machine.handle_event(Event::SessionEnded { attempt: l.attempt, error }, now);
                        }
                        (what, Ok(done)) => unreachable!("task {what:?} finished as {done:?}"),
                        (what, Err(e)) => {
                            // A task that panicked: as a failure of what it was doing.
                            tracing::error!(parent = %parents[l.parent].id, task = ?what, error = %e, "uplink task failed");
                            let (attempt, error) = (l.attempt, format!("task failed: {e}"));
                            machine.handle_event(match what {
                                What::Dial => Event::DialFailed { attempt, error },
                                What::Probe => Event::ProbeFailed { attempt, error },
                                What::Session(_) => Event::SessionEnded { attempt, error },
                            }, now);
                        }
                    }
                }
                () = sleep_until_timeout(timeout) => machine.handle_timeout(machine_now()),
            }
        }
    }

    /// Do one thing the uplink machine asked for.
    fn carry_out(self: &Arc<Self>, action: Action, parents: &[Site], tasks: &mut JoinSet<Done>, live: &mut Vec<Live>) {
        match action {
            Action::Dial { parent, attempt } => {
                let (inner, site) = (self.clone(), parents[parent].clone());
                let task = tasks.spawn(async move { Done::Dialed(inner.connect(&site).await) });
                live.push(Live { attempt, parent, what: What::Dial, task });
            }
            Action::Probe { parent, attempt } => {
                let (inner, site) = (self.clone(), parents[parent].clone());
                let task = tasks.spawn(async move {
                    Done::Probed(inner.connect(&site).await.map(|(conn, _)| conn.close(0u32.into(), b"probe")))
                });
                live.push(Live { attempt, parent, what: What::Probe, task });
            }
            Action::Abandon { attempt } => {
                if let Some(l) = take_live(live, attempt) {
                    l.task.abort();
                }
            }
            Action::Close { attempt, reason } => {
                if let Some(l) = take_live(live, attempt) {
                    tracing::info!(from = %parents[l.parent].id, "a better parent answers; switching");
                    // Closed before the link is reported down (the next action), so the
                    // session cannot report it up again (see `set_connected_state`).
                    if let What::Session(conn) = &l.what {
                        conn.close(0u32.into(), reason.as_bytes());
                    }
                    l.task.abort();
                }
            }
            Action::Partitioned { parent, error } => {
                let site = &parents[parent];
                let identity = NodeIdentity { id: site.id.clone(), role: site.role };
                self.set_partitioned(&identity, Relation::Parent, error);
            }
        }
    }

    /// The session with a parent, as a task of the parents loop.
    async fn parent_session(self: Arc<Self>, conn: quinn::Connection, peer: NodeIdentity) -> Done {
        Done::SessionEnded(self.session(conn, peer, Relation::Parent).await)
    }

    /// Accept children. A peer must present a certificate from the city CA (rustls checks
    /// that) and be a site that names this node as a parent (checked here). Each connection is
    /// served by a task of a set owned here: when the loop ends (the endpoint closed) or is
    /// dropped, its connections' tasks end with it.
    pub(super) async fn accept_loop(self: Arc<Self>) {
        let mut children = JoinSet::new();
        let handshakes = Arc::new(tokio::sync::Semaphore::new(self.settings.max_handshakes));
        loop {
            // Refusals are recorded by the children's tasks, which end when they refuse: the
            // loop comes round after each, so the deadline taken here is never stale for long.
            let audit_due = self.refusals.lock().unwrap_or_else(|p| p.into_inner()).next_deadline();
            tokio::select! {
                biased;
                Some(joined) = children.join_next() => {
                    if let Err(e) = joined {
                        tracing::error!(error = %e, "a child connection's task failed");
                    }
                }
                () = sleep_until_timeout(audit_due) => {
                    let due = self.refusals.lock().unwrap_or_else(|p| p.into_inner()).due(machine_now());
                    self.audit_refusals(due).await;
                }
                incoming = self.endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    let remote = incoming.remote_address();
                    if children.len() >= MAX_CHILD_CONNECTIONS {
                        incoming.refuse();
                        let detail = format!("{MAX_CHILD_CONNECTIONS} connections already served");
                        self.refuse_handshake(remote, "too_many_connections", detail).await;
                        continue;
                    }
                    let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                        incoming.refuse();
                        let detail = format!("{} handshakes already under way", self.settings.max_handshakes);
                        self.refuse_handshake(remote, "handshake_limit", detail).await;
                        continue;
                    };
                    children.spawn(self.clone().child(incoming, permit));
                }
            }
        }
    }

    /// One incoming connection: check who it is, then run its session. `handshake` is its
    /// place among the handshakes under way, given up once the peer's identity is known.
    async fn child(self: Arc<Self>, incoming: quinn::Incoming, handshake: tokio::sync::OwnedSemaphorePermit) {
        let remote = incoming.remote_address();
        let conn = match incoming.await {
            Ok(c) => c,
            Err(e) => {
                drop(handshake);
                self.refuse_handshake(remote, handshake_failure(&e), e.to_string()).await;
                return;
            }
        };
        let peer = match super::tls::peer_identity(&conn) {
            Ok(p) => p,
            Err(e) => {
                drop(handshake);
                conn.close(2u32.into(), b"no identity");
                self.refuse_handshake(remote, "no_identity", e.to_string()).await;
                return;
            }
        };
        drop(handshake);
        let known = self.topology.site(&peer.id);
        let is_child = known.is_some_and(|s| s.role == peer.role && s.parents.contains(&self.me.id));
        if !is_child {
            conn.close(3u32.into(), b"not a child of this node");
            self.refuse(peer.id.as_str(), "not_a_child", format!("{} ({}) from {remote}", peer.id, peer.role)).await;
            return;
        }
        // A new connection from a child replaces its old one.
        let old = self.sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(peer.id.clone(), conn.clone());
        if let Some(old) = old {
            old.close(0u32.into(), b"replaced by a new connection");
        }
        let reason = self.clone().session(conn.clone(), peer.clone(), Relation::Child).await;
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let current = sessions.get(&peer.id).is_some_and(|c| c.stable_id() == conn.stable_id());
        if current {
            sessions.remove(&peer.id);
        }
        drop(sessions);
        // A replaced connection leaves the link's state to its successor.
        if current {
            self.set_partitioned(&peer, Relation::Child, reason);
        }
    }
}

/// What a task of the parents loop is doing.
#[derive(Debug)]
enum What {
    Dial,
    Probe,
    /// The session on this connection.
    Session(quinn::Connection),
}

/// A task of the parents loop the uplink machine waits on.
struct Live {
    attempt: Attempt,
    parent: usize,
    what: What,
    task: AbortHandle,
}

/// What a task of the parents loop came to.
#[derive(Debug)]
enum Done {
    Dialed(Result<(quinn::Connection, NodeIdentity), String>),
    Probed(Result<(), String>),
    SessionEnded(String),
}

/// Why `lists` refuse the certificate `conn`'s peer showed, if they revoke it.
fn revocation(lists: &crate::sanctions::Lists, conn: &quinn::Connection) -> Option<String> {
    let fingerprint = super::tls::peer_fingerprint(conn)?;
    let (node, version) = lists.revocation(&fingerprint)?;
    Some(format!("the certificate of {node} ({fingerprint}) is revoked by list version {version}"))
}

/// Resolves when the sanctions lists in force revoke the certificate `conn`'s peer showed
/// (at once if they already do), saying why.
async fn until_revoked(enforced: &crate::enforcement::Enforced, conn: &quinn::Connection) -> String {
    let mut lists = enforced.subscribe();
    loop {
        if let Some(why) = revocation(&lists.borrow_and_update(), conn) {
            return why;
        }
        if lists.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

fn take_live(live: &mut Vec<Live>, attempt: Attempt) -> Option<Live> {
    let i = live.iter().position(|l| l.attempt == attempt)?;
    Some(live.swap_remove(i))
}

/// The output of an optional future; pending forever while there is none.
async fn until_done<F: Future + Unpin>(f: &mut Option<F>) -> F::Output {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}
