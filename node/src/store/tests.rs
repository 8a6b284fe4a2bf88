use super::*;
use crate::clock::{Clock, ManualClock, SharedClock};
use proto::Entry;
use std::sync::Arc;

fn node() -> NodeId {
    NodeId::new("town-test").unwrap()
}

fn open(dir: &Path, clock: SharedClock, config: StoreConfig) -> Store {
    Store::open(dir, node(), clock, config, Metrics::unregistered()).unwrap()
}

fn append(kind: Kind, payload: &[u8]) -> Op {
    Op::Append { kind, payload: payload.to_vec() }
}

#[tokio::test]
async fn sequences_are_contiguous_per_kind_and_continue_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000));
    let store = open(dir.path(), clock.clone(), StoreConfig::default());
    let a = store
        .commit(vec![append(Kind::Detection, b"d1"), append(Kind::Alert, b"a1"), append(Kind::Detection, b"d2")])
        .await
        .unwrap();
    assert_eq!(
        a.iter().map(|x| (x.kind, x.seq)).collect::<Vec<_>>(),
        vec![(Kind::Detection, 1), (Kind::Alert, 1), (Kind::Detection, 2)]
    );
    assert!(a[0].hlc < a[1].hlc && a[1].hlc < a[2].hlc, "timestamps increase within a commit");
    let last_hlc = a[2].hlc;
    store.close().await;

    // The clock went back while the node was down: neither sequences nor timestamps repeat.
    clock.set(500);
    let store = open(dir.path(), clock.clone(), StoreConfig::default());
    let b = store.commit(vec![append(Kind::Detection, b"d3")]).await.unwrap();
    assert_eq!(b[0].seq, 3);
    assert!(b[0].hlc > last_hlc);
    let stored: Vec<_> = store.entries(Kind::Detection, &node(), 1).map(|e| e.unwrap().payload).collect();
    assert_eq!(stored, vec![b"d1".to_vec(), b"d2".to_vec(), b"d3".to_vec()]);
    assert_eq!(store.own_head(Kind::Detection).unwrap(), 3);
    assert_eq!(store.entry(Kind::Alert, &node(), 1).unwrap().unwrap().payload, b"a1");
}

#[tokio::test]
async fn concurrent_writers_share_flushes_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::register(&mut registry);
    let store =
        Store::open(dir.path(), node(), Arc::new(ManualClock::new(1)), StoreConfig::default(), metrics).unwrap();
    let mut tasks = Vec::new();
    for w in 0..16u8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..50u8 {
                let got = s.commit(vec![append(Kind::Detection, &[w, i])]).await.unwrap();
                seqs.push(got[0].seq);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=800).collect::<Vec<_>>(), "every commit got its own sequence, no gaps");
    assert_eq!(store.entries(Kind::Detection, &node(), 1).count(), 800);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let flushes: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("yiwang_store_flush_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
        .expect("flush count exported");
    // 16 writers each waiting on their own commit: flushes must be shared.
    assert!(flushes < 400, "{flushes} flushes for 800 commits from 16 writers");
}

#[tokio::test]
async fn counters_add_up_across_concurrent_commits_groups_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1));
    let store = open(dir.path(), clock.clone(), StoreConfig::default());
    let count = |key: &[u8], add| Op::Count { tree: "state/counts", key: key.to_vec(), add };
    // Sixteen writers at once, so commits share groups: each adds to what the one before it
    // in the group staged, not to what the engine still shows.
    let mut tasks = Vec::new();
    for w in 0..16u64 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                s.commit(vec![count(b"a", 1), count(b"a", w), count(b"b", 2)]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let read = |s: &Store, key: &[u8]| s.get("state/counts", key).unwrap().and_then(|v| decode_count(&v));
    let a = 16 * 25 + 25 * (0..16).sum::<u64>();
    assert_eq!((read(&store, b"a"), read(&store, b"b")), (Some(a), Some(16 * 25 * 2)));
    // A refused commit adds nothing.
    let big = vec![0u8; proto::codec::MAX_VALUE_BYTES + 10];
    assert!(store.commit(vec![count(b"a", 1_000), append(Kind::Detection, &big)]).await.is_err());
    assert_eq!(read(&store, b"a"), Some(a));
    store.close().await;
    let store = open(dir.path(), clock, StoreConfig::default());
    store.commit(vec![count(b"a", 1)]).await.unwrap();
    assert_eq!(read(&store, b"a"), Some(a + 1), "counting resumes from the disk");
    // A value that is not a counter is not counted over.
    store.commit(vec![Op::Put { tree: "state/counts", key: b"c".to_vec(), value: b"text".to_vec() }]).await.unwrap();
    let err = store.commit(vec![count(b"c", 1)]).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}

