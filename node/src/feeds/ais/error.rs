//! Typed decoding errors. Each variant has a short, stable label (`reason`) so the node can
//! count failures per cause in its metrics without formatting strings on the hot path.

use thiserror::Error;

/// Why a line could not be turned into an AIS message.
///
/// Errors are per line: the decoder stays usable after any of them, and a multi-part group
/// that one of them breaks is discarded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AisError {
    /// The line is longer than the configured cap (`DecoderConfig::max_line_len`).
    #[error("line of {len} bytes exceeds the {max}-byte cap")]
    TooLong {
        /// Length of the offending line.
        len: usize,
        /// The configured cap.
        max: usize,
    },
    /// The sentence has no `*hh` checksum.
    #[error("sentence has no checksum")]
    MissingChecksum,
    /// The sentence checksum does not match its content.
    #[error("checksum mismatch: computed {computed:02X}, sentence says {stated:02X}")]
    Checksum {
        /// XOR of the sentence bytes.
        computed: u8,
        /// The value written after `*`.
        stated: u8,
    },
    /// The NMEA 4.0 tag block is unterminated, has no checksum or a malformed field.
    #[error("malformed tag block")]
    BadTagBlock,
    /// The tag block checksum does not match.
    #[error("tag block checksum mismatch: computed {computed:02X}, block says {stated:02X}")]
    TagChecksum {
        /// XOR of the tag block bytes.
        computed: u8,
        /// The value written after `*`.
        stated: u8,
    },
    /// A sentence field is missing or malformed (fragment count, channel, ...).
    #[error("bad sentence field: {field}")]
    BadField {
        /// Which field.
        field: &'static str,
    },
    /// The fill-bit field is not a digit 0-5.
    #[error("bad fill bits")]
    BadFillBits,
    /// The message claims more fragments than the configured cap.
    #[error("{total} fragments exceed the cap of {max}")]
    TooManyFragments {
        /// Fragment count the sentence announces.
        total: u8,
        /// The configured cap.
        max: u8,
    },
    /// A continuation fragment arrived with no group waiting for it.
    #[error("fragment {number} of {total} without its predecessors")]
    OrphanFragment {
        /// This fragment's number.
        number: u8,
        /// Fragment count it announces.
        total: u8,
    },
    /// A fragment arrived out of order or disagrees with its group's fragment count.
    #[error("fragment {number} of {total} out of order (expected {expected})")]
    FragmentOrder {
        /// This fragment's number.
        number: u8,
        /// Fragment count it announces.
        total: u8,
        /// The fragment number the group waited for.
        expected: u8,
    },
    /// The rest of a multi-part message came after the group's timeout.
    #[error("fragment arrived {age_ms} ms after its group started")]
    FragmentTimeout {
        /// How old the group was.
        age_ms: u64,
    },
    /// The (assembled) payload is longer than the configured cap.
    #[error("payload of {len} characters exceeds the cap of {max}")]
    PayloadTooLong {
        /// Payload characters seen so far.
        len: usize,
        /// The configured cap.
        max: usize,
    },
    /// A payload byte lies outside the six-bit armoring alphabet.
    #[error("byte {byte:#04x} at payload offset {offset} is not six-bit armor")]
    BadPayloadChar {
        /// The offending byte.
        byte: u8,
        /// Its offset within the (assembled) payload.
        offset: usize,
    },
    /// The payload is too short for its message type.
    #[error("type {msg_type} payload of {bits} bits is too short")]
    ShortPayload {
        /// Message type (0 when not even the type could be read).
        msg_type: u8,
        /// Payload length in bits.
        bits: usize,
    },
    /// A type 24 message with a part number other than A (0) or B (1).
    #[error("type 24 with part number {part}")]
    BadType24Part {
        /// The part number read.
        part: u8,
    },
}

impl AisError {
    /// Short stable label for metrics, e.g. `"checksum"`.
    pub fn reason(&self) -> &'static str {
        match self {
            AisError::TooLong { .. } => "too_long",
            AisError::MissingChecksum => "no_checksum",
            AisError::Checksum { .. } => "checksum",
            AisError::BadTagBlock => "bad_tag_block",
            AisError::TagChecksum { .. } => "tag_checksum",
            AisError::BadField { .. } => "bad_field",
            AisError::BadFillBits => "bad_fill_bits",
            AisError::TooManyFragments { .. } => "too_many_fragments",
            AisError::OrphanFragment { .. } => "orphan_fragment",
            AisError::FragmentOrder { .. } => "fragment_order",
            AisError::FragmentTimeout { .. } => "fragment_timeout",
            AisError::PayloadTooLong { .. } => "payload_too_long",
            AisError::BadPayloadChar { .. } => "bad_payload_char",
            AisError::ShortPayload { .. } => "short_payload",
            AisError::BadType24Part { .. } => "bad_type24_part",
        }
    }

    /// Every label `reason` can return, for pre-registering metric series.
    pub const REASONS: &'static [&'static str] = &[
        "too_long",
        "no_checksum",
        "checksum",
        "bad_tag_block",
        "tag_checksum",
        "bad_field",
        "bad_fill_bits",
        "too_many_fragments",
        "orphan_fragment",
        "fragment_order",
        "fragment_timeout",
        "payload_too_long",
        "bad_payload_char",
        "short_payload",
        "bad_type24_part",
    ];
}
