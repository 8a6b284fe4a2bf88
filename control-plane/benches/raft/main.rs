//! `cargo bench -p yiwang-control-plane --bench raft`: five `yiwang-control` voters as real
//! processes on loopback (real sled, real QUIC with mutual TLS), driven through the operator
//! API as an operator would.
//!
//! - list writes: one writer adding entries one at a time at the leader, each answered once
//!   committed (durable on a quorum) and applied; p50 and p99 latency, against a baseline in
//!   the same run: one sled insert made durable with `flush` (the floor of any durable write).
//! - bulk import: 100,000 rows of CSV in one import call, entries per second.
//! - failover: the leader killed with SIGKILL, to the first write accepted by the survivors,
//!   over 20 trials (the killed voter is restarted and caught up between trials).
//!
//! Ends with the headline figures, one per line.

use std::time::{Duration, Instant};
use yiwang_tests::voters::{add_vessel, import_csv, now_ms, Group, TOKEN, VOTERS};
use yiwang_tests::{post_json_as, request};

const WRITES: usize = 1_000;
const IMPORT_ROWS: u32 = 100_000;
const FAILOVER_TRIALS: usize = 20;

fn entry(mmsi: u32) -> String {
    add_vessel(mmsi, now_ms(), "benchmark")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One sled insert made durable, timed the same number of times: the baseline.
fn sled_flushes(n: usize) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new().path(dir.path()).cache_capacity(64 << 20).open().unwrap();
    let value = entry(1).into_bytes();
    let mut out: Vec<Duration> = (0..n)
        .map(|i| {
            let t = Instant::now();
            db.insert((i as u64).to_be_bytes(), value.clone()).unwrap();
            db.flush().unwrap();
            t.elapsed()
        })
        .collect();
    out.sort();
    out
}

fn main() {
    // YIWANG_KEEP_TEST_DIRS=1 keeps the voters' directories and logs.
    let dir = yiwang_tests::test_dir("raft benchmark");
    eprintln!("starting five voters in {}", dir.path().display());
    let mut group = Group::start(dir.path());
    let everyone: Vec<usize> = (0..VOTERS.len()).collect();
    let leader = group.leader(&everyone);

    // List writes, one at a time, at the leader.
    let mut writes = Vec::with_capacity(WRITES);
    for k in 0..WRITES {
        let t = Instant::now();
        let r = post_json_as(group.api(leader), TOKEN, "/api/v1/lists", &entry(300_000_000 + k as u32)).unwrap();
        writes.push(t.elapsed());
        assert_eq!(r.status, 201, "{}", r.body);
        if k % 250 == 249 {
            eprintln!("{} writes", k + 1);
        }
    }
    writes.sort();
    let sled = sled_flushes(WRITES);

    // Bulk import.
    let csv = import_csv(400_000_000, IMPORT_ROWS, now_ms());
    eprintln!("importing {IMPORT_ROWS} rows ({} MiB of CSV)", csv.len() >> 20);
    let t = Instant::now();
    let r = request(
        group.api(leader),
        "POST",
        "/api/v1/lists/import?why=benchmark&deadline_ms=60000",
        &[("Content-Type", "text/csv"), ("Authorization", &format!("Bearer {TOKEN}"))],
        csv.as_bytes(),
    )
    .unwrap();
    let import_time = t.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["committed"], IMPORT_ROWS);

    // Failover.
    let mut failovers = Vec::with_capacity(FAILOVER_TRIALS);
    let mut mmsi = 500_000_000u32;
    for trial in 0..FAILOVER_TRIALS {
        let leader = group.leader(&everyone);
        group.kill(leader);
        let killed = Instant::now();
        let survivors: Vec<usize> = everyone.iter().copied().filter(|i| *i != leader).collect();
        // One write after another at the survivors, each allowed the time an election takes;
        // a survivor answers as soon as a new leader has committed it.
        let mut turn = 0;
        loop {
            turn += 1;
            mmsi += 1;
            let at = group.api(survivors[turn % survivors.len()]);
            if let Ok(r) = post_json_as(at, TOKEN, "/api/v1/lists?deadline_ms=3000", &entry(mmsi)) {
                if r.status == 201 {
                    break;
                }
            }
            assert!(killed.elapsed() < Duration::from_secs(30), "no write accepted within 30 s of the kill");
        }
        failovers.push(killed.elapsed());
        eprintln!("failover {}: {:.0} ms ({} killed)", trial + 1, ms(killed.elapsed()), VOTERS[leader].0);
        // Back to five, caught up, before the next trial.
        group.launch(leader);
        let target = group.status(group.leader(&survivors))["applied_version"].as_u64().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while group.status(leader)["applied_version"].as_u64().unwrap() < target {
            assert!(
                Instant::now() < deadline,
                "the restarted voter did not catch up in 30 s: {} of {target}",
                group.status(leader)["applied_version"]
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    failovers.sort();

    println!("writes={WRITES} import_rows={IMPORT_ROWS} failover_trials={FAILOVER_TRIALS}");
    println!("figure raw_sled_flush_p50={:.2} ms", ms(percentile(&sled, 0.5)));
    println!("ratio list_write_p50_vs_sled_flush={:.2}", ms(percentile(&writes, 0.5)) / ms(percentile(&sled, 0.5)));
    println!("figure list_write_p50={:.2} ms", ms(percentile(&writes, 0.5)));
    println!("figure list_write_p99={:.2} ms", ms(percentile(&writes, 0.99)));
    println!("figure bulk_import={:.0} entries/s", f64::from(IMPORT_ROWS) / import_time.as_secs_f64());
    println!("figure failover_p50={:.0} ms", ms(percentile(&failovers, 0.5)));
    println!("figure failover_p99={:.0} ms", ms(percentile(&failovers, 0.99)));
}
