//! Unit tests: every refusal with its message, subject rules (USCC check characters computed
//! independently), apply semantics, `matches` boundaries, digest sensitivity, snapshots, CSV.

use super::*;

/// 2026-01-01T00:00:00Z.
const T0: u64 = 1_767_225_600_000;
const DAY: u64 = 86_400_000;
/// A valid credit code often cited as an example (check character verified below).
const USCC: &str = "91350100M000100Y43";
const FP: &str = "3f2a9c0d1e4b5a6978c0d1e2f3a4b5c6d7e8f90123456789abcdef0123456789";

fn code(s: &str) -> SubjectId {
    SubjectId::parse("credit_code", s).unwrap()
}

fn entry(list: ListKind, subject: SubjectId) -> ListEntry {
    ListEntry {
        list,
        subject,
        name: "Example Trading Co., Ltd.".into(),
        authority: "City Market Regulation Bureau".into(),
        legal_basis: "Regulation 12, article 3".into(),
        effective_ms: T0,
        expires_ms: T0 + 365 * DAY,
        note: "decision 2025-17".into(),
    }
}

fn actor() -> Actor {
    Actor { who: "operator-li".into(), why: "committee decision 2025-17".into() }
}

fn proposal(command: Command) -> Proposal {
    Proposal { command, actor: actor(), proposed_ms: T0 }
}

fn add(e: ListEntry) -> Proposal {
    proposal(Command::Add { entry: e })
}

/// The validation error's message, which `apply` must also give as the refusal reason.
fn refusal(p: &Proposal) -> String {
    let message = Lists::validate(p).expect_err("should be refused").to_string();
    let mut lists = Lists::new();
    match lists.apply(1, p) {
        Outcome::Refused { version: 1, reason } => assert_eq!(reason, message),
        other => panic!("apply did not refuse: {other:?}"),
    }
    assert!(lists.is_empty());
    message
}

fn entry_refusal(f: impl FnOnce(&mut ListEntry)) -> String {
    let mut e = entry(ListKind::Red, code(USCC));
    f(&mut e);
    refusal(&add(e))
}

// ---- subjects ----------------------------------------------------------------------------

/// The check character computed a second way: the weights as powers of 3 mod 31 and the
/// alphabet built by removing I, O, S, V, Z, as GB 32100-2015 describes them.
fn independent_check(first17: &str) -> char {
    let alphabet: Vec<char> =
        ('0'..='9').chain('A'..='Z').filter(|c| !matches!(c, 'I' | 'O' | 'S' | 'V' | 'Z')).collect();
    assert_eq!(alphabet.len(), 31);
    let mut sum = 0u64;
    let mut weight = 1u64;
    for c in first17.chars() {
        sum += alphabet.iter().position(|&a| a == c).unwrap() as u64 * weight;
        weight = weight * 3 % 31;
    }
    alphabet[((31 - sum % 31) % 31) as usize]
}

#[test]
fn uscc_known_valid_codes_parse() {
    for valid in [USCC, "91110000100010433L", "91440300708461136T"] {
        assert_eq!(independent_check(&valid[..17]), valid.chars().last().unwrap(), "{valid}");
        assert_eq!(code(valid), SubjectId::CreditCode(valid.into()));
    }
    assert_eq!(ids::uscc_check_character(&USCC[..17]), Some('3'));
    // Normalised: trimmed and upper-cased.
    assert_eq!(code(" 91350100m000100y43\t"), SubjectId::CreditCode(USCC.into()));
}

#[test]
fn uscc_every_wrong_check_character_is_refused() {
    let alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY";
    for c in alphabet.chars().filter(|&c| c != '3') {
        let bad = format!("{}{c}", &USCC[..17]);
        let err = SubjectId::parse("credit_code", &bad).unwrap_err();
        assert_eq!(
            err,
            SanctionsError::InvalidSubject {
                kind: "credit_code",
                value: bad.clone(),
                problem: SubjectProblem::CheckCharacter { found: c, expected: '3' },
            }
        );
    }
    assert_eq!(
        SubjectId::parse("credit_code", "91350100M000100Y44").unwrap_err().to_string(),
        "credit_code \"91350100M000100Y44\" is invalid: the check character is '4'; GB 32100-2015 gives '3' for the first 17"
    );
}

#[test]
fn uscc_check_character_agrees_with_independent_computation() {
    // A spread of bodies: every alphabet character in every position at least once.
    let alphabet: Vec<char> = "0123456789ABCDEFGHJKLMNPQRTUWXY".chars().collect();
    for shift in 0..alphabet.len() {
        let body: String = (0..17).map(|i| alphabet[(i * 7 + shift) % 31]).collect();
        let check = ids::uscc_check_character(&body).unwrap();
        assert_eq!(check, independent_check(&body), "{body}");
        assert!(SubjectId::parse("credit_code", &format!("{body}{check}")).is_ok());
    }
}

