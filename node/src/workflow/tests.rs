use super::*;
use proptest::prelude::*;
use proto::{EntryId, Hlc, NodeId};

fn event() -> EventRecord {
    EventRecord {
        id: EntryId { origin: NodeId::new("town-a").unwrap(), seq: 1 },
        category: "hazard".into(),
        source: EventSource::Grid,
        location: Location::default(),
        description: "fallen tree".into(),
        reporter: "worker-1".into(),
        contact: vec![],
        attributes: vec![],
        created: Hlc::new(1, 0),
        updated: Hlc::new(1, 0),
        step: Step::Reported,
        assignee: None,
        deadline_ms: None,
        overdue: false,
        score: None,
        history: vec![],
        escalations: vec![],
        applied_transition: 0,
        applied_escalation: 0,
        applied_command: 0,
    }
}

#[test]
fn the_seven_steps_in_order() {
    let mut e = event();
    let path = [
        Action::Dispatch { to: "roads-dept".into() },
        Action::Start,
        Action::Handle,
        Action::SendBack,
        Action::Handle,
        Action::Verify,
        Action::Archive,
        Action::Evaluate { score: 4 },
    ];
    for (i, a) in path.iter().enumerate() {
        let to = validate(&e, a).unwrap();
        e.apply_action(a, "operator", "", Hlc::new(10 + i as u64, 0), to);
    }
    assert_eq!(e.step, Step::Evaluated);
    assert_eq!(e.score, Some(4));
    assert_eq!(e.assignee.as_deref(), Some("roads-dept"));
    assert_eq!(e.history.len(), path.len());
    assert_eq!(e.history[3].action, "send_back");
    assert_eq!((e.history[3].from, e.history[3].to), (Step::Handled, Step::InHand));
}

#[test]
fn invalid_transitions_say_why() {
    let e = event();
    let err = validate(&e, &Action::Verify).unwrap_err();
    assert_eq!(err.to_string(), "cannot verify an event that is reported; verify applies to events that are handled");
    assert_eq!(validate(&e, &Action::Dispatch { to: " ".into() }).unwrap_err(), WorkflowError::Empty("to"));
    let mut archived = event();
    archived.step = Step::Archived;
    assert_eq!(validate(&archived, &Action::Evaluate { score: 9 }).unwrap_err(), WorkflowError::BadScore(9));
}

#[test]
fn roles() {
    let mut e = event();
    assert!(authorize(&e, &Action::Dispatch { to: "x".into() }, Role::Operator, "op").is_ok());
    assert!(authorize(&e, &Action::Dispatch { to: "x".into() }, Role::GridWorker, "worker-1")
        .unwrap_err()
        .is_forbidden());
    assert!(authorize(&e, &Action::Note, Role::GridWorker, "worker-1").is_ok(), "a reporter may add notes");
    assert!(authorize(&e, &Action::Note, Role::GridWorker, "worker-2").is_err(), "but not to others' events");
    assert!(authorize(&e, &Action::Note, Role::Auditor, "auditor").is_err());
    e.assignee = Some("worker-2".into());
    assert!(authorize(&e, &Action::Start, Role::GridWorker, "worker-2").is_ok(), "the assignee takes it up");
    assert!(authorize(&e, &Action::Verify, Role::GridWorker, "worker-2").is_err(), "but does not verify own work");
}

fn any_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        "[a-z]{0,3}".prop_map(|to| Action::Dispatch { to }),
        Just(Action::Start),
        Just(Action::Handle),
        Just(Action::Verify),
        Just(Action::SendBack),
        Just(Action::Archive),
        (0u8..8).prop_map(|score| Action::Evaluate { score }),
        Just(Action::Note),
    ]
}

/// The graph of the seven steps, written out independently of `Action::edge`.
fn model(step: Step, a: &Action) -> Option<Step> {
    use Step::*;
    match (step, a) {
        (_, Action::Note) => Some(step),
        (Reported, Action::Dispatch { to }) if !to.is_empty() => Some(Dispatched),
        (Dispatched, Action::Start) => Some(InHand),
        (InHand, Action::Handle) => Some(Handled),
        (Handled, Action::Verify) => Some(Verified),
        (Handled, Action::SendBack) => Some(InHand),
        (Verified, Action::Archive) => Some(Archived),
        (Archived, Action::Evaluate { score }) if (1..=5).contains(score) => Some(Evaluated),
        _ => None,
    }
}

proptest! {
    /// Random sequences of valid and invalid actions: valid ones move the event exactly as the
    /// graph says and are recorded; invalid ones are refused and change nothing.
    #[test]
    fn random_sequences_follow_the_graph(actions in proptest::collection::vec(any_action(), 0..60)) {
        let mut e = event();
        let mut recorded = 0;
        for (i, a) in actions.iter().enumerate() {
            let before = e.clone();
            match (validate(&e, a), model(e.step, a)) {
                (Ok(to), Some(expected)) => {
                    prop_assert_eq!(to, expected);
                    e.apply_action(a, "op", "", Hlc::new(100 + i as u64, 0), to);
                    recorded += 1;
                    prop_assert_eq!(e.step, expected);
                }
                (Err(_), None) => prop_assert_eq!(&e, &before),
                (got, want) => prop_assert!(false, "validate said {:?}, the graph says {:?} for {:?} at {}", got, want, a, e.step),
            }
        }
        prop_assert_eq!(e.history.len(), recorded);
        // Steps only move along the graph's edges, so the history is a connected walk.
        for w in e.history.windows(2) {
            prop_assert_eq!(w[0].to, w[1].from);
        }
    }
}
