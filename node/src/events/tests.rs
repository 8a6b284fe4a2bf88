use super::*;
use crate::clock::ManualClock;
use crate::metrics::Metrics;
use crate::store::StoreConfig;
use std::sync::Arc;

const HOUR: u64 = 3_600_000;

fn operator() -> Identity {
    Identity { name: "op-li".into(), role: Role::Operator }
}

fn worker(name: &str) -> Identity {
    Identity { name: name.into(), role: Role::GridWorker }
}

async fn open(dir: &std::path::Path, clock: Arc<ManualClock>) -> (Store, Events) {
    open_with_tiers(dir, clock, Tiers::default()).await
}

async fn open_with_tiers(dir: &std::path::Path, clock: Arc<ManualClock>, tiers: Tiers) -> (Store, Events) {
    let store = Store::open(
        dir,
        NodeId::new("town-a").unwrap(),
        clock.clone(),
        StoreConfig::default(),
        Metrics::unregistered(),
    )
    .unwrap();
    let events =
        Events::open(store.clone(), clock, DeadlineConfig::default(), default_categories(), HOUR, tiers).await.unwrap();
    (store, events)
}

fn hazard() -> NewEvent {
    NewEvent {
        category: "hazard".into(),
        location: Location { lat: Some(37.5), lon: Some(122.1), address: None },
        description: "fallen tree across the road".into(),
        ..NewEvent::default()
    }
}

#[tokio::test]
async fn an_event_goes_through_the_seven_steps() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(10 * HOUR));
    let (_store, events) = open(dir.path(), clock.clone()).await;
    let e = events.report(hazard(), &worker("worker-7")).await.unwrap();
    assert_eq!(e.step, Step::Reported);
    assert_eq!(e.reporter, "worker-7");
    assert_eq!(e.deadline_ms, Some(10 * HOUR + 2 * HOUR), "reported → dispatched within 2 h by default");
    let id = e.id.clone();
    let op = operator();
    events.act(&id, Action::Dispatch { to: "worker-7".into() }, String::new(), &op).await.unwrap();
    events.act(&id, Action::Start, String::new(), &worker("worker-7")).await.unwrap();
    events.act(&id, Action::Handle, "cleared".into(), &worker("worker-7")).await.unwrap();
    events.act(&id, Action::Verify, String::new(), &op).await.unwrap();
    events.act(&id, Action::Archive, String::new(), &op).await.unwrap();
    let done = events.act(&id, Action::Evaluate { score: 5 }, "quick work".into(), &op).await.unwrap();
    assert_eq!(done.step, Step::Evaluated);
    assert_eq!(done.deadline_ms, None);
    assert_eq!(
        done.history.iter().map(|h| h.action.as_str()).collect::<Vec<_>>(),
        ["report", "dispatch", "start", "handle", "verify", "archive", "evaluate"]
    );
    assert_eq!(events.get(&id).unwrap().unwrap(), done);
    // Invalid and forbidden changes are refused and change nothing.
    let err = events.act(&id, Action::Verify, String::new(), &op).await.unwrap_err();
    assert!(matches!(err, EventError::Workflow(WorkflowError::WrongStep { .. })), "{err}");
    let err = events
        .act(&id, Action::Note, "hi".into(), &Identity { name: "aud".into(), role: Role::Auditor })
        .await
        .unwrap_err();
    assert!(matches!(err, EventError::Workflow(WorkflowError::Forbidden { .. })));
    assert_eq!(events.get(&id).unwrap().unwrap(), done);
    // Every write was audited with who did it.
    let audits: Vec<AuditRecord> =
        _store.all_entries(Kind::Audit).map(|e| crate::audit_chain::record(&e.unwrap().payload).unwrap()).collect();
    assert_eq!(audits.len(), 7);
    assert!(audits[1].actor.starts_with("op-li") && audits[1].action == "dispatch");
}

#[tokio::test]
async fn bad_reports_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, events) = open(dir.path(), Arc::new(ManualClock::new(HOUR))).await;
    let w = worker("w");
    let err = events.report(NewEvent { category: "ufo".into(), ..hazard() }, &w).await.unwrap_err();
    assert!(err.to_string().contains("unknown category") && err.to_string().contains("illegal_parking"), "{err}");
    let bad = NewEvent { location: Location { lat: Some(95.0), lon: Some(1.0), address: None }, ..hazard() };
    assert!(events.report(bad, &w).await.unwrap_err().to_string().contains("latitude"));
    let none = NewEvent { location: Location::default(), ..hazard() };
    assert!(events.report(none, &w).await.unwrap_err().to_string().contains("location is required"));
    let empty = NewEvent { description: " ".into(), ..hazard() };
    assert!(events.report(empty, &w).await.is_err());
    // Limits count characters: 4000 of Chinese (12,000 bytes) fit, 4001 do not.
    let chinese = NewEvent { description: "海".repeat(4000), ..hazard() };
    assert!(events.report(chinese, &w).await.is_ok());
    let too_long = NewEvent { description: "海".repeat(4001), ..hazard() };
    assert!(events.report(too_long, &w).await.unwrap_err().to_string().contains("4000 characters"));
    let auditor = Identity { name: "a".into(), role: Role::Auditor };
    assert!(events.report(hazard(), &auditor).await.is_err());
}