#[test]
fn uscc_length_and_alphabet_refused() {
    let msg = |v: &str| SubjectId::parse("credit_code", v).unwrap_err().to_string();
    assert_eq!(
        msg("91350100M000100Y4"),
        "credit_code \"91350100M000100Y4\" is invalid: it has 17 characters; a unified social credit code has 18"
    );
    assert_eq!(msg("   "), "credit_code \"   \" is invalid: it is empty");
    for (pos, letter) in [(9, 'I'), (9, 'O'), (9, 'S'), (9, 'V'), (9, 'Z')] {
        let v = format!("91350100{letter}000100Y43");
        assert_eq!(
            msg(&v),
            format!("credit_code {v:?} is invalid: character {pos} ('{letter}') is not allowed: a credit code uses 0-9 and A-Z without I, O, S, V and Z")
        );
    }
    assert!(msg("91350100M000100Y4３").contains("character 18 ('３')"));
}

#[test]
fn mmsi_rules() {
    assert_eq!(SubjectId::parse("mmsi", " 412345678 ").unwrap(), SubjectId::Mmsi(412_345_678));
    let leading = SubjectId::parse("MMSI", "002734567").unwrap();
    assert_eq!(leading, SubjectId::Mmsi(2_734_567));
    assert_eq!(leading.to_string(), "mmsi:002734567");
    for bad in ["41234567", "4123456789", "41234567a", "+12345678", "-12345678"] {
        assert_eq!(
            SubjectId::parse("mmsi", bad).unwrap_err().to_string(),
            format!("mmsi {bad:?} is invalid: an MMSI is exactly 9 digits")
        );
    }
    assert_eq!(
        SubjectId::parse("mmsi", "000000000").unwrap_err().to_string(),
        "mmsi \"000000000\" is invalid: 000000000 is a transponder placeholder, not an MMSI"
    );
    assert!(SubjectId::Mmsi(0).validate().is_err());
    assert_eq!(
        SubjectId::Mmsi(1_000_000_000).validate().unwrap_err().to_string(),
        "mmsi \"1000000000\" is invalid: an MMSI is exactly 9 digits"
    );
}

#[test]
fn hull_rules() {
    assert_eq!(SubjectId::parse("hull", " lu-yan-1234 ").unwrap(), SubjectId::HullNumber("LU-YAN-1234".into()));
    assert_eq!(
        SubjectId::parse("hull", "IMO 9074729").unwrap_err().to_string(),
        "hull \"IMO 9074729\" is invalid: character ' ' is not allowed: a hull number uses A-Z, 0-9 and '-'"
    );
    assert!(SubjectId::parse("hull", "鲁渔1").is_err());
    assert!(SubjectId::parse("hull", &"A".repeat(32)).is_ok());
    assert_eq!(
        SubjectId::parse("hull", &"A".repeat(33)).unwrap_err().to_string(),
        format!(
            "hull {:?} is invalid: it has 33 characters; at most 32 are allowed",
            crate::sanctions::error::clip(&"A".repeat(33))
        )
    );
    assert_eq!(SubjectId::parse("hull", "").unwrap_err().to_string(), "hull \"\" is invalid: it is empty");
}

#[test]
fn registration_rules() {
    assert_eq!(SubjectId::parse("registration", " 鲁k12345\n").unwrap(), SubjectId::Registration("鲁K12345".into()));
    assert!(SubjectId::parse("registration", &"鲁".repeat(32)).is_ok());
    assert!(SubjectId::parse("registration", &"鲁".repeat(33)).unwrap_err().to_string().contains("33 characters"));
    assert_eq!(
        SubjectId::parse("registration", "鲁K\u{7}12345").unwrap_err().to_string(),
        "registration \"鲁K\\u{7}12345\" is invalid: it contains the control or invisible character U+0007"
    );
    assert!(SubjectId::parse("registration", "鲁K\u{200B}12345").unwrap_err().to_string().contains("U+200B"));
    assert!(SubjectId::parse("registration", "  ").unwrap_err().to_string().ends_with("it is empty"));
}

#[test]
fn subject_display_and_from_str_are_inverse() {
    for s in [
        code(USCC),
        SubjectId::Mmsi(12_345),
        SubjectId::HullNumber("A-1".into()),
        SubjectId::Registration("青岛:渔 123".into()),
    ] {
        let text = s.to_string();
        assert_eq!(text.parse::<SubjectId>().unwrap(), s, "{text}");
    }
    assert_eq!(code(USCC).to_string(), "credit_code:91350100M000100Y43");
    assert_eq!(SubjectId::Mmsi(12_345).to_string(), "mmsi:000012345");
    assert_eq!(
        "412345678".parse::<SubjectId>().unwrap_err().to_string(),
        "subject \"412345678\" names no kind: expected kind:value, e.g. mmsi:412345678"
    );
    assert_eq!(
        "person:1".parse::<SubjectId>().unwrap_err().to_string(),
        "unknown subject kind \"person\": expected credit_code, mmsi, hull or registration"
    );
    assert_eq!(SubjectId::Mmsi(1).kind_name(), "mmsi");
    assert_eq!(SubjectId::HullNumber("A".into()).kind_name(), "hull");
    assert_eq!(SubjectId::Registration("A".into()).kind_name(), "registration");
    assert_eq!(code(USCC).kind_name(), "credit_code");
}

