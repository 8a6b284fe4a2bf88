use super::*;
use proptest::prelude::*;
use std::io::Cursor;

fn fields<'a>(list: &'a str, reason: &'a str, expires_ms: Option<u64>) -> EntryFields<'a> {
    EntryFields { list, reason, added_by: "officer-li", authority: "Bureau", legal_basis: "Law 1", expires_ms }
}

/// The last three columns of a good line: expiry, authority, legal basis.
const TAIL: &str = "1798761600000,City Public Security Bureau,Road Traffic Safety Law art. 96";

/// `head` (the first five columns) with [`TAIL`].
fn line(head: &str) -> String {
    format!("{head},{TAIL}")
}

fn plate(s: &str) -> Subject {
    Subject::Plate(s.to_owned())
}

fn load_str(text: &str) -> Result<Watchlist, LoadError> {
    load_reader(Cursor::new(text.as_bytes()), "test.csv", &LoadLimits::default())
}

#[test]
fn plate_hit_after_normalisation() {
    let mut w = Watchlist::new();
    w.insert(&plate("鲁K12345"), fields("stolen", "reported stolen", None)).expect("valid entry");
    let hit = w.check_plate("鲁k 123-45", 0).expect("hit");
    assert_eq!(hit.plate(), Some("鲁K12345"));
    assert_eq!(hit.list(), "stolen");
    assert_eq!(hit.reason(), "reported stolen");
    assert_eq!(hit.added_by(), "officer-li");
    assert_eq!(hit.subject(), plate("鲁K12345"));
    assert!(w.check_plate("京K12345", 0).is_none());
    assert!(w.check_plate("", 0).is_none());
    assert!(w.check_plate(&"X".repeat(200), 0).is_none());
}

#[test]
fn mmsi_hit_and_kinds_are_separate() {
    let mut w = Watchlist::new();
    w.insert(&Subject::Mmsi(412_345_678), fields("sanctions", "detained", None)).expect("valid entry");
    assert_eq!(w.check_mmsi(412_345_678, 0).and_then(WatchEntry::mmsi), Some(412_345_678));
    assert!(w.check_plate("412345678", 0).is_none());
    assert!(w.check_mmsi(412_345_679, 0).is_none());
}

#[test]
fn expired_entries_do_not_hit() {
    let mut w = Watchlist::new();
    w.insert(&plate("AB123"), fields("fines", "unpaid", Some(1_000))).expect("valid entry");
    assert!(w.check_plate("AB123", 999).is_some());
    assert!(w.check_plate("AB123", 1_000).is_none());
    assert_eq!(w.purge_expired(1_000), 1);
    assert!(w.is_empty());
}

#[test]
fn several_lists_per_subject() {
    let mut w = Watchlist::new();
    let s = plate("AB123");
    w.insert(&s, fields("fines", "unpaid", Some(100))).expect("valid");
    w.insert(&s, fields("stolen", "reported", None)).expect("valid");
    assert_eq!(w.len(), 2);
    // The first list's entry expired: the other one still hits.
    assert_eq!(w.check_plate("ab 123", 200).map(WatchEntry::list), Some("stolen"));
    let mut lists: Vec<_> = w.hits(&s, 50).map(WatchEntry::list).collect();
    lists.sort_unstable();
    assert_eq!(lists, ["fines", "stolen"]);
    // Replacing keeps one entry per (subject, list).
    let old = w.insert(&s, fields("stolen", "recovered? no, still stolen", None)).expect("valid");
    assert_eq!(old.map(|e| e.reason().to_owned()).as_deref(), Some("reported"));
    assert_eq!(w.len(), 2);
    // Removing the primary promotes the other.
    assert!(w.remove(&s, "fines").is_some());
    assert_eq!(w.check_plate("AB123", 0).map(WatchEntry::list), Some("stolen"));
    assert!(w.remove(&s, "fines").is_none());
    assert!(w.remove(&plate("ab-123"), "stolen").is_some());
    assert!(w.is_empty());
    assert!(w.check_plate("AB123", 0).is_none());
}

