//! Loading a watchlist file; the format is described in the parent module's documentation.
//!
//! The reader is streaming and bounded: the whole file is never held in memory, a line longer
//! than the limit is skipped (and reported) without being buffered, and the byte count is
//! checked as it goes, so a file that grows while being read still hits the size cap.

use super::{check_fields, mmsi_key, EntryError, EntryFields, Key, Watchlist};
use crate::api::time::rfc3339;
use crate::clock::DAY_MS;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use thiserror::Error;

/// Bounds applied while loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadLimits {
    /// Largest file accepted, in bytes.
    pub max_file_bytes: u64,
    /// Longest line accepted, in bytes, without its line end.
    pub max_line_bytes: usize,
    /// How many bad lines are described in [`LoadError::BadLines`]; the rest are counted.
    pub max_errors: usize,
    /// The latest expiry a line may give, in ms since the epoch: the node sets it to now plus
    /// `[watchlist] max_expiry_days`. `u64::MAX`: no limit.
    pub latest_expiry_ms: u64,
}

impl LoadLimits {
    /// The default limits, with expiries allowed at most `max_days` after `now_ms`.
    pub fn expiring_within(now_ms: u64, max_days: u32) -> LoadLimits {
        LoadLimits { latest_expiry_ms: now_ms.saturating_add(u64::from(max_days) * DAY_MS), ..LoadLimits::default() }
    }
}

/// The columns of a line, in order, for errors.
const COLUMNS: &str = "kind,subject,list,reason,added_by,expires,authority,legal_basis";
const COLUMN_COUNT: usize = 8;

impl Default for LoadLimits {
    fn default() -> Self {
        Self {
            // 10 million lines of ≈ 130 bytes (with authority and legal basis) is 1.3 GB;
            // leave room above that.
            max_file_bytes: 2 << 30,
            max_line_bytes: 1024,
            max_errors: 100,
            latest_expiry_ms: u64::MAX,
        }
    }
}

/// Why a load failed. Nothing is loaded on any error.
#[derive(Debug)]
pub enum LoadError {
    Io {
        path: String,
        source: io::Error,
    },
    TooLarge {
        path: String,
        cap: u64,
    },
    BadLines {
        path: String,
        /// The first [`LoadLimits::max_errors`] bad lines, in file order.
        errors: Vec<LineError>,
        /// How many lines were bad in all.
        bad_lines: u64,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io { path, source } => write!(f, "{path}: {source}"),
            LoadError::TooLarge { path, cap } => {
                write!(f, "{path}: file is larger than the {cap}-byte limit")
            }
            LoadError::BadLines { path, errors, bad_lines } => {
                write!(f, "{path}: {bad_lines} bad line(s), nothing loaded")?;
                for e in errors {
                    write!(f, "\n  {path}:{}: {}", e.line, e.kind)?;
                }
                let unlisted = bad_lines.saturating_sub(errors.len() as u64);
                if unlisted > 0 {
                    write!(f, "\n  ... and {unlisted} more")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// One bad line: its 1-based number and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: u64,
    pub kind: LineErrorKind,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.kind)
    }
}

/// What is wrong with a line. Quoted input is clipped so errors stay short.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LineErrorKind {
    #[error("line is longer than {0} bytes")]
    TooLong(usize),
    #[error("line is not valid UTF-8")]
    NotUtf8,
    #[error("expected {COLUMN_COUNT} comma-separated fields ({COLUMNS}), found {found}{hint}", found = .0, hint = missing_hint(*.0))]
    FieldCount(usize),
    #[error("unknown subject kind {0:?}: expected plate or mmsi")]
    UnknownKind(String),
    #[error("MMSI {0:?} is not exactly 9 digits")]
    MmsiFormat(String),
    #[error("expires {0:?} is not milliseconds since the epoch, a YYYY-MM-DD date or an RFC 3339 time")]
    BadExpiry(String),
    #[error("expires is required: every listing ends, and the authority renews it")]
    NoExpiry,
    #[error("expires {given} is after {latest}, the latest allowed ([watchlist] max_expiry_days from now); the authority renews a listing rather than ordering a longer one")]
    ExpiryTooLate { given: String, latest: String },
    #[error("{0}")]
    Entry(#[from] EntryError),
}

/// Loads a watchlist file. See the module documentation for the format.
pub fn load_file(path: &Path, limits: &LoadLimits) -> Result<Watchlist, LoadError> {
    let name = path.display().to_string();
    let io_err = |source| LoadError::Io { path: name.clone(), source };
    let mut file = File::open(path).map_err(io_err)?;
    let size = file.metadata().map_err(io_err)?.len();
    if size > limits.max_file_bytes {
        return Err(LoadError::TooLarge { path: name, cap: limits.max_file_bytes });
    }
    // Sizing the table from a newline count first saves a chain of rehashes (each moving
    // every entry to a random place) at a sequential read's cost; the file is then in the
    // page cache for the real pass.
    let lines = count_lines(&mut file, limits.max_file_bytes).map_err(io_err)?;
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let reader = BufReader::with_capacity(1 << 20, file);
    load_lines(reader, &name, limits, usize::try_from(lines).unwrap_or(0))
}

fn count_lines(file: &mut File, cap: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let (mut lines, mut total) = (1u64, 0u64);
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(lines),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        total += n as u64;
        if total > cap {
            // The loading pass reports the size error; stop counting.
            return Ok(0);
        }
    }
}

/// Loads a watchlist from any buffered reader; `name` is used in errors in place of a path.
pub fn load_reader<R: BufRead>(reader: R, name: &str, limits: &LoadLimits) -> Result<Watchlist, LoadError> {
    load_lines(reader, name, limits, 0)
}

