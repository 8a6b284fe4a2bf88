#![no_main]
//! The AIS / NMEA 0183 decoder (`node::feeds::ais`): tag blocks, checksums, multi-fragment
//! assembly, type 24 merging, message layouts and gpsd JSON output.
//!
//! The first byte picks the decoder's limits (default, or tiny caps so that eviction and
//! expiry paths run) and the clock step; the rest is split into lines, which go through
//! `AisDecoder::push_line` as a feed listener does. Every message is rendered as gpsd JSON
//! both ways. The whole input also goes through `decode_stream`, as `yiwang-node ais-decode`
//! reads a file, and each line's tag block, if any, through `parse_tag_block`.

use libfuzzer_sys::fuzz_target;
use node::feeds::ais::{decode_stream, parse_tag_block, to_gpsd_json, write_gpsd_json, AisDecoder, DecoderConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let mut config = DecoderConfig::default();
    if selector & 1 == 1 {
        config.max_pending_groups = 2;
        config.type24_cache_size = 2;
        config.fragment_timeout_ms = 50;
        config.type24_max_age_ms = 100;
        config.max_fragments = 3;
    }
    config.split_type24 = selector & 2 == 2;
    let step = u64::from(selector >> 2) * 7;
    let mut decoder = AisDecoder::new(config);
    let text = String::from_utf8_lossy(rest);
    let mut now = 0u64;
    let mut json = String::new();
    for (i, line) in text.split('\n').enumerate() {
        now += step;
        // Two sources, so that fragments from different listeners are kept apart.
        let source = if i % 5 == 4 { "b" } else { "a" };
        if let Ok(Some(msg)) = decoder.push_line(source, line, now) {
            let _ = msg.msg_type();
            let _ = to_gpsd_json(&msg, true);
            let _ = to_gpsd_json(&msg, false);
            json.clear();
            write_gpsd_json(&msg, selector & 4 == 4, Some("fuzz"), &mut json);
        }
        if i % 16 == 15 {
            decoder.expire(now);
        }
        // The decoder's buffers stay within their documented caps.
        assert!(decoder.pending_groups() <= decoder.config().max_pending_groups);
        assert!(decoder.cached_type24() <= decoder.config().type24_cache_size);
        if let Some(tag) = line.trim().strip_prefix('\\').and_then(|t| t.split('\\').next()) {
            let _ = parse_tag_block(tag);
        }
    }
    let _ = decoder.counters();
    let mut out = Vec::new();
    let stats = decode_stream(rest, &mut out, selector & 8 == 8).expect("decoding from a slice into a Vec cannot fail");
    let _ = stats.to_string();
});
