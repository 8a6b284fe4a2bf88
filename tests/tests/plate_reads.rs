//! Plate reads that hit no list, with a real `yiwang-node` process: kept apart from the hits
//! for their own retention (`store.plate_read_retention_hours`, default 24), or at 0 not
//! stored at all; every read counted per checkpoint and hour either way, and the counts read
//! back through the API and across a restart.

use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use yiwang_tests::{export, get_as, operator_token, post_json, wait_until, watchlist_line, write_config, NodeProcess};

const WATCHED: &str = "鲁K12345";
const CHECKPOINT: &str = "cp-harbour-road";

fn read(plate: &str) -> String {
    format!(
        r#"{{"data_type":"alpr_group","best_plate_number":"{plate}","best_confidence":92.5,"checkpoint_id":"{CHECKPOINT}","lane":1,"direction":"in","epoch_start":1764146400000}}"#
    )
}

fn config(dir: &Path, store: &str) -> std::path::PathBuf {
    std::fs::write(
        dir.join("watchlist.csv"),
        watchlist_line("plate", WATCHED, "stolen", "reported stolen", "officer-li"),
    )
    .unwrap();
    let rest = format!(
        "{store}[watchlist]\nfile = \"watchlist.csv\"\n[[feeds.checkpoint]]\nname = \"roads\"\nhttp = \"127.0.0.1:0\"\n"
    );
    write_config(dir, "town-reads", "town", &rest)
}

/// Five reads, the second of a watched plate; the receipt.
fn post_five(node: &NodeProcess) -> Value {
    let plates = ["鲁B00001", WATCHED, "鲁B00002", "鲁B00003", "鲁B00004"];
    let body = format!("[{}]", plates.map(read).join(","));
    let r = post_json(node.feed("roads", "http"), "/ingest", &body).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["receipt"].clone()
}

/// The API's counts of this checkpoint's reads over the last day.
fn counted(node: &NodeProcess, dir: &Path) -> Value {
    let path = format!("/api/v1/plate-reads/counts?checkpoint={CHECKPOINT}");
    let r = get_as(node.http(), &operator_token(dir), &path).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// The reads the counts add up to (one row per hour: a test may run across an hour's end).
fn total(counts: &Value) -> u64 {
    counts["counts"].as_array().unwrap().iter().map(|c| c["reads"].as_u64().unwrap()).sum()
}

fn plates_of(entries: &[Value]) -> Vec<&str> {
    entries.iter().map(|e| e["record"]["Plate"]["plate"].as_str().unwrap()).collect()
}

#[test]
fn reads_that_hit_nothing_are_kept_apart_for_a_day_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let node = NodeProcess::start(&config, dir.path());
    let receipt = post_five(&node);
    assert_eq!(receipt["accepted"], 5);
    assert_eq!((receipt["first_seq"].as_u64(), receipt["last_seq"].as_u64()), (Some(1), Some(1)), "the hit");
    assert_eq!(
        (receipt["plate_read_first_seq"].as_u64(), receipt["plate_read_last_seq"].as_u64()),
        (Some(1), Some(4)),
        "the four reads that hit nothing, in their own sequence"
    );
    let counts = counted(&node, dir.path());
    assert_eq!(counts["plate_read_retention_hours"], 24.0);
    assert_eq!(counts["counts"][0]["checkpoint"], CHECKPOINT);
    assert_eq!(total(&counts), 5, "every read is counted, the hit too: {counts}");
    node.terminate();

    assert_eq!(plates_of(&export(&config, "detection")), [WATCHED]);
    assert_eq!(plates_of(&export(&config, "plate_read")), ["鲁B00001", "鲁B00002", "鲁B00003", "鲁B00004"]);

    // Retention lowered to 0: the next start sweeps the stored reads away; the hit and the
    // counts stay.
    let config = self::config(dir.path(), "[store]\nplate_read_retention_hours = 0\n");
    let node = NodeProcess::start(&config, dir.path());
    wait_until("the stored plate reads swept", Duration::from_secs(30), || {
        let log = node.log();
        log.lines()
            .any(|l| l.contains("retention removed old entries") && l.contains("plate_read") && l.contains("deleted=4"))
            .then_some(())
            .ok_or_else(|| "no sweep of plate reads in the log yet".to_string())
    });
    assert_eq!(total(&counted(&node, dir.path())), 5);
    node.terminate();
    assert!(export(&config, "plate_read").is_empty());
    assert_eq!(plates_of(&export(&config, "detection")), [WATCHED]);
}

#[test]
fn at_zero_hours_reads_that_hit_nothing_are_only_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "[store]\nplate_read_retention_hours = 0\n");
    let node = NodeProcess::start(&config, dir.path());
    let receipt = post_five(&node);
    assert_eq!(receipt["accepted"], 5, "{receipt}");
    assert_eq!(receipt["alerts"], 1);
    assert_eq!((receipt["first_seq"].as_u64(), receipt["last_seq"].as_u64()), (Some(1), Some(1)));
    assert_eq!(receipt["plate_read_first_seq"], Value::Null, "nothing stored: {receipt}");
    let counts = counted(&node, dir.path());
    assert_eq!(counts["plate_read_retention_hours"], 0.0);
    assert_eq!(total(&counts), 5);
    node.terminate();
    assert!(export(&config, "plate_read").is_empty());
    assert_eq!(plates_of(&export(&config, "detection")), [WATCHED]);

    // The counts survive a restart and keep adding.
    let node = NodeProcess::start(&config, dir.path());
    post_five(&node);
    assert_eq!(total(&counted(&node, dir.path())), 10);
    node.terminate();
}
