use super::*;
use proptest::prelude::*;
use std::collections::HashSet;

fn node(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

fn tag(origin: &str, seq: u64) -> EntryId {
    EntryId { origin: node(origin), seq }
}

fn plate(p: &str) -> Subject {
    Subject::Plate(p.into())
}

fn add(subject: Subject, list: &str, expires_ms: Option<u64>) -> WatchOp {
    WatchOp::Add { subject, list: list.into(), reason: "reported stolen".into(), added_by: "op-li".into(), expires_ms }
}

fn remove(subject: Subject, list: &str, observed: Vec<EntryId>) -> WatchOp {
    WatchOp::Remove { subject, list: list.into(), observed, reason: "recovered".into(), removed_by: "op-wang".into() }
}

fn key(subject: Subject, list: &str) -> ElementKey {
    ElementKey::checked(&subject, list, "r", "w").unwrap()
}

#[test]
fn add_wins_over_a_concurrent_remove() {
    let k = key(plate("鲁K12345"), "stolen");
    // town-a listed it; town-b saw that and removed it, while city listed it again concurrently.
    let a1 = tag("town-a", 1);
    let ops = [
        (a1.clone(), add(plate("鲁K12345"), "stolen", None)),
        (tag("town-b", 1), remove(plate("鲁K 123-45"), "stolen", vec![a1.clone()])),
        (tag("city", 1), add(plate("鲁k12345"), "stolen", Some(500))),
    ];
    let mut s = WatchSet::new();
    for (t, op) in &ops {
        s.apply(t, 10, op).unwrap();
    }
    assert!(s.is_live(&k, 0), "city's add was not observed by the remove");
    assert!(!s.is_live(&k, 500), "only city's add is left, and it expires at 500");
    assert_eq!(s.element(&k).unwrap().winner().unwrap().0, tag("city", 1));
    // A remove that saw city's add as well takes the element off.
    let observed = s.element(&k).unwrap().observed();
    assert_eq!(observed, vec![tag("city", 1)]);
    s.apply(&tag("town-b", 2), 20, &remove(plate("鲁K12345"), "stolen", observed)).unwrap();
    assert!(!s.is_live(&k, 0));
    assert_eq!(s.stats(), SetStats { elements: 1, adds: 0, tombstones: 2 });
}

#[test]
fn a_later_add_from_the_same_origin_is_an_edit() {
    let k = key(Subject::Mmsi(412345678), "sanctioned");
    let mut s = WatchSet::new();
    s.apply(&tag("city", 1), 1, &add(Subject::Mmsi(412345678), "sanctioned", Some(1000))).unwrap();
    s.apply(&tag("city", 2), 2, &add(Subject::Mmsi(412345678), "sanctioned", Some(100))).unwrap();
    assert!(s.is_live(&k, 99) && !s.is_live(&k, 100), "the edit shortened the expiry");
    // The older add arriving again (or late) changes nothing.
    assert_eq!(s.apply(&tag("city", 1), 1, &add(Subject::Mmsi(412345678), "sanctioned", None)).unwrap(), None);
    assert!(!s.is_live(&k, 100));
    assert_eq!(s.stats().adds, 1);
}

#[test]
fn a_remove_that_overtakes_its_add_still_removes_it() {
    let k = key(plate("AB123"), "stolen");
    let mut s = WatchSet::new();
    s.apply(&tag("town-b", 1), 5, &remove(plate("AB123"), "stolen", vec![tag("town-a", 7)])).unwrap();
    assert!(!s.is_live(&k, 0));
    assert_eq!(s.apply(&tag("town-a", 7), 1, &add(plate("AB-123"), "stolen", None)).unwrap(), Some(k.clone()));
    assert!(!s.is_live(&k, 0));
    // Nothing to collect yet while town-a's entries up to 7 have not all arrived.
    assert!(s.collect_garbage(0, |_| 6).is_empty());
    assert_eq!(s.collect_garbage(0, |_| 7), vec![k.clone()]);
    assert!(s.is_empty());
}

/// A node that names another node's next sequence numbers in a remove cannot keep what that
/// node lists next off the list, in whichever order the two arrive; a remove made after the add
/// it names still takes it, however late the add arrives.
#[test]
fn a_remove_naming_tags_that_do_not_exist_yet_blocks_no_future_add() {
    use crate::clock::MAX_CLOCK_JUMP_MS as SKEW;
    let k = key(plate("AB123"), "stolen");
    let t0 = 1_764_000_000_000;
    let pre_block = remove(plate("AB123"), "stolen", (1..=5).map(|s| tag("town-b", s)).collect());
    let later_add = |s: &mut WatchSet| s.apply(&tag("town-b", 3), t0 + 3_600_000, &add(plate("AB123"), "stolen", None));
    for remove_first in [true, false] {
        let mut s = WatchSet::new();
        if remove_first {
            s.apply(&tag("mallory", 1), t0, &pre_block).unwrap();
            later_add(&mut s).unwrap();
        } else {
            later_add(&mut s).unwrap();
            s.apply(&tag("mallory", 1), t0, &pre_block).unwrap();
        }
        assert!(s.is_live(&k, t0 + 3_600_000), "remove first: {remove_first}");
        // The tombstone the add disproved is gone, so are those below it (an origin's older
        // adds can never matter again); 4 and 5 wait, as for any remove ahead of its add.
        assert_eq!(s.stats().tombstones, 2, "remove first: {remove_first}");
    }
    // Within the clocks' tolerance a remove still takes the add: a remover whose clock is
    // behind the adder's.
    let mut s = WatchSet::new();
    s.apply(&tag("town-a", 1), t0, &remove(plate("AB123"), "stolen", vec![tag("town-b", 1)])).unwrap();
    s.apply(&tag("town-b", 1), t0 + SKEW, &add(plate("AB123"), "stolen", None)).unwrap();
    assert!(!s.is_live(&k, t0 + SKEW));
    // A second remove, stamped later, takes an add the first could not.
    let mut s = WatchSet::new();
    s.apply(&tag("town-a", 1), t0, &remove(plate("AB123"), "stolen", vec![tag("town-b", 1)])).unwrap();
    s.apply(&tag("town-b", 1), t0 + SKEW + 1, &add(plate("AB123"), "stolen", None)).unwrap();
    assert!(s.is_live(&k, t0 + SKEW + 1));
    s.apply(&tag("city", 1), t0 + SKEW + 5, &remove(plate("AB123"), "stolen", vec![tag("town-b", 1)])).unwrap();
    assert!(!s.is_live(&k, t0 + SKEW + 5));
}

#[test]
fn garbage_collection_keeps_what_could_still_matter() {
    let k = key(plate("AB123"), "stolen");
    let mut s = WatchSet::new();
    s.apply(&tag("town-a", 1), 1, &add(plate("AB123"), "stolen", Some(50))).unwrap();
    s.apply(&tag("town-b", 1), 1, &add(plate("AB123"), "stolen", None)).unwrap();
    // town-a's add expired before the floor; town-b's is live: only town-a's record goes.
    assert_eq!(s.collect_garbage(60, |_| 1), vec![k.clone()]);
    assert_eq!(s.stats(), SetStats { elements: 1, adds: 1, tombstones: 0 });
    assert!(s.is_live(&k, 1_000_000));
    // An expired add after the floor stays.
    let k2 = key(plate("CD456"), "stolen");
    s.apply(&tag("town-a", 2), 1, &add(plate("CD456"), "stolen", Some(70))).unwrap();
    assert!(s.collect_garbage(60, |_| 2).is_empty());
    assert!(s.contains(&k2));
}

#[test]
fn invalid_operations_are_refused() {
    let mut s = WatchSet::new();
    let t = tag("town-a", 1);
    assert!(matches!(s.apply(&t, 0, &add(Subject::Mmsi(0), "l", None)), Err(OpError::Entry(EntryError::BadMmsi(0)))));
    assert!(s.apply(&t, 0, &add(plate(" - "), "l", None)).is_err());
    assert!(s.apply(&t, 0, &add(plate("AB1"), "", None)).is_err());
    assert!(s.apply(&t, 0, &add(plate("AB1"), &"x".repeat(300), None)).is_err());
    let many = (1..=MAX_OBSERVED as u64 + 1).map(|i| tag("town-a", i)).collect();
    assert_eq!(s.apply(&t, 0, &remove(plate("AB1"), "l", many)), Err(OpError::TooManyObserved(MAX_OBSERVED + 1)));
    // A remove that names nothing changes nothing and creates nothing.
    assert_eq!(s.apply(&t, 0, &remove(plate("AB1"), "l", vec![])), Ok(None));
    assert!(s.is_empty());
}

#[test]
fn ops_roundtrip_through_the_codec() {
    let ops = [
        add(plate("鲁K12345"), "stolen", Some(9)),
        remove(Subject::Mmsi(412345678), "sanctioned", vec![tag("city", 3), tag("town-a", 1)]),
    ];
    for op in ops {
        let bytes = crate::records::encode(&op).unwrap();
        assert_eq!(crate::records::decode::<WatchOp>(&bytes).unwrap(), op);
    }
}

#[test]
fn cursors_roundtrip_and_sort_like_keys() {
    let keys = [
        key(plate("鲁K12345"), "stolen"),
        key(plate("AB123"), "stolen:a b"),
        key(Subject::Mmsi(1), "x"),
        key(Subject::Mmsi(412345678), "sanctioned"),
    ];
    for k in &keys {
        assert_eq!(ElementKey::from_cursor(&k.cursor()).as_ref(), Some(k));
    }
    let mut by_key = keys.to_vec();
    by_key.sort();
    let mut by_cursor = keys.to_vec();
    by_cursor.sort_by_key(|k| k.cursor());
    assert_eq!(by_key, by_cursor);
    for bad in ["", "zz", "0", "70", "78414231"] {
        assert_eq!(ElementKey::from_cursor(bad), None, "{bad}");
    }
}

#[test]
fn delivery_tracks_contiguous_prefixes() {
    let mut d = Delivery::default();
    for s in [1, 3, 4, 3, 6] {
        d.note(&tag("town-a", s));
    }
    assert_eq!(d.contiguous(&node("town-a")), 1);
    assert_eq!(d.waiting(), 3);
    d.note(&tag("town-a", 2));
    assert_eq!(d.contiguous(&node("town-a")), 4);
    d.note(&tag("town-a", 5));
    assert_eq!(d.contiguous(&node("town-a")), 6);
    assert_eq!(d.waiting(), 0);
    assert_eq!(d.contiguous(&node("city")), 0);
}

// ---- Property tests over causally generated histories ----

const ORIGINS: [&str; 3] = ["town-a", "town-b", "city"];
const LISTS: [&str; 2] = ["stolen", "sanctioned"];
const EXPIRIES: [Option<u64>; 4] = [None, Some(100), Some(200), Some(300)];
const TIMES: [u64; 7] = [0, 99, 100, 150, 200, 299, 1000];

fn subject_of(i: usize) -> Subject {
    // Two spellings of one plate, another plate, an MMSI.
    match i % 4 {
        0 => plate("鲁K12345"),
        1 => plate("鲁k 123-45"),
        2 => plate("京A00001"),
        _ => Subject::Mmsi(412345678),
    }
}

#[derive(Debug, Clone)]
enum Step {
    Add {
        replica: usize,
        subject: usize,
        list: usize,
        expiry: usize,
    },
    Remove {
        replica: usize,
        subject: usize,
        list: usize,
    },
    /// A remove naming tags another replica has not issued yet (its next two).
    Forge {
        replica: usize,
        subject: usize,
        list: usize,
        victim: usize,
    },
    Sync {
        from: usize,
        to: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let r = 0..ORIGINS.len();
    prop_oneof![
        4 => (r.clone(), 0..4usize, 0..LISTS.len(), 0..EXPIRIES.len())
            .prop_map(|(replica, subject, list, expiry)| Step::Add { replica, subject, list, expiry }),
        3 => (r.clone(), 0..4usize, 0..LISTS.len()).prop_map(|(replica, subject, list)| Step::Remove { replica, subject, list }),
        1 => (r.clone(), 0..4usize, 0..LISTS.len(), r.clone())
            .prop_map(|(replica, subject, list, victim)| Step::Forge { replica, subject, list, victim }),
        3 => (r.clone(), r).prop_map(|(from, to)| Step::Sync { from, to }),
    ]
}

#[derive(Debug, Clone)]
struct Logged {
    tag: EntryId,
    at_ms: u64,
    op: WatchOp,
}

struct Replica {
    state: WatchSet,
    seen: Vec<bool>,
    next_seq: u64,
}

/// Runs the steps on replicas that each apply their own operations at once and, on a sync,
/// every operation the other has seen. Returns the log and each replica's (state, seen).
fn history(steps: &[Step]) -> (Vec<Logged>, Vec<(WatchSet, Vec<bool>)>) {
    let mut log: Vec<Logged> = Vec::new();
    let mut replicas: Vec<Replica> =
        ORIGINS.iter().map(|_| Replica { state: WatchSet::new(), seen: Vec::new(), next_seq: 1 }).collect();
    for (i, s) in steps.iter().enumerate() {
        let (replica, op) = match s {
            Step::Add { replica, subject, list, expiry } => (
                *replica,
                WatchOp::Add {
                    subject: subject_of(*subject),
                    list: LISTS[*list].into(),
                    reason: format!("reason {i}"),
                    added_by: ORIGINS[*replica].into(),
                    expires_ms: EXPIRIES[*expiry],
                },
            ),
            Step::Remove { replica, subject, list } => {
                let k = key(subject_of(*subject), LISTS[*list]);
                let observed = replicas[*replica].state.element(&k).map(Element::observed).unwrap_or_default();
                (
                    *replica,
                    WatchOp::Remove {
                        subject: subject_of(*subject),
                        list: LISTS[*list].into(),
                        observed,
                        reason: "done".into(),
                        removed_by: ORIGINS[*replica].into(),
                    },
                )
            }
            Step::Forge { replica, subject, list, victim } => {
                let next = replicas[*victim].next_seq;
                let observed = (next..next + 2).map(|s| tag(ORIGINS[*victim], s)).collect();
                (
                    *replica,
                    WatchOp::Remove {
                        subject: subject_of(*subject),
                        list: LISTS[*list].into(),
                        observed,
                        reason: "forged".into(),
                        removed_by: ORIGINS[*replica].into(),
                    },
                )
            }
            Step::Sync { from, to } => {
                for (j, l) in log.iter().enumerate() {
                    if replicas[*from].seen.get(j).copied().unwrap_or(false)
                        && !replicas[*to].seen.get(j).copied().unwrap_or(false)
                    {
                        replicas[*to].state.apply(&l.tag, l.at_ms, &l.op).unwrap();
                        replicas[*to].seen.resize(log.len(), false);
                        replicas[*to].seen[j] = true;
                    }
                }
                continue;
            }
        };
        let r = &mut replicas[replica];
        let logged = Logged { tag: tag(ORIGINS[replica], r.next_seq), at_ms: i as u64, op };
        r.next_seq += 1;
        r.state.apply(&logged.tag, logged.at_ms, &logged.op).unwrap();
        log.push(logged);
        r.seen.resize(log.len(), false);
        r.seen[log.len() - 1] = true;
    }
    let out = replicas
        .into_iter()
        .map(|mut r| {
            r.seen.resize(log.len(), false);
            (r.state, r.seen)
        })
        .collect();
    (log, out)
}

fn apply_all<'a>(ops: impl IntoIterator<Item = &'a Logged>) -> WatchSet {
    let mut s = WatchSet::new();
    for l in ops {
        s.apply(&l.tag, l.at_ms, &l.op).unwrap();
    }
    s
}

fn all_keys() -> Vec<ElementKey> {
    let mut keys: Vec<ElementKey> = (0..4).flat_map(|s| LISTS.iter().map(move |l| key(subject_of(s), l))).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The specification, straight from the definitions over the whole log: an add survives if no
/// remove observed it and no later add from its origin replaced it; live if one survives and
/// has not expired.
fn model_live(log: &[Logged], k: &ElementKey, t: u64) -> bool {
    let adds: Vec<(&EntryId, Option<u64>)> = log
        .iter()
        .filter_map(|l| match &l.op {
            WatchOp::Add { expires_ms, .. } if &l.op.validate().unwrap() == k => Some((&l.tag, *expires_ms)),
            _ => None,
        })
        .collect();
    let removed: HashSet<&EntryId> = log
        .iter()
        .filter(|l| &l.op.validate().unwrap() == k)
        .flat_map(|l| match &l.op {
            WatchOp::Remove { observed, .. } => observed.iter().collect(),
            _ => vec![],
        })
        .collect();
    adds.iter().any(|(a, exp)| {
        let replaced = adds.iter().any(|(b, _)| b.origin == a.origin && b.seq > a.seq);
        !removed.contains(a) && !replaced && exp.is_none_or(|e| t < e)
    })
}

fn live_set(s: &WatchSet, t: u64) -> Vec<ElementKey> {
    s.live(t).cloned().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_order_with_duplicates_gives_the_same_state(
        steps in proptest::collection::vec(step(), 1..60),
        seed in any::<u64>(),
        dups in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        let (log, replicas) = history(&steps);
        let in_order = apply_all(&log);
        // A shuffled delivery with duplicates.
        let mut order: Vec<&Logged> = log.iter().collect();
        if !log.is_empty() {
            order.extend(dups.iter().map(|d| &log[d.index(log.len())]));
        }
        let mut rng = seed;
        for i in (1..order.len()).rev() {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (rng >> 33) as usize % (i + 1));
        }
        let shuffled = apply_all(order);
        prop_assert_eq!(&shuffled, &in_order);
        // Each replica's state is the state of the operations it saw, however it got them.
        for (state, seen) in &replicas {
            let subset = apply_all(log.iter().zip(seen).filter(|(_, s)| **s).map(|(l, _)| l));
            prop_assert_eq!(state, &subset);
        }
    }

    #[test]
    fn merge_is_a_join(
        steps in proptest::collection::vec(step(), 1..60),
        masks in proptest::collection::vec((any::<bool>(), any::<bool>(), any::<bool>()), 60),
    ) {
        let (log, _) = history(&steps);
        let pick = |f: fn(&(bool, bool, bool)) -> bool| apply_all(log.iter().zip(&masks).filter(|(_, m)| f(m)).map(|(l, _)| l));
        let (a, b, c) = (pick(|m| m.0), pick(|m| m.1), pick(|m| m.2));
        let merged = |x: &WatchSet, y: &WatchSet| { let mut z = x.clone(); z.merge(y); z };
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        prop_assert_eq!(merged(&a, &a), a.clone());
        // Merging states is the same as applying the union of their operations.
        prop_assert_eq!(merged(&a, &b), pick(|m| m.0 || m.1));
    }

    #[test]
    fn agrees_with_the_model_at_every_time(steps in proptest::collection::vec(step(), 1..60)) {
        let (log, _) = history(&steps);
        let s = apply_all(&log);
        for k in all_keys() {
            for t in TIMES {
                prop_assert_eq!(s.is_live(&k, t), model_live(&log, &k, t), "{} at {}", k, t);
            }
        }
    }

    #[test]
    fn add_wins_and_full_removes_remove(steps in proptest::collection::vec(step(), 1..60)) {
        let (log, _) = history(&steps);
        let s = apply_all(&log);
        for (i, l) in log.iter().enumerate() {
            let k = l.op.validate().unwrap();
            match &l.op {
                // An add that no remove observed and that its origin did not replace keeps the
                // element live until it expires.
                WatchOp::Add { expires_ms, .. } => {
                    let observed = log.iter().any(|r| matches!(&r.op, WatchOp::Remove { observed, .. } if observed.contains(&l.tag)));
                    let replaced = log.iter().any(|b| b.tag.origin == l.tag.origin && b.tag.seq > l.tag.seq
                        && matches!(b.op, WatchOp::Add { .. }) && b.op.validate().unwrap() == k);
                    if !observed && !replaced {
                        for t in TIMES.iter().copied().filter(|t| expires_ms.is_none_or(|e| *t < e)) {
                            prop_assert!(s.is_live(&k, t), "add {} of {} lost at {}", l.tag, k, t);
                        }
                    }
                }
                // A remove issued when its replica had seen every add of the element there will
                // ever be (none came later or concurrently) leaves the element off. (A forged
                // one names tags, not what its replica had seen.)
                WatchOp::Remove { reason, .. } if reason != "forged" => {
                    let later_adds = log.iter().skip(i + 1).any(|b| matches!(b.op, WatchOp::Add { .. }) && b.op.validate().unwrap() == k);
                    let missed = log.iter().take(i).any(|b| {
                        matches!(b.op, WatchOp::Add { .. }) && b.op.validate().unwrap() == k
                            && !log.iter().take(i + 1).any(|r| r.op.validate().unwrap() == k && matches!(&r.op, WatchOp::Remove { observed, reason, .. } if reason != "forged" && observed.iter().any(|o| o.origin == b.tag.origin && o.seq >= b.tag.seq)))
                    });
                    if !later_adds && !missed {
                        prop_assert!(!s.is_live(&k, 0), "{} still live after a full remove", k);
                    }
                }
                WatchOp::Remove { .. } => {}
                // The histories write plain adds; the two kinds of add apply alike.
                WatchOp::AddWithBasis { .. } => {}
            }
        }
    }

    #[test]
    fn expiry_only_ever_ends_a_listing(steps in proptest::collection::vec(step(), 1..60)) {
        let (log, _) = history(&steps);
        let s = apply_all(&log);
        for k in all_keys() {
            let Some(e) = s.element(&k) else { continue };
            let last = e.adds().map(|(_, f)| f.expires_ms.unwrap_or(u64::MAX)).max();
            for t in TIMES {
                prop_assert_eq!(e.is_live(t), last.is_some_and(|l| t < l));
            }
            // The winner is the add that expires last, so the index entry built from it is live
            // exactly when the element is.
            if let Some((_, w)) = e.winner() {
                for t in TIMES {
                    prop_assert_eq!(w.is_live(t), e.is_live(t));
                }
            }
        }
    }

    #[test]
    fn garbage_collection_never_changes_what_is_live(
        steps in proptest::collection::vec(step(), 1..60),
        seed in any::<u64>(),
        cut in any::<prop::sample::Index>(),
        floor in prop::sample::select(vec![0u64, 100, 150, 250, 400]),
    ) {
        let (log, _) = history(&steps);
        let mut order: Vec<&Logged> = log.iter().collect();
        let mut rng = seed;
        for i in (1..order.len()).rev() {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (rng >> 33) as usize % (i + 1));
        }
        let cut = if order.is_empty() { 0 } else { cut.index(order.len() + 1) };
        let mut collected = WatchSet::new();
        let mut delivery = Delivery::default();
        for l in &order[..cut] {
            collected.apply(&l.tag, l.at_ms, &l.op).unwrap();
            delivery.note(&l.tag);
        }
        collected.collect_garbage(floor, |o| delivery.contiguous(o));
        for l in &order[cut..] {
            collected.apply(&l.tag, l.at_ms, &l.op).unwrap();
        }
        let full = apply_all(&log);
        for t in TIMES.iter().copied().filter(|t| *t >= floor) {
            prop_assert_eq!(live_set(&collected, t), live_set(&full, t), "at {}", t);
        }
        // Collecting everything once all is delivered leaves only elements that can still hit.
        let mut all = full.clone();
        all.collect_garbage(u64::MAX - 1, |_| u64::MAX);
        prop_assert!(all.elements().all(|(_, e)| e.adds().any(|(_, f)| f.expires_ms.is_none())));
    }
}
