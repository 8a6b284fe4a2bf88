use super::*;
use proptest::prelude::*;
use proto::{Entry, Hlc};
use std::collections::BTreeMap;

/// Holdings in memory: (kind, origin) → entries in sequence order, of which the last
/// `not_durable` of each list are shown by `read` but not counted in `heads` (as a store shows an
/// applied batch before its flush).
#[derive(Default, Clone)]
struct Mem(BTreeMap<(Kind, NodeId), Vec<EntryBytes>>, u64);

impl Mem {
    fn add(&mut self, kind: Kind, origin: &str, n: u64) {
        let o = NodeId::new(origin).unwrap();
        let list = self.0.entry((kind, o.clone())).or_default();
        for _ in 0..n {
            let seq = list.len() as u64 + 1;
            let e = Entry { origin: o.clone(), seq, hlc: Hlc::new(seq, 0), kind, payload: vec![seq as u8; 10] };
            list.push(EntryBytes::encode(&e).unwrap());
        }
    }
}

impl Holdings for Mem {
    type Error = String;
    fn heads(&self, kind: Kind) -> Result<std::sync::Arc<VersionVector>, String> {
        let mut v = VersionVector::new();
        for ((k, o), list) in &self.0 {
            if *k == kind {
                v.raise(o, (list.len() as u64).saturating_sub(self.1));
            }
        }
        Ok(std::sync::Arc::new(v))
    }
    fn read(&self, kind: Kind, origin: &NodeId, from: u64, max: usize, take: &mut Take<'_>) -> Result<(), String> {
        for e in self.0.get(&(kind, origin.clone())).into_iter().flatten().skip(from as usize - 1).take(max) {
            if !take(e.as_bytes()) {
                break;
            }
        }
        Ok(())
    }
}

/// A batch's entries, read back from its frame as the receiver reads them.
fn entries_of(b: &OutBatch) -> Vec<EntryBytes> {
    match SyncMsg::decode(b.frame.slice(4..)).unwrap() {
        SyncMsg::Batch { id, entries } => {
            assert_eq!((id, entries.len()), (b.id, b.entries));
            entries
        }
        other => panic!("{other:?} in a batch's frame"),
    }
}

fn receiver() -> Replica {
    Replica::new(NodeId::new("county").unwrap(), HashMap::new())
}

fn want_heads(r: &Replica, dir: Direction) -> Vec<(Kind, VersionVector)> {
    match want(dir, |k| r.accepted(k)) {
        SyncMsg::Want { heads } => heads,
        _ => unreachable!(),
    }
}

/// Run the protocol to quiescence; returns the entries accepted in delivery order.
fn drain(src: &Mem, out: &mut Outbound, rx: &mut Replica) -> Vec<EntryBytes> {
    let mut got = Vec::new();
    while let Some(b) = out.next_batch(src).unwrap() {
        let (id, entries) = (b.id, entries_of(&b));
        for e in entries {
            if rx.judge(&e, |_| Ok(())) == Verdict::Accept {
                got.push(e);
            }
        }
        out.on_ack(id).unwrap();
    }
    got
}

#[test]
fn everything_missing_arrives_once_most_urgent_first() {
    let mut src = Mem::default();
    src.add(Kind::Audit, "town-a", 3000);
    src.add(Kind::Alert, "town-a", 5);
    src.add(Kind::Summary, "town-b", 2);
    src.add(Kind::Command, "city", 4); // does not travel up
    let mut rx = receiver();
    let mut out = Outbound::new(Direction::Up, 4, Origins::All);
    assert!(out.next_batch(&src).unwrap().is_none(), "nothing is sent before the receiver says what it holds");
    out.on_want(want_heads(&rx, Direction::Up));
    assert_eq!(out.backlog(&src).unwrap(), 3007);
    let got = drain(&src, &mut out, &mut rx);
    assert_eq!(got.len(), 3007);
    assert_eq!(got[0].kind(), Kind::Alert);
    assert_eq!(got.iter().position(|e| e.kind() == Kind::Audit), Some(7), "alerts, then summaries, then audit");
    assert_eq!(out.backlog(&src).unwrap(), 0);
}

