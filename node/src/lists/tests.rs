use super::*;
use crate::clock::{Clock, ManualClock};
use crate::metrics::Metrics;
use crate::rules::watchlist::EntryFields;
use crate::store::StoreConfig;
use proto::Hlc;
use std::time::Instant;

const T0: u64 = 1_800_000_000_000;
const HOUR: u64 = 3_600_000;
/// The longest listing the lists allow by default.
const LONGEST: u64 = DEFAULT_MAX_EXPIRY_DAYS as u64 * 24 * HOUR;

/// An entry as the API makes one, naming its authority and legal basis; no expiry stands for
/// the longest listing allowed.
fn entry<'a>(subject: &'a Subject, list: &'a str, reason: &'a str, expires: Option<u64>) -> NewEntry<'a> {
    let expires_ms = expires.unwrap_or(T0 + LONGEST);
    NewEntry { subject, list, reason, authority: "Weihai PSB", legal_basis: "notice 2026-118", expires_ms }
}

fn operator(name: &str) -> Identity {
    Identity { name: name.into(), role: Role::Operator }
}

fn plate(p: &str) -> Subject {
    Subject::Plate(p.into())
}

fn key(subject: Subject, list: &str) -> ElementKey {
    ElementKey::checked(&subject, list, "r", "w").unwrap()
}

fn open_store(dir: &std::path::Path, node: &str, clock: Arc<ManualClock>) -> Store {
    Store::open(dir, NodeId::new(node).unwrap(), clock, StoreConfig::default(), Metrics::unregistered()).unwrap()
}

struct Node {
    store: Store,
    lists: Lists,
    handle: WatchlistHandle,
}

fn open_node(dir: &std::path::Path, node: &str, clock: Arc<ManualClock>, base: Watchlist) -> Node {
    let store = open_store(dir, node, clock.clone());
    let handle = WatchlistHandle::default();
    let id = NodeId::new(node).unwrap();
    let lists = Lists::open(store.clone(), base, handle.clone(), id, clock.clone(), DEFAULT_MAX_EXPIRY_DAYS).unwrap();
    Node { store, lists, handle }
}

fn file_list() -> Watchlist {
    let mut w = Watchlist::new();
    let f = |list, reason| EntryFields {
        list,
        reason,
        added_by: "file",
        authority: "Harbour Master",
        legal_basis: "PSC order 41",
        expires_ms: None,
    };
    w.insert(&plate("鲁K12345"), f("stolen", "from the file")).unwrap();
    w.insert(&Subject::Mmsi(412000001), f("sanctioned", "file vessel")).unwrap();
    w
}

fn watch_entries(store: &Store) -> Vec<Entry> {
    store.all_entries(Kind::Watchlist).map(Result::unwrap).collect()
}

fn audits(store: &Store) -> Vec<AuditRecord> {
    store.all_entries(Kind::Audit).map(|e| crate::audit_chain::record(&e.unwrap().payload).unwrap()).collect()
}

/// The live `(key, reason, source is mesh)` of every published entry.
fn published(n: &Node) -> Vec<(ElementKey, String, bool)> {
    let (page, next) = n.lists.page(&PageFilter::default(), None, MAX_PAGE);
    assert!(next.is_none());
    page.into_iter().map(|l| (l.key, l.reason, matches!(l.source, Source::Mesh { .. }))).collect()
}

#[tokio::test]
async fn adds_and_removes_are_durable_audited_and_published() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let n = open_node(dir.path(), "town-a", clock.clone(), Watchlist::new());
    let op = operator("op-li");
    let added =
        n.lists.add(entry(&plate("京a 000-01"), "stolen", "reported stolen", Some(T0 + HOUR)), &op).await.unwrap();
    assert_eq!(added.key, key(plate("京A00001"), "stolen"));
    assert_eq!(added.tag, EntryId { origin: NodeId::new("town-a").unwrap(), seq: 1 });
    let hit = n.handle.current().check_plate("京A00001", T0).cloned().expect("published");
    assert_eq!((hit.reason(), hit.added_by(), hit.expires_ms()), ("reported stolen", "op-li", Some(T0 + HOUR)));
    // Expiry needs no write.
    assert!(n.handle.current().check_plate("京A00001", T0 + HOUR).is_none());

    let removed = n.lists.remove(&plate("京A00001"), "stolen", "recovered", &op).await.unwrap();
    assert!(!removed.still_listed);
    assert!(n.handle.current().check_plate("京A00001", T0).is_none());
    // Not live any more: 404-style error, and nothing written.
    let err = n.lists.remove(&plate("京A00001"), "stolen", "again", &op).await.unwrap_err();
    assert!(matches!(err, ListError::NotListed(_)), "{err}");

    assert_eq!(watch_entries(&n.store).len(), 2);
    let audits = audits(&n.store);
    assert_eq!(audits.len(), 2);
    assert_eq!(audits[0].action, "watchlist_add");
    assert_eq!(audits[0].actor, "op-li (operator)");
    assert_eq!(audits[0].why, "reported stolen; ordered by Weihai PSB under notice 2026-118");
    assert!(audits[0].subject.starts_with("plate 京A00001 on stolen, until 2027-"), "{}", audits[0].subject);
    assert_eq!((audits[1].action.as_str(), audits[1].why.as_str()), ("watchlist_remove", "recovered"));
}