#[tokio::test]
async fn retention_removes_old_detections_and_never_reuses_their_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(10_000));
    let store = open(dir.path(), clock.clone(), StoreConfig::default());
    for _ in 0..5 {
        store.commit(vec![append(Kind::Detection, b"old")]).await.unwrap();
    }
    clock.set(20_000);
    store.commit(vec![append(Kind::Detection, b"new")]).await.unwrap();

    let first = store.sweep(Kind::Detection, 15_000, 3).await.unwrap();
    assert_eq!(first, SweepOutcome { deleted: 3, more: true });
    let second = store.sweep(Kind::Detection, 15_000, 3).await.unwrap();
    assert_eq!(second, SweepOutcome { deleted: 2, more: false });
    let left: Vec<_> = store.all_entries(Kind::Detection).map(|e| e.unwrap().payload).collect();
    assert_eq!(left, vec![b"new".to_vec()]);

    // Even with every entry gone, the next sequence follows the last one ever issued.
    store.sweep(Kind::Detection, 30_000, 100).await.unwrap();
    assert_eq!(store.all_entries(Kind::Detection).count(), 0);
    store.close().await;
    let store = open(dir.path(), clock, StoreConfig::default());
    let next = store.commit(vec![append(Kind::Detection, b"after")]).await.unwrap();
    assert_eq!(next[0].seq, 7);
}

#[tokio::test]
async fn a_spent_budget_refuses_detections_but_keeps_alerts() {
    let dir = tempfile::tempdir().unwrap();
    // A 1 MiB budget that sled's own files already exceed once something is written.
    let config = StoreConfig { disk_budget_mb: 1, reserve_percent: 100, ..StoreConfig::default() };
    let metrics = Metrics::unregistered();
    let store =
        Store::open(dir.path(), node(), Arc::new(ManualClock::new(1)), config.clone(), metrics.clone()).unwrap();
    let big = vec![7u8; 200_000];
    let mut refused = None;
    for _ in 0..40 {
        match store.commit(vec![append(Kind::Detection, &big)]).await {
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(60)),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let err = refused.expect("detections must be refused once the budget is spent");
    assert!(matches!(err, StoreError::BudgetExceeded { kind: "detection", .. }), "{err}");
    assert!(err.to_string().contains("budget"));
    assert!(store.budget_state() >= BudgetState::RefusingDetections);
    assert!(metrics.store_budget_state.get() >= BudgetState::Warning as i64);
    // Alerts still go in from the reserve (sled's files grow in steps, so the reserve may be
    // spent too; the simulated disk's test checks the reserve exactly).
    if store.budget_state() == BudgetState::RefusingDetections {
        store.commit(vec![append(Kind::Alert, b"alert")]).await.unwrap();
    }
}

#[test]
fn budget_thresholds() {
    let c = StoreConfig { disk_budget_mb: 100, warn_percent: 80, reserve_percent: 10, ..StoreConfig::default() };
    let mb = 1u64 << 20;
    assert_eq!(c.budget_state(79 * mb), BudgetState::Ok);
    assert_eq!(c.budget_state(80 * mb), BudgetState::Warning);
    assert_eq!(c.budget_state(100 * mb), BudgetState::RefusingDetections);
    assert_eq!(c.budget_state(110 * mb), BudgetState::RefusingAll);
}

#[tokio::test]
async fn state_trees_put_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Arc::new(ManualClock::new(1)), StoreConfig::default());
    store
        .commit(vec![
            Op::Put { tree: "state/test", key: b"k1".to_vec(), value: b"v1".to_vec() },
            Op::Put { tree: "state/test", key: b"k2".to_vec(), value: b"v2".to_vec() },
        ])
        .await
        .unwrap();
    store.commit(vec![Op::Remove { tree: "state/test", key: b"k1".to_vec() }]).await.unwrap();
    assert_eq!(store.get("state/test", b"k1").unwrap(), None);
    assert_eq!(store.get("state/test", b"k2").unwrap().unwrap(), b"v2");
    assert_eq!(store.scan("state/test", b"").unwrap().count(), 1);
}