#[test]
fn list_kind_display_and_from_str() {
    assert_eq!(ListKind::Red.to_string(), "red");
    assert_eq!(ListKind::Black.to_string(), "black");
    assert_eq!(" Black ".parse::<ListKind>().unwrap(), ListKind::Black);
    assert_eq!("RED".parse::<ListKind>().unwrap(), ListKind::Red);
    assert_eq!(
        "grey".parse::<ListKind>().unwrap_err().to_string(),
        "unknown list \"grey\": expected \"red\" or \"black\""
    );
}

#[test]
fn non_canonical_subjects_are_refused() {
    let lower = SubjectId::CreditCode("91350100m000100y43".into());
    assert_eq!(
        entry_refusal(|e| e.subject = lower),
        "credit_code \"91350100m000100y43\" is invalid: it is not in canonical form (that is \"91350100M000100Y43\"); build subjects with SubjectId::parse"
    );
    let padded = SubjectId::Registration(" 鲁K12345".into());
    assert!(entry_refusal(|e| e.subject = padded).contains("not in canonical form (that is \"鲁K12345\")"));
    let lower_plate = SubjectId::Registration("鲁k12345".into());
    assert!(entry_refusal(|e| e.subject = lower_plate).contains("not in canonical form"));
    let bad_code = SubjectId::CreditCode("91350100M000100Y44".into());
    assert!(entry_refusal(|e| e.subject = bad_code).contains("check character"));
}

// ---- refusals by validation --------------------------------------------------------------

#[test]
fn entry_field_refusals() {
    assert_eq!(entry_refusal(|e| e.authority.clear()), "authority is empty");
    assert_eq!(entry_refusal(|e| e.authority = " \t ".into()), "authority is empty");
    assert_eq!(entry_refusal(|e| e.legal_basis.clear()), "legal_basis is empty");
    assert_eq!(entry_refusal(|e| e.name = "名".repeat(201)), "name has 201 characters; at most 200 are allowed");
    assert_eq!(
        entry_refusal(|e| e.authority = "a".repeat(201)),
        "authority has 201 characters; at most 200 are allowed"
    );
    assert_eq!(
        entry_refusal(|e| e.legal_basis = "a".repeat(501)),
        "legal_basis has 501 characters; at most 500 are allowed"
    );
    assert_eq!(entry_refusal(|e| e.note = "n".repeat(1001)), "note has 1001 characters; at most 1000 are allowed");
    assert_eq!(entry_refusal(|e| e.name = "A\nB".into()), "name contains the control character U+000A");
    assert_eq!(entry_refusal(|e| e.note = "a\rb".into()), "note contains the control character U+000D");
    assert_eq!(
        entry_refusal(|e| e.expires_ms = e.effective_ms),
        format!("expires_ms {T0} is not after effective_ms {T0}")
    );
    assert_eq!(
        entry_refusal(|e| e.expires_ms = T0 - 1),
        format!("expires_ms {} is not after effective_ms {T0}", T0 - 1)
    );
    // Exactly at the bounds is fine; the note may span lines; the name may be empty.
    let mut ok = entry(ListKind::Red, code(USCC));
    ok.name = "名".repeat(200);
    ok.note = format!("line one\n\tline two{}", "x".repeat(1000 - 18));
    assert!(Lists::validate(&add(ok.clone())).is_ok());
    ok.name.clear();
    assert!(Lists::validate(&add(ok)).is_ok());
}

#[test]
fn already_expired_is_refused_against_proposed_ms() {
    let mut e = entry(ListKind::Black, code(USCC));
    e.effective_ms = T0 - 10 * DAY;
    e.expires_ms = T0;
    assert_eq!(
        refusal(&add(e.clone())),
        format!("the entry has already expired: expires_ms {T0} is not after proposed_ms {T0}")
    );
    assert!(refusal(&proposal(Command::Amend { entry: e.clone() })).contains("already expired"));
    e.expires_ms = T0 + 1;
    assert!(Lists::validate(&add(e)).is_ok());
}

#[test]
fn actor_refusals() {
    let with_actor = |who: &str, why: &str| Proposal {
        actor: Actor { who: who.into(), why: why.into() },
        ..add(entry(ListKind::Red, code(USCC)))
    };
    assert_eq!(refusal(&with_actor("", "why")), "actor.who is empty");
    assert_eq!(refusal(&with_actor("li", " ")), "actor.why is empty");
    assert_eq!(refusal(&with_actor(&"w".repeat(201), "why")), "actor.who has 201 characters; at most 200 are allowed");
    assert_eq!(
        refusal(&with_actor("li", &"y".repeat(1001))),
        "actor.why has 1001 characters; at most 1000 are allowed"
    );
    assert_eq!(refusal(&with_actor("li\u{1b}[2J", "why")), "actor.who contains the control character U+001B");
    assert!(Lists::validate(&with_actor("li", "line one\nline two")).is_ok());
}

#[test]
fn remove_needs_a_reason_and_a_valid_subject() {
    let remove = Command::Remove { list: ListKind::Black, subject: code(USCC) };
    let no_reason = Proposal { actor: Actor { who: "li".into(), why: "  ".into() }, ..proposal(remove.clone()) };
    assert_eq!(refusal(&no_reason), "a removal (credit repair) needs its reason in the actor's why");
    let bad = Command::Remove { list: ListKind::Black, subject: SubjectId::Mmsi(0) };
    assert_eq!(
        refusal(&proposal(bad)),
        "mmsi \"000000000\" is invalid: 000000000 is a transponder placeholder, not an MMSI"
    );
}