#[tokio::test]
async fn only_operators_change_lists_and_bad_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let n = open_node(dir.path(), "town-a", clock, Watchlist::new());
    for role in [Role::Auditor, Role::GridWorker] {
        let who = Identity { name: "x".into(), role };
        let err = n.lists.add(entry(&plate("AB123"), "stolen", "r", None), &who).await.unwrap_err();
        assert!(matches!(err, ListError::Forbidden { .. }), "{err}");
        let err = n.lists.remove(&plate("AB123"), "stolen", "r", &who).await.unwrap_err();
        assert!(matches!(err, ListError::Forbidden { .. }), "{err}");
    }
    let op = operator("op-li");
    for (subject, list, reason, expires) in [
        (Subject::Mmsi(1_000_000_000), "l", "r", None),
        (plate("--"), "l", "r", None),
        (plate("AB123"), "", "r", None),
        (plate("AB123"), "l", " ", None),
        (plate("AB123"), "l", "r", Some(T0)),
        (plate("AB123"), "l", "r", Some(T0 + LONGEST + 1)),
    ] {
        let err = n.lists.add(entry(&subject, list, reason, expires), &op).await.unwrap_err();
        assert!(matches!(err, ListError::Invalid(_)), "{err}");
    }
    // An entry must name the authority that ordered it and its legal basis.
    let ab = plate("AB123");
    for (authority, legal_basis) in [("", "notice 7"), ("Weihai PSB", " "), ("Weihai\u{7}PSB", "notice 7")] {
        let e = NewEntry { authority, legal_basis, ..entry(&ab, "l", "r", None) };
        let err = n.lists.add(e, &op).await.unwrap_err();
        assert!(matches!(err, ListError::Invalid(_)), "{authority:?} {legal_basis:?}: {err}");
    }
    assert!(watch_entries(&n.store).is_empty() && audits(&n.store).is_empty());
}

#[tokio::test]
async fn a_restart_replays_to_the_same_lists() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let op = operator("op-li");
    let (before, snapshot) = {
        let n = open_node(dir.path(), "town-a", clock.clone(), file_list());
        n.lists.add(entry(&plate("AB123"), "stolen", "stolen", None), &op).await.unwrap();
        n.lists.add(entry(&plate("AB123"), "stolen", "stolen, edited", Some(T0 + 5 * HOUR)), &op).await.unwrap();
        n.lists.add(entry(&Subject::Mmsi(412345678), "sanctioned", "order 7", None), &op).await.unwrap();
        n.lists.add(entry(&plate("CD456"), "stolen", "short", None), &op).await.unwrap();
        n.lists.remove(&plate("CD456"), "stolen", "found", &op).await.unwrap();
        n.lists.add(entry(&plate("鲁K12345"), "stolen", "mesh too", Some(T0 + HOUR)), &op).await.unwrap();
        let out = (published(&n), n.lists.snapshot());
        let Node { store, lists, handle } = n;
        drop((lists, handle));
        store.close().await;
        out
    };
    let n = open_node(dir.path(), "town-a", clock.clone(), file_list());
    assert_eq!(n.lists.snapshot(), snapshot);
    assert_eq!(published(&n), before);
    assert_eq!(
        before.iter().map(|(k, r, m)| (k.to_string(), r.as_str(), *m)).collect::<Vec<_>>(),
        [
            ("plate AB123 on stolen".to_string(), "stolen, edited", true),
            ("plate 鲁K12345 on stolen".to_string(), "from the file", false),
            ("MMSI 412000001 on sanctioned".to_string(), "file vessel", false),
            ("MMSI 412345678 on sanctioned".to_string(), "order 7", true),
        ]
    );
    // Sequences continue after the restart, and the restarted node's adds replace its own.
    let a = n.lists.add(entry(&plate("AB123"), "stolen", "third edit", None), &op).await.unwrap();
    assert_eq!(a.tag.seq, 7);
    assert_eq!(n.lists.stats().set.adds, 3);
}