#[tokio::test]
async fn an_oversized_entry_is_refused_without_leaving_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Arc::new(ManualClock::new(1)), StoreConfig::default());
    let huge = vec![0u8; proto::codec::MAX_VALUE_BYTES + 10];
    let err = store.commit(vec![append(Kind::Alert, b"ok"), append(Kind::Alert, &huge)]).await.unwrap_err();
    assert!(matches!(err, StoreError::Codec(_)));
    let next = store.commit(vec![append(Kind::Alert, b"next")]).await.unwrap();
    assert_eq!(next[0].seq, 1, "the refused commit used no sequence numbers");
}

#[tokio::test]
async fn foreign_entries_are_stored_under_their_origin_and_heads_list_every_origin() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Arc::new(ManualClock::new(1)), StoreConfig::default());
    let mut changes = store.changes();
    let other = |id: &str, seq| Entry {
        origin: NodeId::new(id).unwrap(),
        seq,
        hlc: proto::Hlc::new(seq, 0),
        kind: Kind::Alert,
        payload: vec![seq as u8],
    };
    store
        .commit(vec![
            Op::Insert(proto::EntryBytes::encode(&other("town-b", 1)).unwrap()),
            Op::Insert(proto::EntryBytes::encode(&other("town-b", 2)).unwrap()),
            Op::Insert(proto::EntryBytes::encode(&other("a", 1)).unwrap()),
            append(Kind::Alert, b"mine"),
        ])
        .await
        .unwrap();
    assert!(changes.has_changed().unwrap(), "a flush that stored entries wakes replication");
    let seen = *changes.borrow_and_update();
    assert!(seen.moved_since(&Changes::default(), &[Kind::Alert]), "and says which kinds moved");
    assert!(!seen.moved_since(&Changes::default(), &[Kind::Audit, Kind::Watchlist]));
    let heads = store.heads(Kind::Alert);
    assert_eq!(heads.get(&NodeId::new("town-b").unwrap()), 2);
    assert_eq!(heads.get(&NodeId::new("a").unwrap()), 1);
    assert_eq!(heads.get(&node()), 1);
    assert_eq!(heads.len(), 3);
    assert_eq!(store.entry(Kind::Alert, &NodeId::new("town-b").unwrap(), 2).unwrap().unwrap(), other("town-b", 2));
    assert!(store.heads(Kind::Audit).is_empty());
    store.commit(vec![Op::Put { tree: "state/x", key: b"k".to_vec(), value: b"v".to_vec() }]).await.unwrap();
    assert!(!changes.has_changed().unwrap(), "state-only flushes do not");
    store.close().await;
    let store = open(dir.path(), Arc::new(ManualClock::new(1)), StoreConfig::default());
    assert_eq!(store.heads(Kind::Alert), heads, "durable heads are read back at open");
}

/// The clock is hybrid: an entry taken in from another node orders before whatever this node
/// stamps next, even if this node's clock is behind the sender's.
#[tokio::test]
async fn stamps_follow_every_entry_taken_in() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let store = open(dir.path(), clock.clone(), StoreConfig::default());
    let other = NodeId::new("town-ahead").unwrap();
    // Its clock is 30 s ahead of ours: within what the HLC follows.
    let theirs = Hlc::new(1_030_000, 4);
    let e = Entry { origin: other, seq: 1, hlc: theirs, kind: Kind::Alert, payload: b"from ahead".to_vec() };
    store.commit(vec![Op::Insert(proto::EntryBytes::encode(&e).unwrap())]).await.unwrap();
    let ours = store.commit(vec![append(Kind::Alert, b"after it")]).await.unwrap();
    assert!(ours[0].hlc > theirs, "{} must follow {theirs}", ours[0].hlc);

    // One stamped an hour ahead is stored, but not followed.
    let far = Hlc::new(1_000_000 + 3_600_000, 0);
    let e = Entry { origin: NodeId::new("town-far").unwrap(), seq: 1, hlc: far, kind: Kind::Alert, payload: vec![] };
    store.commit(vec![Op::Insert(proto::EntryBytes::encode(&e).unwrap())]).await.unwrap();
    let ours = store.commit(vec![append(Kind::Alert, b"later")]).await.unwrap();
    assert!(ours[0].hlc.wall_ms < far.wall_ms, "{}", ours[0].hlc);
}

