//! Bulk import from CSV: text in, [`ListEntry`] rows out, ready for one [`super::Command::Import`].
//!
//! # Format
//! RFC 4180: fields separated by commas, records by CRLF or LF; a field may be quoted with `"`,
//! and then holds commas, line breaks and quotes written twice (`""`). A UTF-8 byte-order mark
//! at the start is skipped, blank lines are skipped, and every cell is trimmed.
//!
//! The first record is the header and names the nine columns, in any order, each once:
//!
//! ```text
//! list,subject_kind,subject,name,authority,legal_basis,effective,expires,note
//! black,credit_code,91350100M000100Y43,"Example Trading Co., Ltd.",City Market Regulation Bureau,Regulation 12 art. 3,2026-01-01,2027-01-01T00:00:00+08:00,"fraud; decision ""2025-17"""
//! ```
//!
//! - `list`: `red` or `black`; `subject_kind`: `credit_code`, `mmsi`, `hull` or `registration`
//!   (see [`SubjectId::parse`]).
//! - `effective`, `expires`: RFC 3339 (`2026-01-31T08:00:00+08:00`) or `YYYY-MM-DD`, read as
//!   midnight UTC; both required, `expires` after `effective`.
//! - The other cells follow the rules of [`ListEntry::validate`].
//! - A `(list, subject)` may appear once per file.
//!
//! Parsing is all or nothing and stops at the first problem, naming its line (counted from 1,
//! the header being line 1, with line breaks inside quoted cells counted) and, for a cell, its
//! column number and name. Bounded: at most [`MAX_IMPORT_BYTES`] of text and
//! [`MAX_IMPORT_ROWS`] data rows. Whether an entry has already expired is not judged here: that
//! depends on when the import is proposed, and [`super::Lists::validate`] checks it.
//!
//! The reader is written out here rather than taken from a crate: the rules above are small, it
//! adds no dependency to the node, and errors need the line where the offending cell starts
//! (a quoted cell before it may span lines), not just the record's.

use super::entry::{
    check_period, check_text, Lines, ListEntry, Need, MAX_AUTHORITY_CHARS, MAX_IMPORT_ROWS, MAX_LEGAL_BASIS_CHARS,
    MAX_NAME_CHARS, MAX_NOTE_CHARS,
};
use super::error::{clip, CsvProblem, SanctionsError};
use super::ids::{ListKind, SubjectId};
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime};

/// Largest CSV text accepted: 32 MiB.
pub const MAX_IMPORT_BYTES: usize = 32 << 20;

/// The header's column names, in the order of the indices below.
pub const IMPORT_COLUMNS: [&str; 9] =
    ["list", "subject_kind", "subject", "name", "authority", "legal_basis", "effective", "expires", "note"];

const LIST: usize = 0;
const SUBJECT_KIND: usize = 1;
const SUBJECT: usize = 2;
const NAME: usize = 3;
const AUTHORITY: usize = 4;
const LEGAL_BASIS: usize = 5;
const EFFECTIVE: usize = 6;
const EXPIRES: usize = 7;
const NOTE: usize = 8;

/// Parse CSV text (see the module docs) into entries, in file order.
pub fn parse_import_csv(text: &str) -> Result<Vec<ListEntry>, SanctionsError> {
    if text.len() > MAX_IMPORT_BYTES {
        return Err(SanctionsError::CsvTooLarge { len: text.len(), max: MAX_IMPORT_BYTES });
    }
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut reader = Reader { text, pos: 0, line: 1 };
    let header = reader.record()?.ok_or(SanctionsError::CsvLine { line: 1, problem: CsvProblem::NoHeader })?;
    let columns = header_columns(&header)?;
    let mut entries = Vec::new();
    let mut first_line: BTreeMap<(ListKind, SubjectId), usize> = BTreeMap::new();
    while let Some(record) = reader.record()? {
        if entries.len() == MAX_IMPORT_ROWS {
            return Err(SanctionsError::CsvTooManyRows { max: MAX_IMPORT_ROWS });
        }
        if record.fields.len() != IMPORT_COLUMNS.len() {
            return Err(SanctionsError::CsvLine {
                line: record.line,
                problem: CsvProblem::FieldCount { expected: IMPORT_COLUMNS.len(), found: record.fields.len() },
            });
        }
        let entry = row_entry(&record, &columns)?;
        if let Some(&first) = first_line.get(&(entry.list, entry.subject.clone())) {
            return Err(SanctionsError::CsvLine {
                line: record.line,
                problem: CsvProblem::DuplicateRow { list: entry.list, subject: entry.subject, first_line: first },
            });
        }
        first_line.insert((entry.list, entry.subject.clone()), record.line);
        entries.push(entry);
    }
    Ok(entries)
}

