//! AIS decode throughput: yiwang's decoder against the `nmea-parser` crate on the same
//! corpus, in the same process. Both parse every line from `&str`, assemble multi-part
//! messages and decode all fields of every message they support; results go through
//! `black_box` so neither side's work can be optimised away.

use std::hint::black_box;
use std::time::{Duration, Instant};

use node::feeds::ais::{AisDecoder, DecoderConfig};

/// How long one timed run of one decoder lasts, roughly.
const RUN_TARGET: Duration = Duration::from_millis(300);
/// Interleaved rounds; the best rate of each side is kept (least disturbed by the machine).
const ROUNDS: usize = 5;

/// One pass of yiwang's decoder over the corpus; returns a checksum of what it decoded.
fn yiwang_pass(lines: &[&str], decoder: &mut AisDecoder) -> u64 {
    let mut acc = 0u64;
    for line in lines {
        match decoder.push_line("bench", line, 0) {
            Ok(Some(msg)) => {
                acc = acc.wrapping_add(msg.mmsi() as u64);
                black_box(&msg);
            }
            Ok(None) => {}
            Err(e) => acc = acc.wrapping_add(e.reason().len() as u64),
        }
    }
    acc
}

/// One pass of nmea-parser over the corpus.
fn nmea_parser_pass(lines: &[&str], parser: &mut nmea_parser::NmeaParser) -> u64 {
    let mut acc = 0u64;
    for line in lines {
        match parser.parse_sentence(line) {
            Ok(msg) => {
                acc = acc.wrapping_add(1);
                black_box(&msg);
            }
            Err(e) => {
                black_box(&e);
            }
        }
    }
    acc
}

/// Runs `pass` repeatedly for about `RUN_TARGET` and returns sentences per second.
fn rate(lines: usize, passes: usize, mut pass: impl FnMut() -> u64) -> f64 {
    let start = Instant::now();
    for _ in 0..passes {
        black_box(pass());
    }
    (lines * passes) as f64 / start.elapsed().as_secs_f64()
}

/// Passes of `pass` that take about `RUN_TARGET`, from a short calibration.
fn calibrate(mut pass: impl FnMut() -> u64) -> usize {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_millis(50) || n < 3 {
        black_box(pass());
        n += 1;
    }
    let per_pass = start.elapsed().as_secs_f64() / n as f64;
    ((RUN_TARGET.as_secs_f64() / per_pass).ceil() as usize).max(1)
}

/// Decode rates on `corpus` (one sentence per line), in sentences per second:
/// (yiwang, nmea-parser). Best of several interleaved runs of about 300 ms each.
pub fn bench_ais_decode(corpus: &str) -> (f64, f64) {
    let lines: Vec<&str> = corpus.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "empty AIS corpus");

    let mut decoder = AisDecoder::new(DecoderConfig::default());
    let mut parser = nmea_parser::NmeaParser::new();
    let ours = calibrate(|| yiwang_pass(&lines, &mut decoder));
    let theirs = calibrate(|| nmea_parser_pass(&lines, &mut parser));

    let (mut best_ours, mut best_theirs) = (0f64, 0f64);
    for _ in 0..ROUNDS {
        let r = rate(lines.len(), ours, || yiwang_pass(&lines, &mut decoder));
        best_ours = best_ours.max(r);
        let r = rate(lines.len(), theirs, || nmea_parser_pass(&lines, &mut parser));
        best_theirs = best_theirs.max(r);
    }
    (best_ours, best_theirs)
}
