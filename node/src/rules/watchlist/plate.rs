//! Subject keys: a normalised plate or an MMSI packed into one fixed 24-byte value.
//!
//! Why a fixed array: the index holds millions of entries, and a heap `String` per plate would
//! cost a pointer, a length, a capacity and an allocation (≈ 50 bytes) each; a lookup would also
//! have to allocate to normalise. Real plates are short (a Chinese plate is one 3-byte province
//! character plus 6-7 ASCII characters, 10 bytes), so 22 bytes of UTF-8 is ample, and a lookup
//! normalises straight into a stack value.

use std::hash::{Hash, Hasher};

/// Longest plate kept, in UTF-8 bytes after normalisation (e.g. 22 ASCII characters, or 7 CJK
/// characters plus one ASCII character).
pub const MAX_PLATE_BYTES: usize = 22;

const KEY_BYTES: usize = 24;
const TAG_PLATE: u8 = 1;
const TAG_MMSI: u8 = 2;

/// Byte 0: kind tag; byte 1: length of the payload; bytes 2..: payload (plate UTF-8, or the
/// MMSI little-endian). Unused bytes stay zero so equality and hashing are plain byte compares.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Key([u8; KEY_BYTES]);

/// Why a plate cannot be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PlateProblem {
    Empty,
    TooLong,
    Control(char),
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.as_plate(), self.as_mmsi()) {
            (Some(p), _) => write!(f, "Plate({p})"),
            (None, Some(m)) => write!(f, "Mmsi({m:09})"),
            (None, None) => write!(f, "Key({:?})", &self.0),
        }
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Three words instead of 24 single bytes plus a length prefix: fewer hasher rounds.
        for i in 0..KEY_BYTES / 8 {
            state.write_u64(word(&self.0, i));
        }
    }
}

fn word(bytes: &[u8; KEY_BYTES], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
    u64::from_le_bytes(w)
}

/// Folds one character of a plate as read by a camera or typed by an operator: `None` drops it
/// (spaces and the separators people and recognisers put between groups), otherwise the
/// character to keep. Full-width ASCII forms (common in CJK text input) fold to ASCII first.
fn fold(c: char) -> Option<char> {
    let c = match c as u32 {
        // U+FF01..U+FF5E are full-width forms of U+0021..U+007E.
        u @ 0xFF01..=0xFF5E => char::from_u32(u - 0xFEE0).unwrap_or(c),
        _ => c,
    };
    if c.is_whitespace() || matches!(c, '-' | '.' | '·' | '•' | '・' | '‧') {
        return None;
    }
    Some(c.to_ascii_uppercase())
}

impl Key {
    /// Normalises `raw` for storing: rejects control characters, empty and over-long plates.
    pub(super) fn plate(raw: &str) -> Result<Key, PlateProblem> {
        Self::encode_plate(raw, true)
    }

    /// Normalises `raw` for a lookup. `None` means no stored plate can equal it.
    pub(super) fn plate_lookup(raw: &str) -> Option<Key> {
        Self::encode_plate(raw, false).ok()
    }

    fn encode_plate(raw: &str, strict: bool) -> Result<Key, PlateProblem> {
        let mut bytes = [0u8; KEY_BYTES];
        bytes[0] = TAG_PLATE;
        let mut len = 0usize;
        for c in raw.chars() {
            let Some(c) = fold(c) else { continue };
            if strict && c.is_control() {
                return Err(PlateProblem::Control(c));
            }
            let n = c.len_utf8();
            if len + n > MAX_PLATE_BYTES {
                return Err(PlateProblem::TooLong);
            }
            c.encode_utf8(&mut bytes[2 + len..2 + len + n]);
            len += n;
        }
        if len == 0 {
            return Err(PlateProblem::Empty);
        }
        // len <= MAX_PLATE_BYTES (22), so it fits a byte.
        bytes[1] = len as u8;
        Ok(Key(bytes))
    }

    pub(super) fn mmsi(mmsi: u32) -> Key {
        let mut bytes = [0u8; KEY_BYTES];
        bytes[0] = TAG_MMSI;
        bytes[1] = 4;
        bytes[2..6].copy_from_slice(&mmsi.to_le_bytes());
        Key(bytes)
    }

    /// The normalised plate, if this key is a plate.
    pub(super) fn as_plate(&self) -> Option<&str> {
        if self.0[0] != TAG_PLATE {
            return None;
        }
        let len = usize::from(self.0[1]).min(MAX_PLATE_BYTES);
        std::str::from_utf8(&self.0[2..2 + len]).ok()
    }

    pub(super) fn as_mmsi(&self) -> Option<u32> {
        if self.0[0] != TAG_MMSI {
            return None;
        }
        let mut w = [0u8; 4];
        w.copy_from_slice(&self.0[2..6]);
        Some(u32::from_le_bytes(w))
    }
}

/// The normalised form of a plate as the index compares it, or `None` if it would not be
/// stored (empty, longer than [`MAX_PLATE_BYTES`], or containing control characters).
pub fn normalise_plate(raw: &str) -> Option<String> {
    Key::plate(raw).ok()?.as_plate().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Option<String> {
        normalise_plate(s)
    }

    #[test]
    fn province_prefix_and_separators() {
        assert_eq!(norm("鲁K12345").as_deref(), Some("鲁K12345"));
        assert_eq!(norm("鲁k 123-45"), norm("鲁K12345"));
        assert_eq!(norm("鲁K·12345"), norm("鲁K12345"));
        assert_eq!(norm(" 鲁.k.1 2 3 4 5 "), norm("鲁K12345"));
        assert_eq!(norm("ab-123"), Some("AB123".to_owned()));
    }

    #[test]
    fn full_width_and_ideographic_space_fold() {
        assert_eq!(norm("鲁Ｋ１２３４５"), norm("鲁K12345"));
        assert_eq!(norm("鲁K\u{3000}12345"), norm("鲁K12345"));
    }

    #[test]
    fn non_ascii_letters_are_kept_as_written() {
        // Only ASCII is case-folded: the province character must survive untouched.
        assert_ne!(norm("鲁K12345"), norm("京K12345"));
        assert_eq!(norm("粤Z1234港").as_deref(), Some("粤Z1234港"));
    }

    #[test]
    fn rejects_empty_long_and_control() {
        assert_eq!(Key::plate(" - . "), Err(PlateProblem::Empty));
        assert_eq!(Key::plate(&"A".repeat(23)), Err(PlateProblem::TooLong));
        assert!(Key::plate(&"A".repeat(22)).is_ok());
        assert_eq!(Key::plate("AB\u{7}1"), Err(PlateProblem::Control('\u{7}')));
        // A CJK character that would straddle the limit is rejected, never split.
        let s = format!("{}鲁", "A".repeat(20));
        assert_eq!(Key::plate(&s), Err(PlateProblem::TooLong));
    }

    #[test]
    fn mmsi_and_plate_keys_never_collide() {
        let m = Key::mmsi(412_345_678);
        assert_eq!(m.as_mmsi(), Some(412_345_678));
        assert_eq!(m.as_plate(), None);
        let p = Key::plate("412345678").ok();
        assert!(p.is_some_and(|p| p != m && p.as_mmsi().is_none()));
    }
}
