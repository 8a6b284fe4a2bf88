//! `cargo bench -p yiwang-node --bench replication`: replication between nodes, each figure next
//! to a baseline measured in the same process (these machines are shared and noisy, so only
//! ratios against a same-run baseline mean anything).
//!
//! - `drain_vs_raw_sled`: a town process comes up with a backlog of 1M audit entries under a
//!   county process (real `yiwang-node` processes, QUIC on loopback); entries per second until
//!   the county holds all of them durably, over raw sled's durable inserts of the same values in
//!   batches of the mesh's batch size. The county's RSS is sampled along the way:
//!   `drain_rss_100_vs_25` near 1 means memory does not grow with the backlog.
//! - `quic_vs_raw_quinn`: the mesh's sync protocol (Outbound, frames, Replica, acknowledgements;
//!   no store) over one QUIC connection with the mesh's TLS, over raw quinn payload throughput
//!   on the same kind of connection.
//!
//! Figures before the headline say where the drain's time and memory go: the county's group
//! commits (count, mean duration, share of the drain the flusher was busy) next to raw sled's
//! time per batch, and RSS growth per entry once sled's cache has filled, for the county, the
//! town and raw sled (run in a process of its own so its RSS is sled's alone). For the QUIC
//! comparison, the sync protocol's CPU per entry outside quinn, step by step.
//!
//! For investigations: `YIWANG_BENCH_DRAIN_ROUNDS` and `YIWANG_BENCH_QUIC_ROUNDS` change the
//! number of rounds, `YIWANG_BENCH_BACKLOG` the backlog, `YIWANG_BENCH_WINDOW` the sync
//! protocol's window in the QUIC comparison (the mesh's default otherwise), and
//! `YIWANG_BENCH_ONLY=quic` stops after the QUIC comparison.
//! Ends with the headline figures, one per line: `ratio NAME=VALUE` and `figure NAME=VALUE UNIT`.

mod drain;
mod nodes;
mod quic;

use drain::median;
use std::time::Instant;

fn rounds(var: &str, default: usize) -> usize {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(default)
}

fn spread(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.2}..{hi:.2}")
}

fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    if drain::raw_child() {
        return;
    }
    let started = Instant::now();
    let q = quic::run(rounds("YIWANG_BENCH_QUIC_ROUNDS", 5));
    if std::env::var("YIWANG_BENCH_ONLY").is_ok_and(|v| v == "quic") {
        return;
    }
    let d = drain::run(rounds("YIWANG_BENCH_DRAIN_ROUNDS", 3));

    // The drain whose ratio is the median stands for the run: its RSS samples are printed.
    let mut order: Vec<usize> = (0..d.ratios.len()).collect();
    order.sort_by(|&a, &b| d.ratios[a].total_cmp(&d.ratios[b]));
    let mid_i = order[order.len() / 2];
    let mid = &d.drains[mid_i];
    // The raw sled run just after it, for the same RSS samples of sled alone.
    let raw_after = &d.raws[mid_i + 1];
    let drain_per_s = d.backlog as f64 / mid.secs;
    // The raw sled runs either side of that drain: drain / raw_sled is then its ratio.
    let raw_sled = (d.raws[mid_i].per_s + raw_after.per_s) / 2.0;
    let rss_25 = mid.rss_mib[1];
    let rss_100 = mid.rss_mib[4];
    let peak = median(d.drains.iter().map(|x| x.peak_rss_mib).collect());

    println!();
    println!("figure drain_payload={} bytes", d.payload_len);
    println!("figure drain_stored_entry={} bytes", d.value_len);
    for (at, rss) in drain::RSS_AT.iter().zip(&mid.rss_mib) {
        println!("figure drain_rss_{:.0}={rss:.1} MiB", at * 100.0);
    }
    for (at, rss) in drain::RSS_AT.iter().zip(&raw_after.rss_mib) {
        println!("figure raw_sled_rss_{:.0}={rss:.1} MiB", at * 100.0);
    }
    println!("figure raw_sled_peak_rss={:.1} MiB", raw_after.peak_rss_mib);
    // Growth per entry over the second half, once sled's cache (64 MiB) has filled: what
    // memory does as the store grows, apart from the cache reaching its size.
    let slope = |rss: &[f64]| (rss[4] - rss[2]) * (1u64 << 20) as f64 / (d.backlog as f64 / 2.0);
    println!("figure drain_rss_growth_50_to_100={:.1} bytes/entry", slope(&mid.rss_mib));
    println!("figure raw_sled_rss_growth_50_to_100={:.1} bytes/entry", slope(&raw_after.rss_mib));
    println!("figure drain_town_rss_growth_50_to_100={:.1} bytes/entry", slope(&mid.town_rss_mib));
    println!("ratio raw_sled_rss_100_vs_25={:.2}", raw_after.rss_mib[4] / raw_after.rss_mib[1]);
    println!(
        "figure drain_county_peak_rss_all_rounds={} MiB",
        spread(&d.drains.iter().map(|x| x.peak_rss_mib).collect::<Vec<_>>())
    );
    println!("figure drain_town_peak_rss={:.1} MiB", mid.town_peak_rss_mib);
    println!("figure drain_startup={:.2} s", mid.startup_secs);
    println!("figure drain_time={:.1} s", mid.secs);
    println!("figure drain_steady={:.0} entries/s", mid.steady_per_s);
    println!("figure drain_received={:.0} entries", mid.received);
    println!("figure drain_county_group_commits={:.0}", mid.flushes);
    println!("figure drain_county_flush={:.2} ms", mid.flush_secs / mid.flushes * 1e3);
    println!("figure raw_sled_batch={:.2} ms", proto::wire::MAX_BATCH_ENTRIES as f64 / raw_sled * 1e3);
    println!("figure drain_county_flusher_busy={:.0} %", mid.flush_secs / mid.secs * 100.0);
    println!("ratio drain_steady_vs_raw_sled={:.2}", median(d.steady_ratios.clone()));
    println!("figure drain_vs_raw_sled_all_rounds={}", spread(&d.ratios));
    println!("figure quic_vs_raw_quinn_all_rounds={}", spread(&q.ratios));
    println!("figure quic_payload_entries={:.0} entries/s", median(q.ours_entries_s.clone()));
    let b = &q.breakdown;
    println!("figure sync_frame_bytes_per_entry={:.1} bytes", b.frame_bytes);
    for (name, ns) in [("next_batch", b.next_batch), ("decode", b.decode), ("judge", b.judge), ("free", b.free)] {
        println!("figure sync_cpu_{name}={ns:.0} ns/entry");
    }
    println!("figure total_time={:.0} s", started.elapsed().as_secs_f64());

    println!();
    println!("ratio drain_vs_raw_sled={:.2}", median(d.ratios.clone()));
    println!("ratio quic_vs_raw_quinn={:.2}", median(q.ratios.clone()));
    println!("ratio drain_rss_100_vs_25={:.2}", rss_100 / rss_25);
    println!("figure drain={drain_per_s:.0} entries/s");
    println!("figure raw_sled_durable={raw_sled:.0} inserts/s");
    println!("figure drain_peak_rss={peak:.1} MiB");
    println!("figure quic_payload={:.0} MiB/s", median(q.ours_mib_s.clone()));
    println!("figure raw_quinn={:.0} MiB/s", median(q.raw_mib_s.clone()));
}