#[test]
fn the_window_bounds_what_is_unacknowledged() {
    let mut src = Mem::default();
    src.add(Kind::Audit, "town-a", 10 * MAX_BATCH_ENTRIES as u64);
    let mut out = Outbound::new(Direction::Up, 3, Origins::All);
    out.on_want(vec![]);
    let mut ids = Vec::new();
    while let Some(b) = out.next_batch(&src).unwrap() {
        let (id, entries) = (b.id, entries_of(&b));
        assert!(entries.len() <= MAX_BATCH_ENTRIES);
        ids.push(id);
    }
    assert_eq!(ids.len(), 3);
    assert!(matches!(out.on_ack(ids[1]), Err(ProtocolError::UnexpectedAck { .. })), "acks come in order");
    out.on_ack(ids[0]).unwrap();
    assert!(out.next_batch(&src).unwrap().is_some());
}

#[test]
fn only_allowed_origins_are_offered() {
    let mut src = Mem::default();
    src.add(Kind::Watchlist, "town-a", 2);
    src.add(Kind::Watchlist, "city", 2);
    let mut rx = receiver();
    let me = NodeId::new("town-a").unwrap();
    let mut out = Outbound::new(Direction::Up, 4, Origins::Only([me].into()));
    out.on_want(want_heads(&rx, Direction::Up));
    let got = drain(&src, &mut out, &mut rx);
    assert!(got.iter().all(|e| e.origin().as_str() == "town-a") && got.len() == 2);
}

#[test]
fn refusals_duplicates_and_gaps() {
    let mut rx = receiver();
    let e = |o: &str, seq| {
        let e = Entry { origin: NodeId::new(o).unwrap(), seq, hlc: Hlc::ZERO, kind: Kind::Alert, payload: vec![] };
        EntryBytes::encode(&e).unwrap()
    };
    assert_eq!(rx.judge(&e("town-a", 1), |_| Err(Refusal::ForeignOrigin)), Verdict::Refuse(Refusal::ForeignOrigin));
    assert_eq!(rx.judge(&e("town-a", 2), |_| Ok(())), Verdict::Gap);
    assert_eq!(rx.judge(&e("town-a", 1), |_| Ok(())), Verdict::Accept);
    assert_eq!(rx.judge(&e("town-a", 1), |_| Ok(())), Verdict::Duplicate);
    assert_eq!(rx.judge(&e("county", 1), |_| Ok(())), Verdict::Duplicate, "our own entries are never taken back");
}

proptest! {
    /// However the link breaks (batches lost unacknowledged, reconnects at any point) and
    /// however two paths race, the receiver ends with exactly what the source holds, each entry
    /// accepted once.
    #[test]
    fn reconnects_and_two_paths_lose_and_duplicate_nothing(
        counts in proptest::collection::vec((0usize..3, 0u64..300), 1..6),
        steps in proptest::collection::vec((any::<bool>(), 0u8..10), 1..200),
    ) {
        let kinds = [Kind::Alert, Kind::Summary, Kind::Audit];
        let mut src = Mem::default();
        for (i, (k, n)) in counts.iter().enumerate() {
            src.add(kinds[*k], &format!("town-{i}"), *n);
        }
        let total: usize = src.0.values().map(Vec::len).sum();
        let mut rx = receiver();
        // Two links from the same source (a town's preferred parent and its fallback both
        // relaying to the city, say), each with its own sender state.
        let mut links = [Outbound::new(Direction::Up, 3, Origins::All), Outbound::new(Direction::Up, 3, Origins::All)];
        for l in links.iter_mut() { l.on_want(want_heads(&rx, Direction::Up)); }
        let mut pending: [VecDeque<(u64, Vec<EntryBytes>)>; 2] = [VecDeque::new(), VecDeque::new()];
        let mut accepted = Vec::new();
        for (which, action) in steps {
            let i = which as usize;
            match action {
                0 => { // the connection drops: in-flight batches are lost, the receiver re-announces
                    pending[i].clear();
                    links[i].on_want(want_heads(&rx, Direction::Up));
                }
                1..=4 => {
                    if let Some(b) = links[i].next_batch(&src).unwrap() {
                        let (id, entries) = (b.id, entries_of(&b));
                        pending[i].push_back((id, entries));
                    }
                }
                _ => {
                    if let Some((id, entries)) = pending[i].pop_front() {
                        for e in entries {
                            if rx.judge(&e, |_| Ok(())) == Verdict::Accept { accepted.push(e); }
                        }
                        links[i].on_ack(id).unwrap();
                    }
                }
            }
        }
        // Heal: both links reconnect and drain.
        for link in links.iter_mut() {
            link.on_want(want_heads(&rx, Direction::Up));
            accepted.extend(drain(&src, link, &mut rx));
        }
        prop_assert_eq!(accepted.len(), total, "every entry once");
        let mut ids: Vec<_> = accepted.iter().map(|e| (e.kind(), e.origin().clone(), e.seq())).collect();
        ids.sort();
        ids.dedup();
        prop_assert_eq!(ids.len(), total, "no entry twice");
    }
}

