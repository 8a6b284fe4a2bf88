//! The shared vocabulary of yiwang: who a node is, when something happened (hybrid logical
//! clocks), what a node holds of everyone else's output (version vectors), the entry envelope
//! that everything crossing the network travels in, and the one codec that turns all of it into
//! bytes and back under a hard size limit.

pub mod authz;
pub mod codec;
pub mod entry;
pub mod hlc;
pub mod ids;
pub mod vv;
pub mod wire;

pub use codec::{CodecError, Limits};
pub use entry::{Entry, EntryBytes, EntryId, EntryRef, Kind};
pub use hlc::{Hlc, HlcClock, HlcError};
pub use ids::{IdError, NodeId, NodeIdentity, Role};
pub use vv::VersionVector;