#[test]
fn import_refusals_name_the_row() {
    assert_eq!(refusal(&proposal(Command::Import { entries: vec![] })), "an import needs at least one row");

    let rows: Vec<ListEntry> = (0..4).map(|i| entry(ListKind::Red, SubjectId::Mmsi(412_000_000 + i))).collect();
    assert!(Lists::validate(&proposal(Command::Import { entries: rows.clone() })).is_ok());

    let mut bad = rows.clone();
    bad[2].legal_basis.clear();
    bad[3].authority.clear();
    assert_eq!(refusal(&proposal(Command::Import { entries: bad })), "import row 2: legal_basis is empty");

    let mut expired = rows.clone();
    expired[1].effective_ms = T0 - DAY;
    expired[1].expires_ms = T0;
    assert_eq!(
        refusal(&proposal(Command::Import { entries: expired })),
        format!("import row 1: the entry has already expired: expires_ms {T0} is not after proposed_ms {T0}")
    );

    let mut dup = rows.clone();
    dup[3].subject = dup[1].subject.clone();
    assert_eq!(
        refusal(&proposal(Command::Import { entries: dup.clone() })),
        "import row 3 repeats red mmsi:412000001 of row 1"
    );
    // The same subject on the other list is not a duplicate.
    dup[3].list = ListKind::Black;
    assert!(Lists::validate(&proposal(Command::Import { entries: dup })).is_ok());
}

#[test]
fn import_row_limit() {
    let one = entry(ListKind::Red, SubjectId::Mmsi(412_000_000));
    let too_many = vec![one; MAX_IMPORT_ROWS + 1];
    assert_eq!(
        Lists::validate(&proposal(Command::Import { entries: too_many })).unwrap_err().to_string(),
        "an import has 100001 rows; at most 100000 are allowed"
    );
}

#[test]
fn revoke_certificate_refusals() {
    let revoke =
        |node: &str, fp: &str| proposal(Command::RevokeCertificate { node: node.into(), fingerprint: fp.into() });
    assert!(Lists::validate(&revoke("town-07", FP)).is_ok());
    assert_eq!(refusal(&revoke("", FP)), "node is empty");
    assert_eq!(refusal(&revoke(&"n".repeat(254), FP)), "node has 254 characters; at most 253 are allowed");
    let upper = FP.to_uppercase();
    assert_eq!(
        refusal(&revoke("town-07", &upper)),
        format!("certificate fingerprint {:?} is not 64 lowercase hexadecimal digits (the SHA-256 of the certificate's DER)", error::clip(&upper))
    );
    assert!(refusal(&revoke("town-07", &FP[..63])).contains("not 64 lowercase hexadecimal digits"));
    assert!(refusal(&revoke("town-07", &format!("{}g", &FP[..63]))).contains("not 64 lowercase"));
}

// ---- apply ---------------------------------------------------------------------------------

#[test]
fn add_amend_remove_with_state_refusals() {
    let mut lists = Lists::new();
    let e = entry(ListKind::Black, code(USCC));
    assert_eq!(lists.apply(1, &add(e.clone())), Outcome::Applied { version: 1, changed: 1 });
    assert_eq!(lists.get(ListKind::Black, &code(USCC)), Some(&e));
    assert_eq!(lists.get(ListKind::Red, &code(USCC)), None);

    assert_eq!(
        lists.apply(2, &add(e.clone())),
        Outcome::Refused {
            version: 2,
            reason: "the black list already has credit_code:91350100M000100Y43; amend it instead".into()
        }
    );
    assert_eq!(lists.version(), 2);
    assert_eq!(lists.get(ListKind::Black, &code(USCC)), Some(&e));

    // The same subject may be on the other list.
    assert!(lists.apply(3, &add(entry(ListKind::Red, code(USCC)))).is_applied());
    assert_eq!(lists.len(), 2);

    let mut amended = e.clone();
    amended.note = "appeal rejected".into();
    assert_eq!(
        lists.apply(4, &proposal(Command::Amend { entry: amended.clone() })),
        Outcome::Applied { version: 4, changed: 1 }
    );
    assert_eq!(lists.get(ListKind::Black, &code(USCC)), Some(&amended));
    // Restating it changes nothing.
    assert_eq!(
        lists.apply(5, &proposal(Command::Amend { entry: amended })),
        Outcome::Applied { version: 5, changed: 0 }
    );

    let absent = entry(ListKind::Black, SubjectId::Mmsi(412_345_678));
    assert_eq!(
        lists.apply(6, &proposal(Command::Amend { entry: absent })),
        Outcome::Refused { version: 6, reason: "the black list has no mmsi:412345678".into() }
    );

    let remove = |list| proposal(Command::Remove { list, subject: code(USCC) });
    assert_eq!(lists.apply(7, &remove(ListKind::Black)), Outcome::Applied { version: 7, changed: 1 });
    assert_eq!(
        lists.apply(8, &remove(ListKind::Black)),
        Outcome::Refused { version: 8, reason: "the black list has no credit_code:91350100M000100Y43".into() }
    );
    assert_eq!(lists.entries().map(|e| e.list).collect::<Vec<_>>(), vec![ListKind::Red]);
}

