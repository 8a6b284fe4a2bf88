//! What nodes say to each other over a mesh link. Each direction of a link is one QUIC stream
//! opened by the sender: the receiver first says what it holds ([`SyncMsg::Want`]), the sender
//! streams the gaps in batches, and the receiver acknowledges each batch once it is durable.
//! Messages travel as length-prefixed frames ([`crate::codec::frame`]) of the bounded codec.

use crate::entry::{Entry, Kind};
use crate::vv::VersionVector;
use serde::{Deserialize, Serialize};

/// The ALPN protocol id of yiwang's mesh links.
pub const ALPN: &[u8] = b"yiwang/1";
/// Most entries in one batch.
pub const MAX_BATCH_ENTRIES: usize = 1024;
/// Most encoded entry bytes in one batch; with the frame header this stays under the frame cap.
pub const MAX_BATCH_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncMsg {
    /// Receiver to sender: for each kind the sender may send, what the receiver already holds.
    Want { heads: Vec<(Kind, VersionVector)> },
    /// Sender to receiver: entries, in sequence order within each (kind, origin).
    Batch { id: u64, entries: Vec<Entry> },
    /// Receiver to sender: batch `id` is durable here; `refused` of its entries were refused
    /// (counted and audited on this side).
    Ack { id: u64, refused: u32 },
}