#[tokio::test]
async fn the_file_is_never_removed_through_the_mesh() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let n = open_node(dir.path(), "town-a", clock.clone(), file_list());
    let op = operator("op-li");
    let k = key(plate("鲁K12345"), "stolen");
    let err = n.lists.remove(&plate("鲁K12345"), "stolen", "gone", &op).await.unwrap_err();
    assert!(matches!(err, ListError::FileOnly(_)), "{err}");
    // The mesh lists it too, expiring: the file's entry (never expires) stays in force.
    n.lists.add(entry(&plate("鲁K12345"), "stolen", "mesh", Some(T0 + HOUR)), &op).await.unwrap();
    assert_eq!(n.handle.current().check_plate("鲁K12345", T0 + 2 * HOUR).unwrap().reason(), "from the file");
    assert_eq!(n.lists.file_entry(&k).unwrap().0, "from the file");
    // On another list the mesh entry is its own.
    n.lists.add(entry(&plate("鲁K12345"), "wanted", "mesh", None), &op).await.unwrap();
    let r = n.lists.remove(&plate("鲁K12345"), "stolen", "mesh part done", &op).await.unwrap();
    assert!(r.still_listed);
    let now = n.handle.current();
    let hits: Vec<(&str, &str)> = now.plate_hits("鲁K12345", T0).map(|e| (e.list(), e.reason())).collect();
    assert_eq!(hits.len(), 2);
    assert!(hits.contains(&("stolen", "from the file")) && hits.contains(&("wanted", "mesh")));
}

#[tokio::test]
async fn replicated_entries_converge_in_any_order() {
    let clock = Arc::new(ManualClock::new(T0));
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let names = ["town-a", "town-b", "city"];
    let nodes: Vec<Node> =
        names.iter().zip(&dirs).map(|(name, d)| open_node(d.path(), name, clock.clone(), file_list())).collect();
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let op_a = operator("op-a");
    let op_b = operator("op-b");
    // Both towns list the same plate while partitioned; town-b then removes what it has seen.
    a.lists.add(entry(&plate("AB123"), "stolen", "seen at gate 3", None), &op_a).await.unwrap();
    b.lists.add(entry(&plate("AB-123"), "stolen", "reported", Some(T0 + HOUR)), &op_b).await.unwrap();
    b.lists.add(entry(&Subject::Mmsi(412345678), "sanctioned", "order 7", None), &op_b).await.unwrap();
    b.lists.remove(&plate("AB123"), "stolen", "recovered", &op_b).await.unwrap();
    a.lists.add(entry(&plate("EF789"), "stolen", "x", None), &op_a).await.unwrap();
    a.lists.remove(&plate("EF789"), "stolen", "typo", &op_a).await.unwrap();
    clock.advance(1);

    let from_a = watch_entries(&a.store);
    let from_b = watch_entries(&b.store);
    // Heal: each town gets the other's entries, reversed and with a duplicate.
    let mut to_a: Vec<Entry> = from_b.iter().rev().cloned().collect();
    to_a.push(from_b[0].clone());
    let report = a.lists.apply_replicated(&to_a);
    assert_eq!(report, Replicated { applied: 3, unchanged: 1, malformed: 0 });
    b.lists.apply_replicated(&from_a);
    // The city gets everything interleaved, one entry at a time.
    let mut all: Vec<Entry> = from_a.iter().chain(&from_b).cloned().collect();
    all.sort_by_key(|e| (e.seq, e.origin.clone()));
    for e in all.iter().rev() {
        c.lists.apply_replicated(std::slice::from_ref(e));
    }

    let expected = published(a);
    assert_eq!(published(b), expected);
    assert_eq!(published(c), expected);
    assert_eq!(a.lists.snapshot(), b.lists.snapshot());
    assert_eq!(a.lists.snapshot(), c.lists.snapshot());
    // Add wins: town-a's add was not seen by town-b's remove.
    let k = key(plate("AB123"), "stolen");
    let listing = expected.iter().find(|(key, ..)| key == &k).expect("still listed");
    assert_eq!(listing.1, "seen at gate 3");
    assert!(!expected.iter().any(|(key, ..)| key == &self::key(plate("EF789"), "stolen")));
    // Every node publishes the same entry for the element (same reason, same expiry).
    for n in &nodes {
        let list = n.handle.current();
        let e = list.check_plate("AB123", T0 + 2 * HOUR).expect("listed for the longest time allowed");
        assert_eq!((e.reason(), e.added_by(), e.expires_ms()), ("seen at gate 3", "op-a", Some(T0 + LONGEST)));
    }
}