#[test]
fn import_adds_or_replaces_all_or_nothing() {
    let mut lists = Lists::new();
    let a = entry(ListKind::Red, SubjectId::Mmsi(412_000_001));
    let b = entry(ListKind::Red, SubjectId::Mmsi(412_000_002));
    assert!(lists.apply(1, &add(a.clone())).is_applied());

    let mut a2 = a.clone();
    a2.expires_ms += DAY;
    let c = entry(ListKind::Black, SubjectId::HullNumber("LU-1".into()));
    let import = proposal(Command::Import { entries: vec![a2.clone(), b.clone(), c.clone()] });
    assert_eq!(lists.apply(2, &import), Outcome::Applied { version: 2, changed: 3 });
    assert_eq!(lists.entries().cloned().collect::<Vec<_>>(), vec![a2.clone(), b.clone(), c.clone()]);
    // The same import again changes nothing.
    assert_eq!(lists.apply(3, &import), Outcome::Applied { version: 3, changed: 0 });

    // One bad row: nothing at all changes, not even the good rows before it.
    let mut d = entry(ListKind::Red, SubjectId::Mmsi(412_000_009));
    let mut bad = c.clone();
    bad.authority.clear();
    d.note = "new".into();
    let before = lists.clone();
    assert_eq!(
        lists.apply(4, &proposal(Command::Import { entries: vec![d, bad] })),
        Outcome::Refused { version: 4, reason: "import row 1: authority is empty".into() }
    );
    assert_eq!(lists.entries().collect::<Vec<_>>(), before.entries().collect::<Vec<_>>());
}

#[test]
fn revoke_certificate_once() {
    let mut lists = Lists::new();
    let revoke = proposal(Command::RevokeCertificate { node: "town-07".into(), fingerprint: FP.into() });
    assert_eq!(lists.apply(3, &revoke), Outcome::Applied { version: 3, changed: 1 });
    assert!(lists.is_revoked(FP));
    assert!(!lists.is_revoked(&FP.replace('3', "4")));
    assert_eq!(lists.revoked().collect::<Vec<_>>(), vec![(FP, "town-07")]);
    assert_eq!(lists.revocation(FP), Some(("town-07", 3)));
    assert_eq!(
        lists.apply(4, &revoke),
        Outcome::Refused { version: 4, reason: format!("certificate {FP} was already revoked at version 3") }
    );
    assert_eq!(lists.revocation(FP), Some(("town-07", 3)));
    assert!(lists.is_empty());
}

#[test]
fn stale_versions_change_nothing_and_skip_to_only_advances() {
    let mut lists = Lists::new();
    let e = entry(ListKind::Red, code(USCC));
    assert_eq!(
        lists.apply(0, &add(e.clone())),
        Outcome::Refused { version: 0, reason: "version 0 is not after the last applied version 0".into() }
    );
    assert!(lists.is_empty());
    assert!(lists.apply(5, &add(e.clone())).is_applied());
    let snapshot = lists.clone();
    for stale in [5, 4, 0] {
        let other = entry(ListKind::Black, code(USCC));
        assert_eq!(
            lists.apply(stale, &add(other)),
            Outcome::Refused { version: 5, reason: format!("version {stale} is not after the last applied version 5") }
        );
        assert_eq!(lists, snapshot);
    }
    lists.skip_to(9);
    assert_eq!(lists.version(), 9);
    lists.skip_to(7);
    assert_eq!(lists.version(), 9);
    // Gaps are fine: raft entries that carry no command may be skipped without skip_to.
    assert!(lists.apply(20, &add(entry(ListKind::Black, code(USCC)))).is_applied());
    assert_eq!(lists.version(), 20);
}

#[test]
fn matches_respects_boundaries_exactly() {
    let mut lists = Lists::new();
    let subject = SubjectId::parse("registration", "鲁K12345").unwrap();
    let mut red = entry(ListKind::Red, subject.clone());
    red.effective_ms = T0 + 100;
    red.expires_ms = T0 + 200;
    let mut black = entry(ListKind::Black, subject.clone());
    black.effective_ms = T0 + 150;
    black.expires_ms = T0 + 300;
    assert!(lists.apply(1, &add(black.clone())).is_applied());
    assert!(lists.apply(2, &add(red.clone())).is_applied());
    assert!(lists.apply(3, &add(entry(ListKind::Red, code(USCC)))).is_applied());

    let at = |now| lists.matches(&subject, now);
    assert!(at(T0 + 99).is_empty());
    assert_eq!(at(T0 + 100), vec![&red]);
    assert_eq!(at(T0 + 149), vec![&red]);
    assert_eq!(at(T0 + 150), vec![&red, &black], "red first");
    assert_eq!(at(T0 + 199), vec![&red, &black]);
    assert_eq!(at(T0 + 200), vec![&black]);
    assert_eq!(at(T0 + 299), vec![&black]);
    assert!(at(T0 + 300).is_empty());
    assert!(at(u64::MAX).is_empty());
    // Only canonical subjects are found.
    assert!(lists.matches(&SubjectId::Registration("鲁k12345".into()), T0 + 150).is_empty());
    assert!(lists.matches(&SubjectId::Mmsi(412_345_678), T0 + 150).is_empty());
}

