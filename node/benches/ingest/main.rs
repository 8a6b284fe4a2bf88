//! `cargo bench -p yiwang-node --bench ingest`: the ingest path and the AIS decoder, each next to
//! a baseline measured in the same process (these machines are shared and noisy, so only
//! ratios against a same-run baseline mean anything).
//!
//! Ends with the headline figures, one per line: `ratio NAME=VALUE` and `figure NAME=VALUE UNIT`.

mod ais;
mod durable;

fn corpora() -> std::path::PathBuf {
    std::env::var_os("YIWANG_CORPORA")
        .map(Into::into)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora"))
}

fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    let durable = durable::run();
    let corpus_path = corpora().join("ais/pyais/nmea_data_sample.txt");
    let corpus = std::fs::read_to_string(&corpus_path).unwrap_or_else(|e| panic!("cannot read {}: {e}", corpus_path.display()));
    let (ours, theirs) = ais::bench_ais_decode(&corpus);

    println!();
    println!("ratio ingest_vs_raw_sled={:.2}", durable.ingest_per_s / durable.raw_sled_per_s);
    println!("ratio ingest_concurrent_vs_raw_sled={:.2}", durable.concurrent_per_s / durable.raw_sled_per_s);
    println!("ratio ais_decode_vs_nmea_parser={:.2}", ours / theirs);
    println!("figure ingest_durable={:.0} detections/s", durable.ingest_per_s);
    println!("figure ingest_durable_concurrent={:.0} detections/s", durable.concurrent_per_s);
    println!("figure raw_sled_durable={:.0} inserts/s", durable.raw_sled_per_s);
    println!("figure ais_decode={:.0} sentences/s", ours);
    println!("figure nmea_parser_decode={:.0} sentences/s", theirs);
}
