//! The one codec: bincode 2 through serde, with a hard limit on every decode.
//!
//! bincode without a limit trusts length prefixes: nine bytes claiming a 2^40-byte string make
//! it try to allocate a terabyte and abort the process. Every decode here runs with a limit, so
//! oversize or malformed input comes back as a [`CodecError`], never as an allocation. Keep all
//! bincode use behind this module so a wire-compatible replacement can drop in.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Largest single encoded value (one entry, one message) accepted anywhere: 1 MiB.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// Largest frame on a stream: one value plus headroom for batching several.
pub const MAX_FRAME_BYTES: usize = 4 << 20;

/// Largest snapshot of a replicated state (the sanctions lists): read from our own disk or
/// streamed in chunks from a voter, never in one frame.
pub const MAX_SNAPSHOT_BYTES: usize = 256 << 20;

/// Size limits, bundled for the places that need to report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_value: usize,
    pub max_frame: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_value: MAX_VALUE_BYTES, max_frame: MAX_FRAME_BYTES }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("input of {len} bytes exceeds the {limit}-byte limit")]
    TooLarge { len: usize, limit: usize },
    #[error("value claims more memory than the {limit}-byte limit allows")]
    LimitExceeded { limit: usize },
    #[error("input ended early")]
    Truncated,
    #[error("{0} bytes left over after the value")]
    TrailingBytes(usize),
    #[error("malformed input: {0}")]
    Malformed(String),
    #[error("cannot encode: {0}")]
    Encode(String),
    #[error("frame claims {claimed} bytes; the limit is {limit}")]
    FrameTooLarge { claimed: usize, limit: usize },
}

impl CodecError {
    /// A short stable label for metrics ("decode errors by reason").
    pub fn reason(&self) -> &'static str {
        match self {
            CodecError::TooLarge { .. } | CodecError::LimitExceeded { .. } => "too_large",
            CodecError::Truncated => "truncated",
            CodecError::TrailingBytes(_) => "trailing_bytes",
            CodecError::Malformed(_) => "malformed",
            CodecError::Encode(_) => "encode",
            CodecError::FrameTooLarge { .. } => "frame_too_large",
        }
    }
}

type Config<const N: usize> =
    bincode::config::Configuration<bincode::config::BigEndian, bincode::config::Varint, bincode::config::Limit<N>>;

fn config<const N: usize>() -> Config<N> {
    // Big-endian so fixed-width integers sort byte-wise in keys built from encoded values.
    bincode::config::standard().with_big_endian().with_limit::<N>()
}

/// Encode under a limit of `N` bytes, refusing larger values so nothing is written that could
/// not be read back.
fn encode_limited<const N: usize, T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let bytes = bincode::serde::encode_to_vec(value, config::<N>()).map_err(|e| CodecError::Encode(e.to_string()))?;
    if bytes.len() > N {
        return Err(CodecError::TooLarge { len: bytes.len(), limit: N });
    }
    Ok(bytes)
}

/// Decode exactly one value from `bytes` (which must hold nothing else) under a limit of `N`.
fn decode_limited<const N: usize, T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > N {
        return Err(CodecError::TooLarge { len: bytes.len(), limit: N });
    }
    let (value, used) = bincode::serde::decode_from_slice(bytes, config::<N>()).map_err(|e| map_decode_error(e, N))?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}

/// Encode a value (at most [`MAX_VALUE_BYTES`]).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    encode_limited::<MAX_VALUE_BYTES, T>(value)
}

/// Decode exactly one value (at most [`MAX_VALUE_BYTES`]).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_limited::<MAX_VALUE_BYTES, T>(bytes)
}

/// Encode a message that travels as one frame: a batch of entries may exceed one value's
/// limit, not the frame's.
pub fn encode_frame_payload<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    encode_limited::<MAX_FRAME_BYTES, T>(value)
}

/// Decode one frame's message, under the frame cap.
pub fn decode_frame_payload<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_limited::<MAX_FRAME_BYTES, T>(bytes)
}

/// Encode a whole snapshot (at most [`MAX_SNAPSHOT_BYTES`]).
pub fn encode_snapshot<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    encode_limited::<MAX_SNAPSHOT_BYTES, T>(value)
}

/// Decode a whole snapshot (at most [`MAX_SNAPSHOT_BYTES`]).
pub fn decode_snapshot<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_limited::<MAX_SNAPSHOT_BYTES, T>(bytes)
}

