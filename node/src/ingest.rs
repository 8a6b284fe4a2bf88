//! The ingest path every feed listener ends in: decoded records in, rules run, one durable
//! commit out. A batch of detections and the alerts and audit records they raise are made
//! durable together, and the caller hears back only once they are on disk: that answer is the
//! acknowledgement the feed sees.
//!
//! A plate read that hits a list is kept as a detection, for `store.retention_days` like the
//! other raw detections. One that hits nothing is a [`Kind::PlateRead`], swept after
//! `store.plate_read_retention_hours`, or not stored at all when that is 0. Either way it is
//! counted in its checkpoint's hour ([`plate_counts`]), in the same commit.

use crate::clock::SharedClock;
use crate::enforcement::Enforced;
use crate::events::ordered_by;
use crate::feeds::ais::AisMessage;
use crate::feeds::camera::{is_signal_loss, CameraMessage, HealthChange};
use crate::metrics::{AlertLabels, HitLabels, Metrics};
use crate::plate_counts;
use crate::records::{self, Alert, AuditRecord, Detection, PlateRead, Subject, VehicleRead, VesselReport};
use crate::rules::watchlist::{WatchEntry, Watchlist};
use crate::sanctions::{ListEntry, Lists, SubjectId};
use crate::store::{Appended, Op, Store, StoreError};
use crate::vessels::VesselDesk;
use proto::Kind;
use serde::Serialize;
use std::sync::{Arc, Mutex, RwLock};

/// What a feed is told once its batch is durable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// Records taken in: each stored, or (a plate read that hit nothing, with
    /// `store.plate_read_retention_hours = 0`) counted.
    pub accepted: usize,
    /// Alerts raised by them.
    pub alerts: usize,
    /// Sequence numbers of the stored detections, first and last (detections of one commit are
    /// numbered consecutively). Plate reads are detections only if they hit a list.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Sequence numbers of the stored plate reads that hit nothing (their own kind, so their
    /// own sequence), first and last.
    pub plate_read_first_seq: Option<u64>,
    pub plate_read_last_seq: Option<u64>,
    /// Sequence numbers of the alerts raised.
    pub alert_seqs: Vec<u64>,
}

impl Receipt {
    fn from_appended(appended: &[Appended], accepted: usize) -> Receipt {
        let seqs = |kind: Kind| appended.iter().filter(move |a| a.kind == kind).map(|a| a.seq);
        let alert_seqs: Vec<u64> = seqs(Kind::Alert).collect();
        Receipt {
            accepted,
            alerts: alert_seqs.len(),
            first_seq: seqs(Kind::Detection).min(),
            last_seq: seqs(Kind::Detection).max(),
            plate_read_first_seq: seqs(Kind::PlateRead).min(),
            plate_read_last_seq: seqs(Kind::PlateRead).max(),
            alert_seqs,
        }
    }
}

/// The watchlist in force. Readers take a snapshot (an `Arc`) per batch, so a reload never
/// waits for ingest and ingest never sees half a list.
#[derive(Clone, Default)]
pub struct WatchlistHandle(Arc<RwLock<Arc<Watchlist>>>);

impl WatchlistHandle {
    pub fn new(list: Watchlist) -> Self {
        WatchlistHandle(Arc::new(RwLock::new(Arc::new(list))))
    }

    pub fn current(&self) -> Arc<Watchlist> {
        self.0.read().map(|g| g.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn replace(&self, list: Watchlist) {
        let list = Arc::new(list);
        match self.0.write() {
            Ok(mut g) => *g = list,
            Err(p) => *p.into_inner() = list,
        }
    }
}

/// The shared ingest core of one node instance. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    store: Store,
    clock: SharedClock,
    metrics: Metrics,
    watchlist: WatchlistHandle,
    /// The sanctions lists in force, checked beside the watchlist.
    sanctions: Enforced,
    vessels: Arc<Mutex<VesselDesk>>,
    /// Woken after a commit that raised alerts, so the event desk turns them into events now
    /// rather than at its next poll.
    alert_signal: Arc<tokio::sync::Notify>,
}

/// Ops for one batch, with the counts the metrics need after the commit succeeds.
#[derive(Default)]
struct Batch {
    ops: Vec<Op>,
    alerts: Vec<&'static str>,
    hits: Vec<(&'static str, String)>,
    /// Records taken in, for the receipt.
    records: usize,
    /// Plate reads per checkpoint and hour, added to the counts in the same commit.
    plate_reads: plate_counts::Tally,
}

impl Batch {
    fn with_capacity(n: usize) -> Batch {
        Batch { ops: Vec::with_capacity(n), ..Batch::default() }
    }