#[test]
fn nothing_past_the_durable_heads_is_sent() {
    let mut src = Mem::default();
    src.add(Kind::Alert, "town-a", 10);
    src.add(Kind::Audit, "town-a", 3);
    // The last 4 entries of every list are applied, not durable.
    src.1 = 4;
    let mut out = Outbound::new(Direction::Up, 4, Origins::All);
    out.on_want(vec![]);
    let mut rx = receiver();
    let got = drain(&src, &mut out, &mut rx);
    let sent: Vec<(Kind, u64)> = got.iter().map(|e| (e.kind(), e.seq())).collect();
    assert_eq!(sent, (1..=6).map(|s| (Kind::Alert, s)).collect::<Vec<_>>(), "only the durable prefix leaves");
    assert_eq!(out.backlog(&src).unwrap(), 0, "the backlog counts durable entries only");
    // Once durable, the rest follows.
    src.1 = 0;
    let rest: Vec<(Kind, u64)> = drain(&src, &mut out, &mut rx).iter().map(|e| (e.kind(), e.seq())).collect();
    let mut want: Vec<(Kind, u64)> = (7..=10).map(|s| (Kind::Alert, s)).collect();
    want.extend((1..=3).map(|s| (Kind::Audit, s)));
    assert_eq!(rest, want);
}

/// Holdings whose heads are shared snapshots, updated copy-on-write as the store does, and
/// which count their reads.
#[derive(Default)]
struct Snapshots {
    mem: Mem,
    heads: std::cell::RefCell<BTreeMap<Kind, std::sync::Arc<VersionVector>>>,
    reads: std::cell::Cell<usize>,
}

impl Snapshots {
    fn add(&mut self, kind: Kind, origin: &str, n: u64) {
        self.mem.add(kind, origin, n);
        let o = NodeId::new(origin).unwrap();
        let held = self.mem.0[&(kind, o.clone())].len() as u64;
        std::sync::Arc::make_mut(self.heads.get_mut().entry(kind).or_default()).raise(&o, held);
    }
}

impl Holdings for Snapshots {
    type Error = String;
    fn heads(&self, kind: Kind) -> Result<std::sync::Arc<VersionVector>, String> {
        Ok(self.heads.borrow_mut().entry(kind).or_default().clone())
    }
    fn read(&self, kind: Kind, origin: &NodeId, from: u64, max: usize, take: &mut Take<'_>) -> Result<(), String> {
        self.reads.set(self.reads.get() + 1);
        self.mem.read(kind, origin, from, max, take)
    }
}

#[test]
fn a_sender_woken_with_unchanged_heads_reads_nothing_and_misses_nothing_new() {
    let mut src = Snapshots::default();
    src.add(Kind::Alert, "town-a", 3);
    let mut out = Outbound::new(Direction::Up, 4, Origins::All);
    out.on_want(vec![]);
    let mut rx = receiver();
    let mut take = |src: &Snapshots, out: &mut Outbound| {
        let mut got = Vec::new();
        while let Some(b) = out.next_batch(src).unwrap() {
            let (id, entries) = (b.id, entries_of(&b));
            got.extend(entries.into_iter().filter(|e| rx.judge(e, |_| Ok(())) == Verdict::Accept).map(|e| e.seq()));
            out.on_ack(id).unwrap();
        }
        got
    };
    assert_eq!(take(&src, &mut out), vec![1, 2, 3]);
    let reads = src.reads.get();
    assert_eq!(take(&src, &mut out), Vec::<u64>::new());
    assert_eq!(src.reads.get(), reads, "unchanged heads: nothing scanned, nothing read");
    src.add(Kind::Alert, "town-a", 2);
    src.add(Kind::Audit, "town-b", 1);
    assert_eq!(take(&src, &mut out), vec![4, 5, 1], "new heads are a new snapshot, and are sent");
}