#[test]
fn insert_validation() {
    let mut w = Watchlist::new();
    assert_eq!(w.insert(&plate(" - "), fields("l", "r", None)).err(), Some(EntryError::EmptyPlate));
    assert_eq!(w.insert(&plate("AB1"), fields("l", " ", None)).err(), Some(EntryError::EmptyField("reason")));
    assert_eq!(w.insert(&plate("AB1"), fields("", "r", None)).err(), Some(EntryError::EmptyField("list")));
    let mut f = fields("l", "r", None);
    f.added_by = "";
    assert_eq!(w.insert(&plate("AB1"), f).err(), Some(EntryError::EmptyField("added_by")));
    assert_eq!(
        w.insert(&Subject::Mmsi(1_000_000_000), fields("l", "r", None)).err(),
        Some(EntryError::BadMmsi(1_000_000_000))
    );
    assert_eq!(w.insert(&Subject::Mmsi(0), fields("l", "r", None)).err(), Some(EntryError::BadMmsi(0)));
    assert_eq!(w.insert(&plate("AB1"), fields("l", "a\nb", None)).err(), Some(EntryError::FieldControl("reason")));
    let long = "r".repeat(MAX_FIELD_BYTES + 1);
    assert_eq!(w.insert(&plate("AB1"), fields("l", &long, None)).err(), Some(EntryError::FieldTooLong("reason")));
    assert!(w.is_empty());
}

#[test]
fn strings_are_interned() {
    let mut w = Watchlist::new();
    for i in 0..1000u32 {
        w.insert(&Subject::Mmsi(100_000_000 + i), fields("l", "same reason", None)).expect("valid");
    }
    let a = w.check_mmsi(100_000_000, 0).expect("hit");
    let b = w.check_mmsi(100_000_999, 0).expect("hit");
    assert!(Arc::ptr_eq(&a.meta, &b.meta));
    assert_eq!(w.interner.metas.len(), 1);
}

#[test]
fn interner_garbage_is_collected() {
    let mut w = Watchlist::new();
    for i in 0..5000u32 {
        let reason = format!("case {i}");
        w.insert(&Subject::Mmsi(100_000_000 + i), fields("l", &reason, None)).expect("valid");
    }
    for i in 0..5000u32 {
        assert!(w.remove(&Subject::Mmsi(100_000_000 + i), "l").is_some());
    }
    assert!(w.is_empty());
    assert!(w.interner.metas.len() < 1100, "{}", w.interner.metas.len());
}

#[test]
fn load_good_file() {
    let text = "\u{FEFF}# kind,subject,list,reason,added_by,expires,authority,legal_basis\r\n\
                plate,鲁K12345,stolen-vehicles,reported stolen 2026-11-02,officer-li,2027-05-01,City Public Security Bureau,Road Traffic Safety Law art. 96\r\n\
                \n\
                   MMSI , 412345678 , sanctions , detained , officer-wang , 1798761600000 , Harbour Master , PSC order 41\n\
                plate,京A-00001,fines,unpaid,officer-li,2027-05-01T08:00:00+08:00,Harbour Office,Port Fees Regulation 9\n\
                mmsi,012345678,sanctions,coast station test,officer-wang,1798761600000,Harbour Master,PSC order 42";
    let w = load_str(text).expect("loads");
    assert_eq!(w.len(), 4);
    let p = w.check_plate("鲁k 123-45", 0).expect("hit");
    assert_eq!(p.expires_ms(), Some(1_809_129_600_000), "a date is midnight UTC");
    assert_eq!((p.authority(), p.legal_basis()), ("City Public Security Bureau", "Road Traffic Safety Law art. 96"));
    let v = w.check_mmsi(412_345_678, 0).expect("hit");
    assert_eq!(v.expires_ms(), Some(1_798_761_600_000));
    assert_eq!(v.reason(), "detained");
    assert_eq!((v.authority(), v.legal_basis()), ("Harbour Master", "PSC order 41"));
    assert!(w.check_mmsi(412_345_678, 1_798_761_600_000).is_none());
    assert_eq!(w.check_plate("京A00001", 0).and_then(WatchEntry::expires_ms), Some(1_809_129_600_000));
    assert!(w.check_mmsi(12_345_678, 0).is_some());
}

