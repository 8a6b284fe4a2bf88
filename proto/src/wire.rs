//! What nodes say to each other over a mesh link.
//!
//! A link is one QUIC connection per neighbour, shared by several protocols: every
//! bidirectional stream starts with a one-byte [`StreamKind`] written by the side that opens
//! it, and the accepting side refuses kinds it does not serve with a [`StreamRefusal`] code.
//!
//! Replication ([`StreamKind::Sync`]) uses one stream per direction of the link, opened by the
//! receiver: after the kind byte the receiver first says what it holds ([`SyncMsg::Want`]),
//! the sender streams the gaps in batches, and the receiver acknowledges each batch once it is
//! durable. Messages travel as length-prefixed frames ([`crate::codec::frame`]) of the bounded
//! codec.

use crate::entry::{Entry, Kind};
use crate::ids::NodeId;
use crate::vv::VersionVector;
use serde::{Deserialize, Serialize};

/// The ALPN protocol id of yiwang's mesh links. `/2`: every stream starts with its
/// [`StreamKind`]; a node speaking `/1` is refused at the handshake rather than misread.
pub const ALPN: &[u8] = b"yiwang/2";
/// Most entries in one batch.
pub const MAX_BATCH_ENTRIES: usize = 1024;
/// Most encoded entry bytes in one batch; with the frame header this stays under the frame cap.
pub const MAX_BATCH_BYTES: usize = 1 << 20;

/// What a bidirectional stream of a mesh connection carries: the first byte the opening side
/// writes on it. Values are fixed on the wire; a new kind takes a new value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StreamKind {
    /// Replication: [`SyncMsg`]s, the receiver of entries opening the stream.
    Sync = 1,
    /// City-level consensus on sanctions lists, between voters' control planes.
    Raft = 2,
    /// Control messages from a child to its parent: [`ControlMsg`]s, the child opening the
    /// stream.
    Control = 3,
    /// A site's node reading committed list versions from its own site's control plane, to
    /// publish them down the mesh.
    ListsFeed = 4,
}

impl StreamKind {
    pub const ALL: [StreamKind; 4] = [StreamKind::Sync, StreamKind::Raft, StreamKind::Control, StreamKind::ListsFeed];

    pub fn to_byte(self) -> u8 {
        self as u8
    }

    /// The kind a header byte names; `None` for a byte that names none.
    pub fn from_byte(byte: u8) -> Option<StreamKind> {
        StreamKind::ALL.into_iter().find(|k| k.to_byte() == byte)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Sync => "sync",
            StreamKind::Raft => "raft",
            StreamKind::Control => "control",
            StreamKind::ListsFeed => "lists-feed",
        }
    }
}

impl std::fmt::Display for StreamKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a node refused a stream its peer opened: the QUIC application error code it stops
/// and resets the stream with. Values are fixed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum StreamRefusal {
    /// A kind this node does not serve (yet).
    NotServed = 1,
    /// A header byte that names no [`StreamKind`].
    UnknownKind = 2,
    /// A second stream of a kind a connection carries one of at a time (sync).
    Duplicate = 3,
    /// No header arrived in time.
    NoHeader = 4,
    /// The peer's certificate does not allow this kind (raft from a site that is not a voter).
    Unauthorized = 5,
    /// The stream's message could not be read.
    Malformed = 6,
}

impl StreamRefusal {
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The reason label in metrics and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamRefusal::NotServed => "stream_not_served",
            StreamRefusal::UnknownKind => "stream_unknown_kind",
            StreamRefusal::Duplicate => "stream_duplicate",
            StreamRefusal::NoHeader => "stream_no_header",
            StreamRefusal::Unauthorized => "stream_unauthorized",
            StreamRefusal::Malformed => "stream_malformed",
        }
    }
}

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

/// Most reports in one [`ControlMsg::Reports`]: one per site of the largest topology.
pub const MAX_REPORTS: usize = 4096;
/// Most links one report lists.
pub const MAX_REPORT_LINKS: usize = 4096;

/// One link as a node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkBrief {
    pub peer: NodeId,
    /// `parent` or `child`.
    pub parent: bool,
    /// 0 up, 1 catching up, 2 degraded, 3 partitioned (the `link_state` metric's codes).
    pub state: u8,
    /// Entries the node holds that the peer has not acknowledged.
    pub backlog: u64,
}

/// What a node says of itself up the mesh, for the city's view of every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    pub node: NodeId,
    /// The node's clock when it made the report, ms since the epoch.
    pub at_ms: u64,
    /// Version of the sanctions lists it enforces.
    pub lists_version: u64,
    pub open_events: u64,
    pub overdue_events: u64,
    pub links: Vec<LinkBrief>,
    /// Filled in by the parent that took the report from the node itself: that parent, its
    /// clock then, and the node's clock minus the parent's (ms, half the round trip allowed
    /// for). Zero and `None` as the node sends it.
    pub via: Option<NodeId>,
    pub seen_ms: u64,
    pub clock_offset_ms: i64,
}

/// A message on a [`StreamKind::Control`] stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlMsg {
    /// The sender's own report first, then the latest it holds of each site below it.
    Reports(Vec<NodeReport>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_kinds_round_trip_and_unknown_bytes_name_none() {
        for kind in StreamKind::ALL {
            assert_eq!(StreamKind::from_byte(kind.to_byte()), Some(kind));
        }
        assert_eq!([StreamKind::Sync, StreamKind::Raft, StreamKind::Control].map(StreamKind::to_byte), [1, 2, 3]);
        let named = (0..=u8::MAX).filter(|b| StreamKind::from_byte(*b).is_some()).count();
        assert_eq!(named, StreamKind::ALL.len());
        assert_eq!(StreamKind::from_byte(0), None);
        assert_eq!(StreamKind::from_byte(5), None);
    }
}
