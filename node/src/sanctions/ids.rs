//! Which list, and who or what is on it: [`ListKind`] and [`SubjectId`].
//!
//! A subject is an organisation (by its unified social credit code), a vessel (MMSI, hull
//! number) or a vehicle or vessel registration. There is deliberately no kind for a person: the
//! lists are for organisations, vessels and vehicles only, never people or biometric data.
//!
//! Every subject has one canonical form, the one [`SubjectId::parse`] returns (trimmed, ASCII
//! letters upper-cased, an MMSI as a number). The state machine keys entries by that form and
//! refuses any other ([`SubjectId::validate`]), so `91350100m000100y43` and
//! `91350100M000100Y43` can never become two entries for one organisation.

use super::error::{clip, SanctionsError, SubjectProblem};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The two lists the city keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ListKind {
    Red,
    Black,
}

impl ListKind {
    /// Both lists, in key order.
    pub const ALL: [ListKind; 2] = [ListKind::Red, ListKind::Black];

    /// `"red"` or `"black"`: the form used in CSV, URLs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::Red => "red",
            ListKind::Black => "black",
        }
    }
}

impl fmt::Display for ListKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ListKind {
    type Err = SanctionsError;

    /// `red` or `black`, surrounding whitespace and ASCII case ignored (spreadsheets write `Red`).
    fn from_str(s: &str) -> Result<ListKind, SanctionsError> {
        let t = s.trim();
        ListKind::ALL
            .into_iter()
            .find(|k| t.eq_ignore_ascii_case(k.as_str()))
            .ok_or_else(|| SanctionsError::UnknownList(clip(s)))
    }
}

/// Longest hull number or registration, in characters.
pub const MAX_SUBJECT_CHARS: usize = 32;

/// The 31 characters of a unified social credit code, in the order of their values
/// (GB 32100-2015, table 1: digits, then capitals without I, O, S, V and Z).
const USCC_CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Weights of positions 1..=17 (GB 32100-2015, 3^(i-1) mod 31).
const USCC_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// Value of one credit-code character, if it is in the code's alphabet (upper case only).
fn uscc_value(c: char) -> Option<u32> {
    let b = u8::try_from(c).ok()?;
    USCC_CHARSET.iter().position(|&x| x == b).map(|i| i as u32)
}

/// The check character for the first 17 characters of a credit code:
/// `31 - (Σ value·weight mod 31)`, where 31 stands for `0`. `None` if `first17` is not 17
/// characters of the alphabet.
pub(crate) fn uscc_check_character(first17: &str) -> Option<char> {
    if first17.chars().count() != 17 {
        return None;
    }
    let sum = first17.chars().zip(USCC_WEIGHTS).try_fold(0u32, |acc, (c, w)| Some(acc + uscc_value(c)? * w))?;
    let check = (31 - sum % 31) % 31;
    Some(char::from(USCC_CHARSET[check as usize]))
}

/// Control characters and the invisible format characters that would make two registrations
/// look alike but compare unequal (zero-width spaces and joiners, direction marks, BOM).
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

/// Who or what an entry is about. Build with [`SubjectId::parse`] (or `FromStr` on
/// `kind:value`), which validates and normalises.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SubjectId {
    /// Unified social credit code (统一社会信用代码, GB 32100-2015) of an organisation:
    /// 18 characters, the last a check character.
    CreditCode(String),
    /// A vessel's Maritime Mobile Service Identity: 9 digits (leading zeros kept in display).
    Mmsi(u32),
    /// A vessel's hull or IMO-like number: 1 to 32 of A-Z, 0-9 and '-'.
    HullNumber(String),
    /// A vehicle plate (e.g. 鲁K12345) or a vessel's port registration: 1 to 32 characters,
    /// trimmed, ASCII letters upper-cased, without control or invisible characters.
    Registration(String),
}

