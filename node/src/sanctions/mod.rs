//! The city's sanctions lists (red and black lists) as a deterministic state machine for raft.
//!
//! The city decides who is on its red and black lists by consensus: the control plane proposes
//! a [`Proposal`], raft commits it at a log index, and every node applies the committed
//! proposals in log order through [`Lists::apply`]. This module is that state machine and
//! nothing else: no I/O, no clock, no randomness, only ordered maps, so every replica that
//! applies the same log holds the same lists ([`Lists::digest`] compares them) and a snapshot
//! ([`Lists`] is `Serialize`/`Deserialize`) continues exactly like the replica it came from.
//!
//! - [`ids`]: [`ListKind`] and [`SubjectId`]. Subjects are organisations (unified social credit
//!   code), vessels (MMSI, hull number) and vehicle or vessel registrations. There is no kind
//!   for a person, on purpose: the lists never hold people or biometric data.
//! - [`entry`]: [`ListEntry`], [`Command`], [`Proposal`], [`Outcome`] and the static rules
//!   ([`Lists::validate`]), which the operator API runs before proposing.
//! - [`machine`]: [`Lists`], its apply, queries and digest, and its snapshot form.
//! - [`import`]: CSV text to entries for a bulk [`Command::Import`].
//! - [`feed`]: how committed versions travel down the mesh to every node, and the applier that
//!   takes them in order there.
//!
//! Time enters only as numbers: `proposed_ms` in a proposal (is an entry already expired?) and
//! `now_ms` in [`Lists::matches`] (is it in force?). Expired entries stay listed until removed,
//! so the lists show what was decided; they just stop matching.

pub mod entry;
pub mod error;
pub mod feed;
pub mod ids;
pub mod import;
pub mod machine;

pub use entry::{
    Actor, Command, ListEntry, Outcome, Proposal, MAX_AUTHORITY_CHARS, MAX_IMPORT_ROWS, MAX_LEGAL_BASIS_CHARS,
    MAX_NAME_CHARS, MAX_NODE_CHARS, MAX_NOTE_CHARS, MAX_WHO_CHARS, MAX_WHY_CHARS,
};
pub use error::{CsvProblem, SanctionsError, SubjectProblem};
pub use ids::{ListKind, SubjectId, MAX_SUBJECT_CHARS};
pub use import::{parse_import_csv, parse_import_time, IMPORT_COLUMNS, MAX_IMPORT_BYTES};
pub use machine::Lists;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod model_tests;
