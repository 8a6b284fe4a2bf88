//! What the raft log carries: [`Proposal`]s of [`Command`]s on [`ListEntry`]s, and the rules
//! that every command must pass before it changes anything.
//!
//! Validation here is static: it depends on the proposal alone (including its `proposed_ms`),
//! never on the lists, so the operator API can run it before proposing and answer a 400 at once,
//! and every replica reaches the same verdict when it applies the committed entry. Checks that
//! need the lists (already listed, not listed, already revoked) are in [`super::Lists::apply`].

use super::error::{clip, SanctionsError};
use super::ids::{ListKind, SubjectId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest entry name (organisation or vessel), in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest issuing authority, in characters.
pub const MAX_AUTHORITY_CHARS: usize = 200;
/// Longest legal basis, in characters.
pub const MAX_LEGAL_BASIS_CHARS: usize = 500;
/// Longest note (the grounds of a listing), in characters.
pub const MAX_NOTE_CHARS: usize = 1000;
/// Longest actor identity, in characters.
pub const MAX_WHO_CHARS: usize = 200;
/// Longest actor reason, in characters.
pub const MAX_WHY_CHARS: usize = 1000;
/// Longest node name in a certificate revocation (a DNS name's limit).
pub const MAX_NODE_CHARS: usize = 253;
/// Most rows in one [`Command::Import`] (and in one CSV import).
pub const MAX_IMPORT_ROWS: usize = 100_000;

/// One listing: a subject on a list, with who decided it, on what basis, and for how long.
///
/// The note holds the grounds of the listing (the violation, the decision's number), never data
/// about people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    pub list: ListKind,
    pub subject: SubjectId,
    /// Organisation or vessel name, at most [`MAX_NAME_CHARS`]; may be empty (the subject
    /// identifies the entry).
    pub name: String,
    /// Issuing authority, required, at most [`MAX_AUTHORITY_CHARS`].
    pub authority: String,
    /// The law or regulation the listing rests on, required, at most [`MAX_LEGAL_BASIS_CHARS`].
    pub legal_basis: String,
    /// Unix milliseconds from which the entry is in force.
    pub effective_ms: u64,
    /// Unix milliseconds at which the entry stops being in force; after `effective_ms`.
    pub expires_ms: u64,
    /// Grounds, at most [`MAX_NOTE_CHARS`], may be empty and span lines.
    pub note: String,
}

impl ListEntry {
    /// The rules an entry must pass on its own: a valid canonical subject, required fields
    /// present, every field within its bound and free of control characters, and
    /// `expires_ms > effective_ms`. Does not look at any clock: see [`ListEntry::validate_at`].
    pub fn validate(&self) -> Result<(), SanctionsError> {
        self.subject.validate()?;
        check_text("name", &self.name, MAX_NAME_CHARS, Need::Optional, Lines::One)?;
        check_text("authority", &self.authority, MAX_AUTHORITY_CHARS, Need::Required, Lines::One)?;
        check_text("legal_basis", &self.legal_basis, MAX_LEGAL_BASIS_CHARS, Need::Required, Lines::One)?;
        check_period(self.effective_ms, self.expires_ms)?;
        check_text("note", &self.note, MAX_NOTE_CHARS, Need::Optional, Lines::Many)
    }

    /// [`ListEntry::validate`], and the entry has not already expired at `proposed_ms` (a listing
    /// that was over before anyone proposed it would only clutter the lists).
    pub fn validate_at(&self, proposed_ms: u64) -> Result<(), SanctionsError> {
        self.validate()?;
        if self.expires_ms <= proposed_ms {
            return Err(SanctionsError::AlreadyExpired { expires_ms: self.expires_ms, proposed_ms });
        }
        Ok(())
    }

    /// In force at `now_ms`: `effective_ms <= now_ms < expires_ms`.
    pub fn in_force(&self, now_ms: u64) -> bool {
        self.effective_ms <= now_ms && now_ms < self.expires_ms
    }
}

/// Who proposed a change and why, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Required, at most [`MAX_WHO_CHARS`].
    pub who: String,
    /// Required, at most [`MAX_WHY_CHARS`], may span lines. For a removal it is the
    /// credit-repair reason.
    pub why: String,
}

/// A change to the lists, as carried in one raft log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// List a subject; refused if `(list, subject)` is already listed (amend it instead).
    Add { entry: ListEntry },
    /// Replace every field of a listed `(list, subject)`; refused if it is not listed.
    Amend { entry: ListEntry },
    /// Take a subject off a list (credit repair); the actor's why is the reason. Refused if it is
    /// not listed.
    Remove { list: ListKind, subject: SubjectId },
    /// Many rows in one log entry, each added or replacing what is listed. All or nothing: one
    /// invalid row refuses the command, naming the first bad row.
    Import { entries: Vec<ListEntry> },
    /// Revoke a mesh node's certificate; refused if that fingerprint is already revoked.
    RevokeCertificate {
        node: String,
        /// Lowercase hex SHA-256 of the certificate's DER, 64 characters.
        fingerprint: String,
    },
}