#[tokio::test]
async fn escalation_and_its_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (store, events) = open(dir.path(), Arc::new(ManualClock::new(HOUR))).await;
    let id = events.report(hazard(), &worker("w")).await.unwrap().id;
    let op = operator();
    let e = events.escalate(&id, "county-roads".into(), Tier::County, "needs a crane".into(), &op).await.unwrap();
    assert_eq!(e.escalations[0].status, EscalationStatus::Pending);
    let err = events
        .answer(&id, 1, Answer::Result { outcome: String::new() }, "county-roads".into(), String::new(), &op)
        .await;
    assert!(err.is_err(), "a result needs an outcome");
    events.answer(&id, 1, Answer::Acknowledge, "county-roads".into(), "crew on the way".into(), &op).await.unwrap();
    let err = events.answer(&id, 1, Answer::Acknowledge, "county-roads".into(), String::new(), &op).await.unwrap_err();
    assert!(err.to_string().contains("acknowledged"), "{err}");
    let e = events
        .answer(&id, 1, Answer::Result { outcome: "tree removed".into() }, "county-roads".into(), String::new(), &op)
        .await
        .unwrap();
    assert_eq!(e.escalations[0].status, EscalationStatus::Answered);
    assert_eq!(e.escalations[0].outcome.as_deref(), Some("tree removed"));
    assert!(events.answer(&id, 2, Answer::Acknowledge, "x".into(), String::new(), &op).await.is_err());
    // The escalation is an entry ready to travel, carrying what the department needs.
    let esc: EscalationEntry =
        records::decode(&store.entry(Kind::Escalation, events.node(), 1).unwrap().unwrap().payload).unwrap();
    assert_eq!(esc.department, "county-roads");
    assert_eq!(esc.description, "fallen tree across the road");
    assert_eq!(store.all_entries(Kind::Command).count(), 2);
    assert!(
        events.escalate(&id, "x".into(), Tier::City, "y".into(), &worker("w")).await.is_err(),
        "operators escalate"
    );
}

/// An answer over the mesh is applied only when it comes from a node of the tier the
/// escalation went to: the city cannot answer for the county, nor the county for the city.
#[tokio::test]
async fn an_answer_is_taken_only_from_the_tier_the_escalation_went_to() {
    let dir = tempfile::tempdir().unwrap();
    let county = NodeId::new("county-a").unwrap();
    let city = NodeId::new("city").unwrap();
    let tiers = Tiers::new([(county.clone(), Tier::County), (city.clone(), Tier::City)]);
    let (store, events) = open_with_tiers(dir.path(), Arc::new(ManualClock::new(HOUR)), tiers).await;
    let id = events.report(hazard(), &worker("w")).await.unwrap().id;
    events.escalate(&id, "county-roads".into(), Tier::County, "needs a crane".into(), &operator()).await.unwrap();
    let answer_from = |origin: &NodeId| proto::Entry {
        origin: origin.clone(),
        seq: 1,
        hlc: Hlc::new(HOUR, 0),
        kind: Kind::Command,
        payload: records::encode(&CommandEntry {
            event: id.clone(),
            command: EventCommand::EscalationAnswer {
                n: 1,
                answer: Answer::Acknowledge,
                by: "roads".into(),
                note: String::new(),
                entered_by: "op".into(),
                source: None,
            },
        })
        .unwrap(),
    };
    for wrong in [answer_from(&city), answer_from(&NodeId::new("town-b").unwrap())] {
        store.commit(vec![Op::Insert(proto::EntryBytes::encode(&wrong).unwrap())]).await.unwrap();
        assert_eq!(events.apply_commands(&[wrong]).await.unwrap(), 0);
    }
    assert_eq!(events.get(&id).unwrap().unwrap().escalations[0].status, EscalationStatus::Pending);
    let right = answer_from(&county);
    store.commit(vec![Op::Insert(proto::EntryBytes::encode(&right).unwrap())]).await.unwrap();
    assert_eq!(events.apply_commands(&[right]).await.unwrap(), 1);
    assert_eq!(events.get(&id).unwrap().unwrap().escalations[0].status, EscalationStatus::Acknowledged);
}