#[tokio::test]
async fn malformed_replicated_entries_are_counted_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let n = open_node(dir.path(), "town-a", clock, Watchlist::new());
    let origin = NodeId::new("town-b").unwrap();
    let entry = |seq, kind, payload| Entry { origin: origin.clone(), seq, hlc: Hlc::new(T0, 0), kind, payload };
    let bad_op = WatchOp::Add {
        subject: Subject::Mmsi(0),
        list: "l".into(),
        reason: "r".into(),
        added_by: "b".into(),
        expires_ms: None,
    };
    let good_op = WatchOp::Add {
        subject: plate("AB123"),
        list: "l".into(),
        reason: "r".into(),
        added_by: "b".into(),
        expires_ms: None,
    };
    let report = n.lists.apply_replicated(&[
        entry(1, Kind::Watchlist, vec![0xff, 0xff, 0xff]),
        entry(2, Kind::Watchlist, records::encode(&bad_op).unwrap()),
        entry(1, Kind::Alert, records::encode(&good_op).unwrap()),
        entry(3, Kind::Watchlist, records::encode(&good_op).unwrap()),
    ]);
    assert_eq!(report, Replicated { applied: 1, unchanged: 0, malformed: 3 });
    assert_eq!(n.lists.stats().malformed, 3);
    assert!(n.handle.current().check_plate("AB123", T0).is_some());
    // The skipped entries still count as delivered: town-b's prefix is complete up to 3.
    assert_eq!(n.lists.stats().waiting, 0);
}

#[tokio::test]
async fn expired_entries_are_collected_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let n = open_node(dir.path(), "town-a", clock.clone(), file_list());
    let op = operator("op-li");
    n.lists.add(entry(&plate("AB123"), "stolen", "r", Some(T0 + HOUR)), &op).await.unwrap();
    n.lists.add(entry(&plate("鲁K12345"), "stolen", "mesh copy", Some(T0 + HOUR)), &op).await.unwrap();
    n.lists.add(entry(&plate("CD456"), "stolen", "r", None), &op).await.unwrap();
    n.lists.remove(&plate("CD456"), "stolen", "r", &op).await.unwrap();
    n.lists.add(entry(&plate("EF789"), "stolen", "r", None), &op).await.unwrap();
    assert_eq!(n.lists.collect_garbage(), 1, "only the removed element is dead yet");
    clock.set(T0 + HOUR + GC_GRACE_MS);
    assert_eq!(n.lists.collect_garbage(), 2);
    assert_eq!(n.lists.stats().set, SetStats { elements: 1, adds: 1, tombstones: 0 });
    let list = n.handle.current();
    assert!(list.check_plate("AB123", 0).is_none(), "collected from the index too");
    assert_eq!(list.check_plate("鲁K12345", T0 + 10 * GC_GRACE_MS).unwrap().reason(), "from the file");
    assert!(list.check_plate("EF789", T0 + 10 * GC_GRACE_MS).is_some());
    assert_eq!(n.lists.file_entry(&key(plate("鲁K12345"), "stolen")), None, "forgotten with the element");
    // A later add of a collected element is new again.
    n.lists.add(entry(&plate("AB123"), "stolen", "back", None), &op).await.unwrap();
    assert!(n.handle.current().check_plate("AB123", clock.now_ms()).is_some());
}