/// A clock that was once a day ahead left stamps from the future on disk: at the next start
/// the store stamps from the clock again, and retention passes over the future stamps instead
/// of stopping at them, deleting them with the later entries they were written before.
#[tokio::test]
async fn future_stamps_on_disk_neither_hold_the_clock_nor_stop_retention() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(10_000_000));
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::register(&mut registry);
    let reopen = |clock: Arc<ManualClock>| {
        Store::open(dir.path(), node(), clock, StoreConfig::default(), metrics.clone()).unwrap()
    };
    let store = reopen(clock.clone());
    store.commit(vec![append(Kind::Detection, b"old")]).await.unwrap();
    let day = 86_400_000;
    clock.set(10_000_000 + day);
    store.commit(vec![append(Kind::Detection, b"from a clock a day ahead")]).await.unwrap();
    store.close().await;

    // The clock is put right (a minute on), and the node restarts.
    clock.set(10_060_000);
    let store = reopen(clock.clone());
    assert_eq!(metrics.clock_future_stamps.get(), 1, "the future high-water mark is flagged");
    let next = store.commit(vec![append(Kind::Detection, b"new")]).await.unwrap();
    assert_eq!(next[0].hlc.wall_ms, 10_060_000, "stamped from the clock, not after the future stamp");
    assert_eq!(next[0].seq, 3, "sequences still never repeat");

    // An hour later everything up to "new" is past a 30-minute retention.
    clock.set(10_060_000 + 3_600_000);
    store.commit(vec![append(Kind::Detection, b"newest")]).await.unwrap();
    let swept = store.sweep(Kind::Detection, clock.now_ms() - 1_800_000, 100).await.unwrap();
    assert_eq!(swept, SweepOutcome { deleted: 3, more: false });
    let left: Vec<_> = store.all_entries(Kind::Detection).map(|e| e.unwrap().payload).collect();
    assert_eq!(left, vec![b"newest".to_vec()]);
}

/// Every audit record this node writes carries the hash of the one before it, in one commit
/// and across commits and restarts (the store keeps the chain's head beside the records).
#[tokio::test]
async fn audit_records_are_chained_across_commits_and_restarts() {
    use crate::audit_chain::{self, ChainCheck, GENESIS};
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000));
    let record = |i: u64| {
        let r = crate::records::AuditRecord {
            at_ms: i,
            actor: "operator:li".into(),
            action: "test".into(),
            subject: format!("thing/{i}"),
            why: "because".into(),
        };
        Op::Append { kind: Kind::Audit, payload: crate::records::encode(&r).unwrap() }
    };
    let store = open(dir.path(), clock.clone(), StoreConfig::default());
    store.commit(vec![record(1), append(Kind::Alert, b"between"), record(2)]).await.unwrap();
    store.commit(vec![record(3)]).await.unwrap();
    store.close().await;
    let store = open(dir.path(), clock.clone(), StoreConfig::default());
    store.commit(vec![record(4), record(5)]).await.unwrap();

    let stored: Vec<Vec<u8>> = store.stored_entries(Kind::Audit, &node(), 1).map(Result::unwrap).collect();
    assert_eq!(stored.len(), 5);
    let mut check = ChainCheck::new();
    for (i, s) in stored.iter().enumerate() {
        let e: Entry = codec::decode(s).unwrap();
        let (r, link) = audit_chain::split(&e.payload).unwrap();
        assert_eq!(r.at_ms, i as u64 + 1);
        let want = if i == 0 { GENESIS } else { audit_chain::link_to(&stored[i - 1]) };
        assert_eq!(link, Some(want), "record {}", e.seq);
        check.check(&e.origin, e.seq, s, &e.payload).unwrap();
    }
    assert_eq!(check.unlinked(), 0);
}
