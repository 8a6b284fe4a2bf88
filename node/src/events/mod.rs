//! The event desk: the one owner of this node's events. Every change is validated against the
//! event's current state under one lock, written as a durable entry (with its audit record),
//! then applied to the event's materialised state and the window's summary. If a crash falls
//! between the two, [`Events::open`] finds the entries the state does not reflect yet and
//! applies them, so nothing acknowledged is lost and nothing is applied twice.
//!
//! Alerts raised at ingest become events here too: the desk follows the alert entries
//! ([`Events::follow_alerts`]) rather than ingest writing events itself, so the ingest path
//! stays as fast as it is and every event write goes through this one owner.

mod categories;
pub mod changes;
pub mod summary;

pub use categories::{defaults as default_categories, hidden_from, Category, ALERT_CATEGORIES};
pub use changes::{Change, CommandEntry, EscalationEntry, EventCommand, EventCreated, TransitionEntry};
pub use summary::{Summary, SUMMARIES_TREE};

use crate::clock::SharedClock;
use crate::records::{self, Alert, AuditRecord};
use crate::store::{keys, Op, Store, StoreError};
use crate::workflow::deadlines::DeadlineConfig;
use crate::workflow::{
    self, check_text, Action, Answer, EscalationStatus, EventRecord, EventSource, Location, Role, Step, Tier,
    WorkflowError, MAX_NAME, MAX_TEXT,
};
use changes::Effect;
use proto::{EntryId, Hlc, Kind, NodeId};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tokio::sync::Mutex;

/// Each event's current state, keyed like its creating entry.
pub const EVENTS_TREE: &str = "state/events";
const META_TREE: &str = "state/events-meta";
/// The highest alert sequence already turned into an event.
const ALERTS_APPLIED: &[u8] = b"alerts_applied";
/// Alerts turned into events per commit.
const ALERT_BATCH: usize = 256;
/// Most events listed in one page.
pub const MAX_PAGE: usize = 500;

/// Who is acting: a token's name and role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub name: String,
    pub role: Role,
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("no event {0}")]
    NotFound(String),
    #[error("{0}")]
    Workflow(#[from] WorkflowError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// An escalation received from a node below, as this tier sees it.
#[derive(Debug, Clone, Serialize)]
pub struct IncomingEscalation {
    pub at: Hlc,
    pub escalation: EscalationEntry,
    /// The answers this node has sent back (`acknowledge`, `result`).
    pub answers_sent: Vec<String>,
}

/// Which tier each county and city node of the mesh is (from the topology). An escalation's
/// answer is taken only from a node of the tier it was sent to, and given only by one.
#[derive(Debug, Clone, Default)]
pub struct Tiers(BTreeMap<NodeId, Tier>);

impl Tiers {
    pub fn new(nodes: impl IntoIterator<Item = (NodeId, Tier)>) -> Tiers {
        Tiers(nodes.into_iter().collect())
    }

    pub fn of(&self, node: &NodeId) -> Option<Tier> {
        self.0.get(node).copied()
    }
}

/// A new event as reported.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    pub category: String,
    pub location: Location,
    pub description: String,
    pub contact: Vec<(String, String)>,
    pub attributes: Vec<(String, String)>,
    /// Set by Open311; the API's own reports are `Grid`.
    pub open311_key: Option<String>,
}

/// Which events a list shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub category: Option<String>,
    pub step: Option<Step>,
    pub overdue: Option<bool>,
    /// Open311 status: closed = archived or evaluated.
    pub closed: Option<bool>,
    pub reporter: Option<String>,
    pub created_from_ms: Option<u64>,
    pub created_to_ms: Option<u64>,
    /// Categories never shown, whatever else matches: those the reader's role may not read.
    pub hidden_categories: &'static [&'static str],
}

impl Filter {
    fn matches(&self, e: &EventRecord) -> bool {
        self.category.as_ref().is_none_or(|c| &e.category == c)
            && self.step.is_none_or(|s| e.step == s)
            && self.overdue.is_none_or(|o| e.overdue == o)
            && self.closed.is_none_or(|c| e.step.is_closed() == c)
            && self.reporter.as_ref().is_none_or(|r| &e.reporter == r)
            && self.created_from_ms.is_none_or(|t| e.created.wall_ms >= t)
            && self.created_to_ms.is_none_or(|t| e.created.wall_ms <= t)
            && !self.hidden_categories.contains(&e.category.as_str())
    }
}

/// Parse `origin:seq`.
pub fn parse_id(s: &str) -> Option<EntryId> {
    let (origin, seq) = s.rsplit_once(':')?;
    Some(EntryId { origin: NodeId::new(origin).ok()?, seq: seq.parse().ok().filter(|&n| n > 0)? })
}

