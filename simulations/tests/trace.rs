//! `yiwang-sim trace`: a run replays from its seed in another process, a city of 20 nodes under
//! ten power cuts keeps every promise, and the checkers see the bug the durable-heads rule
//! prevents when it is put back on purpose.

use node::store::InjectedBugs;
use simulations::run::{run_trace, TraceOptions};
use std::process::Command;
use std::time::Duration;

/// Runs the binary and returns its `figure NAME=VALUE` lines as (name, value), and its exit code.
fn run_binary(args: &[&str]) -> (Vec<(String, String)>, Option<i32>) {
    let out = Command::new(env!("CARGO_BIN_EXE_yiwang-sim")).args(args).output().expect("yiwang-sim runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let figures = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("figure ").or_else(|| l.strip_prefix("ratio ")))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (figures, out.status.code())
}

fn figure<'a>(figures: &'a [(String, String)], name: &str) -> &'a str {
    figures
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {figures:?}"))
}

#[test]
fn the_same_seed_gives_the_same_trace_in_another_process_and_another_seed_another() {
    let args =
        |seed: &'static str| ["trace", "--nodes", "12", "--seed", seed, "--virtual", "3m", "--crashes", "3", "--quiet"];
    let (first, code) = run_binary(&args("11"));
    assert_eq!(code, Some(0), "{first:?}");
    let (again, _) = run_binary(&args("11"));
    let (other, _) = run_binary(&args("12"));
    let hash = figure(&first, "trace_hash");
    assert_eq!(hash.len(), 64, "a SHA-256 in hex: {hash}");
    assert_eq!(hash, figure(&again, "trace_hash"), "same seed, same trace");
    assert_ne!(hash, figure(&other, "trace_hash"), "another seed, another trace");
    for figures in [&first, &again, &other] {
        assert_eq!(figure(figures, "seq_conflicts"), "0");
        assert_eq!(figure(figures, "lost_acked"), "0");
        assert_eq!(figure(figures, "power_cuts"), "3");
        let ratio: f64 = figure(figures, "virtual_vs_wall").parse().unwrap();
        assert!(ratio > 0.0);
    }
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_yiwang-sim"))
        .args(["trace", "--virtual", "ten minutes"])
        .output()
        .expect("yiwang-sim runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--virtual"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(env!("CARGO_BIN_EXE_yiwang-sim")).args(["trace", "--nodes", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

fn twenty_nodes(seed: u64, bugs: InjectedBugs) -> TraceOptions {
    TraceOptions { nodes: 20, seed, duration: Duration::from_secs(600), crashes: 10, bugs, ..TraceOptions::default() }
}

#[test]
fn twenty_nodes_through_ten_power_cuts_lose_nothing_and_number_nothing_twice() {
    for seed in [1, 2, 3] {
        let report = run_trace(&twenty_nodes(seed, InjectedBugs::default())).unwrap();
        assert_eq!(report.crashes, 10, "seed {seed}");
        assert!(report.crashes_in_flush > 0, "seed {seed}: no power cut fell inside a flush");
        assert!(report.ops_acknowledged > 500, "seed {seed}: the workload ran: {report:?}");
        assert!(report.seq_conflicts.is_empty(), "seed {seed}: {:?}", report.seq_conflicts);
        assert_eq!(report.lost_acked, 0, "seed {seed}");
        assert!(report.converged_after().is_some(), "seed {seed}: no convergence after the heal");
        assert!(report.passed());
    }
}

#[test]
fn replicating_before_durable_is_caught_by_the_seq_conflict_check() {
    let bug = InjectedBugs { replicate_before_durable: true, ..InjectedBugs::default() };
    let caught: Vec<(u64, usize)> = (1..=5)
        .map(|seed| (seed, run_trace(&twenty_nodes(seed, bug)).unwrap().seq_conflicts.len()))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert!(!caught.is_empty(), "no seed of 1 to 5 showed the injected bug");
}