    fn detection(&mut self, d: &Detection) -> Result<(), StoreError> {
        self.records += 1;
        self.ops.push(Op::Append { kind: Kind::Detection, payload: encode(d)? });
        Ok(())
    }

    /// A plate read (`d` is `Plate` or `Vehicle`), after its hits: counted at its checkpoint;
    /// kept as a detection if it hit, else as a plate read if `keep`, else not at all.
    fn plate_read(&mut self, d: &Detection, hit: bool, keep: bool, now_ms: u64) -> Result<(), StoreError> {
        if let Detection::Plate(read) | Detection::Vehicle(VehicleRead { read, .. }) = d {
            self.plate_reads.read(&read.checkpoint, now_ms);
        }
        if hit {
            return self.detection(d);
        }
        self.records += 1;
        if keep {
            self.ops.push(Op::Append { kind: Kind::PlateRead, payload: encode(d)? });
        }
        Ok(())
    }

    fn alert(&mut self, alert: &Alert) -> Result<(), StoreError> {
        self.alerts.push(alert.label());
        self.ops.push(Op::Append { kind: Kind::Alert, payload: encode(alert)? });
        Ok(())
    }

    /// The hits of a plate read on the watchlist and the sanctions lists; whether there was
    /// any.
    fn plate_hits(
        &mut self,
        lists: &InForce,
        read: &PlateRead,
        at: Option<(f64, f64)>,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let before = self.alerts.len();
        for entry in lists.watchlist.plate_hits(&read.plate, now_ms) {
            self.hit(entry, Subject::Plate(read.plate.clone()), &read.checkpoint, read.seen_ms, at, now_ms)?;
        }
        // A plate the lists' rules cannot read as a registration can be on no list.
        if !lists.sanctions.is_empty() {
            if let Ok(subject) = SubjectId::parse("registration", &read.plate) {
                let seen = Seen { place: &read.checkpoint, seen_ms: read.seen_ms, at };
                self.sanctions_hits(&lists.sanctions, &subject, &seen, now_ms)?;
            }
        }
        Ok(self.alerts.len() > before)
    }

    /// Hits of `subject` on the sanctions lists in force: an alert and an audit record each,
    /// naming the list version that matched.
    fn sanctions_hits(
        &mut self,
        lists: &Lists,
        subject: &SubjectId,
        seen: &Seen,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        for entry in lists.matches(subject, now_ms) {
            self.sanctions_hit(entry, lists.version(), seen, now_ms)?;
        }
        Ok(())
    }

    fn sanctions_hit(&mut self, entry: &ListEntry, version: u64, seen: &Seen, now_ms: u64) -> Result<(), StoreError> {
        let audit = AuditRecord {
            at_ms: now_ms,
            actor: "rule:sanctions".into(),
            action: "sanctions_hit".into(),
            subject: entry.subject.to_string(),
            why: format!(
                "on the {} list ({}) of {} under {}, list version {version}; seen at {}",
                entry.list, entry.name, entry.authority, entry.legal_basis, seen.place
            ),
        };
        self.hits.push((entry.subject.kind_name(), format!("sanctions:{}", entry.list)));
        self.alert(&Alert::SanctionsHit {
            subject: entry.subject.clone(),
            list: entry.list.to_string(),
            name: entry.name.clone(),
            authority: entry.authority.clone(),
            legal_basis: entry.legal_basis.clone(),
            expires_ms: entry.expires_ms,
            list_version: version,
            place: seen.place.to_string(),
            seen_ms: seen.seen_ms,
            lat: seen.at.map(|p| p.0),
            lon: seen.at.map(|p| p.1),
        })?;
        self.ops.push(Op::Append { kind: Kind::Audit, payload: encode(&audit)? });
        Ok(())
    }