pub fn format_id(id: &EntryId) -> String {
    format!("{}:{}", id.origin, id.seq)
}

fn event_key(id: &EntryId) -> Vec<u8> {
    keys::entry_key(&id.origin, id.seq)
}

/// What the lock guards besides the store: the deadlines still to watch and the alert cursor.
struct Desk {
    /// `(deadline, event key)` of every open event whose current step is not yet overdue.
    watch: BTreeSet<(u64, Vec<u8>)>,
    alerts_applied: u64,
}

/// How many events are open, and how many of those are overdue: kept as events change, for
/// the node's report up the mesh (read without the desk's lock).
#[derive(Default)]
struct Counts {
    open: AtomicI64,
    overdue: AtomicI64,
}

impl Counts {
    fn add(&self, record: &EventRecord, sign: i64) {
        if !record.step.is_closed() {
            self.open.fetch_add(sign, Ordering::Relaxed);
            if record.overdue {
                self.overdue.fetch_add(sign, Ordering::Relaxed);
            }
        }
    }
}

impl Desk {
    fn track(&mut self, counts: &Counts, before: Option<&EventRecord>, after: &EventRecord) {
        if let Some(b) = before {
            if let Some(d) = b.deadline_ms {
                self.watch.remove(&(d, event_key(&b.id)));
            }
            counts.add(b, -1);
        }
        if let (Some(d), false) = (after.deadline_ms, after.overdue) {
            self.watch.insert((d, event_key(&after.id)));
        }
        counts.add(after, 1);
    }
}

struct Inner {
    store: Store,
    clock: SharedClock,
    node: NodeId,
    deadlines: DeadlineConfig,
    categories: Vec<Category>,
    tiers: Tiers,
    window_ms: u64,
    desk: Mutex<Desk>,
    counts: Counts,
}

/// The handle on this node's events. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

/// One change waiting to be written.
struct Pending {
    prev: Option<EventRecord>,
    change: Change,
    audit: AuditRecord,
}