#[test]
fn a_line_must_name_authority_legal_basis_and_expiry() {
    let text = [
        "plate,AB123,l,r,a,1798761600000,Bureau,Law 1".to_string(), // 1 ok
        "plate,AB123,l,r,a".into(),                                 // 2 the old five columns
        "plate,AB123,l,r,a,1798761600000".into(),                   // 3 the old six
        "plate,AB123,l,r,a,,Bureau,Law 1".into(),                   // 4 no expiry
        "plate,AB123,l,r,a,1798761600000,,Law 1".into(),            // 5 no authority
        "plate,AB123,l,r,a,1798761600000,Bureau, ".into(),          // 6 blank legal basis
        "plate,AB123,l,r,a,2099-01-01,Bureau,Law 1".into(),         // 7 past the maximum
        format!("plate,AB123,l,r,a,1798761600000,Bureau{},Law 1", "x".repeat(300)), // 8 too long
    ]
    .join("\n");
    let limits = LoadLimits { latest_expiry_ms: 1_800_000_000_000, ..LoadLimits::default() };
    let err = load_reader(Cursor::new(text.as_bytes()), "t", &limits).err().expect("must fail");
    let LoadError::BadLines { errors, .. } = &err else { panic!("wrong error {err}") };
    use LineErrorKind as K;
    let kinds: Vec<(u64, &LineErrorKind)> = errors.iter().map(|e| (e.line, &e.kind)).collect();
    assert_eq!(
        kinds,
        [
            (2, &K::FieldCount(5)),
            (3, &K::FieldCount(6)),
            (4, &K::NoExpiry),
            (5, &K::Entry(EntryError::EmptyField("authority"))),
            (6, &K::Entry(EntryError::EmptyField("legal_basis"))),
            (7, &K::ExpiryTooLate { given: "2099-01-01T00:00:00Z".into(), latest: "2027-01-15T08:00:00Z".into() }),
            (8, &K::Entry(EntryError::FieldTooLong("authority"))),
        ]
    );
    let msg = err.to_string();
    assert!(msg.contains("t:2: expected 8 comma-separated fields (kind,subject,list,reason,added_by,expires,authority,legal_basis), found 5; every entry now names"), "{msg}");
    assert!(msg.contains("t:7: expires 2099-01-01T00:00:00Z is after 2027-01-15T08:00:00Z"), "{msg}");

    // The node's limit: the configured days from now.
    let limits = LoadLimits::expiring_within(1_798_761_600_000 - 86_400_000, 1);
    assert!(load_reader(Cursor::new(line("plate,AB1,l,r,a").as_bytes()), "t", &limits).is_ok());
    let limits = LoadLimits::expiring_within(1_798_761_600_000 - 86_400_001, 1);
    assert!(load_reader(Cursor::new(line("plate,AB1,l,r,a").as_bytes()), "t", &limits).is_err());
}

