//! `cargo bench -p yiwang-node --bench ingest`: the ingest path and the AIS decoder, each next to
//! a baseline measured in the same process (these machines are shared and noisy, so only
//! ratios against a same-run baseline mean anything).
//!
//! `ingest_vs_raw_sled` is the node as it runs: several feeds (8 producers, each posting a batch
//! of 100 and waiting for its acknowledgement) sharing group commits, against raw sled's best
//! safe durable path, one writer doing batch-then-flush (sled 0.34 cannot flush from two threads
//! at once). `ingest_1_feed_vs_raw_sled` is the strictest form: one producer, nothing to share.
//! `viid_vs_alpr` posts the same detections as GA/T 1400 motor-vehicle objects (bodies of 100,
//! 8 producers) through the VIID listener's path after authentication, over the `alpr_group`
//! path of the same round.
//!
//! Ends with the headline figures, one per line: `ratio NAME=VALUE` and `figure NAME=VALUE UNIT`.

mod ais;
mod durable;
mod watchlist;

/// The reference corpora kept with the node's tests (tests/corpora, with their licences).
fn corpora() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpora")
}

fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    let durable = durable::run();
    let corpus_path = corpora().join("ais/pyais/nmea_data_sample.txt");
    let corpus =
        std::fs::read_to_string(&corpus_path).unwrap_or_else(|e| panic!("cannot read {}: {e}", corpus_path.display()));
    let (ours, theirs) = ais::bench_ais_decode(&corpus);
    eprintln!("watchlist at 10M entries (writes and loads a ~1.3 GB file) ...");
    let (lookups_per_s, load_secs, bytes_per_entry) = watchlist::bench_watchlist_10m();

    println!();
    println!("ratio ingest_vs_raw_sled={:.2}", durable.concurrent_ratio);
    println!("ratio ingest_1_feed_vs_raw_sled={:.2}", durable.ingest_ratio);
    println!("ratio ais_decode_vs_nmea_parser={:.2}", ours / theirs);
    println!("ratio viid_vs_alpr={:.2}", durable.viid_ratio);
    println!("figure ingest_durable={:.0} detections/s", durable.concurrent_ratio * durable.raw_sled_per_s);
    println!("figure ingest_durable_1_feed={:.0} detections/s", durable.ingest_ratio * durable.raw_sled_per_s);
    println!("figure viid_durable={:.0} vehicles/s", durable.viid_per_s);
    println!("figure raw_sled_durable={:.0} inserts/s", durable.raw_sled_per_s);
    println!("figure ais_decode={:.0} sentences/s", ours);
    println!("figure nmea_parser_decode={:.0} sentences/s", theirs);
    println!("figure watchlist_10m_lookup={:.0} ns", 1e9 / lookups_per_s);
    println!("figure watchlist_10m_load={:.1} s", load_secs);
    println!("figure watchlist_10m_memory={:.0} bytes/entry", bytes_per_entry);
}
