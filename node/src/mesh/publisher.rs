//! Publishing the sanctions lists at a voting site: this node reads the versions its own
//! site's control plane has committed (a `ListsFeed` stream to the voter's raft endpoint, the
//! topology's `raft` address, with this site's own certificate) and appends them as its own
//! `Sanctions` entries, which the mesh carries down to every site below. What the entries
//! mean and how nodes take them: [`crate::sanctions::feed`].
//!
//! Where the stream stands is in the stream itself: the last entry says which version it
//! reached, so a restart resumes there. A snapshot's pieces are appended in one commit, so a
//! stream never ends halfway through one.

use super::frames;
use super::streams;
use super::Inner;
use crate::rng::Rng;
use crate::sanctions::feed::{FeedEntry, FeedReply, FeedRequest, MAX_FEED_ENTRY_BYTES};
use crate::store::{Op, Store, StoreError};
use proto::wire::StreamKind;
use proto::Kind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long one request waits at the voter for a new version before asking again.
const LONG_POLL: Duration = Duration::from_secs(10);
/// Beyond the long poll, how long a reply may take before the voter is taken for gone.
const REPLY_GRACE: Duration = Duration::from_secs(5);
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub(super) enum PublishError {
    #[error("cannot reach the site's voter at {addr}: {why}")]
    Connect { addr: SocketAddr, why: String },
    #[error("the voter at {addr} answered as {peer}")]
    Identity { addr: SocketAddr, peer: String },
    #[error(transparent)]
    Open(#[from] streams::OpenError),
    #[error(transparent)]
    Frame(#[from] frames::FrameError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the voter cannot answer: {0}")]
    Unavailable(String),
    #[error("the voter answered a {0} request with another kind of reply")]
    Mismatch(&'static str),
    #[error("the snapshot changed while it was read; starting again")]
    SnapshotGone,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The version this node's own stream has reached (0 for an empty stream).
fn published(store: &Store) -> Result<u64, StoreError> {
    let head = store.own_head(Kind::Sanctions)?;
    if head == 0 {
        return Ok(0);
    }
    let Some(entry) = store.entry(Kind::Sanctions, store.node(), head)? else { return Ok(0) };
    match proto::codec::decode::<FeedEntry>(&entry.payload) {
        Ok(FeedEntry::Changes { through, .. }) => Ok(through),
        Ok(FeedEntry::Snapshot(p)) => Ok(p.version),
        Err(e) => Err(StoreError::Codec(format!("this node's last sanctions entry: {e}"))),
    }
}

impl Inner {
    /// Keep publishing what the voter at `voter` commits, for as long as the node runs.
    pub(super) async fn publish_loop(self: Arc<Self>, voter: SocketAddr, mut rng: Rng) {
        let mut conn: Option<quinn::Connection> = None;
        let mut retry = RETRY_FIRST;
        loop {
            match self.publish_next(&mut conn, voter).await {
                Ok(()) => retry = RETRY_FIRST,
                Err(e) => {
                    tracing::warn!(%voter, error = %e, "sanctions lists not published; retrying");
                    conn = None;
                    // Jittered, so a voter coming back is not met by every retry at once.
                    let wait = retry.mul_f64(0.5 + rng.next_f64());
                    tokio::time::sleep(wait).await;
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// One round: ask for what follows the stream's version and append it (or wait, when the
    /// voter has nothing new within the long poll).
    async fn publish_next(&self, conn: &mut Option<quinn::Connection>, voter: SocketAddr) -> Result<(), PublishError> {
        let after = published(&self.store)?;
        let request = FeedRequest::Changes {
            after,
            max_bytes: MAX_FEED_ENTRY_BYTES as u32,
            wait_ms: LONG_POLL.as_millis() as u32,
        };
        match self.ask(conn, voter, &request).await? {
            FeedReply::Changes { horizon, .. } if after < horizon => {
                tracing::info!(
                    after,
                    horizon,
                    "the site's voter holds no changes after our version: publishing a snapshot"
                );
                self.publish_snapshot(conn, voter).await
            }
            FeedReply::Changes { through, changes, .. } if through > after => {
                let entry = FeedEntry::Changes { prev: after, through, changes };
                self.append(vec![entry]).await?;
                tracing::debug!(from = after, to = through, "sanctions lists published");
                Ok(())
            }
            FeedReply::Changes { .. } => Ok(()),
            FeedReply::Unavailable(why) => Err(PublishError::Unavailable(why)),
            _ => Err(PublishError::Mismatch("changes")),
        }
    }

    async fn publish_snapshot(
        &self,
        conn: &mut Option<quinn::Connection>,
        voter: SocketAddr,
    ) -> Result<(), PublishError> {
        // The pieces go on the stream as the voter serves them, all in one commit.
        let mut pieces: Vec<FeedEntry> = Vec::new();
        let mut bytes = 0;
        let mut at = None;
        loop {
            let piece = pieces.len() as u32;
            match self.ask(conn, voter, &FeedRequest::Snapshot { version: at, piece }).await? {
                FeedReply::Snapshot(p) if p.piece == piece => {
                    bytes += p.bytes.len();
                    if bytes > proto::codec::MAX_SNAPSHOT_BYTES {
                        return Err(PublishError::Unavailable(format!("snapshot of version {} too large", p.version)));
                    }
                    let (version, last) = (p.version, p.piece + 1 == p.pieces);
                    at = Some(version);
                    pieces.push(FeedEntry::Snapshot(p));
                    if last {
                        self.append(pieces).await?;
                        tracing::info!(version, bytes, "sanctions lists snapshot published");
                        return Ok(());
                    }
                }
                FeedReply::SnapshotGone => return Err(PublishError::SnapshotGone),
                FeedReply::Unavailable(why) => return Err(PublishError::Unavailable(why)),
                _ => return Err(PublishError::Mismatch("snapshot")),
            }
        }
    }

    /// Append `entries` as this node's own, in one commit.
    async fn append(&self, entries: Vec<FeedEntry>) -> Result<(), PublishError> {
        let ops = entries
            .iter()
            .map(|e| {
                let payload = proto::codec::encode(e).map_err(|e| StoreError::Codec(e.to_string()))?;
                Ok(Op::Append { kind: Kind::Sanctions, payload })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.store.commit(ops).await?;
        Ok(())
    }

    /// One request on its own stream, over the connection to the voter (dialled if need be).
    async fn ask(
        &self,
        conn: &mut Option<quinn::Connection>,
        voter: SocketAddr,
        request: &FeedRequest,
    ) -> Result<FeedReply, PublishError> {
        let c = match conn.as_ref().filter(|c| c.close_reason().is_none()) {
            Some(c) => c.clone(),
            None => {
                let c = self.dial_voter(voter).await?;
                *conn = Some(c.clone());
                c
            }
        };
        let limit = LONG_POLL + REPLY_GRACE;
        let exchange = async {
            let (mut send, mut recv) = streams::open(&c, StreamKind::ListsFeed).await?;
            frames::write(&mut send, request).await?;
            let _ = send.finish();
            Ok::<_, PublishError>(frames::read::<FeedReply>(&mut recv).await?)
        };
        tokio::time::timeout(limit, exchange).await.map_err(|_| PublishError::Timeout(limit))?
    }

    /// Dial this site's own voter and check that it is this site (the same certificate name).
    async fn dial_voter(&self, voter: SocketAddr) -> Result<quinn::Connection, PublishError> {
        let connect = |why: String| PublishError::Connect { addr: voter, why };
        let connecting = self.endpoint.connect(voter, self.me.id.as_str()).map_err(|e| connect(e.to_string()))?;
        let c = tokio::time::timeout(super::uplink::CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| connect("no handshake in time".into()))?
            .map_err(|e| connect(e.to_string()))?;
        let peer = super::tls::peer_identity(&c).map_err(|e| connect(e.to_string()))?;
        if peer.id != self.me.id {
            c.close(1u32.into(), b"unexpected identity");
            return Err(PublishError::Identity { addr: voter, peer: peer.id.to_string() });
        }
        Ok(c)
    }
}
