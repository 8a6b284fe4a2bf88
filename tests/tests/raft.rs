//! The sanctions lists' raft group as five real `yiwang-control` processes on loopback (the
//! city and four counties), every voter reaching every other through a UDP relay the test can
//! cut. Under a steady stream of list writes the leader is killed: no acknowledged write is
//! lost and a new leader takes writes. Then the voters are cut 3 | 2: the minority refuses
//! writes within their deadline with `no_quorum` while the majority goes on. After the heal
//! every voter holds the same lists at the same version, and no voter ever reported a lower
//! version than it had before, its restart included.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use yiwang_tests::voters::{add_vessel, now_ms, Group, TOKEN, VOTERS};
use yiwang_tests::{get_as, post_json_as, Documented};

/// Run `yiwangctl` against voter `i`'s API: (exit success, stdout, stderr).
fn yiwangctl(group: &Group, i: usize, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(yiwang_tests::bin("yiwangctl"))
        .args(args)
        .env("YIWANG_API", group.api(i).to_string())
        .env("YIWANG_TOKEN", TOKEN)
        .output()
        .expect("run yiwangctl");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

const CLI_ADD: &[&str] = &[
    "lists",
    "add",
    "--list",
    "black",
    "--subject",
    "mmsi:412777777",
    "--name",
    "Lu Yu 777",
    "--authority",
    "Municipal Ocean and Fisheries Bureau",
    "--legal-basis",
    "Fisheries Law art. 38",
    "--effective",
    "2026-01-01",
    "--expires",
    "2030-01-01",
    "--why",
    "listed from the command line",
];

fn entry(mmsi: u32, now_ms: u64) -> String {
    add_vessel(mmsi, now_ms, "fishing in the PMZ without a licence")
}

/// Every MMSI on the black list, as a linearizable read at voter `i` sees it.
fn listed(group: &Group, documented: &Documented, i: usize) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    let mut after = String::new();
    loop {
        let path = format!("/api/v1/lists?list=black&limit=1000{after}");
        let r = get_as(group.api(i), TOKEN, &path).unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let page = r.json();
        documented.check("Page", &page);
        for e in page["entries"].as_array().unwrap() {
            out.insert(e["subject"].as_str().unwrap().trim_start_matches("mmsi:").parse().unwrap());
        }
        match page["next"].as_str() {
            Some(next) => after = format!("&after={}", next.replace(':', "%3A")),
            None => return out,
        }
    }
}