#[test]
fn load_reports_every_bad_line_with_its_number() {
    let text = [
        line("plate,AB123,l,r,a"),                      // 1 ok
        line("vessel,AB123,l,r,a"),                     // 2 unknown kind
        line("mmsi,41234567,l,r,a"),                    // 3 eight digits
        line("mmsi,4123456789,l,r,a"),                  // 4 ten digits
        line("mmsi,41234567x,l,r,a"),                   // 5 not digits
        line("plate,AB123,l,,a"),                       // 6 empty reason
        line("plate,AB123,l,r,"),                       // 7 empty added_by
        "plate,AB123,l,r".to_string(),                  // 8 four fields
        "plate,AB123,l,r,a,1,B,L,2".into(),             // 9 nine fields
        "plate,AB123,l,r,a,soon,B,L".into(),            // 10 bad expiry
        line("plate, - ,l,r,a"),                        // 11 empty plate
        line("mmsi,000000000,l,r,a"),                   // 12 placeholder MMSI
        line("plate,ABCDEFGHIJKLMNOPQRSTUVWXYZ,l,r,a"), // 13 plate too long
        "# fine".into(),
    ]
    .join("\n");
    let err = load_str(&text).err().expect("must fail");
    let LoadError::BadLines { path, errors, bad_lines } = &err else {
        panic!("wrong error {err}");
    };
    assert_eq!(path, "test.csv");
    assert_eq!(*bad_lines, 12);
    let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, (2..=13).collect::<Vec<_>>());
    use LineErrorKind as K;
    let kinds: Vec<&LineErrorKind> = errors.iter().map(|e| &e.kind).collect();
    assert_eq!(kinds[0], &K::UnknownKind("vessel".into()));
    assert_eq!(kinds[1], &K::MmsiFormat("41234567".into()));
    assert_eq!(kinds[2], &K::MmsiFormat("4123456789".into()));
    assert_eq!(kinds[3], &K::MmsiFormat("41234567x".into()));
    assert_eq!(kinds[4], &K::Entry(EntryError::EmptyField("reason")));
    assert_eq!(kinds[5], &K::Entry(EntryError::EmptyField("added_by")));
    assert_eq!(kinds[6], &K::FieldCount(4));
    assert_eq!(kinds[7], &K::FieldCount(9));
    assert_eq!(kinds[8], &K::BadExpiry("soon".into()));
    assert_eq!(kinds[9], &K::Entry(EntryError::EmptyPlate));
    assert_eq!(kinds[10], &K::Entry(EntryError::BadMmsi(0)));
    assert_eq!(kinds[11], &K::Entry(EntryError::PlateTooLong));
    let msg = err.to_string();
    assert!(msg.starts_with("test.csv: 12 bad line(s), nothing loaded"), "{msg}");
    assert!(msg.contains("test.csv:3: MMSI \"41234567\" is not exactly 9 digits"), "{msg}");
    assert!(msg.contains("test.csv:6: reason is empty"), "{msg}");
}

#[test]
fn load_limits_lines_errors_and_size() {
    let limits = LoadLimits { max_file_bytes: 1 << 20, max_line_bytes: 120, max_errors: 2, ..LoadLimits::default() };
    let long = line(&format!("plate,AB123,l,{},a", "r".repeat(100)));
    let text = format!("{long}\n{}\n\u{1}bad\nxx\n", line("plate,AB1,l,r,a"));
    let err = load_reader(Cursor::new(text.as_bytes()), "t", &limits).err().expect("must fail");
    let msg = err.to_string();
    assert!(msg.contains("t:1: line is longer than 120 bytes"), "{msg}");
    assert!(msg.contains("... and 1 more"), "{msg}");

    let mut bytes = b"plate,AB\xFF1,l,r,a,".to_vec();
    bytes.extend_from_slice(TAIL.as_bytes());
    let err = load_reader(Cursor::new(&bytes[..]), "t", &LoadLimits::default()).err().expect("must fail");
    assert!(err.to_string().contains("t:1: line is not valid UTF-8"), "{err}");

    let small = LoadLimits { max_file_bytes: 10, ..LoadLimits::default() };
    let err = load_reader(Cursor::new(line("plate,AB1,l,r,a").as_bytes()), "t", &small).err().expect("must fail");
    assert!(matches!(err, LoadError::TooLarge { .. }), "{err}");
}