/// Unix milliseconds of an RFC 3339 time, or of midnight UTC of a `YYYY-MM-DD` date.
pub fn parse_import_time(s: &str) -> Result<u64, SanctionsError> {
    let s = s.trim();
    let bad = || SanctionsError::BadDate(clip(s));
    let nanos = if let Some(date) = parse_plain_date(s) {
        date.midnight().assume_utc().unix_timestamp_nanos()
    } else {
        OffsetDateTime::parse(s, &Rfc3339).map_err(|_| bad())?.unix_timestamp_nanos()
    };
    if nanos < 0 {
        return Err(SanctionsError::DateBeforeEpoch(clip(s)));
    }
    u64::try_from(nanos / 1_000_000).map_err(|_| bad())
}

/// `YYYY-MM-DD` exactly (10 characters), if it names a real day.
fn parse_plain_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !digits(0..4) || !digits(5..7) || !digits(8..10) {
        return None;
    }
    let year: i32 = s[0..4].parse().ok()?;
    let month = Month::try_from(s[5..7].parse::<u8>().ok()?).ok()?;
    let day: u8 = s[8..10].parse().ok()?;
    Date::from_calendar_date(year, month, day).ok()
}

/// Where each of [`IMPORT_COLUMNS`] is in a record.
fn header_columns(header: &Record) -> Result<[usize; 9], SanctionsError> {
    let line = header.line;
    let mut at: [Option<usize>; 9] = [None; 9];
    for (i, field) in header.fields.iter().enumerate() {
        let name = field.text.trim();
        let Some(c) = IMPORT_COLUMNS.iter().position(|n| name.eq_ignore_ascii_case(n)) else {
            return Err(SanctionsError::CsvLine { line, problem: CsvProblem::UnknownColumn(clip(name)) });
        };
        if at[c].replace(i).is_some() {
            return Err(SanctionsError::CsvLine { line, problem: CsvProblem::DuplicateColumn(clip(name)) });
        }
    }
    let mut columns = [0; 9];
    for (c, slot) in at.iter().enumerate() {
        columns[c] =
            slot.ok_or(SanctionsError::CsvLine { line, problem: CsvProblem::MissingColumn(IMPORT_COLUMNS[c]) })?;
    }
    Ok(columns)
}

/// One data record as an entry, each cell checked in place so its error can name it.
fn row_entry(record: &Record, columns: &[usize; 9]) -> Result<ListEntry, SanctionsError> {
    let cell = |c: usize| record.fields[columns[c]].text.trim();
    let fail = |c: usize, problem: SanctionsError| SanctionsError::CsvField {
        line: record.fields[columns[c]].line,
        column: columns[c] + 1,
        name: IMPORT_COLUMNS[c],
        problem: Box::new(problem),
    };
    let text = |c: usize, max: usize, need: Need, lines: Lines| {
        check_text(IMPORT_COLUMNS[c], cell(c), max, need, lines).map_err(|e| fail(c, e)).map(|()| cell(c).to_owned())
    };

    let list = cell(LIST).parse::<ListKind>().map_err(|e| fail(LIST, e))?;
    let subject = SubjectId::parse(cell(SUBJECT_KIND), cell(SUBJECT)).map_err(|e| match e {
        SanctionsError::UnknownSubjectKind(_) => fail(SUBJECT_KIND, e),
        _ => fail(SUBJECT, e),
    })?;
    let name = text(NAME, MAX_NAME_CHARS, Need::Optional, Lines::One)?;
    let authority = text(AUTHORITY, MAX_AUTHORITY_CHARS, Need::Required, Lines::One)?;
    let legal_basis = text(LEGAL_BASIS, MAX_LEGAL_BASIS_CHARS, Need::Required, Lines::One)?;
    let effective_ms = parse_import_time(cell(EFFECTIVE)).map_err(|e| fail(EFFECTIVE, e))?;
    let expires_ms = parse_import_time(cell(EXPIRES)).map_err(|e| fail(EXPIRES, e))?;
    check_period(effective_ms, expires_ms).map_err(|e| fail(EXPIRES, e))?;
    let note = text(NOTE, MAX_NOTE_CHARS, Need::Optional, Lines::Many)?;
    Ok(ListEntry { list, subject, name, authority, legal_basis, effective_ms, expires_ms, note })
}

