//! City-level consensus on the sanctions lists (ARCHITECTURE section 5): an openraft group of
//! configured voters (by default the city and the county sites) whose log holds list commands
//! ([`node::sanctions::Proposal`]) and whose state machine is [`node::sanctions::Lists`].
//!
//! - [`runtime`]: tokio for openraft, with election randomness from the voter's seed.
//! - [`log_store`] and [`state_machine`]: openraft's storage (v2) over the node's store, so the
//!   same code runs on sled and on the simulator's disk.
//! - [`changes`]: every applied command, kept for history, audit and distribution.
//! - [`network`]: raft RPCs over QUIC between voters, admitted by certificate.
//! - [`feed`]: the committed versions, read by the voter's own site's node to publish them
//!   down the mesh.
//! - [`voter`]: one voter instance; writes and linearizable reads with deadlines.

// openraft's error types are large by design (they carry log ids, votes and nodes); every
// storage and network function returns them.
#![allow(clippy::result_large_err)]

pub mod changes;
pub mod feed;
pub mod log_store;
pub mod network;
pub mod runtime;
pub mod state_machine;
pub mod voter;

use node::sanctions::{Outcome, Proposal};
use proto::NodeId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

openraft::declare_raft_types!(
    /// The sanctions lists' raft: list commands in, outcomes out, voters named by site.
    pub ListsRaft:
        D = Proposal,
        R = Outcome,
        NodeId = VoterId,
        Node = Voter,
        Entry = openraft::Entry<ListsRaft>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = runtime::SeededRuntime,
);

/// openraft wants a small `Copy` id; a site is named by its node id. [`voter_id`] maps one to
/// the other, so operators only ever name sites.
pub type VoterId = u64;

/// A voter as the membership records it: the site it runs at and where its raft endpoint
/// listens.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Voter {
    pub name: String,
    pub addr: String,
}

impl std::fmt::Display for Voter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.addr)
    }
}

/// The raft id of the voter at site `name`: the first 8 bytes of a SHA-256 of the name, so
/// every voter computes the same id for a site without a registry. A collision among a
/// handful of sites is a 2^-64 event; the voter set is checked for one when it is configured.
pub fn voter_id(name: &NodeId) -> VoterId {
    let mut h = Sha256::new();
    h.update(b"yiwang raft voter\0");
    h.update(name.as_str().as_bytes());
    u64::from_be_bytes(h.finalize()[..8].try_into().expect("32 bytes"))
}

/// openraft's error for a storage failure, keeping its source's message.
pub(crate) fn io_error(
    make: impl FnOnce(openraft::AnyError) -> openraft::StorageIOError<VoterId>,
    source: &(impl std::error::Error + 'static),
) -> openraft::StorageError<VoterId> {
    openraft::StorageError::IO { source: make(openraft::AnyError::new(source)) }
}

/// What reading or writing raft state in the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreFault {
    #[error(transparent)]
    Store(#[from] node::store::StoreError),
    #[error("stored raft state cannot be read: {0}")]
    Codec(#[from] proto::codec::CodecError),
    #[error("the stored snapshot is missing chunk {0}")]
    MissingChunk(usize),
    #[error("a malformed key in {0}")]
    BadKey(&'static str),
}
