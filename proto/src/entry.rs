//! The entry envelope: everything that crosses the network, and everything a node stores about
//! its own work, is an entry addressed by `(origin, seq)` within its kind.

use crate::hlc::Hlc;
use crate::ids::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What an entry carries. Each kind has its own sequence space per origin, its own sled tree and
/// its own version vector.
///
/// Encoded by position: append new kinds at the end, never reorder or remove one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// A raw feed detection (plate read, vessel report, camera event). Kept on site for the
    /// retention period and never replicated.
    Detection,
    /// An alert raised by a rule at ingest (watchlist hit, fence, camera offline).
    Alert,
    /// A grid event or an alert event in the on-site workflow.
    Event,
    /// A workflow transition of an event.
    Transition,
    /// An escalation to a higher tier, or that tier's answer.
    Escalation,
    /// A command addressed to the owner of an event.
    Command,
    /// A per-window summary (idempotent upsert keyed by node and window).
    Summary,
    /// An append-only audit record.
    Audit,
    /// A watchlist change (add-wins set operation).
    Watchlist,
    /// Committed versions of the city's sanctions lists, published down the mesh by the sites
    /// whose control plane votes (see `node::sanctions::feed`).
    Sanctions,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Detection,
        Kind::Alert,
        Kind::Event,
        Kind::Transition,
        Kind::Escalation,
        Kind::Command,
        Kind::Summary,
        Kind::Audit,
        Kind::Watchlist,
        Kind::Sanctions,
    ];

    /// The kinds that cross links (every kind [`crate::authz::travels`] some way), in the
    /// order [`crate::authz::priority`] sends them.
    pub const REPLICATED: [Kind; 7] =
        [Kind::Alert, Kind::Escalation, Kind::Command, Kind::Sanctions, Kind::Watchlist, Kind::Summary, Kind::Audit];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Detection => "detection",
            Kind::Alert => "alert",
            Kind::Event => "event",
            Kind::Transition => "transition",
            Kind::Escalation => "escalation",
            Kind::Command => "command",
            Kind::Summary => "summary",
            Kind::Audit => "audit",
            Kind::Watchlist => "watchlist",
            Kind::Sanctions => "sanctions",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The address of an entry within its kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EntryId {
    pub origin: NodeId,
    pub seq: u64,
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.origin, self.seq)
    }
}

/// The envelope. `payload` is the kind-specific body, itself encoded with [`crate::codec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub origin: NodeId,
    pub seq: u64,
    pub hlc: Hlc,
    pub kind: Kind,
    /// Read as one byte string, so the decoder's size limit applies to it as a whole.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

impl Entry {
    pub fn id(&self) -> EntryId {
        EntryId { origin: self.origin.clone(), seq: self.seq }
    }
}

/// An [`Entry`] by reference, for encoding without copying the origin or payload. Encodes to the
/// same bytes as the owned `Entry` (field order and types match), so it decodes as one.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct EntryRef<'a> {
    pub origin: &'a NodeId,
    pub seq: u64,
    pub hlc: Hlc,
    pub kind: Kind,
    #[serde(with = "serde_bytes")]
    pub payload: &'a [u8],
}
