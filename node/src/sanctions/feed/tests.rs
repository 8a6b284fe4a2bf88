//! The applier against the log it follows: whatever streams carry the log, however their
//! entries are cut and interleaved, a node ends at the log's lists and never goes back.

use super::*;
use crate::sanctions::{Actor, Command, ListEntry, ListKind, SubjectId};
use proptest::prelude::*;

const T0: u64 = 1_767_225_600_000;
const DAY: u64 = 86_400_000;

fn plate(n: u32) -> SubjectId {
    SubjectId::parse("registration", &format!("鲁K{n:05}")).unwrap()
}

fn add(n: u32) -> Proposal {
    Proposal {
        command: Command::Add {
            entry: ListEntry {
                list: if n % 3 == 0 { ListKind::Red } else { ListKind::Black },
                subject: plate(n),
                name: format!("vehicle {n}"),
                authority: "City Transport Bureau".into(),
                legal_basis: "Regulation 7".into(),
                effective_ms: T0,
                expires_ms: T0 + 30 * DAY,
                note: String::new(),
            },
        },
        actor: Actor { who: "operator".into(), why: "decision".into() },
        proposed_ms: T0,
    }
}

fn remove(n: u32) -> Proposal {
    let list = if n % 3 == 0 { ListKind::Red } else { ListKind::Black };
    Proposal {
        command: Command::Remove { list, subject: plate(n) },
        actor: Actor { who: "operator".into(), why: "credit repaired".into() },
        proposed_ms: T0,
    }
}

/// A committed log: list commands at some indexes, blank or membership entries between.
fn log(commands: &[(u64, Proposal)]) -> (Lists, Vec<Lists>) {
    let mut lists = Lists::new();
    let mut states = vec![lists.clone()];
    for (v, p) in commands {
        lists.apply(*v, p);
        states.push(lists.clone());
    }
    (lists, states)
}

fn encode(e: &FeedEntry) -> Vec<u8> {
    proto::codec::encode(e).unwrap()
}

fn node(n: &str) -> NodeId {
    NodeId::new(n).unwrap()
}

#[test]
fn a_stream_of_changes_reaches_the_log_and_an_old_one_changes_nothing() {
    let commands = vec![(2, add(1)), (3, add(2)), (5, remove(1))];
    let (expected, _) = log(&commands);
    let city = node("city");
    let mut a = Applier::new();
    let first = FeedEntry::Changes { prev: 0, through: 3, changes: commands[..2].to_vec() };
    let second = FeedEntry::Changes { prev: 3, through: 6, changes: commands[2..].to_vec() };
    assert_eq!(a.offer(&city, 1, &encode(&first)), Step::Advanced { from: 0, to: 3 });
    assert_eq!(a.offer(&city, 2, &encode(&second)), Step::Advanced { from: 3, to: 6 });
    assert_eq!(a.version(), 6, "the blank entry at 6 moves the version too");
    let mut want = expected.clone();
    want.skip_to(6);
    assert_eq!(a.lists().digest(), want.digest());
    // A county's stream, cut differently, brings nothing new.
    let county = node("county");
    let whole = FeedEntry::Changes { prev: 0, through: 5, changes: commands.clone() };
    assert_eq!(a.offer(&county, 1, &encode(&whole)), Step::Behind);
    assert_eq!(a.version(), 6);
    assert_eq!(a.next_seq(&county), 2);
}

#[test]
fn an_entry_ahead_of_the_node_waits_for_the_versions_between() {
    let commands = vec![(1, add(1)), (2, add(2)), (3, add(3))];
    let late = node("county");
    let mut a = Applier::new();
    // The county's publisher started after version 1 without a snapshot: a malformed stream,
    // but one that must not move the node past what it lacks.
    let ahead = FeedEntry::Changes { prev: 1, through: 3, changes: commands[1..].to_vec() };
    assert_eq!(a.offer(&late, 1, &encode(&ahead)), Step::Blocked { prev: 1 });
    assert_eq!(a.next_seq(&late), 1, "a blocked entry is offered again later");
    let city = node("city");
    let first = FeedEntry::Changes { prev: 0, through: 1, changes: commands[..1].to_vec() };
    assert_eq!(a.offer(&city, 1, &encode(&first)), Step::Advanced { from: 0, to: 1 });
    assert_eq!(a.offer(&late, 1, &encode(&ahead)), Step::Advanced { from: 1, to: 3 });
    assert_eq!(a.lists().digest(), log(&commands).0.digest());
}

#[test]
fn a_snapshot_bridges_a_gap_and_an_older_snapshot_is_ignored() {
    let commands: Vec<(u64, Proposal)> = (1..=400).map(|n| (n as u64, add(n))).collect();
    let (at_400, states) = log(&commands);
    let bytes = proto::codec::encode_snapshot(&at_400).unwrap();
    let pieces = snapshot_entries(400, &bytes);
    assert!(pieces.len() == 1 || bytes.len() > MAX_FEED_ENTRY_BYTES);
    let county = node("county");
    let mut a = Applier::new();
    let city = node("city");
    let early = FeedEntry::Changes { prev: 0, through: 10, changes: commands[..10].to_vec() };
    assert_eq!(a.offer(&city, 1, &encode(&early)), Step::Advanced { from: 0, to: 10 });
    for (i, p) in pieces.iter().enumerate() {
        let step = a.offer(&county, i as u64 + 1, &encode(p));
        if i + 1 < pieces.len() {
            assert_eq!(step, Step::Piece);
        } else {
            assert_eq!(step, Step::Advanced { from: 10, to: 400 });
        }
    }
    assert_eq!(a.lists().digest(), at_400.digest());
    // An older snapshot (version 200) from another stream: taken whole, then found behind.
    let old = proto::codec::encode_snapshot(&states[200]).unwrap();
    let other = node("county-2");
    for (i, p) in snapshot_entries(200, &old).iter().enumerate() {
        assert!(matches!(a.offer(&other, i as u64 + 1, &encode(p)), Step::Piece | Step::Behind));
    }
    assert_eq!(a.version(), 400);
}