// ---- digest and snapshots ------------------------------------------------------------------

fn sample_lists() -> Lists {
    let mut lists = Lists::new();
    assert!(lists.apply(1, &add(entry(ListKind::Black, code(USCC)))).is_applied());
    assert!(lists.apply(2, &add(entry(ListKind::Red, SubjectId::Mmsi(412_345_678)))).is_applied());
    let revoke = proposal(Command::RevokeCertificate { node: "town-07".into(), fingerprint: FP.into() });
    assert!(lists.apply(3, &revoke).is_applied());
    lists
}

/// A named change to one entry.
type Mutation = (&'static str, fn(&mut ListEntry));

#[test]
fn digest_covers_every_part_of_the_state() {
    let base = sample_lists();
    assert_eq!(base.digest(), sample_lists().digest());
    let mutations: Vec<Mutation> = vec![
        ("list", |e| e.list = ListKind::Red),
        ("subject", |e| e.subject = code("91110000100010433L")),
        ("name", |e| e.name.push('.')),
        ("authority", |e| e.authority.push('.')),
        ("legal_basis", |e| e.legal_basis.push('.')),
        ("effective_ms", |e| e.effective_ms += 1),
        ("expires_ms", |e| e.expires_ms += 1),
        ("note", |e| e.note.push('.')),
        // Moving a byte between adjacent fields must change the digest too.
        ("boundary", |e| {
            let c = e.authority.remove(0);
            e.name.push(c);
        }),
    ];
    for (what, mutate) in mutations {
        let mut e = entry(ListKind::Black, code(USCC));
        mutate(&mut e);
        let mut lists = Lists::new();
        assert!(lists.apply(1, &add(e)).is_applied());
        assert!(lists.apply(2, &add(entry(ListKind::Red, SubjectId::Mmsi(412_345_678)))).is_applied());
        let revoke = proposal(Command::RevokeCertificate { node: "town-07".into(), fingerprint: FP.into() });
        assert!(lists.apply(3, &revoke).is_applied());
        assert_ne!(lists.digest(), base.digest(), "{what}");
    }
    let mut later = base.clone();
    later.skip_to(4);
    assert_ne!(later.digest(), base.digest(), "version");
    let mut other_node = Lists::new();
    assert!(other_node.apply(1, &add(entry(ListKind::Black, code(USCC)))).is_applied());
    assert!(other_node.apply(2, &add(entry(ListKind::Red, SubjectId::Mmsi(412_345_678)))).is_applied());
    let revoke = proposal(Command::RevokeCertificate { node: "town-08".into(), fingerprint: FP.into() });
    assert!(other_node.apply(3, &revoke).is_applied());
    assert_ne!(other_node.digest(), base.digest(), "revoked node");
}

#[test]
fn snapshot_round_trips_through_json_and_the_codec() {
    let lists = sample_lists();
    let json = serde_json::to_string(&lists).unwrap();
    let from_json: Lists = serde_json::from_str(&json).unwrap();
    assert_eq!(from_json, lists);
    assert_eq!(from_json.digest(), lists.digest());
    let bytes = proto::codec::encode(&lists).unwrap();
    let from_codec: Lists = proto::codec::decode(&bytes).unwrap();
    assert_eq!(from_codec, lists);
    assert_eq!(from_codec.revocation(FP), Some(("town-07", 3)));
    let empty: Lists = serde_json::from_str(&serde_json::to_string(&Lists::new()).unwrap()).unwrap();
    assert_eq!(empty, Lists::new());
}

#[test]
fn corrupt_snapshots_are_refused() {
    let mut value = serde_json::to_value(sample_lists()).unwrap();
    let first = value["entries"][0].clone();
    value["entries"].as_array_mut().unwrap().push(first);
    let err = serde_json::from_value::<Lists>(value).unwrap_err().to_string();
    assert!(err.contains("lists one (list, subject) twice"), "{err}");

    let mut value = serde_json::to_value(sample_lists()).unwrap();
    value["version"] = 2.into();
    let err = serde_json::from_value::<Lists>(value).unwrap_err().to_string();
    assert!(err.contains("at version 2 has a revocation from version 3"), "{err}");

    let mut value = serde_json::to_value(sample_lists()).unwrap();
    let first = value["revoked"][0].clone();
    value["revoked"].as_array_mut().unwrap().push(first);
    let err = serde_json::from_value::<Lists>(value).unwrap_err().to_string();
    assert!(err.contains("revokes one fingerprint twice"), "{err}");
}

// ---- CSV -----------------------------------------------------------------------------------

const HEADER: &str = "list,subject_kind,subject,name,authority,legal_basis,effective,expires,note";

fn csv_err(text: &str) -> String {
    parse_import_csv(text).unwrap_err().to_string()
}

#[test]
fn csv_quotes_bom_crlf_and_multiline_cells() {
    let text = format!(
        "\u{FEFF}{HEADER}\r\n\
         black,credit_code,91350100m000100y43,\"Example Trading Co., Ltd.\",City Market Regulation Bureau,Reg. 12,2026-01-01,2027-01-01T08:00:00+08:00,\"fraud; decision \"\"2025-17\"\"\r\nsecond line\"\r\n\
         \r\n\
         Red , mmsi , 412345678 ,,Harbour Bureau,Port rules 4,2026-01-01T00:00:00Z,2026-06-30,\n\
         red,registration,\"鲁k12345\",,Traffic Police,Road Law 1,2026-02-01,2026-03-01,\"\""
    );
    let rows = parse_import_csv(&text).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].list, ListKind::Black);
    assert_eq!(rows[0].subject, code(USCC));
    assert_eq!(rows[0].name, "Example Trading Co., Ltd.");
    assert_eq!(rows[0].effective_ms, T0);
    assert_eq!(rows[0].expires_ms, T0 + 365 * DAY, "08:00 at +08:00 is midnight UTC");
    assert_eq!(rows[0].note, "fraud; decision \"2025-17\"\nsecond line");
    assert_eq!(rows[1].list, ListKind::Red);
    assert_eq!(rows[1].subject, SubjectId::Mmsi(412_345_678));
    assert_eq!(rows[1].name, "");
    assert_eq!(rows[1].note, "");
    assert_eq!(rows[2].subject, SubjectId::Registration("鲁K12345".into()));
    for row in &rows {
        row.validate().unwrap();
    }
    let import = proposal(Command::Import { entries: rows });
    let mut lists = Lists::new();
    assert_eq!(lists.apply(1, &import), Outcome::Applied { version: 1, changed: 3 });
}