impl SubjectId {
    /// The kind names accepted by [`SubjectId::parse`], as [`SubjectId::kind_name`] gives them.
    pub const KINDS: [&'static str; 4] = ["credit_code", "mmsi", "hull", "registration"];

    /// Validate and normalise `value` as a subject of `kind` (one of [`SubjectId::KINDS`],
    /// whitespace and ASCII case ignored). Surrounding whitespace of `value` is dropped and ASCII
    /// letters are upper-cased; nothing else is changed.
    pub fn parse(kind: &str, value: &str) -> Result<SubjectId, SanctionsError> {
        let k = kind.trim();
        let name = Self::KINDS
            .into_iter()
            .find(|n| k.eq_ignore_ascii_case(n))
            .ok_or_else(|| SanctionsError::UnknownSubjectKind(clip(kind)))?;
        let invalid = |problem| SanctionsError::InvalidSubject { kind: name, value: clip(value), problem };
        let v = value.trim();
        match name {
            "credit_code" => parse_credit_code(v).map(SubjectId::CreditCode).map_err(invalid),
            "mmsi" => parse_mmsi(v).map(SubjectId::Mmsi).map_err(invalid),
            "hull" => parse_hull(v).map(SubjectId::HullNumber).map_err(invalid),
            _ => parse_registration(v).map(SubjectId::Registration).map_err(invalid),
        }
    }

    /// `"credit_code"`, `"mmsi"`, `"hull"` or `"registration"`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            SubjectId::CreditCode(_) => "credit_code",
            SubjectId::Mmsi(_) => "mmsi",
            SubjectId::HullNumber(_) => "hull",
            SubjectId::Registration(_) => "registration",
        }
    }

    /// The value as text, in the form [`SubjectId::parse`] reads back (an MMSI as 9 digits).
    pub fn value(&self) -> String {
        match self {
            SubjectId::CreditCode(s) | SubjectId::HullNumber(s) | SubjectId::Registration(s) => s.clone(),
            SubjectId::Mmsi(m) => format!("{m:09}"),
        }
    }

    /// Ok if this subject is valid and in canonical form, i.e. what [`SubjectId::parse`] would
    /// return for it. A subject that arrives deserialised (in a proposal) is checked with this,
    /// never normalised silently: every replica must key the entry identically, and the
    /// proposer should learn that it sent a different spelling.
    pub fn validate(&self) -> Result<(), SanctionsError> {
        let value = self.value();
        let canonical = SubjectId::parse(self.kind_name(), &value)?;
        if canonical == *self {
            Ok(())
        } else {
            Err(SanctionsError::InvalidSubject {
                kind: self.kind_name(),
                value: clip(&value),
                problem: SubjectProblem::NotCanonical { canonical: clip(&canonical.value()) },
            })
        }
    }
}

fn parse_credit_code(v: &str) -> Result<String, SubjectProblem> {
    if v.is_empty() {
        return Err(SubjectProblem::Empty);
    }
    let code = v.to_ascii_uppercase();
    let len = code.chars().count();
    if len != 18 {
        return Err(SubjectProblem::CreditCodeLength { len });
    }
    if let Some((i, ch)) = code.chars().enumerate().find(|&(_, c)| uscc_value(c).is_none()) {
        return Err(SubjectProblem::CreditCodeCharacter { position: i + 1, ch });
    }
    // All 18 characters are ASCII now, so byte slicing is safe.
    let expected = uscc_check_character(&code[..17]).ok_or(SubjectProblem::CreditCodeLength { len })?;
    let found = char::from(code.as_bytes()[17]);
    if found != expected {
        return Err(SubjectProblem::CheckCharacter { found, expected });
    }
    Ok(code)
}

fn parse_mmsi(v: &str) -> Result<u32, SubjectProblem> {
    if v.is_empty() {
        return Err(SubjectProblem::Empty);
    }
    if v.len() != 9 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SubjectProblem::MmsiFormat);
    }
    match v.parse::<u32>() {
        Ok(0) => Err(SubjectProblem::MmsiZero),
        Ok(m) => Ok(m),
        Err(_) => Err(SubjectProblem::MmsiFormat),
    }
}

fn parse_hull(v: &str) -> Result<String, SubjectProblem> {
    if v.is_empty() {
        return Err(SubjectProblem::Empty);
    }
    let len = v.chars().count();
    if len > MAX_SUBJECT_CHARS {
        return Err(SubjectProblem::TooLong { len, max: MAX_SUBJECT_CHARS });
    }
    let hull = v.to_ascii_uppercase();
    match hull.chars().find(|&c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')) {
        Some(ch) => Err(SubjectProblem::HullCharacter { ch }),
        None => Ok(hull),
    }
}

fn parse_registration(v: &str) -> Result<String, SubjectProblem> {
    if v.is_empty() {
        return Err(SubjectProblem::Empty);
    }
    if let Some(c) = v.chars().find(|&c| is_invisible(c)) {
        return Err(SubjectProblem::Invisible { code: u32::from(c) });
    }
    let len = v.chars().count();
    if len > MAX_SUBJECT_CHARS {
        return Err(SubjectProblem::TooLong { len, max: MAX_SUBJECT_CHARS });
    }
    Ok(v.to_ascii_uppercase())
}

impl fmt::Display for SubjectId {
    /// `kind:value`, e.g. `mmsi:412345678`, `credit_code:91350100M000100Y43`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectId::CreditCode(s) | SubjectId::HullNumber(s) | SubjectId::Registration(s) => {
                write!(f, "{}:{s}", self.kind_name())
            }
            SubjectId::Mmsi(m) => write!(f, "mmsi:{m:09}"),
        }
    }
}

impl FromStr for SubjectId {
    type Err = SanctionsError;

    /// The inverse of `Display`: `kind:value`, split at the first `:` (a registration may
    /// itself contain colons), then [`SubjectId::parse`].
    fn from_str(s: &str) -> Result<SubjectId, SanctionsError> {
        let (kind, value) = s.split_once(':').ok_or_else(|| SanctionsError::MissingSubjectKind(clip(s)))?;
        SubjectId::parse(kind, value)
    }
}