impl Events {
    /// Open the desk over `store`: apply any entries a crash left unapplied, and rebuild the
    /// deadline watch from the stored events.
    pub async fn open(
        store: Store,
        clock: SharedClock,
        deadlines: DeadlineConfig,
        categories: Vec<Category>,
        window_ms: u64,
        tiers: Tiers,
    ) -> Result<Events, EventError> {
        let node = store.node().clone();
        let alerts_applied = store
            .get(META_TREE, ALERTS_APPLIED)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok().map(u64::from_be_bytes))
            .unwrap_or(0);
        let inner = Inner {
            store,
            clock,
            node,
            deadlines,
            categories,
            tiers,
            window_ms: window_ms.max(1),
            desk: Mutex::new(Desk { watch: BTreeSet::new(), alerts_applied }),
            counts: Counts::default(),
        };
        let events = Events { inner: Arc::new(inner) };
        events.repair().await?;
        let mut desk = events.inner.desk.lock().await;
        for kv in events.inner.store.scan(EVENTS_TREE, b"")? {
            let (_, v) = kv?;
            let record: EventRecord = decode_record(&v)?;
            desk.track(&events.inner.counts, None, &record);
        }
        drop(desk);
        events.catch_up_commands().await?;
        Ok(events)
    }

    pub fn categories(&self) -> &[Category] {
        &self.inner.categories
    }

    pub fn category(&self, code: &str) -> Option<&Category> {
        self.inner.categories.iter().find(|c| c.code == code)
    }

    pub fn node(&self) -> &NodeId {
        &self.inner.node
    }

    /// One event by id.
    pub fn get(&self, id: &EntryId) -> Result<Option<EventRecord>, EventError> {
        self.inner.store.get(EVENTS_TREE, &event_key(id))?.map(|v| decode_record(&v)).transpose()
    }

    fn require(&self, id: &EntryId) -> Result<EventRecord, EventError> {
        self.get(id)?.ok_or_else(|| EventError::NotFound(format_id(id)))
    }

    /// A page of events matching `filter`, newest first, starting after `cursor` (the id of the
    /// last event of the previous page). Returns the page and the cursor for the next one.
    pub fn list(
        &self,
        filter: &Filter,
        cursor: Option<&EntryId>,
        limit: usize,
    ) -> Result<(Vec<EventRecord>, Option<EntryId>), EventError> {
        let (page, next, _) = self.list_scanning(filter, cursor, limit, usize::MAX)?;
        Ok((page, next))
    }

    /// [`Events::list`], looking at no more than `max_scan` events: when it stops there, the
    /// cursor goes on from the last event it looked at. Also returns how many it looked at.
    pub fn list_scanning(
        &self,
        filter: &Filter,
        cursor: Option<&EntryId>,
        limit: usize,
        max_scan: usize,
    ) -> Result<(Vec<EventRecord>, Option<EntryId>, usize), EventError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let before = cursor.map(event_key);
        let mut page = Vec::new();
        let mut scanned = 0;
        for kv in self.inner.store.scan_back(EVENTS_TREE, before.as_deref())? {
            let (_, v) = kv?;
            let record = decode_record(&v)?;
            if filter.matches(&record) {
                if page.len() == limit {
                    let next = page.last().map(|e: &EventRecord| e.id.clone());
                    return Ok((page, next, scanned));
                }
                page.push(record);
            } else if scanned + 1 >= max_scan {
                let next = record.id.clone();
                return Ok((page, Some(next), scanned + 1));
            }
            scanned += 1;
        }
        Ok((page, None, scanned))
    }

    /// Report a new event.
    pub async fn report(&self, new: NewEvent, who: &Identity) -> Result<EventRecord, EventError> {
        if who.role == Role::Auditor {
            return Err(WorkflowError::Forbidden { role: who.role.as_str(), action: "report" }.into());
        }
        if self.category(&new.category).is_none() {
            let known: Vec<_> = self.inner.categories.iter().map(|c| c.code.as_str()).collect();
            return Err(EventError::Invalid(format!(
                "unknown category {:?}; one of: {}",
                new.category.chars().take(MAX_NAME).collect::<String>(),
                known.join(", ")
            )));
        }
        check_location(&new.location)?;
        check_text("description", &new.description, MAX_TEXT, true)?;
        for (k, v) in new.contact.iter().chain(&new.attributes) {
            check_text("attribute or contact name", k, MAX_NAME, true)?;
            check_text("attribute or contact value", v, MAX_TEXT, false)?;
        }
        let (source, reporter) = match new.open311_key {
            Some(key_name) => (EventSource::Open311 { key_name: key_name.clone() }, format!("open311:{key_name}")),
            None => (EventSource::Grid, who.name.clone()),
        };
        let change = Change::Created(EventCreated {
            category: new.category.clone(),
            source,
            location: new.location,
            description: new.description,
            reporter,
            contact: new.contact,
            attributes: new.attributes,
        });
        let audit = self.audit(who, "report", &format!("new {} event", new.category), "");
        let mut desk = self.inner.desk.lock().await;
        let mut out = self.write(&mut desk, vec![Pending { prev: None, change, audit }], vec![]).await?;
        Ok(out.remove(0))
    }

    /// Move an event along the workflow, or add a note.
    pub async fn act(
        &self,
        id: &EntryId,
        action: Action,
        note: String,
        who: &Identity,
    ) -> Result<EventRecord, EventError> {
        check_text("note", &note, MAX_TEXT, matches!(action, Action::Note))?;
        let mut desk = self.inner.desk.lock().await;
        let prev = self.require(id)?;
        workflow::authorize(&prev, &action, who.role, &who.name)?;
        let to = workflow::validate(&prev, &action)?;
        let audit = self.audit(who, action.name(), &format_id(id), &format!("{} → {}; {note}", prev.step, to));
        let change = Change::Transition(TransitionEntry { event: id.clone(), action, actor: who.name.clone(), note });
        let mut out = self.write(&mut desk, vec![Pending { prev: Some(prev), change, audit }], vec![]).await?;
        Ok(out.remove(0))
    }

    /// Escalate an event to a department at county or city tier ("whistle").
    pub async fn escalate(
        &self,
        id: &EntryId,
        department: String,
        tier: Tier,
        reason: String,
        who: &Identity,
    ) -> Result<EventRecord, EventError> {
        if who.role != Role::Operator {
            return Err(WorkflowError::Forbidden { role: who.role.as_str(), action: "escalate" }.into());
        }
        check_text("department", &department, MAX_NAME, true)?;
        check_text("reason", &reason, MAX_TEXT, true)?;
        let mut desk = self.inner.desk.lock().await;
        let prev = self.require(id)?;
        if prev.step.is_closed() {
            return Err(WorkflowError::ClosedEvent.into());
        }
        let n = prev.escalations.len() as u32 + 1;
        let audit =
            self.audit(who, "escalate", &format_id(id), &format!("to {department} ({}): {reason}", tier.as_str()));
        let change = Change::Escalation(EscalationEntry {
            event: id.clone(),
            n,
            department,
            tier,
            reason,
            actor: who.name.clone(),
            category: prev.category.clone(),
            description: prev.description.clone(),
            location: prev.location.clone(),
        });
        let mut out = self.write(&mut desk, vec![Pending { prev: Some(prev), change, audit }], vec![]).await?;
        Ok(out.remove(0))
    }

    /// Record a department's answer to escalation `n` ("report back"), entered by an operator
    /// on the department's behalf until the mesh delivers answers as commands.
    pub async fn answer(
        &self,
        id: &EntryId,
        n: u32,
        answer: Answer,
        by: String,
        note: String,
        who: &Identity,
    ) -> Result<EventRecord, EventError> {
        check_answer(&answer, &by, &note, who)?;
        let mut desk = self.inner.desk.lock().await;
        let prev = self.require(id)?;
        let esc = prev.escalations.iter().find(|e| e.n == n).ok_or(WorkflowError::NoEscalation(n))?;
        let allowed = match answer {
            Answer::Acknowledge => esc.status == EscalationStatus::Pending,
            Answer::Result { .. } => esc.status != EscalationStatus::Answered,
        };
        if !allowed {
            return Err(
                WorkflowError::WrongEscalationState { n, status: esc.status.as_str(), answer: answer.name() }.into()
            );
        }
        let audit = self.audit(who, answer.name(), &format_id(id), &format!("escalation {n} answered by {by}: {note}"));
        let command =
            EventCommand::EscalationAnswer { n, answer, by, note, entered_by: who.name.clone(), source: None };
        let change = Change::Command(CommandEntry { event: id.clone(), command });
        let mut out = self.write(&mut desk, vec![Pending { prev: Some(prev), change, audit }], vec![]).await?;
        Ok(out.remove(0))
    }

    /// How many of this node's events are open, and how many of those are overdue.
    pub fn open_and_overdue(&self) -> (u64, u64) {
        let c = &self.inner.counts;
        (c.open.load(Ordering::Relaxed).max(0) as u64, c.overdue.load(Ordering::Relaxed).max(0) as u64)
    }

    /// Open events whose current step is overdue, oldest deadline first.
    pub fn overdue(
        &self,
        limit: usize,
        hidden_categories: &'static [&'static str],
    ) -> Result<Vec<EventRecord>, EventError> {
        let filter = Filter { overdue: Some(true), closed: Some(false), hidden_categories, ..Filter::default() };
        let (mut page, _) = self.list(&filter, None, limit)?;
        page.sort_by_key(|e| e.deadline_ms);
        Ok(page)
    }

    /// Summaries of the windows starting in `[from_ms, to_ms]`.
    pub fn summaries(&self, from_ms: u64, to_ms: u64) -> Result<Vec<Summary>, EventError> {
        let mut out = Vec::new();
        for kv in self.inner.store.scan(SUMMARIES_TREE, b"")? {
            let (k, v) = kv?;
            let start = <[u8; 8]>::try_from(k.as_slice()).map(u64::from_be_bytes).unwrap_or(0);
            if (from_ms..=to_ms).contains(&start) {
                out.push(
                    records::decode(&v)
                        .map_err(|e| StoreError::Corrupt { tree: SUMMARIES_TREE.into(), detail: e.to_string() })?,
                );
            }
        }
        Ok(out)
    }

    /// Mark events whose step passed its deadline as overdue and raise one overdue alert each.
    pub async fn check_deadlines(&self) -> Result<usize, EventError> {
        let now = self.inner.clock.now_ms();
        let mut desk = self.inner.desk.lock().await;
        let due: Vec<(u64, Vec<u8>)> = desk.watch.range(..(now, Vec::new())).cloned().collect();
        if due.is_empty() {
            return Ok(0);
        }
        let mut ops = Vec::new();
        let mut summaries: BTreeMap<u64, Summary> = BTreeMap::new();
        let mut updated = Vec::new();
        for (deadline, key) in &due {
            desk.watch.remove(&(*deadline, key.clone()));
            let Some(v) = self.inner.store.get(EVENTS_TREE, key)? else { continue };
            let mut record = decode_record(&v)?;
            if record.overdue || record.deadline_ms != Some(*deadline) {
                continue;
            }
            record.overdue = true;
            let alert = Alert::Overdue {
                event: record.id.clone(),
                category: record.category.clone(),
                step: record.step.as_str().to_string(),
                due_ms: *deadline,
            };
            ops.push(Op::Append { kind: Kind::Alert, payload: encode(&alert)? });
            let window = Summary::window_of(now, self.inner.window_ms);
            let summary = match summaries.remove(&window) {
                Some(s) => s,
                None => self.load_summary(window)?,
            };
            let mut summary = summary;
            summary.count_overdue(record.step.as_str());
            summaries.insert(window, summary);
            ops.push(Op::Put { tree: EVENTS_TREE, key: key.clone(), value: encode(&record)? });
            updated.push(record);
        }
        for s in summaries.into_values() {
            push_summary(&mut ops, &s)?;
        }
        if !ops.is_empty() {
            self.inner.store.commit(ops).await?;
        }
        for r in &updated {
            tracing::warn!(event = %format_id(&r.id), step = %r.step, category = %r.category, "event overdue");
        }
        Ok(updated.len())
    }

    /// Turn alerts raised since the last call into events (all but overdue alerts, which are
    /// about events already).
    pub async fn follow_alerts(&self) -> Result<usize, EventError> {
        let mut total = 0;
        loop {
            let mut desk = self.inner.desk.lock().await;
            let from = desk.alerts_applied + 1;
            let mut pending = Vec::new();
            let mut last = desk.alerts_applied;
            for entry in self.inner.store.entries(Kind::Alert, &self.inner.node, from).take(ALERT_BATCH) {
                let entry = entry?;
                last = entry.seq;
                let alert: Alert = match records::decode(&entry.payload) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(seq = entry.seq, error = %e, "unreadable alert not turned into an event");
                        continue;
                    }
                };
                if let Some(created) = alert_event(&alert, entry.seq) {
                    let audit = AuditRecord {
                        at_ms: entry.hlc.wall_ms,
                        actor: created.reporter.clone(),
                        action: "report".into(),
                        subject: format!("alert {}", entry.seq),
                        why: format!("{} raised at ingest", alert.label()),
                    };
                    pending.push(Pending { prev: None, change: Change::Created(created), audit });
                }
            }
            if last == desk.alerts_applied {
                return Ok(total);
            }
            let marker = Op::Put { tree: META_TREE, key: ALERTS_APPLIED.to_vec(), value: last.to_be_bytes().to_vec() };
            total += pending.len();
            self.write(&mut desk, pending, vec![marker]).await?;
            desk.alerts_applied = last;
        }
    }

    /// Apply answers that tiers above sent over the mesh to this node's events. Each becomes a
    /// local command entry naming its source, so it is applied exactly once even across a
    /// crash (see [`Events::catch_up_commands`]). Commands about other nodes' events are
    /// ignored here: commands flood down, the owner applies them.
    pub async fn apply_commands(&self, entries: &[proto::Entry]) -> Result<usize, EventError> {
        let mut applied = 0;
        for entry in entries.iter().filter(|e| e.kind == Kind::Command && e.origin != self.inner.node) {
            let CommandEntry { event, command } = match records::decode::<CommandEntry>(&entry.payload) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(origin = %entry.origin, seq = entry.seq, error = %e, "unreadable command ignored");
                    continue;
                }
            };
            if event.origin != self.inner.node {
                continue;
            }
            let EventCommand::EscalationAnswer { n, answer, by, note, .. } = command;
            let mut desk = self.inner.desk.lock().await;
            let Some(prev) = self.get(&event)? else {
                tracing::warn!(event = %format_id(&event), from = %entry.origin, "answer for an unknown event ignored");
                continue;
            };
            let Some(escalation) = prev.escalations.iter().find(|e| e.n == n) else {
                tracing::warn!(event = %format_id(&event), n, from = %entry.origin, "answer for an unknown escalation ignored");
                continue;
            };
            if self.inner.tiers.of(&entry.origin) != Some(escalation.tier) {
                tracing::warn!(
                    event = %format_id(&event), n, from = %entry.origin, tier = escalation.tier.as_str(),
                    "answer from a node not of the tier the escalation went to; ignored"
                );
                continue;
            }
            let fits = match answer {
                Answer::Acknowledge => escalation.status == EscalationStatus::Pending,
                Answer::Result { .. } => escalation.status != EscalationStatus::Answered,
            };
            if !fits {
                tracing::warn!(event = %format_id(&event), n, from = %entry.origin, "answer does not fit the escalation's state; ignored");
                continue;
            }
            let who = Identity { name: format!("node:{}", entry.origin), role: Role::Operator };
            let audit = self.audit(
                &who,
                answer.name(),
                &format_id(&event),
                &format!("escalation {n} answered by {by} over the mesh"),
            );
            let source = Some(entry.id());
            let command = EventCommand::EscalationAnswer { n, answer, by, note, entered_by: who.name.clone(), source };
            let change = Change::Command(CommandEntry { event, command });
            self.write(&mut desk, vec![Pending { prev: Some(prev), change, audit }], vec![]).await?;
            applied += 1;
        }
        Ok(applied)
    }

    /// At start: apply remote answers stored before a crash but not yet applied. The local
    /// command entries name their sources, so what was applied is read back from them.
    pub async fn catch_up_commands(&self) -> Result<usize, EventError> {
        let store = &self.inner.store;
        let mut done = proto::VersionVector::new();
        for entry in store.entries(Kind::Command, &self.inner.node, 1) {
            if let Ok(CommandEntry { command: EventCommand::EscalationAnswer { source: Some(src), .. }, .. }) =
                records::decode::<CommandEntry>(&entry?.payload)
            {
                done.raise(&src.origin, src.seq);
            }
        }
        let mut pending = Vec::new();
        for (origin, head) in store.heads(Kind::Command).iter() {
            if origin != &self.inner.node && head > done.get(origin) {
                for e in store.entries(Kind::Command, origin, done.get(origin) + 1) {
                    pending.push(e?);
                }
            }
        }
        self.apply_commands(&pending).await
    }

    /// Answer, at this tier, an escalation another node sent up: a command entry that the mesh
    /// carries down to the event's owner.
    pub async fn answer_from_above(
        &self,
        event: &EntryId,
        n: u32,
        answer: Answer,
        by: String,
        note: String,
        who: &Identity,
    ) -> Result<EntryId, EventError> {
        check_answer(&answer, &by, &note, who)?;
        if event.origin == self.inner.node {
            return Err(EventError::Invalid(
                "this node owns the event: answer it with the event's own escalation endpoint".into(),
            ));
        }
        let incoming = self.incoming(event.origin.clone())?;
        let Some((_, escalation)) = incoming.iter().find(|(_, e)| &e.event == event && e.n == n) else {
            return Err(EventError::NotFound(format!("escalation {n} of {}", format_id(event))));
        };
        if self.inner.tiers.of(&self.inner.node) != Some(escalation.tier) {
            return Err(EventError::Invalid(format!(
                "escalation {n} of {} went to the {} tier; this node only passes it on",
                format_id(event),
                escalation.tier.as_str()
            )));
        }
        let audit =
            self.audit(who, answer.name(), &format_id(event), &format!("escalation {n} answered by {by}: {note}"));
        let command =
            EventCommand::EscalationAnswer { n, answer, by, note, entered_by: who.name.clone(), source: None };
        let payload = records::encode(&CommandEntry { event: event.clone(), command }).map_err(codec_error)?;
        let appended = self
            .inner
            .store
            .commit(vec![
                Op::Append { kind: Kind::Command, payload },
                Op::Append { kind: Kind::Audit, payload: encode(&audit)? },
            ])
            .await?;
        Ok(EntryId { origin: self.inner.node.clone(), seq: appended[0].seq })
    }

    /// Escalations other nodes sent up to this one (from `origin`, or all), newest first, with
    /// the answers this node has sent back.
    pub fn incoming_escalations(
        &self,
        origin: Option<&NodeId>,
        limit: usize,
    ) -> Result<Vec<IncomingEscalation>, EventError> {
        let mut answers: HashMap<(EntryId, u32), Vec<String>> = HashMap::new();
        for entry in self.inner.store.entries(Kind::Command, &self.inner.node, 1) {
            if let Ok(CommandEntry { event, command: EventCommand::EscalationAnswer { n, answer, source: None, .. } }) =
                records::decode::<CommandEntry>(&entry?.payload)
            {
                answers.entry((event, n)).or_default().push(answer.name().to_string());
            }
        }
        let mut out = Vec::new();
        for (from, _) in self.inner.store.heads(Kind::Escalation).iter() {
            if from == &self.inner.node || origin.is_some_and(|o| o != from) {
                continue;
            }
            let origin = from;
            for (hlc, e) in self.incoming(origin.clone())? {
                let sent = answers.remove(&(e.event.clone(), e.n)).unwrap_or_default();
                out.push(IncomingEscalation { at: hlc, escalation: e, answers_sent: sent });
            }
        }
        out.sort_by_key(|e| std::cmp::Reverse(e.at));
        out.truncate(limit);
        Ok(out)
    }

    fn incoming(&self, origin: NodeId) -> Result<Vec<(Hlc, EscalationEntry)>, EventError> {
        let mut out = Vec::new();
        for entry in self.inner.store.entries(Kind::Escalation, &origin, 1) {
            let entry = entry?;
            if let Ok(e) = records::decode::<EscalationEntry>(&entry.payload) {
                out.push((entry.hlc, e));
            }
        }
        Ok(out)
    }

    fn audit(&self, who: &Identity, action: &str, subject: &str, why: &str) -> AuditRecord {
        AuditRecord {
            at_ms: self.inner.clock.now_ms(),
            actor: format!("{} ({})", who.name, who.role.as_str()),
            action: action.to_string(),
            subject: subject.to_string(),
            why: why.to_string(),
        }
    }

    fn load_summary(&self, window: u64) -> Result<Summary, EventError> {
        Ok(match self.inner.store.get(SUMMARIES_TREE, &Summary::key(window))? {
            Some(v) => records::decode(&v)
                .map_err(|e| StoreError::Corrupt { tree: SUMMARIES_TREE.into(), detail: e.to_string() })?,
            None => Summary::empty(self.inner.node.clone(), window, self.inner.window_ms),
        })
    }

    /// Write changes: first their entries and audit records (durable: from here on the change
    /// has happened), then the events' new state and the summaries, plus `extra` state ops.
    async fn write(
        &self,
        desk: &mut Desk,
        pending: Vec<Pending>,
        extra: Vec<Op>,
    ) -> Result<Vec<EventRecord>, EventError> {
        let mut ops = Vec::with_capacity(pending.len() * 2);
        for p in &pending {
            ops.push(Op::Append { kind: p.change.kind(), payload: p.change.encode().map_err(codec_error)? });
        }
        for p in &pending {
            ops.push(Op::Append { kind: Kind::Audit, payload: encode(&p.audit)? });
        }
        let appended = self.inner.store.commit(ops).await?;
        let applied: Vec<_> =
            pending.into_iter().zip(appended).map(|(p, a)| (p.prev, p.change, a.seq, a.hlc)).collect();
        self.apply_state(desk, applied, extra).await
    }

    /// Apply written changes to the events' state and the summaries, durably.
    async fn apply_state(
        &self,
        desk: &mut Desk,
        applied: Vec<(Option<EventRecord>, Change, u64, Hlc)>,
        mut ops: Vec<Op>,
    ) -> Result<Vec<EventRecord>, EventError> {
        let mut summaries: BTreeMap<u64, Summary> = BTreeMap::new();
        let mut out = Vec::with_capacity(applied.len());
        let mut tracked = Vec::with_capacity(applied.len());
        for (prev, change, seq, hlc) in applied {
            let id = match change.target() {
                Some(t) => t.clone(),
                None => EntryId { origin: self.inner.node.clone(), seq },
            };
            let Some((record, effect)) = changes::apply(prev.clone(), &id, &change, seq, hlc, &self.inner.deadlines)
            else {
                tracing::warn!(event = %format_id(&id), "change to an unknown event ignored");
                continue;
            };
            let window = Summary::window_of(hlc.wall_ms, self.inner.window_ms);
            let mut summary = match summaries.remove(&window) {
                Some(s) => s,
                None => self.load_summary(window)?,
            };
            summary.count(effect, &record.category);
            summaries.insert(window, summary);
            ops.push(Op::Put { tree: EVENTS_TREE, key: event_key(&id), value: encode(&record)? });
            if let (Effect::Reported, EventSource::Alert { alert_seq, .. }) = (effect, &record.source) {
                desk.alerts_applied = desk.alerts_applied.max(*alert_seq);
            }
            tracked.push((prev, record.clone()));
            out.push(record);
        }
        for s in summaries.into_values() {
            push_summary(&mut ops, &s)?;
        }
        self.inner.store.commit(ops).await?;
        for (prev, record) in &tracked {
            desk.track(&self.inner.counts, prev.as_ref(), record);
        }
        Ok(out)
    }

    /// Apply the entries a crash left behind the state. Changes are written one batch at a
    /// time under the lock, so the unapplied ones are the newest entries of each kind: walk
    /// each kind back from its newest entry until one is reflected in the state.
    async fn repair(&self) -> Result<(), EventError> {
        let mut behind: Vec<(Hlc, u64, Change)> = Vec::new();
        for kind in [Kind::Event, Kind::Transition, Kind::Escalation, Kind::Command] {
            for entry in self.inner.store.entries(kind, &self.inner.node, 1).rev() {
                let entry = entry?;
                let change = Change::decode(kind, &entry.payload).map_err(codec_error)?;
                if change.target().is_some_and(|t| t.origin != self.inner.node) {
                    // An answer this tier sent about another node's event: that node applies
                    // it, nothing here reflects it.
                    continue;
                }
                let reflected = match change.target() {
                    None => self.get(&entry.id())?.is_some(),
                    Some(target) => match self.get(target)? {
                        Some(record) => change.is_applied(&record, entry.seq),
                        None => false,
                    },
                };
                if reflected {
                    break;
                }
                behind.push((entry.hlc, entry.seq, change));
            }
        }
        if behind.is_empty() {
            return Ok(());
        }
        behind.sort_by_key(|(hlc, _, _)| *hlc);
        tracing::warn!(entries = behind.len(), "applying event entries a crash left unapplied");
        let mut desk = self.inner.desk.lock().await;
        for (hlc, seq, change) in behind {
            let prev = match change.target() {
                Some(t) => self.get(t)?,
                None => None,
            };
            let mut extra = Vec::new();
            if let Change::Created(EventCreated { source: EventSource::Alert { alert_seq, .. }, .. }) = &change {
                let applied = desk.alerts_applied.max(*alert_seq);
                extra.push(Op::Put {
                    tree: META_TREE,
                    key: ALERTS_APPLIED.to_vec(),
                    value: applied.to_be_bytes().to_vec(),
                });
            }
            self.apply_state(&mut desk, vec![(prev, change, seq, hlc)], extra).await?;
        }
        Ok(())
    }
}

