//! A real `yiwang-node` process is killed with SIGKILL in the middle of ingest, restarted, and
//! every plate read and alert it acknowledged before dying must still be there, with sequence
//! numbers that were not handed out twice. Reads that hit the watchlist are detections; the
//! others are plate reads, a sequence of their own.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use yiwang_tests::{export, post_json, watchlist_line, NodeProcess, WATCHLIST_AUTHORITY, WATCHLIST_LEGAL_BASIS};

const WATCHED_EVERY: usize = 7;

fn plate(client: usize, n: usize) -> String {
    format!("T{client}X{n:05}")
}

/// Whether `plate` (as [`plate`] makes them) is on the watchlist.
fn listed(plate: &str) -> bool {
    plate.split_once('X').and_then(|(_, n)| n.parse::<usize>().ok()).is_some_and(|n| n % WATCHED_EVERY == 0)
}

fn record(plate: &str) -> String {
    format!(
        r#"{{"data_type":"alpr_group","best_plate_number":"{plate}","best_confidence":92.5,"checkpoint_id":"cp-7","lane":1,"direction":"in","epoch_start":1764146400000}}"#
    )
}

fn write_config(dir: &std::path::Path) -> std::path::PathBuf {
    // Every 7th plate of each client is on the watchlist.
    let mut list = String::from("# kind,subject,list,reason,added_by,expires,authority,legal_basis\n");
    for client in 0..4 {
        for n in (0..100_000).step_by(WATCHED_EVERY) {
            list.push_str(&watchlist_line("plate", &plate(client, n), "stolen", "reported stolen", "officer-test"));
        }
    }
    std::fs::write(dir.join("watchlist.csv"), list).unwrap();
    yiwang_tests::write_config(
        dir,
        "town-crash",
        "town",
        "[watchlist]\nfile = \"watchlist.csv\"\n[[feeds.checkpoint]]\nname = \"roads\"\nhttp = \"127.0.0.1:0\"\n",
    )
}

#[derive(Default)]
struct Acked {
    plates: BTreeSet<String>,
    watched: BTreeSet<String>,
    seqs: BTreeSet<u64>,
    plate_read_seqs: BTreeSet<u64>,
    alert_seqs: BTreeSet<u64>,
}

