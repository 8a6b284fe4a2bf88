//! Why a command, a subject or an import was refused. Every message names the field, row or
//! line and column, so the operator API can hand it back as-is and a person can fix the input.

use super::ids::{ListKind, SubjectId};

/// Longest piece of offending input quoted back in an error (characters); the rest is elided
/// so a 32 MiB cell cannot make a 32 MiB error message.
const QUOTE_CHARS: usize = 40;

/// Quote at most [`QUOTE_CHARS`] characters of `s`.
pub(crate) fn clip(s: &str) -> String {
    match s.char_indices().nth(QUOTE_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

/// Everything the sanctions module refuses, typed so callers can map it (a 400 for any of the
/// validation variants, a 409 for the state-dependent ones) and tests can match on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SanctionsError {
    #[error("unknown list {0:?}: expected \"red\" or \"black\"")]
    UnknownList(String),
    #[error("unknown subject kind {0:?}: expected credit_code, mmsi, hull or registration")]
    UnknownSubjectKind(String),
    #[error("subject {0:?} names no kind: expected kind:value, e.g. mmsi:412345678")]
    MissingSubjectKind(String),
    #[error("{kind} {value:?} is invalid: {problem}")]
    InvalidSubject { kind: &'static str, value: String, problem: SubjectProblem },
    #[error("{field} is empty")]
    EmptyField { field: &'static str },
    #[error("{field} has {len} characters; at most {max} are allowed")]
    TooLong { field: &'static str, len: usize, max: usize },
    #[error("{field} contains the control character U+{code:04X}")]
    ControlCharacter { field: &'static str, code: u32 },
    #[error("expires_ms {expires_ms} is not after effective_ms {effective_ms}")]
    ExpiresNotAfterEffective { effective_ms: u64, expires_ms: u64 },
    #[error("the entry has already expired: expires_ms {expires_ms} is not after proposed_ms {proposed_ms}")]
    AlreadyExpired { expires_ms: u64, proposed_ms: u64 },
    #[error("a removal (credit repair) needs its reason in the actor's why")]
    MissingRemovalReason,
    #[error("an import needs at least one row")]
    EmptyImport,
    #[error("an import has {rows} rows; at most {max} are allowed")]
    TooManyRows { rows: usize, max: usize },
    /// `index` counts rows of [`super::Command::Import`] from 0.
    #[error("import row {index}: {problem}")]
    ImportRow { index: usize, problem: Box<SanctionsError> },
    #[error("import row {index} repeats {list} {subject} of row {first}")]
    DuplicateImportRow { index: usize, first: usize, list: ListKind, subject: SubjectId },
    #[error(
        "certificate fingerprint {0:?} is not 64 lowercase hexadecimal digits (the SHA-256 of the certificate's DER)"
    )]
    BadFingerprint(String),
    #[error("the {list} list already has {subject}; amend it instead")]
    AlreadyListed { list: ListKind, subject: SubjectId },
    #[error("the {list} list has no {subject}")]
    NotListed { list: ListKind, subject: SubjectId },
    #[error("certificate {fingerprint} was already revoked at version {version}")]
    AlreadyRevoked { fingerprint: String, version: u64 },
    #[error("version {version} is not after the last applied version {current}")]
    StaleVersion { version: u64, current: u64 },
    #[error("{0:?} is not a date: expected RFC 3339 (e.g. 2026-01-31T08:00:00+08:00) or YYYY-MM-DD (UTC midnight)")]
    BadDate(String),
    #[error("{0:?} is before 1970-01-01T00:00:00Z")]
    DateBeforeEpoch(String),
    #[error("the CSV text is {len} bytes; at most {max} are allowed")]
    CsvTooLarge { len: usize, max: usize },
    #[error("the CSV text has more than {max} data rows")]
    CsvTooManyRows { max: usize },
    /// A problem with a whole line (structure, header). Lines count from 1, the header's first.
    #[error("CSV line {line}: {problem}")]
    CsvLine { line: usize, problem: CsvProblem },
    /// A problem with one cell. Columns count from 1; `name` is the column's header.
    #[error("CSV line {line}, column {column} ({name}): {problem}")]
    CsvField { line: usize, column: usize, name: &'static str, problem: Box<SanctionsError> },
}

/// What is wrong with a subject's value, per its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectProblem {
    #[error("it is empty")]
    Empty,
    #[error("it has {len} characters; a unified social credit code has 18")]
    CreditCodeLength { len: usize },
    #[error("character {position} ({ch:?}) is not allowed: a credit code uses 0-9 and A-Z without I, O, S, V and Z")]
    CreditCodeCharacter { position: usize, ch: char },
    #[error("the check character is {found:?}; GB 32100-2015 gives {expected:?} for the first 17")]
    CheckCharacter { found: char, expected: char },
    #[error("an MMSI is exactly 9 digits")]
    MmsiFormat,
    #[error("000000000 is a transponder placeholder, not an MMSI")]
    MmsiZero,
    #[error("it has {len} characters; at most {max} are allowed")]
    TooLong { len: usize, max: usize },
    #[error("character {ch:?} is not allowed: a hull number uses A-Z, 0-9 and '-'")]
    HullCharacter { ch: char },
    #[error("it contains the control or invisible character U+{code:04X}")]
    Invisible { code: u32 },
    #[error("it is not in canonical form (that is {canonical:?}); build subjects with SubjectId::parse")]
    NotCanonical { canonical: String },
}

/// What is wrong with the structure of a CSV line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvProblem {
    #[error("there is no header row")]
    NoHeader,
    #[error("the header has no column {0:?}")]
    MissingColumn(&'static str),
    #[error("the header names column {0:?} twice")]
    DuplicateColumn(String),
    #[error("the header names unknown column {0:?}; the columns are list, subject_kind, subject, name, authority, legal_basis, effective, expires, note")]
    UnknownColumn(String),
    #[error("expected {expected} fields, found {found}")]
    FieldCount { expected: usize, found: usize },
    #[error("a quoted field starting here is never closed")]
    UnterminatedQuote,
    #[error("a quote inside an unquoted field (quote the whole field and double the quote)")]
    QuoteInUnquotedField,
    #[error("{0:?} after a closing quote (expected a comma or the end of the line)")]
    AfterClosingQuote(char),
    #[error("a carriage return not followed by a line feed")]
    BareCarriageReturn,
    #[error("this row repeats {list} {subject} of line {first_line}")]
    DuplicateRow { list: ListKind, subject: SubjectId, first_line: usize },
}
