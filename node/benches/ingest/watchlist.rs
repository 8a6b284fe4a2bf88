//! The watchlist at 10 million entries: load time, lookup rate, memory per entry.
//!
//! Used from `benches/ingest/main.rs` as `mod watchlist;` and `watchlist::bench_watchlist_10m()`.
//! A 10-million-line file (≈ 1.3 GB) is generated into a temporary file, then loaded with the
//! real loader (count lines, parse, validate, normalise, intern, insert); the load time is
//! measured with the file in the page cache.

use node::rules::watchlist::{load_file, LoadLimits, Watchlist};
use std::hint::black_box;
use std::io::{self, Read};
use std::time::Instant;

const ENTRIES: u32 = 10_000_000;
const PROVINCES: [&str; 31] = [
    "京", "津", "沪", "渝", "冀", "豫", "云", "辽", "黑", "湘", "皖", "鲁", "新", "苏", "浙", "赣", "鄂", "桂", "甘",
    "晋", "蒙", "陕", "吉", "闽", "贵", "粤", "青", "藏", "川", "宁", "琼",
];
const REASONS: [&str; 4] = ["reported stolen", "unpaid fines", "cloned plate suspected", "sanctioned vessel"];
/// Authority and legal basis, the last two columns.
const AUTHORITIES: [&str; 3] = [
    "Harbour Master,Port State Control Order 2026-41",
    "City Public Security Bureau,Road Traffic Safety Law art. 96",
    "City Traffic Police,Road Traffic Safety Law art. 90",
];
/// 2100-01-01: after the lookups' `now_ms`.
const EXPIRES_MS: u64 = 4_102_444_800_000;

/// The i-th plate: unique for i below 31 × 26 × 100 000.
fn plate(i: u32, out: &mut String) {
    use std::fmt::Write;
    let province = PROVINCES[(i % 31) as usize];
    let letter = char::from(b'A' + ((i / 31) % 26) as u8);
    let _ = write!(out, "{province}{letter}{:05}", i / (31 * 26));
}

/// One line in ten is a vessel, the rest plates; a few reasons, lists, officers and authorities
/// shared by all, as in real lists. Every entry expires (the file requires it), after the
/// lookups' time, so all are live.
fn line(i: u32, out: &mut String) {
    use std::fmt::Write;
    let officer = i % 20;
    match i % 10 {
        0 => {
            let mmsi = 200_000_000 + i;
            let _ =
                write!(out, "mmsi,{mmsi},sanctions,{},officer-{officer},{EXPIRES_MS},{}", REASONS[3], AUTHORITIES[0]);
        }
        _ => {
            out.push_str("plate,");
            plate(i, out);
            let list = ["stolen-vehicles", "fines", "watch"][(i % 3) as usize];
            let reason = REASONS[(i % 3) as usize];
            let authority = AUTHORITIES[1 + (i % 2) as usize];
            let _ = write!(out, ",{list},{reason},officer-{officer},{EXPIRES_MS},{authority}");
        }
    }
    out.push('\n');
}

struct Generated {
    next: u32,
    chunk: Vec<u8>,
    pos: usize,
    text: String,
}

impl Read for Generated {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.chunk.len() {
            self.chunk.clear();
            self.pos = 0;
            while self.chunk.len() < 1 << 16 && self.next < ENTRIES {
                self.text.clear();
                line(self.next, &mut self.text);
                self.chunk.extend_from_slice(self.text.as_bytes());
                self.next += 1;
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Returns (lookups per second, seconds to load 10 M lines, approximate heap bytes per entry).
pub fn bench_watchlist_10m() -> (f64, f64, f64) {
    let rss_before = rss_bytes();
    let input = Generated { next: 0, chunk: Vec::new(), pos: 0, text: String::new() };
    let file = tempfile::NamedTempFile::new().expect("temporary file");
    io::copy(
        &mut io::BufReader::with_capacity(1 << 20, input),
        &mut io::BufWriter::with_capacity(1 << 20, file.as_file()),
    )
    .expect("write the generated watchlist");
    let start = Instant::now();
    let list: Watchlist = match load_file(file.path(), &LoadLimits::default()) {
        Ok(l) => l,
        Err(e) => panic!("generated watchlist failed to load: {e}"),
    };
    let build_secs = start.elapsed().as_secs_f64();
    drop(file);
    assert_eq!(list.len(), ENTRIES as usize);
    let bytes_per_entry = list.approx_heap_bytes() as f64 / f64::from(ENTRIES);

    // Queries as a camera would send them (lower case, spaces, dots), half of them misses,
    // prepared up front in one buffer so neither formatting nor fetching the query string
    // from a cold heap is timed (at ingest the plate was just parsed and is in cache).
    let mut text = String::new();
    let mut ranges = Vec::with_capacity(1 << 20);
    let mut x = 0x9E37_79B9u32;
    for k in 0..(1u32 << 20) {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let mut p = String::new();
        if k % 2 == 0 {
            plate((x % ENTRIES) | 1, &mut p); // odd i: always a plate entry
        } else {
            plate(ENTRIES + x % ENTRIES, &mut p); // never inserted
        }
        let mut q: String = p.to_lowercase();
        q.insert(q.len() - 3, '·');
        q.insert(q.len() - 1, ' ');
        ranges.push((text.len(), text.len() + q.len()));
        text.push_str(&q);
    }
    let queries: Vec<&str> = ranges.iter().map(|&(a, b)| &text[a..b]).collect();
    let now_ms = 1_800_000_000_000u64;
    let rounds = 8;
    let start = Instant::now();
    let mut hits = 0usize;
    for _ in 0..rounds {
        for &q in &queries {
            hits += usize::from(list.check_plate(black_box(q), now_ms).is_some());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let lookups = (rounds * queries.len()) as f64;
    let expected = rounds * queries.len() / 2;
    assert!(hits.abs_diff(expected) < expected / 100 + 1, "{hits} hits, expected ≈ {expected}");

    let mut mmsi_hits = 0usize;
    let start_mmsi = Instant::now();
    for k in 0..lookups as u32 {
        let m = 200_000_000 + (k.wrapping_mul(2_654_435_761) % ENTRIES);
        mmsi_hits += usize::from(list.check_mmsi(black_box(m), now_ms).is_some());
    }
    let mmsi_secs = start_mmsi.elapsed().as_secs_f64();
    black_box(mmsi_hits);

    if let (Some(before), Some(after)) = (rss_before, rss_bytes()) {
        eprintln!(
            "watchlist 10M: RSS grew {:.0} MiB ({:.0} B/entry, queries included)",
            (after.saturating_sub(before)) as f64 / (1 << 20) as f64,
            after.saturating_sub(before) as f64 / f64::from(ENTRIES)
        );
    }
    eprintln!(
        "watchlist 10M: load {build_secs:.2} s; plate lookup {:.0} ns; MMSI lookup {:.0} ns; \
         ≈ {bytes_per_entry:.0} B/entry",
        secs / lookups * 1e9,
        mmsi_secs / lookups * 1e9
    );
    (lookups / secs, build_secs, bytes_per_entry)
}