/// One record: the line it starts on, and its fields.
struct Record {
    line: usize,
    fields: Vec<Field>,
}

/// One field's text (quotes removed, `""` undone, CRLF inside quotes made LF) and the line it
/// starts on.
struct Field {
    line: usize,
    text: String,
}

/// What ended a field.
enum End {
    Comma,
    Record,
}

/// An RFC 4180 reader over the whole text, keeping count of lines.
struct Reader<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

impl Reader<'_> {
    /// The next record, skipping blank lines; `None` at the end of the text.
    fn record(&mut self) -> Result<Option<Record>, SanctionsError> {
        loop {
            let rest = &self.text.as_bytes()[self.pos..];
            if rest.is_empty() {
                return Ok(None);
            }
            let blank = match rest {
                [b'\n', ..] => 1,
                [b'\r', b'\n', ..] => 2,
                _ => break,
            };
            self.pos += blank;
            self.line += 1;
        }
        let line = self.line;
        let mut fields = Vec::new();
        loop {
            let (field, end) = self.field()?;
            fields.push(field);
            if let End::Record = end {
                return Ok(Some(Record { line, fields }));
            }
        }
    }

    fn field(&mut self) -> Result<(Field, End), SanctionsError> {
        let line = self.line;
        let bytes = self.text.as_bytes();
        if bytes.get(self.pos) != Some(&b'"') {
            let start = self.pos;
            loop {
                match bytes.get(self.pos) {
                    None => return Ok((Field { line, text: self.text[start..].to_owned() }, End::Record)),
                    Some(b',') => {
                        let text = self.text[start..self.pos].to_owned();
                        self.pos += 1;
                        return Ok((Field { line, text }, End::Comma));
                    }
                    Some(b'"') => {
                        return Err(SanctionsError::CsvLine { line, problem: CsvProblem::QuoteInUnquotedField })
                    }
                    Some(b'\n' | b'\r') => {
                        let text = self.text[start..self.pos].to_owned();
                        self.end_of_line()?;
                        return Ok((Field { line, text }, End::Record));
                    }
                    Some(_) => self.pos += 1,
                }
            }
        }
        self.pos += 1;
        let mut text = String::new();
        loop {
            let Some(i) = self.text[self.pos..].find('"') else {
                return Err(SanctionsError::CsvLine { line, problem: CsvProblem::UnterminatedQuote });
            };
            let chunk = &self.text[self.pos..self.pos + i];
            self.line += chunk.bytes().filter(|&b| b == b'\n').count();
            text.push_str(chunk);
            self.pos += i + 1;
            if bytes.get(self.pos) == Some(&b'"') {
                text.push('"');
                self.pos += 1;
                continue;
            }
            break;
        }
        let field = Field { line, text: text.replace("\r\n", "\n") };
        match bytes.get(self.pos) {
            None => Ok((field, End::Record)),
            Some(b',') => {
                self.pos += 1;
                Ok((field, End::Comma))
            }
            Some(b'\n' | b'\r') => {
                self.end_of_line()?;
                Ok((field, End::Record))
            }
            Some(_) => {
                let c = self.text[self.pos..].chars().next().unwrap_or('\u{FFFD}');
                Err(SanctionsError::CsvLine { line: self.line, problem: CsvProblem::AfterClosingQuote(c) })
            }
        }
    }

    /// Consume LF or CRLF at `pos`.
    fn end_of_line(&mut self) -> Result<(), SanctionsError> {
        match &self.text.as_bytes()[self.pos..] {
            [b'\n', ..] => self.pos += 1,
            [b'\r', b'\n', ..] => self.pos += 2,
            _ => return Err(SanctionsError::CsvLine { line: self.line, problem: CsvProblem::BareCarriageReturn }),
        }
        self.line += 1;
        Ok(())
    }
}