#[test]
fn five_voters_lose_nothing_through_a_leader_kill_and_a_partition() {
    let root = yiwang_tests::test_dir("raft");
    let mut group = Group::start(root.path());
    let everyone: Vec<usize> = (0..VOTERS.len()).collect();
    let first = group.leader(&everyone);
    let documented = Documented::fetch(group.api(0));
    documented.check("RaftStatus", &group.status_with_digest(first));
    let r = post_json_as(group.api(first), TOKEN, "/api/v1/lists", &entry(411_999_999, now_ms())).unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    documented.check("Written", &r.json());

    // Every voter's applied version, watched throughout: it must never go down.
    let stop = Arc::new(AtomicBool::new(false));
    let regressions: Arc<Mutex<Vec<String>>> = Arc::default();
    let watcher = {
        let (api, stop, regressions) = (group.api.clone(), stop.clone(), regressions.clone());
        std::thread::spawn(move || {
            let mut highest = [0u64; VOTERS.len()];
            while !stop.load(Ordering::Relaxed) {
                for (i, high) in highest.iter_mut().enumerate() {
                    let Some(addr) = api.lock().unwrap()[i] else { continue };
                    let Ok(r) = get_as(addr, TOKEN, "/api/v1/raft") else { continue };
                    let Some(v) = r.json()["applied_version"].as_u64() else { continue };
                    if v < *high {
                        regressions.lock().unwrap().push(format!("{} reported {v} after {high}", VOTERS[i].0));
                    }
                    *high = (*high).max(v);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    // A writer adding vessels at whichever voter is up, remembering every acknowledged one.
    let acked: Arc<Mutex<BTreeSet<u32>>> = Arc::default();
    let next_mmsi = Arc::new(AtomicU32::new(412_000_000));
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (api, acked, next_mmsi, writing) = (group.api.clone(), acked.clone(), next_mmsi.clone(), writing.clone());
        std::thread::spawn(move || {
            let mut turn = 0usize;
            while writing.load(Ordering::Relaxed) {
                turn += 1;
                let Some(addr) = api.lock().unwrap()[turn % VOTERS.len()] else { continue };
                let mmsi = next_mmsi.fetch_add(1, Ordering::Relaxed);
                if let Ok(r) = post_json_as(addr, TOKEN, "/api/v1/lists?deadline_ms=3000", &entry(mmsi, now_ms())) {
                    if r.status == 201 {
                        acked.lock().unwrap().insert(mmsi);
                    }
                }
            }
        })
    };
    let wait_acks = |n: usize, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let start = acked.lock().unwrap().len();
        while acked.lock().unwrap().len() < start + n {
            assert!(Instant::now() < deadline, "{what}: fewer than {n} writes acknowledged in 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_acks(50, "before the leader is killed");
    group.kill(first);
    let killed_at = Instant::now();
    let rest: Vec<usize> = everyone.iter().copied().filter(|i| *i != first).collect();
    let second = group.leader(&rest);
    wait_acks(50, "after the leader was killed");
    eprintln!(
        "{} killed; {} leads; writes resumed {:?} after the kill",
        VOTERS[first].0,
        VOTERS[second].0,
        killed_at.elapsed()
    );
    group.launch(first);
    wait_acks(20, "after the old leader came back");
    writing.store(false, Ordering::Relaxed);
    writer.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    let held = listed(&group, &documented, first);
    let lost: Vec<_> = acked.difference(&held).collect();
    assert!(lost.is_empty(), "{} acknowledged writes lost across the leader kill: {lost:?}", lost.len());

    // Cut 3 | 2, the current leader on the minority side when it can be.
    let leader = group.leader(&everyone);
    let minority: Vec<usize> =
        std::iter::once(leader).chain(everyone.iter().copied().filter(|i| *i != leader).take(1)).collect();
    let majority: Vec<usize> = everyone.iter().copied().filter(|i| !minority.contains(i)).collect();
    group.partition(&minority, true);
    for &i in &minority {
        let started = Instant::now();
        let r = post_json_as(
            group.api(i),
            TOKEN,
            "/api/v1/lists?deadline_ms=2000",
            &entry(499_000_000 + i as u32, now_ms()),
        )
        .unwrap();
        let took = started.elapsed();
        assert_eq!(r.status, 503, "a minority voter ({}) must refuse a write: {}", VOTERS[i].0, r.body);
        assert_eq!(r.json()["code"], "no_quorum", "{}", r.body);
        documented.check("Error", &r.json());
        assert!(r.json()["message"].as_str().unwrap().contains("holds version"), "{}", r.body);
        assert!(took < Duration::from_millis(3_500), "the refusal took {took:?}, past its 2 s deadline");
        // So does the command line, within its own deadline, and says why.
        let mut args = CLI_ADD.to_vec();
        args.extend(["--deadline", "2s"]);
        let (ok, _, err) = yiwangctl(&group, i, &args);
        assert!(!ok && err.contains("no quorum"), "yiwangctl on the minority side: {err}");
        // It still says what it has.
        assert!(group.status(i)["applied_version"].as_u64().unwrap() > 0);
    }
    let majority_leader = group.leader(&majority);
    let mut during = Vec::new();
    for k in 0..10u32 {
        let at = majority[k as usize % majority.len()];
        let r = post_json_as(group.api(at), TOKEN, "/api/v1/lists?deadline_ms=5000", &entry(498_000_000 + k, now_ms()))
            .unwrap();
        assert_eq!(r.status, 201, "the majority ({} leads) takes writes: {}", VOTERS[majority_leader].0, r.body);
        during.push(498_000_000 + k);
    }

    // Heal: every voter reaches the same lists at the same version.
    group.partition(&minority, false);
    let deadline = Instant::now() + Duration::from_secs(30);
    let converged = loop {
        let states: BTreeSet<(u64, String)> = everyone
            .iter()
            .map(|i| {
                let s = group.status_with_digest(*i);
                (s["applied_version"].as_u64().unwrap(), s["lists_digest"].as_str().unwrap().to_string())
            })
            .collect();
        if states.len() == 1 {
            break states.into_iter().next().unwrap();
        }
        assert!(Instant::now() < deadline, "voters did not converge within 30 s of the heal: {states:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    for &i in &minority {
        let held = listed(&group, &documented, i);
        assert!(during.iter().all(|m| held.contains(m)), "{} caught up with the majority's writes", VOTERS[i].0);
        assert!(!held.contains(&(499_000_000 + i as u32)), "the refused minority write never took effect");
        assert!(acked.is_subset(&held));
    }
    // The operator's command line, at a follower: add, remove with a reason, read the history.
    let at = everyone.iter().copied().find(|i| *i != group.leader(&everyone)).unwrap();
    let (ok, out, err) = yiwangctl(&group, at, CLI_ADD);
    assert!(ok && out.contains("added mmsi:412777777 to the black list at version"), "{out}{err}");
    let (ok, out, err) =
        yiwangctl(&group, at, &["lists", "remove", "black", "mmsi:412777777", "--why", "credit repaired: fine paid"]);
    assert!(ok && out.contains("removed mmsi:412777777"), "{out}{err}");
    let (ok, out, err) = yiwangctl(&group, at, &["lists", "history", "black", "mmsi:412777777"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].contains("\tadd\t")
            && lines[0].contains("operator-test")
            && lines[0].contains("listed from the command line")
    );
    assert!(lines[1].contains("\tremove\t") && lines[1].contains("credit repaired: fine paid"), "{out}");
    let (ok, out, err) = yiwangctl(&group, at, &["raft", "status"]);
    assert!(ok && out.contains("follower in term") && out.contains("voter city at"), "{out}{err}");

    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let regressions = regressions.lock().unwrap();
    assert!(regressions.is_empty(), "versions went backwards: {regressions:?}");
    eprintln!("converged at version {} with {} acknowledged writes", converged.0, acked.len() + during.len());
}