#[test]
fn load_file_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("plates.csv");
    std::fs::write(&path, format!("{}\nplate,AB2,l,r\n", line("plate,AB1,l,r,a"))).expect("write");
    let err = load_file(&path, &LoadLimits::default()).err().expect("must fail");
    let msg = err.to_string();
    assert!(msg.contains(&format!("{}:2: expected 8", path.display())), "{msg}");

    let tiny = LoadLimits { max_file_bytes: 8, ..LoadLimits::default() };
    let err = load_file(&path, &tiny).err().expect("must fail");
    assert!(msg_has(&err, "larger than the 8-byte limit"), "{err}");

    let missing = dir.path().join("missing.csv");
    let err = load_file(&missing, &LoadLimits::default()).err().expect("must fail");
    assert!(err.to_string().starts_with(&missing.display().to_string()), "{err}");

    std::fs::write(&path, format!("{}\n{}\n", line("plate,AB1,l,r,a"), line("mmsi,412345678,l,r,a"))).expect("write");
    let w = load_file(&path, &LoadLimits::default()).expect("loads");
    assert_eq!(w.len(), 2);
}

fn msg_has(e: &LoadError, s: &str) -> bool {
    e.to_string().contains(s)
}

#[test]
fn scale_smoke_200k() {
    let mut w = Watchlist::new();
    for i in 0..200_000u32 {
        let p = format!("鲁K{i:06}");
        w.insert(&Subject::Plate(p), fields("stolen", "reported stolen", None)).expect("valid");
    }
    assert_eq!(w.len(), 200_000);
    assert!(w.check_plate("鲁k 199-999", 0).is_some());
    assert!(w.check_plate("鲁K200000", 0).is_none());
    let per_entry = w.approx_heap_bytes() / w.len();
    assert!(per_entry < 120, "{per_entry} bytes per entry");
}

// ---- property test: the index against a plain HashMap model ----

const BASE_PLATES: [&str; 4] = ["鲁K12345", "京A00001", "AB123", "粤Z1234港"];
const MMSIS: [u32; 3] = [412_345_678, 440_123_456, 12_345_678];
const LISTS: [&str; 3] = ["stolen", "fines", "sanctions"];
const REASONS: [&str; 2] = ["reported", "unpaid"];

/// The plate as a camera or an operator might write it: random case and separators.
fn decorate(base: &str, seed: u64) -> String {
    let mut out = String::new();
    for (i, c) in base.chars().enumerate() {
        let bits = seed >> ((i * 3) % 60);
        if bits & 4 != 0 {
            out.push([' ', '-', '.', '·'][(bits as usize >> 3) & 3]);
        }
        out.push(if bits & 1 != 0 { c.to_ascii_lowercase() } else { c });
    }
    out
}

/// An independent (slow, allocating) normaliser for the model.
fn model_norm(s: &str) -> String {
    s.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '·')).map(|c| c.to_ascii_uppercase()).collect()
}