    /// A watchlist hit: the alert, and the audit record saying who listed the subject and why.
    fn hit(
        &mut self,
        entry: &WatchEntry,
        subject: Subject,
        place: &str,
        seen_ms: u64,
        at: Option<(f64, f64)>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let audit = AuditRecord {
            at_ms: now_ms,
            actor: "rule:watchlist".into(),
            action: "watchlist_hit".into(),
            subject: subject.to_string(),
            why: format!(
                "on list {:?} ({}), added by {}{}; seen at {place}",
                entry.list(),
                entry.reason(),
                entry.added_by(),
                ordered_by(entry.authority(), entry.legal_basis()),
            ),
        };
        self.hits.push((subject.kind(), entry.list().to_string()));
        self.alert(&Alert::WatchlistHit {
            subject,
            list: entry.list().to_string(),
            reason: entry.reason().to_string(),
            added_by: entry.added_by().to_string(),
            authority: entry.authority().to_string(),
            legal_basis: entry.legal_basis().to_string(),
            expires_ms: entry.expires_ms(),
            place: place.to_string(),
            seen_ms,
            lat: at.map(|p| p.0),
            lon: at.map(|p| p.1),
        })?;
        self.ops.push(Op::Append { kind: Kind::Audit, payload: encode(&audit)? });
        Ok(())
    }
}

/// Where and when a subject was seen, for its hits.
struct Seen<'a> {
    place: &'a str,
    seen_ms: u64,
    at: Option<(f64, f64)>,
}

/// The lists a batch is checked against, taken once per batch so it sees one version of each.
struct InForce {
    watchlist: Arc<Watchlist>,
    sanctions: Arc<Lists>,
}

fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, StoreError> {
    records::encode(record).map_err(|e| StoreError::Codec(e.to_string()))
}

impl Ingest {
    pub fn new(
        store: Store,
        clock: SharedClock,
        metrics: Metrics,
        watchlist: WatchlistHandle,
        vessels: VesselDesk,
    ) -> Ingest {
        Ingest {
            store,
            clock,
            metrics,
            watchlist,
            sanctions: Enforced::default(),
            vessels: Arc::new(Mutex::new(vessels)),
            alert_signal: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Check against `sanctions` (the node's lists in force) from now on.
    pub fn enforcing(mut self, sanctions: Enforced) -> Ingest {
        self.sanctions = sanctions;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The watchlist and sanctions lists in force now.
    fn in_force(&self) -> InForce {
        InForce { watchlist: self.watchlist.current(), sanctions: self.sanctions.current() }
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn alert_signal(&self) -> Arc<tokio::sync::Notify> {
        self.alert_signal.clone()
    }

    /// Read the vessel desk (latest positions and fence zones).
    pub fn vessels<T>(&self, read: impl FnOnce(&VesselDesk) -> T) -> T {
        read(&self.vessels.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn watchlist(&self) -> &WatchlistHandle {
        &self.watchlist
    }

    /// Commit a batch and, once it is durable, count what it did.
    async fn commit(&self, feed: &'static str, listener: &str, batch: Batch) -> Result<Receipt, StoreError> {
        let Batch { mut ops, alerts, hits, records, plate_reads } = batch;
        ops.extend(plate_reads.into_ops());
        let appended = self.store.commit(ops).await?;
        let receipt = Receipt::from_appended(&appended, records);
        if receipt.alerts > 0 {
            self.alert_signal.notify_one();
        }
        self.metrics.ingested(feed, listener, receipt.accepted as u64);
        for alert in alerts {
            self.metrics.alerts.get_or_create(&AlertLabels { alert }).inc();
        }
        for (subject, list) in hits {
            self.metrics.hits.get_or_create(&HitLabels { subject, list }).inc();
        }
        Ok(receipt)
    }

    /// Plate reads from a road checkpoint.
    pub async fn plates(&self, listener: &str, reads: Vec<PlateRead>) -> Result<Receipt, StoreError> {
        let list = self.in_force();
        let now = self.clock.now_ms();
        let keep = self.store.config().keeps_plate_reads();
        let mut batch = Batch::with_capacity(reads.len());
        for read in reads {
            let hit = batch.plate_hits(&list, &read, None, now)?;
            batch.plate_read(&Detection::Plate(read), hit, keep, now)?;
        }
        self.commit("checkpoint", listener, batch).await
    }

    /// Vehicles from a GA/T 1400 checkpoint: plate reads that know where the checkpoint is, so
    /// their hits carry its position.
    pub async fn vehicles(&self, listener: &str, reads: Vec<VehicleRead>) -> Result<Receipt, StoreError> {
        let list = self.in_force();
        let now = self.clock.now_ms();
        let keep = self.store.config().keeps_plate_reads();
        let mut batch = Batch::with_capacity(reads.len());
        for v in reads {
            let hit = batch.plate_hits(&list, &v.read, v.lat.zip(v.lon), now)?;
            batch.plate_read(&Detection::Vehicle(v), hit, keep, now)?;
        }
        self.commit("checkpoint", listener, batch).await
    }

    /// Messages from a camera feed, with the health changes the watchdog saw in them.
    pub async fn camera_messages(&self, listener: &str, messages: Vec<CameraMessage>) -> Result<Receipt, StoreError> {
        let mut batch = Batch::with_capacity(messages.len());
        for m in messages {
            if let CameraMessage::Event(event) = m {
                if is_signal_loss(&event) {
                    batch.alert(&Alert::CameraSignalLoss { camera: event.camera.clone(), seen_ms: event.seen_ms })?;
                }
                batch.detection(&Detection::Camera(event))?;
            }
        }
        self.commit("camera", listener, batch).await
    }

    /// Cameras the watchdog found silent.
    pub async fn camera_health(&self, listener: &str, changes: Vec<HealthChange>) -> Result<Receipt, StoreError> {
        self.device_health("camera", listener, changes, |camera, last_seen_ms, silent_ms| Alert::CameraOffline {
            camera,
            last_seen_ms,
            silent_ms,
        })
        .await
    }

    /// GA/T 1400 devices the watchdog found silent (missed keepalives).
    pub async fn checkpoint_health(&self, listener: &str, changes: Vec<HealthChange>) -> Result<Receipt, StoreError> {
        self.device_health("checkpoint", listener, changes, |device, last_seen_ms, silent_ms| {
            Alert::CheckpointOffline { device, last_seen_ms, silent_ms }
        })
        .await
    }

    /// A watchdog's changes: an alert per device gone offline (made by `offline` from the
    /// device, when it was last heard and how long it has been silent), a log line per return.
    async fn device_health(
        &self,
        feed: &'static str,
        listener: &str,
        changes: Vec<HealthChange>,
        offline: impl Fn(String, u64, u64) -> Alert,
    ) -> Result<Receipt, StoreError> {
        let mut batch = Batch::default();
        for c in changes {
            match c {
                HealthChange::Offline { camera: device, last_seen_ms, silent_ms } => {
                    tracing::warn!(feed, listener, device, silent_ms, "device offline");
                    batch.alert(&offline(device, last_seen_ms, silent_ms))?;
                }
                HealthChange::Online { camera: device, silent_ms } => {
                    tracing::info!(feed, listener, device, silent_ms, "device back online");
                }
            }
        }
        if batch.ops.is_empty() {
            return Ok(Receipt::default());
        }
        self.commit(feed, listener, batch).await
    }

    /// Decoded AIS messages: fences and the vessel watchlist run on position reports; every
    /// vessel message is kept as a raw detection and updates the vessel's latest state.
    pub async fn ais_messages(&self, listener: &str, messages: Vec<AisMessage>) -> Result<Receipt, StoreError> {
        let InForce { watchlist: list, sanctions } = self.in_force();
        let now = self.clock.now_ms();
        let mut batch = Batch::with_capacity(messages.len() * 2);
        {
            let mut desk = self.vessels.lock().unwrap_or_else(|p| p.into_inner());
            for msg in &messages {
                let report = VesselReport {
                    mmsi: msg.mmsi(),
                    msg_type: msg.msg_type(),
                    lat: msg.position().map(|p| p.0),
                    lon: msg.position().map(|p| p.1),
                    speed: msg.speed_knots().map(|v| v as f32),
                    course: msg.course_deg().map(|v| v as f32),
                    heading: msg.heading_deg(),
                    shipname: msg.shipname().map(str::to_string),
                    received_ms: now,
                    source: msg.tag_source().map_or_else(|| listener.to_string(), |s| format!("{listener}/{s}")),
                };
                let update = desk.observe(&report, now);
                for alert in update.fence_alerts {
                    batch.alert(&alert)?;
                }
                batch.ops.extend(update.state_put.into_iter().chain(update.state_remove));
                // A listed vessel reports every few seconds: one hit per sighting window, not per
                // report (see VesselDesk::hit_due).
                let subject = SubjectId::Mmsi(report.mmsi);
                let sanctioned = !sanctions.is_empty() && !sanctions.matches(&subject, now).is_empty();
                let watched = list.check_mmsi(report.mmsi, now).is_some();
                if (watched || sanctioned) && desk.hit_due(report.mmsi, now) {
                    let at = report.lat.zip(report.lon);
                    for entry in list.mmsi_hits(report.mmsi, now) {
                        batch.hit(entry, Subject::Mmsi(report.mmsi), listener, now, at, now)?;
                    }
                    let seen = Seen { place: listener, seen_ms: now, at };
                    batch.sanctions_hits(&sanctions, &subject, &seen, now)?;
                }
                batch.detection(&Detection::Vessel(report))?;
            }
            self.metrics.vessels_tracked.set(desk.tracked() as i64);
        }
        self.commit("ais", listener, batch).await
    }
}