#[test]
fn sigkill_during_ingest_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let node = NodeProcess::start(&config, dir.path());
    let addr = node.feed("roads", "http");
    let acked = Arc::new(Mutex::new(Acked::default()));

    // Four clients post batches as fast as the node acknowledges them.
    let stop_at = Instant::now() + Duration::from_millis(1500);
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let acked = acked.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                loop {
                    let batch: Vec<String> = (n..n + 50).map(|i| plate(client, i)).collect();
                    let body = format!("[{}]", batch.iter().map(|p| record(p)).collect::<Vec<_>>().join(","));
                    match post_json(addr, "/ingest", &body) {
                        Ok(r) if r.status == 200 => {
                            let receipt = &r.json()["receipt"];
                            let mut a = acked.lock().unwrap();
                            // A batch with no hit (or only hits) has no range of that kind.
                            let range = |first: &str, last: &str| -> Vec<u64> {
                                match (receipt[first].as_u64(), receipt[last].as_u64()) {
                                    (Some(f), Some(l)) => (f..=l).collect(),
                                    _ => Vec::new(),
                                }
                            };
                            let (hits, others) =
                                (range("first_seq", "last_seq"), range("plate_read_first_seq", "plate_read_last_seq"));
                            assert_eq!(hits.len() + others.len(), 50, "one sequence per read: {receipt}");
                            a.seqs.extend(hits);
                            a.plate_read_seqs.extend(others);
                            for s in receipt["alert_seqs"].as_array().unwrap() {
                                a.alert_seqs.insert(s.as_u64().unwrap());
                            }
                            a.watched.extend((n..n + 50).filter(|i| i % WATCHED_EVERY == 0).map(|i| plate(client, i)));
                            a.plates.extend(batch);
                        }
                        Ok(r) => panic!("unexpected answer {}: {}", r.status, r.body),
                        // The node was killed: whatever was not answered was not acknowledged.
                        Err(_) => return,
                    }
                    n += 50;
                    if Instant::now() > stop_at + Duration::from_secs(20) {
                        return;
                    }
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(1500));
    let acked_before_kill = acked.lock().unwrap().plates.len();
    assert!(acked_before_kill > 0, "nothing was acknowledged before the kill; log:\n{}", node.log());
    node.kill();
    for c in clients {
        c.join().unwrap();
    }
    let acked = Arc::try_unwrap(acked).ok().unwrap().into_inner().unwrap();
    eprintln!("acknowledged before SIGKILL: {} detections, {} alerts", acked.plates.len(), acked.alert_seqs.len());

    // Restart: the node comes back, accepts more, and its sequences continue past everything
    // it acknowledged before the kill.
    let node = NodeProcess::start(&config, dir.path());
    let r = post_json(node.feed("roads", "http"), "/ingest", &format!("[{}]", record("AFTER1"))).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let after_seq = r.json()["receipt"]["plate_read_first_seq"].as_u64().unwrap();
    assert!(after_seq > *acked.plate_read_seqs.last().unwrap(), "sequence {after_seq} reused after restart");
    node.terminate();

    let detections = export(&config, "detection");
    let plate_reads = export(&config, "plate_read");
    let by_plate: HashMap<String, u64> = detections
        .iter()
        .chain(&plate_reads)
        .map(|d| (d["record"]["Plate"]["plate"].as_str().unwrap().to_string(), d["seq"].as_u64().unwrap()))
        .collect();
    let missing: Vec<_> = acked.plates.iter().filter(|p| !by_plate.contains_key(*p)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged detections lost, e.g. {:?}",
        missing.len(),
        acked.plates.len(),
        &missing[..missing.len().min(5)]
    );
    for (kind, stored, acked_seqs) in
        [("detection", &detections, &acked.seqs), ("plate_read", &plate_reads, &acked.plate_read_seqs)]
    {
        let stored_seqs: BTreeSet<u64> = stored.iter().map(|d| d["seq"].as_u64().unwrap()).collect();
        assert!(acked_seqs.is_subset(&stored_seqs), "an acknowledged {kind} sequence is missing");
        assert_eq!(stored_seqs.len(), stored.len(), "a {kind} sequence number was stored twice");
    }
    // Every read that hit is a detection; every other one a plate read.
    let plate_of = |d: &serde_json::Value| d["record"]["Plate"]["plate"].as_str().unwrap().to_string();
    assert!(detections.iter().all(|d| listed(&plate_of(d))), "a read that hit nothing kept as a detection");
    assert!(plate_reads.iter().all(|d| !listed(&plate_of(d))), "a hit kept as a plate read");

    let alerts = export(&config, "alert");
    let alerted: BTreeSet<String> = alerts
        .iter()
        .filter_map(|a| a["record"]["WatchlistHit"]["subject"]["Plate"].as_str().map(str::to_string))
        .collect();
    let alert_seqs: BTreeSet<u64> = alerts.iter().map(|a| a["seq"].as_u64().unwrap()).collect();
    assert!(
        acked.watched.is_subset(&alerted),
        "acknowledged watchlist hits lost: {:?}",
        acked.watched.difference(&alerted).take(5).collect::<Vec<_>>()
    );
    assert!(acked.alert_seqs.is_subset(&alert_seqs));
    assert_eq!(acked.alert_seqs.len(), acked.watched.len(), "one alert per acknowledged hit");
    // Every hit is audited with who listed the plate and why.
    let audits = export(&config, "audit");
    assert!(audits.len() >= acked.watched.len());
    let why = audits[0]["record"]["why"].as_str().unwrap();
    assert!(why.contains("officer-test") && why.contains("reported stolen"), "{why}");
    // ... and under whose order and what law, in the audit record and the alert.
    assert!(why.contains(&format!("ordered by {WATCHLIST_AUTHORITY} under {WATCHLIST_LEGAL_BASIS}")), "{why}");
    let hit = &alerts[0]["record"]["WatchlistHit"];
    assert_eq!(
        (hit["authority"].as_str(), hit["legal_basis"].as_str()),
        (Some(WATCHLIST_AUTHORITY), Some(WATCHLIST_LEGAL_BASIS))
    );
    assert!(hit["expires_ms"].as_u64().is_some(), "{hit}");
}