/// Decode one value from the front of `bytes` and say how many bytes it used; for reading a
/// header without the body that follows it.
pub fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), CodecError> {
    let bytes = &bytes[..bytes.len().min(MAX_VALUE_BYTES)];
    bincode::serde::decode_from_slice(bytes, config::<MAX_VALUE_BYTES>())
        .map_err(|e| map_decode_error(e, MAX_VALUE_BYTES))
}

/// [`decode_prefix`] for a value that borrows from `bytes` (`&str` fields): reads a record's
/// shape without copying its strings out.
pub fn decode_prefix_borrowed<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<(T, usize), CodecError> {
    let bytes = &bytes[..bytes.len().min(MAX_VALUE_BYTES)];
    bincode::serde::borrow_decode_from_slice(bytes, config::<MAX_VALUE_BYTES>())
        .map_err(|e| map_decode_error(e, MAX_VALUE_BYTES))
}

/// The codec's variable-length unsigned integer at the front of `bytes`, as bincode's standard
/// configuration writes it (big-endian here), with the bytes it takes: for reading a header on
/// a path too hot for a serde decoder per field. `max` is the type's largest value (`u32::MAX`
/// for a `u32`, an enum's variant index); a value above it is refused, as bincode refuses it.
#[inline]
pub(crate) fn varint(bytes: &[u8], max: u64) -> Result<(u64, usize), CodecError> {
    let (&first, rest) = bytes.split_first().ok_or(CodecError::Truncated)?;
    let wide = |n: usize| -> Result<u64, CodecError> {
        let b = rest.get(..n).ok_or(CodecError::Truncated)?;
        Ok(b.iter().fold(0u64, |v, &x| (v << 8) | u64::from(x)))
    };
    let (value, used) = match first {
        0..=250 => (u64::from(first), 1),
        251 => (wide(2)?, 3),
        252 => (wide(4)?, 5),
        253 => (wide(8)?, 9),
        _ => return Err(bad_integer(u64::from(first))),
    };
    // Wider encodings than the type allows are refused by bincode at the discriminant.
    let widest = if max <= u64::from(u16::MAX) {
        3
    } else if max <= u64::from(u32::MAX) {
        5
    } else {
        9
    };
    if used > widest || value > max {
        return Err(bad_integer(value));
    }
    Ok((value, used))
}

#[cold]
fn bad_integer(value: u64) -> CodecError {
    CodecError::Malformed(format!("integer {value} out of range"))
}

fn map_decode_error(e: bincode::error::DecodeError, limit: usize) -> CodecError {
    use bincode::error::DecodeError as D;
    match e {
        D::UnexpectedEnd { .. } => CodecError::Truncated,
        D::LimitExceeded => CodecError::LimitExceeded { limit },
        other => CodecError::Malformed(other.to_string()),
    }
}

/// Prefix `payload` with its length as a 4-byte big-endian integer.
pub fn frame(payload: &[u8]) -> Result<Vec<u8>, CodecError> {
    if payload.len() > MAX_FRAME_BYTES {
        return Err(CodecError::FrameTooLarge { claimed: payload.len(), limit: MAX_FRAME_BYTES });
    }
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Splits a byte stream into length-prefixed frames without doing I/O. A claimed length above
/// the cap is refused as soon as the 4-byte header arrives, before anything is buffered for it.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    max_frame: usize,
}