impl Command {
    /// `"add"`, `"amend"`, `"remove"`, `"import"` or `"revoke_certificate"`, for audit records
    /// and metric labels.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Add { .. } => "add",
            Command::Amend { .. } => "amend",
            Command::Remove { .. } => "remove",
            Command::Import { .. } => "import",
            Command::RevokeCertificate { .. } => "revoke_certificate",
        }
    }
}

/// A command with its author and the author's clock. `proposed_ms` is what makes expiry checks
/// deterministic: every replica judges "already expired" against the same committed number,
/// never against its own clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub command: Command,
    pub actor: Actor,
    pub proposed_ms: u64,
}

impl Proposal {
    /// Every static rule (see the module docs); [`super::Lists::validate`] is this.
    pub fn validate(&self) -> Result<(), SanctionsError> {
        check_text("actor.who", &self.actor.who, MAX_WHO_CHARS, Need::Required, Lines::One)?;
        if matches!(self.command, Command::Remove { .. }) && self.actor.why.trim().is_empty() {
            return Err(SanctionsError::MissingRemovalReason);
        }
        check_text("actor.why", &self.actor.why, MAX_WHY_CHARS, Need::Required, Lines::Many)?;
        match &self.command {
            Command::Add { entry } | Command::Amend { entry } => entry.validate_at(self.proposed_ms),
            Command::Remove { list: _, subject } => subject.validate(),
            Command::Import { entries } => validate_import(entries, self.proposed_ms),
            Command::RevokeCertificate { node, fingerprint } => {
                check_text("node", node, MAX_NODE_CHARS, Need::Required, Lines::One)?;
                check_fingerprint(fingerprint)
            }
        }
    }
}

/// What applying a committed proposal did. Both carry the version (log index) the lists are at
/// afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// `changed` counts entries added, replaced with different contents or removed, and
    /// certificates revoked; an amend or import that restates what is listed changes 0.
    Applied { version: u64, changed: u32 },
    /// Nothing changed but the version; `reason` is the [`SanctionsError`]'s message.
    Refused { version: u64, reason: String },
}

impl Outcome {
    /// The version the lists are at after this outcome.
    pub fn version(&self) -> u64 {
        match self {
            Outcome::Applied { version, .. } | Outcome::Refused { version, .. } => *version,
        }
    }

    pub fn is_applied(&self) -> bool {
        matches!(self, Outcome::Applied { .. })
    }
}

fn validate_import(entries: &[ListEntry], proposed_ms: u64) -> Result<(), SanctionsError> {
    if entries.is_empty() {
        return Err(SanctionsError::EmptyImport);
    }
    if entries.len() > MAX_IMPORT_ROWS {
        return Err(SanctionsError::TooManyRows { rows: entries.len(), max: MAX_IMPORT_ROWS });
    }
    let mut seen: BTreeMap<(ListKind, &SubjectId), usize> = BTreeMap::new();
    for (index, entry) in entries.iter().enumerate() {
        entry.validate_at(proposed_ms).map_err(|e| SanctionsError::ImportRow { index, problem: Box::new(e) })?;
        if let Some(&first) = seen.get(&(entry.list, &entry.subject)) {
            return Err(SanctionsError::DuplicateImportRow {
                index,
                first,
                list: entry.list,
                subject: entry.subject.clone(),
            });
        }
        seen.insert((entry.list, &entry.subject), index);
    }
    Ok(())
}

/// Whether a text field must have something other than whitespace in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    Required,
    Optional,
}

/// Whether a text field may hold line feeds and tabs (free text) or not (names, identities).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lines {
    One,
    Many,
}

/// The common rules for text fields: required ones non-blank, at most `max` characters, no
/// control characters (line feed and tab allowed in free text).
pub(crate) fn check_text(
    field: &'static str,
    value: &str,
    max: usize,
    need: Need,
    lines: Lines,
) -> Result<(), SanctionsError> {
    if need == Need::Required && value.trim().is_empty() {
        return Err(SanctionsError::EmptyField { field });
    }
    let len = value.chars().count();
    if len > max {
        return Err(SanctionsError::TooLong { field, len, max });
    }
    let allowed = |c: char| lines == Lines::Many && (c == '\n' || c == '\t');
    match value.chars().find(|&c| c.is_control() && !allowed(c)) {
        Some(c) => Err(SanctionsError::ControlCharacter { field, code: u32::from(c) }),
        None => Ok(()),
    }
}

pub(crate) fn check_period(effective_ms: u64, expires_ms: u64) -> Result<(), SanctionsError> {
    if expires_ms <= effective_ms {
        return Err(SanctionsError::ExpiresNotAfterEffective { effective_ms, expires_ms });
    }
    Ok(())
}

/// 64 lowercase hex digits: one spelling per certificate, so the revoked set cannot hold the
/// same certificate twice under two spellings.
fn check_fingerprint(fingerprint: &str) -> Result<(), SanctionsError> {
    let ok = fingerprint.len() == 64 && fingerprint.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok {
        Ok(())
    } else {
        Err(SanctionsError::BadFingerprint(clip(fingerprint)))
    }
}