#[test]
fn csv_header_columns_in_any_order() {
    let text = "NOTE,expires,effective,legal_basis,authority,name,subject,subject_kind,list\n\
                grounds,2026-02-01,2026-01-01,Reg,Bureau,Name,LU-1,hull,red\n";
    let rows = parse_import_csv(text).unwrap();
    assert_eq!(rows[0].subject, SubjectId::HullNumber("LU-1".into()));
    assert_eq!(rows[0].note, "grounds");
    assert_eq!(rows[0].expires_ms, T0 + 31 * DAY);
}

#[test]
fn csv_bad_date_names_its_line_and_column() {
    // The quoted note of line 2 spans two lines, so the bad row is on line 4.
    let text = format!(
        "{HEADER}\n\
         red,mmsi,412345678,,Bureau,Reg,2026-01-01,2026-06-30,\"one\ntwo\"\n\
         red,mmsi,412345679,,Bureau,Reg,2026-02-30,2026-06-30,\n"
    );
    assert_eq!(
        csv_err(&text),
        "CSV line 4, column 7 (effective): \"2026-02-30\" is not a date: expected RFC 3339 (e.g. 2026-01-31T08:00:00+08:00) or YYYY-MM-DD (UTC midnight)"
    );
    let before_epoch = format!("{HEADER}\nred,mmsi,412345678,,Bureau,Reg,1969-12-31,2026-06-30,\n");
    assert_eq!(
        csv_err(&before_epoch),
        "CSV line 2, column 7 (effective): \"1969-12-31\" is before 1970-01-01T00:00:00Z"
    );
    let backwards = format!("{HEADER}\nred,mmsi,412345678,,Bureau,Reg,2026-06-30,2026-01-01,\n");
    assert_eq!(
        csv_err(&backwards),
        format!("CSV line 2, column 8 (expires): expires_ms {T0} is not after effective_ms {}", T0 + 180 * DAY)
    );
}

#[test]
fn csv_dates() {
    assert_eq!(parse_import_time("2026-01-01").unwrap(), T0);
    assert_eq!(parse_import_time(" 2026-01-01T00:00:00.1239Z ").unwrap(), T0 + 123);
    assert_eq!(parse_import_time("2026-01-01T08:00:00+08:00").unwrap(), T0);
    assert_eq!(parse_import_time("1970-01-01").unwrap(), 0);
    for bad in ["2026-1-01", "2026/01/01", "2026-01-01T00:00:00", "tomorrow", "", "2026-13-01"] {
        assert!(parse_import_time(bad).is_err(), "{bad}");
    }
}