#[derive(Debug, Clone)]
enum Op {
    Insert { subject: usize, seed: u64, list: usize, reason: usize, expires_ms: Option<u64> },
    Remove { subject: usize, seed: u64, list: usize },
    Purge(u64),
    Check { subject: usize, seed: u64, now_ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    let subject = 0..BASE_PLATES.len() + MMSIS.len();
    prop_oneof![
        4 => (subject.clone(), any::<u64>(), 0..LISTS.len(), 0..REASONS.len(),
              proptest::option::of(0u64..100))
            .prop_map(|(subject, seed, list, reason, expires_ms)| Op::Insert {
                subject, seed, list, reason, expires_ms
            }),
        2 => (subject.clone(), any::<u64>(), 0..LISTS.len())
            .prop_map(|(subject, seed, list)| Op::Remove { subject, seed, list }),
        1 => (0u64..120).prop_map(Op::Purge),
        4 => (subject, any::<u64>(), 0u64..120)
            .prop_map(|(subject, seed, now_ms)| Op::Check { subject, seed, now_ms }),
    ]
}

fn subject_of(i: usize, seed: u64) -> (Subject, String) {
    match BASE_PLATES.get(i) {
        Some(base) => {
            let raw = decorate(base, seed);
            let id = format!("P:{}", model_norm(&raw));
            (Subject::Plate(raw), id)
        }
        None => {
            let m = MMSIS[i - BASE_PLATES.len()];
            (Subject::Mmsi(m), format!("M:{m}"))
        }
    }
}

fn model_live(expires_ms: Option<u64>, now_ms: u64) -> bool {
    match expires_ms {
        Some(e) => now_ms < e,
        None => true,
    }
}

type Model = HashMap<(String, &'static str), (&'static str, Option<u64>)>;

fn live_in_model(model: &Model, id: &str, now_ms: u64) -> Vec<(&'static str, &'static str)> {
    let mut v: Vec<_> = model
        .iter()
        .filter(|((sid, _), (_, exp))| sid == id && model_live(*exp, now_ms))
        .map(|((_, list), (reason, _))| (*list, *reason))
        .collect();
    v.sort_unstable();
    v
}

fn check_against_model(w: &Watchlist, model: &Model, subject: &Subject, id: &str, now_ms: u64) {
    let expected = live_in_model(model, id, now_ms);
    let got = match subject {
        Subject::Plate(p) => w.check_plate(p, now_ms),
        Subject::Mmsi(m) => w.check_mmsi(*m, now_ms),
    };
    match got {
        None => assert!(expected.is_empty(), "missed {id} at {now_ms}: {expected:?}"),
        Some(e) => assert!(expected.contains(&(e.list(), e.reason())), "unexpected hit {e:?}; model {expected:?}"),
    }
    let mut all: Vec<_> = w.hits(subject, now_ms).map(|e| (e.list(), e.reason())).collect();
    all.sort_unstable();
    let all: Vec<(String, String)> = all.into_iter().map(|(l, r)| (l.to_owned(), r.to_owned())).collect();
    let expected: Vec<(String, String)> = expected.into_iter().map(|(l, r)| (l.to_owned(), r.to_owned())).collect();
    assert_eq!(all, expected, "hits for {id} at {now_ms}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn agrees_with_hashmap_model(ops in proptest::collection::vec(op(), 1..200)) {
        let mut w = Watchlist::new();
        let mut model: Model = HashMap::new();
        for op in ops {
            match op {
                Op::Insert { subject, seed, list, reason, expires_ms } => {
                    let (s, id) = subject_of(subject, seed);
                    let replaced = w
                        .insert(&s, fields(LISTS[list], REASONS[reason], expires_ms))
                        .expect("valid entry");
                    let old = model.insert((id, LISTS[list]), (REASONS[reason], expires_ms));
                    prop_assert_eq!(replaced.is_some(), old.is_some());
                }
                Op::Remove { subject, seed, list } => {
                    let (s, id) = subject_of(subject, seed);
                    let removed = w.remove(&s, LISTS[list]);
                    let old = model.remove(&(id, LISTS[list]));
                    prop_assert_eq!(removed.is_some(), old.is_some());
                }
                Op::Purge(now_ms) => {
                    let before = model.len();
                    model.retain(|_, (_, exp)| model_live(*exp, now_ms));
                    prop_assert_eq!(w.purge_expired(now_ms), before - model.len());
                }
                Op::Check { subject, seed, now_ms } => {
                    let (s, id) = subject_of(subject, seed);
                    check_against_model(&w, &model, &s, &id, now_ms);
                }
            }
            prop_assert_eq!(w.len(), model.len());
        }
        for i in 0..BASE_PLATES.len() + MMSIS.len() {
            let (s, id) = subject_of(i, 0);
            for now_ms in [0, 50, 99, 150] {
                check_against_model(&w, &model, &s, &id, now_ms);
            }
        }
        prop_assert_eq!(w.iter().count(), model.len());
    }
}
