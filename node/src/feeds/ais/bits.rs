//! The six-bit armoring of AIS payloads: validation, and bit-field extraction read straight
//! from the ASCII payload bytes. Nothing is unpacked into a bit vector and nothing allocates,
//! which is most of why decoding is cheap.

use std::fmt;
use std::ops::Deref;

use super::error::AisError;

/// Six-bit value of each payload byte; `INVALID` marks bytes outside the armoring alphabet
/// (`0`..=`W` and `` ` ``..=`w`).
static ARMOR: [u8; 256] = armor_table();
const INVALID: u8 = 0xFF;

const fn armor_table() -> [u8; 256] {
    let mut table = [INVALID; 256];
    let mut c = 48;
    while c < 88 {
        table[c] = (c - 48) as u8;
        c += 1;
    }
    let mut c = 96;
    while c < 120 {
        table[c] = (c - 56) as u8;
        c += 1;
    }
    table
}

/// The AIS six-bit character set (ITU-R M.1371 table 47): value -> ASCII.
const SIXBIT_ASCII: &[u8; 64] = b"@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_ !\"#$%&'()*+,-./0123456789:;<=>?";

/// Checks that every byte is six-bit armor. `offset_base` is added to the reported offset so
/// errors in later fragments point into the assembled payload.
pub(crate) fn validate_armor(payload: &[u8], offset_base: usize) -> Result<(), AisError> {
    // One pass of table lookups, with the error path kept out of the loop body.
    if payload.iter().all(|&b| ARMOR[b as usize] != INVALID) {
        return Ok(());
    }
    let offset = payload.iter().position(|&b| ARMOR[b as usize] == INVALID).unwrap_or(0);
    Err(AisError::BadPayloadChar { byte: payload[offset], offset: offset_base + offset })
}

/// A validated armored payload and its length in bits (six per character less fill bits).
///
/// Reads past the end return zero bits, the way a zero-initialised bit buffer would, so a
/// short payload can never make a read go out of bounds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bits<'a> {
    armored: &'a [u8],
    len: usize,
}

impl<'a> Bits<'a> {
    /// Wraps an armored payload already checked by [`validate_armor`].
    pub(crate) fn new(armored: &'a [u8], fill_bits: u8) -> Self {
        let len = (armored.len() * 6).saturating_sub(fill_bits as usize);
        Bits { armored, len }
    }

    /// Payload length in bits.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn sixbit(&self, index: usize) -> u64 {
        match self.armored.get(index) {
            // `& 0x3F` keeps an unvalidated byte from leaking high bits; validated input
            // never needs it.
            Some(&b) => (ARMOR[b as usize] & 0x3F) as u64,
            None => 0,
        }
    }

    /// Unsigned field of `width` (1..=32) bits starting at bit `start`.
    #[inline]
    pub(crate) fn u(&self, start: usize, width: usize) -> u32 {
        debug_assert!((1..=32).contains(&width));
        let first = start / 6;
        let last = (start + width - 1) / 6;
        let mut acc: u64 = 0;
        for i in first..=last {
            acc = (acc << 6) | self.sixbit(i);
        }
        // At most 7 characters (42 bits) are gathered, so the shift never overflows.
        let span = (last - first + 1) * 6;
        let shift = span - (start - first * 6) - width;
        ((acc >> shift) & ((1u64 << width) - 1)) as u32
    }

    /// Two's-complement signed field of `width` (2..=32) bits.
    #[inline]
    pub(crate) fn i(&self, start: usize, width: usize) -> i32 {
        let raw = self.u(start, width) as i64;
        let sign = 1i64 << (width - 1);
        (if raw & sign != 0 { raw - (sign << 1) } else { raw }) as i32
    }

    /// One-bit flag.
    #[inline]
    pub(crate) fn flag(&self, start: usize) -> bool {
        self.u(start, 1) != 0
    }

    /// `count` six-bit characters from bit `start`, cut at the first `@` and with trailing
    /// spaces removed (gpsd's rule; `@` is the padding character).
    pub(crate) fn text<const N: usize>(&self, start: usize, count: usize) -> AisText<N> {
        let mut text = AisText::<N>::default();
        text.push_sixbit(self, start, count);
        text.trim_end();
        text
    }
}