#[tokio::test]
async fn pages_walk_file_and_mesh_entries_in_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let n = open_node(dir.path(), "town-a", clock.clone(), file_list());
    let op = operator("op-li");
    for i in 0..7 {
        n.lists.add(entry(&plate(&format!("ZZ{i}")), "stolen", "r", None), &op).await.unwrap();
    }
    n.lists.add(entry(&plate("YY1"), "stolen", "expiring", Some(T0 + 1)), &op).await.unwrap();
    clock.advance(1);
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let (page, next) = n.lists.page(&PageFilter::default(), after.as_ref(), 3);
        seen.extend(page.into_iter().map(|l| l.key.to_string()));
        match next {
            Some(k) => after = Some(k),
            None => break,
        }
    }
    let mut expected: Vec<String> = (0..7).map(|i| format!("plate ZZ{i} on stolen")).collect();
    expected.insert(0, "plate 鲁K12345 on stolen".into());
    expected.sort();
    expected.push("MMSI 412000001 on sanctioned".into());
    assert_eq!(seen, expected, "expired YY1 left out");
    let mmsi = PageFilter { kind: Some(SubjectKind::Mmsi), list: None };
    assert_eq!(n.lists.page(&mmsi, None, 10).0.len(), 1);
    let wanted = PageFilter { kind: None, list: Some("wanted".into()) };
    assert!(n.lists.page(&wanted, None, 10).0.is_empty());
}

/// The edit cost figures quoted in the docs: a 100k-entry file, then single-entry edits
/// replicated in (no store I/O, so this is apply + publish alone).
#[tokio::test]
async fn edits_stay_cheap_with_a_large_file() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let mut base = Watchlist::new();
    for i in 0..100_000u32 {
        let fields = EntryFields {
            list: "stolen",
            reason: "bulk import",
            added_by: "file",
            authority: "Bureau",
            legal_basis: "Law 1",
            expires_ms: None,
        };
        base.insert(&plate(&format!("鲁B{i:06}")), fields).unwrap();
    }
    let started = Instant::now();
    let n = open_node(dir.path(), "town-a", clock.clone(), base);
    let open_ms = started.elapsed().as_secs_f64() * 1e3;
    let origin = NodeId::new("town-b").unwrap();
    let op = |i: u32| WatchOp::Add {
        subject: plate(&format!("鲁C{i:06}")),
        list: "stolen".into(),
        reason: "mesh".into(),
        added_by: "op-b".into(),
        expires_ms: None,
    };
    let entry = |seq: u64, op: &WatchOp| Entry {
        origin: origin.clone(),
        seq,
        hlc: Hlc::new(T0, 0),
        kind: Kind::Watchlist,
        payload: records::encode(op).unwrap(),
    };
    const EDITS: u32 = 1000;
    let started = Instant::now();
    for i in 0..EDITS {
        n.lists.apply_replicated(&[entry(u64::from(i) + 1, &op(i))]);
    }
    let patch_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(EDITS);
    let stats = n.lists.stats();
    assert_eq!(stats.publish.copies, 0, "no reader held a snapshot, so every edit patched");
    assert_eq!(stats.index_entries, 100_000 + EDITS as usize);
    // A reader that still holds the spare (the snapshot from before the previous edit) forces
    // a full copy.
    const HELD: u32 = 20;
    let mut copy_total = std::time::Duration::ZERO;
    for i in EDITS..EDITS + HELD {
        let _held = n.handle.current();
        n.lists.apply_replicated(&[entry(u64::from(i) + 1, &op(i))]);
        let started = Instant::now();
        n.lists.apply_replicated(&[entry(u64::from(i) + 10_001, &op(i + 10_000))]);
        copy_total += started.elapsed();
    }
    let copy_ms = copy_total.as_secs_f64() * 1e3 / f64::from(HELD);
    assert_eq!(n.lists.stats().publish.copies, u64::from(HELD));
    let started = Instant::now();
    let (page, next) = n.lists.page(&PageFilter::default(), None, 50);
    let page_ms = started.elapsed().as_secs_f64() * 1e3;
    assert_eq!((page.len(), next.is_some()), (50, true));
    eprintln!(
        "100k-entry file: open {open_ms:.1} ms; edit (apply + publish) {patch_us:.1} µs; \
         edit while a reader holds the spare {copy_ms:.2} ms; one page of 50 {page_ms:.1} ms"
    );
    assert!(n.handle.current().check_plate("鲁C000999", T0).is_some());
    assert!(n.handle.current().check_plate("鲁B099999", T0).is_some());
}