#[tokio::test]
async fn deadlines_raise_one_overdue_alert_and_count_in_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(100 * HOUR));
    let (store, events) = open(dir.path(), clock.clone()).await;
    let id = events.report(hazard(), &worker("w")).await.unwrap().id;
    clock.advance(2 * HOUR);
    assert_eq!(events.check_deadlines().await.unwrap(), 0, "due exactly now is not late yet");
    clock.advance(1);
    assert_eq!(events.check_deadlines().await.unwrap(), 1);
    assert_eq!(events.check_deadlines().await.unwrap(), 0, "one alert per missed deadline");
    let e = events.get(&id).unwrap().unwrap();
    assert!(e.overdue);
    assert_eq!(events.overdue(10, &[]).unwrap().len(), 1);
    let alert: Alert = records::decode(&store.entry(Kind::Alert, events.node(), 1).unwrap().unwrap().payload).unwrap();
    assert!(matches!(alert, Alert::Overdue { ref step, .. } if step == "reported"));
    // Moving on clears the flag and sets the next deadline.
    let e = events.act(&id, Action::Dispatch { to: "crew".into() }, String::new(), &operator()).await.unwrap();
    assert!(!e.overdue);
    assert_eq!(e.deadline_ms, Some(102 * HOUR + 1 + 4 * HOUR));
    let s = events.summaries(0, u64::MAX).unwrap();
    assert_eq!(s.iter().map(|s| s.reported.get("hazard").copied().unwrap_or(0)).sum::<u64>(), 1);
    assert_eq!(s.iter().map(|s| s.overdue.get("reported").copied().unwrap_or(0)).sum::<u64>(), 1);
    assert_eq!(s.iter().map(|s| s.entered.get("dispatched").copied().unwrap_or(0)).sum::<u64>(), 1);
    // The overdue alert does not become an event of its own.
    assert_eq!(events.follow_alerts().await.unwrap(), 0);
}

#[tokio::test]
async fn alerts_become_events_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(HOUR));
    let (store, events) = open(dir.path(), clock.clone()).await;
    let alert = Alert::CameraOffline { camera: "cam-1".into(), last_seen_ms: 0, silent_ms: 90_000 };
    store.commit(vec![Op::Append { kind: Kind::Alert, payload: records::encode(&alert).unwrap() }]).await.unwrap();
    assert_eq!(events.follow_alerts().await.unwrap(), 1);
    assert_eq!(events.follow_alerts().await.unwrap(), 0);
    let (page, _) = events.list(&Filter::default(), None, 10).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].category, "camera_offline");
    assert_eq!(page[0].reporter, "rule:camera_offline");
    drop(events);
    store.close().await;
    let (_store, events) = open(dir.path(), clock).await;
    assert_eq!(events.follow_alerts().await.unwrap(), 0, "the cursor survives a restart");
}

#[tokio::test]
async fn entries_a_crash_left_unapplied_are_applied_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(HOUR));
    let (store, events) = open(dir.path(), clock.clone()).await;
    let id = events.report(hazard(), &worker("w")).await.unwrap().id;
    // As if the node died after a change's entry was durable but before its state was written.
    let t = TransitionEntry {
        event: id.clone(),
        action: Action::Dispatch { to: "crew".into() },
        actor: "op".into(),
        note: String::new(),
    };
    let created = EventCreated {
        category: "sanitation".into(),
        source: EventSource::Grid,
        location: Location { lat: None, lon: None, address: Some("market street".into()) },
        description: "dumped rubbish".into(),
        reporter: "w".into(),
        contact: vec![],
        attributes: vec![],
    };
    store
        .commit(vec![
            Op::Append { kind: Kind::Transition, payload: records::encode(&t).unwrap() },
            Op::Append { kind: Kind::Event, payload: records::encode(&created).unwrap() },
        ])
        .await
        .unwrap();
    drop(events);
    store.close().await;
    let (_store, events) = open(dir.path(), clock.clone()).await;
    let e = events.get(&id).unwrap().unwrap();
    assert_eq!(e.step, Step::Dispatched);
    assert_eq!(e.applied_transition, 1);
    let (page, _) =
        events.list(&Filter { category: Some("sanitation".into()), ..Filter::default() }, None, 10).unwrap();
    assert_eq!(page.len(), 1);
    // Applied once: opening again changes nothing.
    drop(events);
    _store.close().await;
    let (_store, events) = open(dir.path(), clock).await;
    assert_eq!(events.get(&id).unwrap().unwrap().history.len(), 2);
}

#[tokio::test]
async fn pages_are_newest_first_and_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, events) = open(dir.path(), Arc::new(ManualClock::new(HOUR))).await;
    let w = worker("w");
    for i in 0..7 {
        let category = if i % 2 == 0 { "hazard" } else { "sanitation" };
        events.report(NewEvent { category: category.into(), ..hazard() }, &w).await.unwrap();
    }
    let (p1, next) = events.list(&Filter::default(), None, 3).unwrap();
    assert_eq!(p1.iter().map(|e| e.id.seq).collect::<Vec<_>>(), [7, 6, 5]);
    let (p2, next) = events.list(&Filter::default(), next.as_ref(), 3).unwrap();
    assert_eq!(p2.iter().map(|e| e.id.seq).collect::<Vec<_>>(), [4, 3, 2]);
    let (p3, next) = events.list(&Filter::default(), next.as_ref(), 3).unwrap();
    assert_eq!(p3.iter().map(|e| e.id.seq).collect::<Vec<_>>(), [1]);
    assert!(next.is_none());
    let (h, _) = events.list(&Filter { category: Some("hazard".into()), ..Filter::default() }, None, 10).unwrap();
    assert_eq!(h.len(), 4);
    assert_eq!(parse_id("town-a:12"), Some(EntryId { origin: NodeId::new("town-a").unwrap(), seq: 12 }));
    assert_eq!(parse_id("town-a:0"), None);
    assert_eq!(parse_id("nope"), None);
}
