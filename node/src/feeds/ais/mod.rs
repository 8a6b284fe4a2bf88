//! AIS (Automatic Identification System) decoding from NMEA 0183 `!xxVDM` / `!xxVDO`
//! sentences, sans-IO.
//!
//! Lines go into an [`AisDecoder`] together with the time; it checks checksums, reads NMEA
//! 4.0 tag blocks, assembles multi-part messages and merges type 24 parts A and B, and hands
//! back [`AisMessage`]s. Every buffer it keeps is capped ([`DecoderConfig`]) and every failure
//! is an [`AisError`] with a short `reason()` label for metrics. [`to_gpsd_json`] and
//! [`write_gpsd_json`] render messages as gpsd does; [`decode_stream`] does a whole file.
//!
//! Module map: `sentence` (one sentence), `tagblock`, `assemble` (fragments), `bits` (six-bit
//! armor), `decode` (message layouts), `messages` (decoded types), `type24` (part A cache),
//! `decoder` (the state machine), `gpsd_json` + `legends` (output), `stream` (files).

mod assemble;
mod bits;
mod decode;
mod decoder;
mod error;
mod gpsd_json;
pub mod legends;
mod messages;
mod sentence;
mod stream;
mod tagblock;
mod type24;

#[cfg(test)]
mod proptests;

pub use bits::AisText;
pub use decoder::{AisDecoder, DecoderConfig, DecoderCounters};
pub use error::AisError;
pub use gpsd_json::{to_gpsd_json, write_gpsd_json};
pub use messages::*;
pub use stream::{decode_stream, DecodeStats};
pub use tagblock::{parse_tag_block, TagBlock, TagGroup};
