//! `yiwang-sim run`: every shipped scenario passes, each injected bug fails the scenarios
//! meant to catch it (on the check meant to catch it), a run is a function of its seed, and a
//! report replays in another process and draws its timelines.

use node::store::InjectedBugs;
use simulations::run::{run, RunOptions, RunReport};
use simulations::scenario::{Scenario, SHIPPED};
use std::process::Command;

/// The seed the suite runs the scenarios on (`yiwang-sim explore --scenario S --seeds 20`
/// runs many; README has the figures).
const SEED: u64 = 7;

fn options(seed: u64, bugs: InjectedBugs) -> RunOptions {
    RunOptions { seed, bugs, ignore_one_way_cuts: false, progress: None }
}

fn run_named(name: &str, options: &RunOptions) -> RunReport {
    let scenario = Scenario::load(name).unwrap_or_else(|e| panic!("{e}"));
    run(&scenario, options).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn failures(r: &RunReport) -> Vec<String> {
    r.checks.iter().filter(|c| !c.passed).map(|c| format!("{}: {}", c.name, c.detail)).collect()
}

/// Each shipped scenario passes every check, and each of its faults was seen to act.
fn passes(name: &str) {
    let r = run_named(name, &options(SEED, InjectedBugs::default()));
    assert!(r.passed(), "{name} seed {SEED}: {:#?}", failures(&r));
    assert_eq!(r.checks.len(), 10, "with voters, every check runs: {:?}", r.checks);
    assert!(r.faults.iter().all(|f| f.evidence.is_ok()), "{:#?}", r.faults);
    let spec = Scenario::load(name).unwrap();
    if !spec.faults.is_empty() {
        assert!(!r.faults.is_empty(), "{name}: no fault window ran");
    }
    assert!(r.ops_acknowledged > 0);
    assert!(
        r.sanctions_hits > 0,
        "{name}: the harbours' fleet meets the listed vessels, and nodes enforce the lists at ingest"
    );
}

macro_rules! shipped {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(#[test] fn $test() { passes($name) })*

        #[test]
        fn every_shipped_scenario_has_its_test() {
            let tested = [$($name),*];
            for (name, _) in SHIPPED {
                assert!(tested.contains(name), "{name} has no test here");
            }
        }
    };
}

shipped! {
    town_island => "town-island",
    county_cut => "county-cut",
    city_alone => "city-alone",
    raft_ring => "raft-ring",
    raft_bridge => "raft-bridge",
    leader_minority => "leader-minority",
    harbour_one_way => "harbour-one-way",
    idle_flap => "idle-flap",
    long_partition => "long-partition",
    crash_storm => "crash-storm",
    skewed_town => "skewed-town",
    late_harbour => "late-harbour",
    lossy_harbours => "lossy-harbours",
    mass_heal => "mass-heal",
    county_disk_full => "county-disk-full",
    slow_county_link => "slow-county-link",
}

/// Runs `name` with a bug and asserts it fails, on `check` among others.
fn caught(name: &str, options: RunOptions, check: &str) {
    let r = run_named(name, &options);
    let failed: Vec<&str> = r.checks.iter().filter(|c| !c.passed).map(|c| c.name).collect();
    assert!(failed.contains(&check), "{name} with {:?}: {check} should fail; failed: {failed:?}", r.bugs);
}

#[test]
fn replicating_before_durable_is_caught_by_the_crash_storm() {
    let bugs = InjectedBugs { replicate_before_durable: true, ..InjectedBugs::default() };
    caught("crash-storm", options(SEED, bugs), "no_seq_conflicts");
}

#[test]
fn dropping_an_acknowledged_entry_is_caught_by_an_island_heal() {
    let bugs = InjectedBugs { drop_acked_entry: true, ..InjectedBugs::default() };
    caught("town-island", options(SEED, bugs), "nothing_lost");
}

#[test]
fn taking_lists_out_of_order_is_caught_by_partitions_of_the_voters() {
    let bugs = InjectedBugs { list_out_of_order: true, ..InjectedBugs::default() };
    for name in ["county-cut", "leader-minority"] {
        caught(name, options(SEED, bugs), "list_versions_monotonic");
    }
}

#[test]
fn ignoring_one_way_cuts_is_caught_by_the_fault_log() {
    let o = RunOptions { ignore_one_way_cuts: true, ..options(SEED, InjectedBugs::default()) };
    caught("harbour-one-way", o, "faults_happened");
}

#[test]
fn a_run_is_a_function_of_its_seed() {
    let a = run_named("idle-flap", &options(3, InjectedBugs::default()));
    let b = run_named("idle-flap", &options(3, InjectedBugs::default()));
    let c = run_named("idle-flap", &options(4, InjectedBugs::default()));
    assert_eq!(a.trace_hash, b.trace_hash, "same seed, same trace");
    assert_eq!(a.ops_acknowledged, b.ops_acknowledged);
    assert_ne!(a.trace_hash, c.trace_hash, "another seed, another trace");
}

fn sim(args: &[&str]) -> (String, String, Option<i32>) {
    let out = Command::new(env!("CARGO_BIN_EXE_yiwang-sim")).args(args).output().expect("yiwang-sim runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or_default()
}

#[test]
fn a_report_replays_in_another_process_and_draws_the_timelines() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("run");
    let (out, err, code) =
        sim(&["run", "harbour-one-way", "--seed", "5", "--quiet", "--report", report.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    let verdict = last_line(&out);
    assert!(verdict.starts_with("verdict: PASS scenario=harbour-one-way seed=5 virtual=1800s wall="), "{verdict}");
    let trace = verdict.rsplit_once("trace=").unwrap().1;
    assert_eq!(trace.len(), 64);

    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(report.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["seed"], 5);
    assert_eq!(json["trace_hash"], trace);
    assert_eq!(json["spec"]["name"], "harbour-one-way");
    assert!(json["checks"].as_array().unwrap().iter().all(|c| c["passed"] == true), "{}", json["checks"]);
    assert_eq!(json["faults"][0]["kind"], "cut");
    assert!(json["faults"][0]["evidence"]["Ok"].as_str().unwrap().contains("dropped"));
    let timelines = json["timelines"].as_array().unwrap();
    assert_eq!(timelines.len(), 15, "one per site");
    assert!(timelines.iter().all(|t| t["up"].as_array().unwrap().len() > 100));

    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    for id in ["availability", "lag", "versions"] {
        assert!(html.contains(&format!("<svg id=\"{id}\"")), "no {id} chart");
    }
    assert!(html.contains("class=\"fault\""), "the fault window is shaded");
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"), "nothing is fetched from anywhere");
    assert_well_formed(&html);

    let (out, err, code) = sim(&["replay", report.join("report.json").to_str().unwrap(), "--quiet"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(&format!("replayed: the trace is the same ({trace})")), "{out}");
    assert!(last_line(&out).ends_with(&format!("trace={trace}")));
}

/// Every element the report opens it closes (an XML reader over the document, which the
/// generator writes as XHTML-compatible markup apart from the doctype and void `meta`).
fn assert_well_formed(html: &str) {
    let body = html.replacen("<!doctype html>", "", 1).replacen("<meta charset=\"utf-8\">", "", 1);
    let mut reader = quick_xml::Reader::from_str(&body);
    let mut depth = 0i64;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(_)) => depth += 1,
            Ok(quick_xml::events::Event::End(_)) => depth -= 1,
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("report.html is not well formed at {}: {e}", reader.buffer_position()),
        }
    }
    assert_eq!(depth, 0);
}

#[test]
fn the_command_line_lists_refuses_and_explores() {
    let (out, _, code) = sim(&["list"]);
    assert_eq!(code, Some(0));
    assert_eq!(out.lines().count(), SHIPPED.len());
    for (name, _) in SHIPPED {
        assert!(out.lines().any(|l| l.starts_with(name) && l.len() > name.len() + 20), "{name} in {out}");
    }

    let (_, err, code) = sim(&["run", "no-such-scenario"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no-such-scenario") && err.contains("yiwang-sim list"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"bad\"\nsummary = \"x\"\nduration = \"1m\"\n[topology]\nnodes = 5\n[[fault]]\nkind = \"crash\"\nnodes = [\"town-1\"]\nat = \"1m\"\nwhen = \"later\"\n").unwrap();
    let (_, err, code) = sim(&["run", bad.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("when"), "names the unknown key: {err}");

    let (out, err, code) = sim(&["explore", "--seeds", "2", "--from", "40"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(last_line(&out), "explored: 2 seeds from 40, 0 failed");
    assert_eq!(err.lines().filter(|l| l.contains(": PASS")).count(), 2, "{err}");
}

#[test]
fn a_paused_town_takes_nothing_while_stopped_and_catches_up_after() {
    let text =
        "name = \"pause\"\nsummary = \"y\"\nduration = \"10m\"\n[topology]\ncounties = 1\ntowns = 2\nharbours = 1\n\
                [workload]\nop_interval = \"5s\"\nlist_write_interval = \"0s\"\n\
                [[fault]]\nkind = \"pause\"\nnodes = [\"town-1\"]\nat = \"2m\"\nfor = \"3m\"\n";
    let scenario = Scenario::parse("pause", text).unwrap();
    let r = run(&scenario, &options(2, InjectedBugs::default())).unwrap();
    assert!(r.passed(), "{:#?}", failures(&r));
    assert_eq!(r.faults[0].kind, "pause");
    let town = r.timelines.iter().find(|t| t.node == "town-1").unwrap();
    let every = r.timeline_every_s;
    // Points strictly inside the pause (2 to 5 minutes) saw nothing tried; those around it did.
    let inside: u32 = (0..town.tried.len())
        .filter(|&i| i as f64 * every > 130.0 && (i as f64) * every < 300.0)
        .map(|i| town.tried[i])
        .sum();
    let before: u32 = (0..town.tried.len()).filter(|&i| (i as f64) * every < 120.0).map(|i| town.tried[i]).sum();
    let after: u32 = (0..town.tried.len()).filter(|&i| (i as f64) * every > 310.0).map(|i| town.tried[i]).sum();
    assert_eq!(inside, 0, "{:?}", town.tried);
    assert!(before > 5 && after > 5, "{before} before, {after} after");
    assert!(r.heals[0].converged_after_s.is_some());
}

#[test]
fn a_scenario_selector_that_names_nothing_is_refused() {
    let text = "name = \"x\"\nsummary = \"y\"\nduration = \"2m\"\n[topology]\nnodes = 5\n[workload]\nlist_write_interval = \"0s\"\n\
                [[fault]]\nkind = \"isolate\"\nnodes = [\"town-99\"]\nat = \"1m\"\n";
    let scenario = Scenario::parse("x", text).unwrap();
    let err = run(&scenario, &options(1, InjectedBugs::default())).expect_err("refused").to_string();
    assert!(err.contains("town-99"), "{err}");
}