#[test]
fn csv_cell_errors_name_their_column() {
    let row = |cells: &str| format!("{HEADER}\n{cells}\n");
    assert_eq!(
        csv_err(&row("grey,mmsi,412345678,,B,R,2026-01-01,2026-02-01,")),
        "CSV line 2, column 1 (list): unknown list \"grey\": expected \"red\" or \"black\""
    );
    assert_eq!(
        csv_err(&row("red,person,412345678,,B,R,2026-01-01,2026-02-01,")),
        "CSV line 2, column 2 (subject_kind): unknown subject kind \"person\": expected credit_code, mmsi, hull or registration"
    );
    assert_eq!(
        csv_err(&row("red,credit_code,91350100M000100Y44,,B,R,2026-01-01,2026-02-01,")),
        "CSV line 2, column 3 (subject): credit_code \"91350100M000100Y44\" is invalid: the check character is '4'; GB 32100-2015 gives '3' for the first 17"
    );
    assert_eq!(
        csv_err(&row("red,mmsi,412345678,,,R,2026-01-01,2026-02-01,")),
        "CSV line 2, column 5 (authority): authority is empty"
    );
    assert_eq!(
        csv_err(&row("red,mmsi,412345678,,B, ,2026-01-01,2026-02-01,")),
        "CSV line 2, column 6 (legal_basis): legal_basis is empty"
    );
    let long_name = "n".repeat(201);
    assert_eq!(
        csv_err(&row(&format!("red,mmsi,412345678,{long_name},B,R,2026-01-01,2026-02-01,"))),
        "CSV line 2, column 4 (name): name has 201 characters; at most 200 are allowed"
    );
    assert_eq!(
        csv_err(&row("red,mmsi,412345678,,B,R,2026-01-01,never,")),
        "CSV line 2, column 8 (expires): \"never\" is not a date: expected RFC 3339 (e.g. 2026-01-31T08:00:00+08:00) or YYYY-MM-DD (UTC midnight)"
    );
    assert_eq!(
        csv_err(&row(&format!("red,mmsi,412345678,,B,R,2026-01-01,2026-02-01,\"{}\"", "x".repeat(1001)))),
        "CSV line 2, column 9 (note): note has 1001 characters; at most 1000 are allowed"
    );
}

#[test]
fn csv_structure_errors_name_their_line() {
    let ok = "red,mmsi,412345678,,B,R,2026-01-01,2026-02-01,";
    assert_eq!(csv_err(""), "CSV line 1: there is no header row");
    assert_eq!(csv_err("\u{FEFF}\n\n"), "CSV line 1: there is no header row");
    assert_eq!(
        csv_err("list,subject_kind,subject,name,authority,legal_basis,effective,expires\n"),
        "CSV line 1: the header has no column \"note\""
    );
    assert!(csv_err(&format!("{HEADER},list\n")).starts_with("CSV line 1: the header names column \"list\" twice"));
    assert!(csv_err(&format!("{ok}\n")).starts_with("CSV line 1: the header names unknown column \"red\""));
    assert_eq!(csv_err(&format!("{HEADER}\n{ok}\nred,mmsi,412345679\n")), "CSV line 3: expected 9 fields, found 3");
    assert_eq!(
        csv_err(&format!("{HEADER}\n{ok}\nred,mmsi,412345679,,B,R,2026-01-01,2026-02-01,\"never closed\n\n")),
        "CSV line 3: a quoted field starting here is never closed"
    );
    assert_eq!(
        csv_err(&format!("{HEADER}\nred,mmsi,412345678,ACME \"East\",B,R,2026-01-01,2026-02-01,\n")),
        "CSV line 2: a quote inside an unquoted field (quote the whole field and double the quote)"
    );
    assert_eq!(
        csv_err(&format!("{HEADER}\nred,mmsi,412345678,\"ACME\" East,B,R,2026-01-01,2026-02-01,\n")),
        "CSV line 2: ' ' after a closing quote (expected a comma or the end of the line)"
    );
    assert_eq!(csv_err(&format!("{HEADER}\n{ok}\rred")), "CSV line 2: a carriage return not followed by a line feed");
    assert_eq!(
        csv_err(&format!("{HEADER}\n{ok}\n\nRED,MMSI,412345678,,B,R,2026-01-01,2026-03-01,\n")),
        "CSV line 4: this row repeats red mmsi:412345678 of line 2"
    );
    // A header alone is an empty import (the Import command then refuses it).
    assert_eq!(parse_import_csv(&format!("{HEADER}\n")).unwrap(), vec![]);
}

#[test]
fn csv_size_and_row_limits() {
    let mut text = String::from(HEADER);
    text.push('\n');
    for i in 0..MAX_IMPORT_ROWS {
        text.push_str(&format!("red,mmsi,{},,B,R,2026-01-01,2026-02-01,\n", 100_000_000 + i));
    }
    assert_eq!(parse_import_csv(&text).unwrap().len(), MAX_IMPORT_ROWS);
    text.push_str("black,mmsi,100000000,,B,R,2026-01-01,2026-02-01,\n");
    assert_eq!(csv_err(&text), "the CSV text has more than 100000 data rows");

    let huge = format!("{HEADER}\n{}", " ".repeat(MAX_IMPORT_BYTES));
    assert_eq!(csv_err(&huge), format!("the CSV text is {} bytes; at most 33554432 are allowed", huge.len()));
}

#[test]
fn csv_example_in_the_docs_parses() {
    let source = include_str!("import.rs");
    let example: String = source
        .lines()
        .skip_while(|l| !l.starts_with("//! ```text"))
        .skip(1)
        .take_while(|l| !l.starts_with("//! ```"))
        .map(|l| format!("{}\n", l.trim_start_matches("//! ")))
        .collect();
    let rows = parse_import_csv(&example).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].name, "Example Trading Co., Ltd.");
    assert_eq!(rows[0].note, "fraud; decision \"2025-17\"");
    assert_eq!((rows[0].effective_ms, rows[0].expires_ms), (T0, T0 + 365 * DAY - 8 * 3_600_000));
}
