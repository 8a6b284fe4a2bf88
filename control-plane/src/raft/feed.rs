//! The voter's side of the lists feed: its own site's node reads the committed versions here
//! (a `ListsFeed` stream on the raft endpoint, one [`FeedRequest`] and one [`FeedReply`] per
//! stream) and publishes them down the mesh (`node::sanctions::feed` says how they travel).
//!
//! Only applied, hence committed, versions are served, so a voter on the minority side of a
//! partition still feeds its site what the group decided before the cut, and nothing else.

use super::changes::{self, Change};
use super::state_machine::ListsView;
use super::StoreFault;
use node::sanctions::feed::{snapshot_piece, FeedReply, FeedRequest, MAX_FEED_ENTRY_BYTES, MAX_FEED_WAIT_MS};
use node::sanctions::Proposal;
use node::store::Store;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Answers feed requests from a voter's store and applied lists.
#[derive(Clone)]
pub struct FeedServer {
    store: Store,
    view: ListsView,
    /// The snapshot last encoded, so its pieces come from one version of the lists however
    /// the lists move while they are fetched.
    snapshot: Arc<Mutex<Option<Encoded>>>,
}

/// The lists of one version in the snapshot codec.
type Encoded = (u64, Arc<Vec<u8>>);

impl FeedServer {
    pub fn new(store: Store, view: ListsView) -> FeedServer {
        FeedServer { store, view, snapshot: Arc::default() }
    }

    pub async fn answer(&self, request: FeedRequest) -> FeedReply {
        let reply = match request {
            FeedRequest::Changes { after, max_bytes, wait_ms } => {
                let wait = Duration::from_millis(u64::from(wait_ms.min(MAX_FEED_WAIT_MS)));
                let max_bytes = (max_bytes as usize).clamp(1, MAX_FEED_ENTRY_BYTES);
                self.changes(after, max_bytes, wait).await
            }
            FeedRequest::Snapshot { version, piece } => self.snapshot(version, piece),
        };
        reply.unwrap_or_else(|e| FeedReply::Unavailable(e.to_string()))
    }

    async fn changes(&self, after: u64, max_bytes: usize, wait: Duration) -> Result<FeedReply, StoreFault> {
        let mut version = self.view.version();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // The watched version moves only once the change records up to it are durable
            // (see `state_machine`), so every change at or below it is in the page.
            let applied = *version.borrow_and_update();
            let horizon = changes::horizon(&self.store)?;
            if after < horizon {
                return Ok(FeedReply::Changes { version: applied, horizon, through: after, changes: Vec::new() });
            }
            let (page, truncated) = page(&self.store, after, max_bytes)?;
            let last = page.last().map_or(after, |c| c.version);
            let through = if truncated { last } else { last.max(applied).max(after) };
            if through > after || tokio::time::Instant::now() >= deadline {
                let changes = page.into_iter().map(|c| (c.version, c.proposal)).collect();
                return Ok(FeedReply::Changes { version: applied, horizon, through, changes });
            }
            match tokio::time::timeout_at(deadline, version.changed()).await {
                Ok(Ok(())) => {}
                // The state machine is gone (the voter is stopping), or the wait is over.
                Ok(Err(_)) | Err(_) => {
                    return Ok(FeedReply::Changes { version: applied, horizon, through: after, changes: Vec::new() })
                }
            }
        }
    }

    fn snapshot(&self, version: Option<u64>, piece: u32) -> Result<FeedReply, StoreFault> {
        let mut cached = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        let (version, bytes) = match (version, cached.as_ref()) {
            (Some(v), Some((at, bytes))) if *at == v => (v, bytes.clone()),
            (Some(_), _) => return Ok(FeedReply::SnapshotGone),
            (None, _) => {
                let encoded = {
                    let applied = self.view.read();
                    (applied.lists.version(), Arc::new(proto::codec::encode_snapshot(&applied.lists)?))
                };
                *cached = Some(encoded.clone());
                encoded
            }
        };
        Ok(snapshot_piece(version, &bytes, piece).map_or(FeedReply::SnapshotGone, FeedReply::Snapshot))
    }
}

/// Changes after `after` up to about `max_bytes` of proposals (at least one), and whether more
/// were left.
fn page(store: &Store, after: u64, max_bytes: usize) -> Result<(Vec<Change>, bool), StoreFault> {
    let mut out = Vec::new();
    let mut bytes = 0;
    let mut from = after;
    loop {
        let batch = changes::page(store, from, 64)?;
        let more = batch.len() == 64;
        for c in batch {
            let size = proto::codec::encode::<Proposal>(&c.proposal).map_or(MAX_FEED_ENTRY_BYTES, |b| b.len());
            if !out.is_empty() && bytes + size > max_bytes {
                return Ok((out, true));
            }
            bytes += size;
            from = c.version;
            out.push(c);
        }
        if !more {
            return Ok((out, false));
        }
    }
}