/// A fixed-capacity six-bit text field (ship name, call sign, destination, ...).
///
/// Stored inline so a decoded message owns its text without a heap allocation. It derefs to
/// `&str`; the content is always ASCII.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AisText<const N: usize> {
    len: u8,
    buf: [u8; N],
}

impl<const N: usize> Default for AisText<N> {
    fn default() -> Self {
        AisText { len: 0, buf: [0; N] }
    }
}

impl<const N: usize> AisText<N> {
    /// Builds a text from a string, keeping at most `N` bytes of its ASCII prefix.
    pub fn new(s: &str) -> Self {
        let mut text = Self::default();
        for &b in s.as_bytes().iter().take_while(|b| b.is_ascii()).take(N) {
            text.buf[text.len as usize] = b;
            text.len += 1;
        }
        text
    }

    /// The text as a string slice.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored, so this cannot fail.
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }

    /// Appends up to `count` characters, stopping at the first `@` or when full.
    /// Returns false when it stopped at an `@`.
    pub(crate) fn push_sixbit(&mut self, bits: &Bits<'_>, start: usize, count: usize) -> bool {
        for i in 0..count {
            let c = SIXBIT_ASCII[bits.u(start + 6 * i, 6) as usize];
            if c == b'@' {
                return false;
            }
            if self.len as usize == N {
                return true;
            }
            self.buf[self.len as usize] = c;
            self.len += 1;
        }
        true
    }

    /// Drops trailing spaces and `@`s.
    pub(crate) fn trim_end(&mut self) {
        while self.len > 0 && matches!(self.buf[self.len as usize - 1], b' ' | b'@') {
            self.len -= 1;
        }
    }
}

impl<const N: usize> Deref for AisText<N> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> fmt::Debug for AisText<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> fmt::Display for AisText<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> PartialEq<str> for AisText<N> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl<const N: usize> PartialEq<&str> for AisText<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Six-bit value -> armor character; the inverse of the decoding table (used by tests to
/// build payloads).
#[cfg(test)]
pub(crate) fn armor_char(value: u8) -> u8 {
    let v = value & 0x3F;
    if v < 40 {
        v + 48
    } else {
        v + 56
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armor_table_round_trips() {
        for v in 0..64u8 {
            let c = armor_char(v);
            assert_eq!(ARMOR[c as usize], v);
        }
        assert_eq!(ARMOR[b'X' as usize], INVALID);
        assert_eq!(ARMOR[b'_' as usize], INVALID);
        assert_eq!(ARMOR[b'x' as usize], INVALID);
    }

    #[test]
    fn fields_across_character_boundaries() {
        // "15M67F..." type 1: first six bits are 1.
        let p = b"15M67FC000G?ufbE`FepT@3n00Sa";
        let bits = Bits::new(p, 0);
        assert_eq!(bits.len(), 168);
        assert_eq!(bits.u(0, 6), 1);
        assert_eq!(bits.u(8, 30), 366_053_209);
        // Reads past the end are zero.
        assert_eq!(bits.u(400, 32), 0);
        assert_eq!(Bits::new(b"w", 0).i(0, 6), -1);
    }

    #[test]
    fn text_stops_at_at_and_trims() {
        // "A" = 1, "@" = 0, " " = 32.
        let armor: Vec<u8> = [1u8, 2, 32, 32, 0, 3].iter().map(|&v| armor_char(v)).collect();
        let bits = Bits::new(&armor, 0);
        let t: AisText<8> = bits.text(0, 6);
        assert_eq!(t, "AB");
    }
}
