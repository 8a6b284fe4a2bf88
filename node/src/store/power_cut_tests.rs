//! The store on the simulated disk: what a power cut keeps and loses, durable heads that move
//! only after the flush, atomic commits across trees, and the disk's fault hooks.

use super::*;
use crate::clock::ManualClock;
use std::time::Duration;

fn node() -> NodeId {
    NodeId::new("town-sim").unwrap()
}

fn open(disk: &SimDisk, bugs: InjectedBugs) -> Store {
    let clock = Arc::new(ManualClock::new(1_000));
    Store::simulated(disk, node(), clock, StoreConfig::default(), Metrics::unregistered(), bugs).unwrap()
}

fn append(kind: Kind, payload: &[u8]) -> Op {
    Op::Append { kind, payload: payload.to_vec() }
}

/// Let other tasks run until the disk is in the middle of a flush.
async fn until_flushing(disk: &SimDisk) {
    for _ in 0..1000 {
        if disk.flush_window().is_some() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("no flush began");
}

/// Commit `ops` in a task of its own and return it once the disk is flushing them.
async fn commit_until_flushing(
    store: &Store,
    disk: &SimDisk,
    ops: Vec<Op>,
) -> tokio::task::JoinHandle<Result<Vec<Appended>, StoreError>> {
    let s = store.clone();
    let task = tokio::spawn(async move { s.commit(ops).await });
    until_flushing(disk).await;
    task
}

#[tokio::test(start_paused = true)]
async fn durable_heads_move_after_the_flush_not_when_the_engine_shows_the_entry() {
    let disk = SimDisk::new(1);
    let store = open(&disk, InjectedBugs::default());
    let pending = commit_until_flushing(&store, &disk, vec![append(Kind::Alert, b"a1")]).await;
    assert_eq!(store.entries(Kind::Alert, &node(), 1).count(), 1, "applied: the engine shows it");
    assert_eq!(store.heads(Kind::Alert).get(&node()), 0, "not durable: replication must not see it");
    pending.await.unwrap().unwrap();
    assert_eq!(store.heads(Kind::Alert).get(&node()), 1);
}

#[tokio::test(start_paused = true)]
async fn with_the_injected_bug_heads_move_before_the_flush() {
    let disk = SimDisk::new(1);
    let store = open(&disk, InjectedBugs { replicate_before_durable: true, ..InjectedBugs::default() });
    let pending = commit_until_flushing(&store, &disk, vec![append(Kind::Alert, b"a1")]).await;
    assert_eq!(store.heads(Kind::Alert).get(&node()), 1, "the bug publishes what is not durable yet");
    pending.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_power_cut_keeps_what_was_durable_and_each_commit_under_way_whole_or_not_at_all() {
    let (mut kept, mut lost) = (0, 0);
    for seed in 0..40 {
        let disk = SimDisk::new(seed);
        let store = open(&disk, InjectedBugs::default());
        store.commit(vec![append(Kind::Alert, b"durable")]).await.unwrap();
        // Three commits queued together, so one flush writes them as two batches (a batch
        // holds whole commits, about a thousand writes): the cut may keep the first batch.
        // The one under test spans three trees: an alert, its audit record and a state value.
        let spanning = vec![
            append(Kind::Alert, b"cut"),
            append(Kind::Audit, b"audit of cut"),
            Op::Put { tree: "state/test", key: b"k".to_vec(), value: b"v".to_vec() },
        ];
        let bulk = || (0..1100).map(|i: u32| append(Kind::Detection, &i.to_be_bytes())).collect::<Vec<_>>();
        let writers: Vec<_> = [spanning, bulk(), bulk()]
            .into_iter()
            .map(|ops| {
                let s = store.clone();
                tokio::spawn(async move { s.commit(ops).await })
            })
            .collect();
        until_flushing(&disk).await;
        let cut = disk.power_cut();
        assert!(cut.during_flush && cut.batches_lost > 0, "seed {seed}: {cut:?}");
        for w in writers {
            assert!(w.await.unwrap().is_err(), "a writer whose commit the cut caught is never told it is stored");
        }
        drop(store);

        let store = open(&disk, InjectedBugs::default());
        let alerts: Vec<_> = store.entries(Kind::Alert, &node(), 1).map(|e| e.unwrap().payload).collect();
        let audits = store.entries(Kind::Audit, &node(), 1).count();
        let state = store.get("state/test", b"k").unwrap();
        match alerts.len() {
            1 => {
                assert_eq!((audits, state), (0, None), "seed {seed}: a torn commit");
                lost += 1;
            }
            2 => {
                assert_eq!((audits, state.as_deref()), (1, Some(&b"v"[..])), "seed {seed}: a torn commit");
                kept += 1;
            }
            n => panic!("seed {seed}: {n} alerts"),
        }
        assert_eq!(alerts[0], b"durable");
        // Heads after the restart are what survived, and numbering goes on from there.
        assert_eq!(store.heads(Kind::Alert).get(&node()), alerts.len() as u64);
        let next = store.commit(vec![append(Kind::Alert, b"after")]).await.unwrap();
        assert_eq!(next[0].seq, alerts.len() as u64 + 1);
    }
    assert!(kept > 0 && lost > 0, "over 40 seeds a cut both kept and lost a batch under way: kept {kept}, lost {lost}");
}

#[tokio::test(start_paused = true)]
async fn a_cut_during_a_flush_of_one_batch_loses_it() {
    for seed in 0..10 {
        let disk = SimDisk::new(seed);
        let store = open(&disk, InjectedBugs::default());
        let pending = commit_until_flushing(&store, &disk, vec![append(Kind::Alert, b"a")]).await;
        assert_eq!(disk.power_cut(), PowerCut { during_flush: true, batches_kept: 0, batches_lost: 1 });
        assert!(pending.await.unwrap().is_err());
        drop(store);
        assert_eq!(open(&disk, InjectedBugs::default()).entries(Kind::Alert, &node(), 1).count(), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn the_torn_commit_crash_tears_a_store_that_writes_a_batch_per_tree() {
    // Proves the crash model can see the bug the one-batch commit prevents.
    let mut torn = 0;
    for seed in 0..40 {
        let disk = SimDisk::new(seed);
        let store = open(&disk, InjectedBugs { commit_per_tree: true, ..InjectedBugs::default() });
        let ops = vec![append(Kind::Alert, b"cut"), append(Kind::Audit, b"audit of cut")];
        let pending = commit_until_flushing(&store, &disk, ops).await;
        disk.power_cut();
        let _ = pending.await;
        drop(store);
        let store = open(&disk, InjectedBugs::default());
        let alerts = store.entries(Kind::Alert, &node(), 1).count();
        let audits = store.entries(Kind::Audit, &node(), 1).count();
        if alerts != audits {
            torn += 1;
        }
    }
    assert!(torn > 0, "a batch per tree must tear under some seed");
}

#[tokio::test(start_paused = true)]
async fn a_cut_while_idle_loses_nothing_durable() {
    let disk = SimDisk::new(3);
    let store = open(&disk, InjectedBugs::default());
    for i in 0..5u8 {
        store.commit(vec![append(Kind::Audit, &[i])]).await.unwrap();
    }
    let cut = disk.power_cut();
    assert_eq!(cut, PowerCut { during_flush: false, batches_kept: 0, batches_lost: 0 });
    assert!(store.commit(vec![append(Kind::Audit, b"x")]).await.is_err(), "the store lost power");
    drop(store);
    let store = open(&disk, InjectedBugs::default());
    assert_eq!(store.entries(Kind::Audit, &node(), 1).count(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_failing_flush_fails_its_writers_and_what_it_held_dies_with_the_power() {
    let disk = SimDisk::new(4);
    let store = open(&disk, InjectedBugs::default());
    store.commit(vec![append(Kind::Alert, b"ok")]).await.unwrap();
    assert!(!store.has_failed());
    let watcher = {
        let s = store.clone();
        tokio::spawn(async move { s.failure().await })
    };
    disk.update_faults(|f| f.fail_flushes = true);
    let err = store.commit(vec![append(Kind::Alert, b"unflushed")]).await.unwrap_err();
    assert!(err.to_string().contains("I/O error"), "{err}");
    // What the node binary waits on to stop, so its supervisor restarts it on what is durable.
    tokio::time::timeout(Duration::from_secs(1), watcher).await.expect("failure() resolves").unwrap();
    assert!(store.has_failed());
    assert!(matches!(store.commit(vec![append(Kind::Alert, b"later")]).await, Err(StoreError::Failed(_))));
    assert_eq!(store.heads(Kind::Alert).get(&node()), 1, "nothing unflushed is published");
    disk.power_cut();
    disk.update_faults(|f| f.fail_flushes = false);
    drop(store);
    let store = open(&disk, InjectedBugs::default());
    assert_eq!(store.entries(Kind::Alert, &node(), 1).count(), 1);
    assert_eq!(disk.stats().failed_flushes, 1);
}

#[tokio::test(start_paused = true)]
async fn flushes_take_the_disks_virtual_latency_and_a_full_disk_refuses() {
    let disk = SimDisk::new(5);
    disk.update_faults(|f| f.flush_latency = (Duration::from_millis(700), Duration::from_millis(700)));
    let store = open(&disk, InjectedBugs::default());
    let start = tokio::time::Instant::now();
    store.commit(vec![append(Kind::Alert, b"slow")]).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(700));

    disk.update_faults(|f| f.capacity = Some(disk.bytes() + 50));
    let err = store.commit(vec![append(Kind::Alert, &[0u8; 100])]).await.unwrap_err();
    assert!(err.to_string().contains("no space left"), "{err}");
    assert_eq!(disk.stats().full_disk_refusals, 1);
    assert!(store.has_failed(), "a refused write fails the store too: its numbering ran ahead of the disk");
}

#[tokio::test(start_paused = true)]
async fn one_disk_holds_one_open_store() {
    let disk = SimDisk::new(6);
    let store = open(&disk, InjectedBugs::default());
    let clock = Arc::new(ManualClock::new(1));
    let second = Store::simulated(
        &disk,
        node(),
        clock,
        StoreConfig::default(),
        Metrics::unregistered(),
        InjectedBugs::default(),
    );
    assert!(matches!(second, Err(StoreError::Open { .. })));
    store.close().await;
    open(&disk, InjectedBugs::default());
}

#[tokio::test(start_paused = true)]
async fn concurrent_writers_share_flushes_on_the_simulated_disk() {
    let disk = SimDisk::new(7);
    let store = open(&disk, InjectedBugs::default());
    let mut tasks = Vec::new();
    for w in 0..8u8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20u8 {
                s.commit(vec![append(Kind::Detection, &[w, i])]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.entries(Kind::Detection, &node(), 1).count(), 160);
    assert!(disk.stats().flushes < 100, "{} flushes for 160 commits from 8 writers", disk.stats().flushes);
}

/// Past the budget the reserve is this node's: its own alerts go in, entries of other nodes
/// wait with their senders, as raw detections are refused (the per-tree budget).
#[tokio::test(start_paused = true)]
async fn past_the_budget_the_reserve_takes_this_nodes_alerts_not_other_nodes_entries() {
    let disk = SimDisk::new(8);
    let clock = Arc::new(ManualClock::new(1_000));
    let config = StoreConfig { disk_budget_mb: 1, reserve_percent: 100, ..StoreConfig::default() };
    let store =
        Store::simulated(&disk, node(), clock, config, Metrics::unregistered(), InjectedBugs::default()).unwrap();
    let big = vec![7u8; 300_000];
    let mut refused = None;
    for _ in 0..10 {
        match store.commit(vec![append(Kind::Detection, &big)]).await {
            // The size on disk is measured once a second.
            Ok(_) => tokio::time::advance(Duration::from_secs(2)).await,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let err = refused.expect("detections refused once the budget is spent");
    assert!(matches!(err, StoreError::BudgetExceeded { kind: "detection", .. }), "{err}");
    assert_eq!(store.budget_state(), BudgetState::RefusingDetections);
    let theirs = Entry {
        origin: NodeId::new("town-flood").unwrap(),
        seq: 1,
        hlc: Hlc::new(1, 0),
        kind: Kind::Alert,
        payload: b"from below".to_vec(),
    };
    let err = store.commit(vec![Op::Insert(EntryBytes::encode(&theirs).unwrap())]).await.unwrap_err();
    assert!(matches!(err, StoreError::BudgetExceeded { kind: "alert", .. }), "{err}");
    assert_eq!(store.heads(Kind::Alert).get(&theirs.origin), 0);
    store.commit(vec![append(Kind::Alert, b"ours")]).await.unwrap();
    assert_eq!(store.heads(Kind::Alert).get(&node()), 1);
}