fn load_lines<R: BufRead>(
    mut reader: R,
    name: &str,
    limits: &LoadLimits,
    expected_lines: usize,
) -> Result<Watchlist, LoadError> {
    let mut list = Watchlist::new();
    list.reserve(expected_lines);
    let mut buf = Vec::with_capacity(limits.max_line_bytes.min(64 << 10));
    let mut total = 0u64;
    let mut line_no = 0u64;
    let mut errors = Vec::new();
    let mut bad_lines = 0u64;
    loop {
        buf.clear();
        let fit = match read_bounded_line(&mut reader, &mut buf, limits.max_line_bytes, &mut total) {
            Ok(Some(fit)) => fit,
            Ok(None) => break,
            Err(source) => return Err(LoadError::Io { path: name.to_owned(), source }),
        };
        if total > limits.max_file_bytes {
            return Err(LoadError::TooLarge { path: name.to_owned(), cap: limits.max_file_bytes });
        }
        line_no += 1;
        let outcome = if fit {
            // Once a line is bad nothing will be loaded, so later lines are only checked.
            load_line(&mut list, &buf, line_no == 1, bad_lines == 0, limits)
        } else {
            Err(LineErrorKind::TooLong(limits.max_line_bytes))
        };
        if let Err(kind) = outcome {
            bad_lines += 1;
            if errors.len() < limits.max_errors {
                errors.push(LineError { line: line_no, kind });
            }
        }
    }
    if bad_lines > 0 {
        return Err(LoadError::BadLines { path: name.to_owned(), errors, bad_lines });
    }
    list.shrink_to_fit();
    Ok(list)
}

/// Reads one line (without its `\n`) into `buf`. `Ok(None)` at end of input; `Ok(Some(false))`
/// for a line longer than `cap`, whose bytes are consumed but not kept.
fn read_bounded_line<R: BufRead>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
    total: &mut u64,
) -> io::Result<Option<bool>> {
    let mut fit = true;
    let mut any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(any.then_some(fit));
        }
        any = true;
        let newline = available.iter().position(|&b| b == b'\n');
        let chunk = &available[..newline.unwrap_or(available.len())];
        if fit && buf.len() + chunk.len() <= cap {
            buf.extend_from_slice(chunk);
        } else {
            fit = false;
            buf.clear();
        }
        let used = chunk.len() + usize::from(newline.is_some());
        reader.consume(used);
        *total += used as u64;
        if newline.is_some() {
            return Ok(Some(fit));
        }
    }
}

/// Files written before authority, legal basis and expiry were required have 5 or 6 fields.
fn missing_hint(found: usize) -> &'static str {
    if (5..=7).contains(&found) {
        "; every entry now names its expiry, the authority that ordered it and its legal basis"
    } else {
        ""
    }
}

fn load_line(
    list: &mut Watchlist,
    raw: &[u8],
    first: bool,
    insert: bool,
    limits: &LoadLimits,
) -> Result<(), LineErrorKind> {
    let mut bytes = raw.strip_suffix(b"\r").unwrap_or(raw);
    if first {
        bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    }
    let line = std::str::from_utf8(bytes).map_err(|_| LineErrorKind::NotUtf8)?;
    let Some((key, fields)) = parse_line(line)? else {
        return Ok(());
    };
    // The index takes entries without these (replicated from before they were required); a
    // line of the file must name them. Fields come trimmed; `check_fields` checks the rest.
    for (name, value) in [("authority", fields.authority), ("legal_basis", fields.legal_basis)] {
        if value.is_empty() {
            return Err(EntryError::EmptyField(name).into());
        }
    }
    check_fields(&fields)?;
    match fields.expires_ms {
        None => return Err(LineErrorKind::NoExpiry),
        Some(at) if at > limits.latest_expiry_ms => {
            return Err(LineErrorKind::ExpiryTooLate { given: rfc3339(at), latest: rfc3339(limits.latest_expiry_ms) })
        }
        Some(_) => {}
    }
    if insert {
        list.insert_checked(key, fields);
    }
    Ok(())
}

fn parse_line(line: &str) -> Result<Option<(Key, EntryFields<'_>)>, LineErrorKind> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut f = [""; COLUMN_COUNT];
    let mut n = 0usize;
    for part in line.split(',') {
        if let Some(slot) = f.get_mut(n) {
            *slot = part.trim();
        }
        n += 1;
    }
    if n != COLUMN_COUNT {
        return Err(LineErrorKind::FieldCount(n));
    }
    let [kind, subject, list, reason, added_by, expiry, authority, legal_basis] = f;
    let key = if kind.eq_ignore_ascii_case("plate") {
        Key::plate(subject).map_err(EntryError::from)?
    } else if kind.eq_ignore_ascii_case("mmsi") {
        parse_mmsi(subject)?
    } else {
        return Err(LineErrorKind::UnknownKind(clip(kind)));
    };
    let expires_ms = if expiry.is_empty() { None } else { Some(parse_expiry(expiry)?) };
    Ok(Some((key, EntryFields { list, reason, added_by, authority, legal_basis, expires_ms })))
}

fn parse_mmsi(s: &str) -> Result<Key, LineErrorKind> {
    if s.len() != 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LineErrorKind::MmsiFormat(clip(s)));
    }
    let value = s.parse::<u32>().map_err(|_| LineErrorKind::MmsiFormat(clip(s)))?;
    Ok(mmsi_key(value)?)
}

/// Milliseconds since the epoch (digits only), or a date or time as the sanctions import reads
/// them.
fn parse_expiry(s: &str) -> Result<u64, LineErrorKind> {
    let bad = || LineErrorKind::BadExpiry(clip(s));
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().map_err(|_| bad());
    }
    crate::sanctions::parse_import_time(s).map_err(|_| bad())
}

/// At most 40 characters of offending input, so one bad line cannot make a huge error.
fn clip(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}