/// "; ordered by X under Y", or nothing for an entry from before entries named them.
pub(crate) fn ordered_by(authority: &str, legal_basis: &str) -> String {
    if authority.is_empty() {
        return String::new();
    }
    format!("; ordered by {authority} under {legal_basis}")
}

/// The event an alert becomes, if it becomes one.
fn alert_event(alert: &Alert, alert_seq: u64) -> Option<EventCreated> {
    let (description, lat, lon) = match alert {
        Alert::WatchlistHitV1 { subject, list, reason, added_by, place, lat, lon, .. } => {
            (format!("{subject} seen at {place}: on list {list} ({reason}), added by {added_by}"), *lat, *lon)
        }
        Alert::WatchlistHit { subject, list, reason, added_by, authority, legal_basis, place, lat, lon, .. } => (
            format!(
                "{subject} seen at {place}: on list {list} ({reason}), added by {added_by}{}",
                ordered_by(authority, legal_basis)
            ),
            *lat,
            *lon,
        ),
        Alert::Fence { mmsi, shipname, zone, distance_m, lat, lon, .. } => {
            let name = shipname.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
            let distance = distance_m.map(|d| format!(" {:.0} m from the boundary", d)).unwrap_or_default();
            (format!("vessel MMSI {mmsi}{name} entered the {zone} zone{distance}"), Some(*lat), Some(*lon))
        }
        Alert::CameraOffline { camera, silent_ms, .. } => {
            (format!("camera {camera} silent for {} s", silent_ms / 1000), None, None)
        }
        Alert::CameraSignalLoss { camera, .. } => (format!("camera {camera} lost its video signal"), None, None),
        Alert::CheckpointOffline { device, silent_ms, .. } => {
            (format!("checkpoint device {device} silent for {} s", silent_ms / 1000), None, None)
        }
        Alert::SanctionsHit { subject, list, name, authority, legal_basis, list_version, place, lat, lon, .. } => (
            format!(
                "{subject} ({name}) seen at {place}: on the {list} list of {authority} under {legal_basis} (list version {list_version})"
            ),
            *lat,
            *lon,
        ),
        Alert::Overdue { .. } => return None,
    };
    Some(EventCreated {
        category: alert.label().to_string(),
        source: EventSource::Alert { alert_seq, label: alert.label().to_string() },
        location: Location { lat, lon, address: None },
        description,
        reporter: format!("rule:{}", alert.label()),
        contact: vec![],
        attributes: vec![],
    })
}