#[test]
fn a_big_snapshot_travels_in_pieces_and_a_missing_piece_is_not_taken() {
    let mut lists = Lists::new();
    for n in 1..=15_000 {
        lists.apply(n as u64, &add(n));
    }
    let bytes = proto::codec::encode_snapshot(&lists).unwrap();
    let pieces = snapshot_entries(15_000, &bytes);
    assert!(pieces.len() >= 2, "{} bytes in {} pieces", bytes.len(), pieces.len());
    let city = node("city");
    let mut a = Applier::new();
    // Piece 1 before piece 0: refused, and the assembly does not start in the middle.
    assert!(matches!(a.offer(&city, 1, &encode(&pieces[1])), Step::Malformed(_)));
    for (i, p) in pieces.iter().enumerate() {
        a.offer(&city, i as u64 + 2, &encode(p));
    }
    assert_eq!(a.lists().digest(), lists.digest());
}

#[test]
fn garbage_and_disorder_are_refused_without_moving_the_lists() {
    let city = node("city");
    let mut a = Applier::new();
    assert!(matches!(a.offer(&city, 1, b"\xff\xff\xff\xff"), Step::Malformed(_)));
    let disordered = FeedEntry::Changes { prev: 0, through: 3, changes: vec![(2, add(1)), (2, add(2))] };
    assert!(matches!(a.offer(&city, 2, &encode(&disordered)), Step::Malformed(_)));
    let beyond = FeedEntry::Changes { prev: 0, through: 3, changes: vec![(4, add(1))] };
    assert!(matches!(a.offer(&city, 3, &encode(&beyond)), Step::Malformed(_)));
    let lying = FeedEntry::Snapshot(SnapshotPiece {
        version: 9,
        piece: 0,
        pieces: 1,
        bytes: proto::codec::encode_snapshot(&Lists::new()).unwrap(),
    });
    assert!(matches!(a.offer(&city, 4, &encode(&lying)), Step::Malformed(_)));
    assert!(matches!(a.offer(&city, 9, &encode(&lying)), Step::Malformed(_)), "a skipped sequence");
    assert_eq!(a.version(), 0);
    assert_eq!(a.next_seq(&city), 5);
}

/// How a publisher cuts the log into its stream: a snapshot at `start` (0: none), then
/// changes in entries of at most `batch` commands.
fn stream(commands: &[(u64, Proposal)], states: &[Lists], start: usize, batch: usize, end: u64) -> Vec<FeedEntry> {
    let mut out = Vec::new();
    let mut prev = 0;
    if start > 0 {
        let version = commands[start - 1].0;
        out.extend(snapshot_entries(version, &proto::codec::encode_snapshot(&states[start]).unwrap()));
        prev = version;
    }
    let rest = &commands[start..];
    if rest.is_empty() {
        out.push(FeedEntry::Changes { prev, through: end, changes: Vec::new() });
    }
    for (i, chunk) in rest.chunks(batch.max(1)).enumerate() {
        let last = i == rest.len().div_ceil(batch.max(1)) - 1;
        let through = if last { end } else { chunk.last().unwrap().0 };
        out.push(FeedEntry::Changes { prev, through, changes: chunk.to_vec() });
        prev = through;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Up to three publishers cut the same log differently (each from the start or from a
    /// snapshot), and a node takes their entries in any interleaving: it ends at the log's
    /// lists, and its version never goes down.
    #[test]
    fn any_cut_and_interleaving_converges(
        ops in proptest::collection::vec((1u64..4, 0u32..12, any::<bool>()), 1..30),
        cuts in proptest::collection::vec((0usize..30, 1usize..6), 1..4),
        order in proptest::collection::vec(0usize..3, 0..400),
    ) {
        let mut commands = Vec::new();
        let mut v = 0;
        for (gap, n, is_add) in ops {
            v += gap;
            commands.push((v, if is_add { add(n) } else { remove(n) }));
        }
        let end = v + 1;
        let (mut expected, states) = log(&commands);
        expected.skip_to(end);
        let streams: Vec<(NodeId, Vec<Vec<u8>>)> = cuts
            .iter()
            .enumerate()
            .map(|(i, (start, batch))| {
                let start = (*start).min(commands.len());
                let entries = stream(&commands, &states, start, *batch, end);
                (node(&format!("publisher-{i}")), entries.iter().map(encode).collect())
            })
            .collect();
        let mut a = Applier::new();
        let mut last = 0;
        let mut take = |a: &mut Applier, s: usize| {
            let (origin, entries) = &streams[s % streams.len()];
            let seq = a.next_seq(origin);
            if let Some(payload) = entries.get(seq as usize - 1) {
                let step = a.offer(origin, seq, payload);
                prop_assert!(!matches!(step, Step::Malformed(_)), "{step:?}");
            }
            prop_assert!(a.version() >= last, "went back from {last} to {}", a.version());
            last = a.version();
            Ok(())
        };
        for s in order {
            take(&mut a, s)?;
        }
        // Then drain every stream in turn until none moves.
        loop {
            let before: Vec<u64> = streams.iter().map(|(o, _)| a.next_seq(o)).collect();
            for s in 0..streams.len() {
                take(&mut a, s)?;
            }
            if streams.iter().map(|(o, _)| a.next_seq(o)).collect::<Vec<_>>() == before {
                break;
            }
        }
        prop_assert_eq!(a.version(), end);
        prop_assert_eq!(a.lists().digest(), expected.digest());
    }
}