impl FrameDecoder {
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder { buf: Vec::new(), max_frame: max_frame.min(MAX_FRAME_BYTES) }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, `Ok(None)` while one is still arriving, or an error for a frame
    /// over the cap (the stream is unusable after that: close it).
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, CodecError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let claimed = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if claimed > self.max_frame {
            return Err(CodecError::FrameTooLarge { claimed, limit: self.max_frame });
        }
        if self.buf.len() < 4 + claimed {
            return Ok(None);
        }
        let frame = self.buf[4..4 + claimed].to_vec();
        self.buf.drain(..4 + claimed);
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Entry, Hlc, Kind, NodeId};
    use proptest::prelude::*;

    fn entry_strategy() -> impl Strategy<Value = Entry> {
        (
            "[a-z0-9-]{1,64}",
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            proptest::sample::select(Kind::ALL.to_vec()),
            proptest::collection::vec(any::<u8>(), 0..512),
        )
            .prop_map(|(o, seq, w, l, kind, payload)| Entry {
                origin: NodeId::new(o).unwrap(),
                seq,
                hlc: Hlc::new(w, l),
                kind,
                payload,
            })
    }

    #[test]
    fn a_frame_claiming_a_terabyte_string_fails_without_allocating() {
        // A String's length prefix as a bincode varint: 0xFD then a u64, here 2^40.
        let mut bytes = vec![0xFD];
        bytes.extend_from_slice(&(1u64 << 40).to_be_bytes());
        let err = decode::<String>(&bytes).unwrap_err();
        assert!(matches!(err, CodecError::LimitExceeded { .. }), "{err:?}");
        // The same claim inside an entry envelope (as the origin string).
        let err = decode::<Entry>(&bytes).unwrap_err();
        assert!(matches!(err, CodecError::LimitExceeded { .. }), "{err:?}");
        // A vector of 2^40 bytes as the payload of an otherwise valid entry.
        let mut e = encode(&Entry {
            origin: NodeId::new("a").unwrap(),
            seq: 1,
            hlc: Hlc::ZERO,
            kind: Kind::Alert,
            payload: vec![],
        })
        .unwrap();
        e.pop();
        e.push(0xFD);
        e.extend_from_slice(&(1u64 << 40).to_be_bytes());
        let err = decode::<Entry>(&e).unwrap_err();
        assert!(matches!(err, CodecError::LimitExceeded { .. }), "{err:?}");
    }

    #[test]
    fn entry_refs_encode_like_entries() {
        let e = Entry {
            origin: NodeId::new("town-a").unwrap(),
            seq: 7,
            hlc: Hlc::new(9, 1),
            kind: Kind::Audit,
            payload: vec![1, 2, 3],
        };
        let r = crate::EntryRef { origin: &e.origin, seq: e.seq, hlc: e.hlc, kind: e.kind, payload: &e.payload };
        assert_eq!(encode(&r).unwrap(), encode(&e).unwrap());
    }

    #[test]
    fn a_stream_frame_over_the_cap_is_refused_at_the_header() {
        let mut d = FrameDecoder::new(1024);
        d.push(&(1u32 << 31).to_be_bytes());
        assert!(matches!(d.next_frame(), Err(CodecError::FrameTooLarge { .. })));
    }

    #[test]
    fn invalid_node_ids_do_not_decode() {
        let bytes = encode(&"Not A Valid Id").unwrap();
        assert!(matches!(decode::<NodeId>(&bytes), Err(CodecError::Malformed(_))));
    }

    #[test]
    fn oversized_values_are_not_encoded() {
        let big = vec![0u8; MAX_VALUE_BYTES + 1];
        assert!(matches!(encode(&big), Err(CodecError::TooLarge { .. })));
    }

    proptest! {
        #[test]
        fn entries_roundtrip(e in entry_strategy()) {
            let bytes = encode(&e).unwrap();
            prop_assert_eq!(decode::<Entry>(&bytes).unwrap(), e);
        }

        #[test]
        fn every_truncation_fails_cleanly(e in entry_strategy()) {
            let bytes = encode(&e).unwrap();
            for cut in 0..bytes.len() {
                prop_assert!(decode::<Entry>(&bytes[..cut]).is_err());
            }
        }

        #[test]
        fn trailing_bytes_are_refused(e in entry_strategy(), extra in proptest::collection::vec(any::<u8>(), 1..8)) {
            let mut bytes = encode(&e).unwrap();
            bytes.extend(extra);
            prop_assert!(matches!(decode::<Entry>(&bytes), Err(CodecError::TrailingBytes(_))));
        }

        #[test]
        fn random_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decode::<Entry>(&bytes);
            let _ = decode::<String>(&bytes);
            let _ = decode::<Vec<Entry>>(&bytes);
            let mut d = FrameDecoder::new(4096);
            d.push(&bytes);
            while let Ok(Some(_)) = d.next_frame() {}
        }

        #[test]
        fn frames_split_anywhere_reassemble(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..10), chunk in 1usize..64) {
            let stream: Vec<u8> = payloads.iter().flat_map(|p| frame(p).unwrap()).collect();
            let mut d = FrameDecoder::new(4096);
            let mut out = Vec::new();
            for c in stream.chunks(chunk) {
                d.push(c);
                while let Some(f) = d.next_frame().unwrap() { out.push(f); }
            }
            prop_assert_eq!(out, payloads);
            prop_assert_eq!(d.buffered(), 0);
        }
    }
}