/// An answer to an escalation: operators only, with who answered and, for a result, an outcome.
fn check_answer(answer: &Answer, by: &str, note: &str, who: &Identity) -> Result<(), EventError> {
    if who.role != Role::Operator {
        return Err(WorkflowError::Forbidden { role: who.role.as_str(), action: answer.name() }.into());
    }
    check_text("by", by, MAX_NAME, true)?;
    check_text("note", note, MAX_TEXT, false)?;
    if let Answer::Result { outcome } = answer {
        check_text("outcome", outcome, MAX_TEXT, true)?;
    }
    Ok(())
}

fn check_location(l: &Location) -> Result<(), EventError> {
    match (l.lat, l.lon) {
        (Some(lat), Some(lon)) => {
            if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
                return Err(EventError::Invalid(format!("latitude {lat} is outside -90..90")));
            }
            if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
                return Err(EventError::Invalid(format!("longitude {lon} is outside -180..180")));
            }
        }
        (None, None) => {}
        _ => return Err(EventError::Invalid("give both latitude and longitude, or neither".into())),
    }
    if let Some(a) = &l.address {
        check_text("address", a, 1000, true)?;
    }
    if l.lat.is_none() && l.address.is_none() {
        return Err(EventError::Invalid("a location is required: latitude and longitude, or an address".into()));
    }
    Ok(())
}

/// Write a window's summary: the state this node reads, and an entry for the tiers above (an
/// idempotent upsert there: the highest version of each (node, window) wins).
fn push_summary(ops: &mut Vec<Op>, s: &Summary) -> Result<(), EventError> {
    let value = encode(s)?;
    ops.push(Op::Put { tree: SUMMARIES_TREE, key: Summary::key(s.window_start_ms).to_vec(), value: value.clone() });
    ops.push(Op::Append { kind: Kind::Summary, payload: value });
    Ok(())
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, EventError> {
    records::encode(v).map_err(codec_error)
}

fn codec_error(e: proto::CodecError) -> EventError {
    EventError::Store(StoreError::Codec(e.to_string()))
}

fn decode_record(v: &[u8]) -> Result<EventRecord, EventError> {
    records::decode(v)
        .map_err(|e| EventError::Store(StoreError::Corrupt { tree: EVENTS_TREE.into(), detail: e.to_string() }))
}

#[cfg(test)]
mod tests;
