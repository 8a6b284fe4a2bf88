//! GA/T 1400 (视图库, "VIID"): the national view-library interface that checkpoint devices
//! and lower platforms push to. The node plays the platform: devices register with HTTP Digest
//! (`/VIID/System/Register`), keep alive, and post vehicle objects, which become plate reads
//! through the same ingest path, rules and durable commit as every other feed, answered per
//! object only once durable. Objects describing people are refused and counted; images are
//! never stored, only their declared type and size counted.
//!
//! - [`objects`]: the standard's JSON objects, decoded with bounds.
//! - [`digest`]: HTTP Digest for `Register` and `UnRegister`.
//! - [`places`]: tollgates and devices, so reads carry where they were made.
//! - [`http`]: the `/VIID/...` routes.
//! - [`time`]: the standard's `yyyyMMddHHmmss` local times.

pub mod digest;
pub mod http;
pub mod objects;
pub mod places;
pub mod time;

use crate::config;
use crate::feeds::camera::{CameraHealth, HealthChange};
use crate::ingest::{Ingest, Receipt};
use crate::rng::Seed;
use crate::store::StoreError;
use digest::DigestAuth;
use objects::Vehicle;
use places::Places;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Metric label of the feed: VIID reads are checkpoint reads.
pub const FEED: &str = "checkpoint";

/// One GA/T 1400 listener's state. Cheap to clone.
#[derive(Clone)]
pub struct ViidFeed(Arc<Inner>);

struct Inner {
    ingest: Ingest,
    name: Arc<str>,
    server_id: String,
    offset: ::time::UtcOffset,
    /// Digest user name → (device id, password).
    accounts: BTreeMap<String, (String, String)>,
    digest: Mutex<DigestAuth>,
    /// Registered devices and the address each registered from: later requests naming the
    /// device must come from there.
    sessions: Mutex<BTreeMap<String, IpAddr>>,
    places: Places,
    health: Mutex<CameraHealth>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ViidFeed {
    /// A listener's state from its config. `places` is the node's one registry of places,
    /// shared by its listeners; `seed` keys the Digest nonces.
    pub fn new(ingest: Ingest, config: &config::ViidFeed, places: Places, node_id: &str, seed: Seed) -> ViidFeed {
        let offset = time::parse_offset(&config.utc_offset).unwrap_or(::time::UtcOffset::UTC);
        let accounts = config
            .devices
            .iter()
            .map(|d| {
                (d.username.clone().unwrap_or_else(|| d.id.clone()), (d.id.clone(), d.password.expose().to_string()))
            })
            .collect();
        let timeout_ms = config.keepalive_timeout.as_millis() as u64;
        let now = ingest.clock().now_ms();
        let health = CameraHealth::new(config.devices.iter().map(|d| (d.id.clone(), timeout_ms)), timeout_ms, now);
        ViidFeed(Arc::new(Inner {
            name: config.name.as_str().into(),
            server_id: config.server_id.clone().unwrap_or_else(|| node_id.to_string()),
            offset,
            accounts,
            digest: Mutex::new(DigestAuth::new(&config.realm, seed.derive_bytes("digest nonces"))),
            sessions: Mutex::new(BTreeMap::new()),
            places,
            health: Mutex::new(health),
            ingest,
        }))
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn ingest(&self) -> &Ingest {
        &self.0.ingest
    }

    pub fn places(&self) -> &Places {
        &self.0.places
    }

    fn now_ms(&self) -> u64 {
        self.0.ingest.clock().now_ms()
    }

    /// Register `device` from `from`, once its Digest answer checked out.
    fn register(&self, device: &str, from: IpAddr) {
        lock(&self.0.sessions).insert(device.to_string(), from);
    }

    fn unregister(&self, device: &str) {
        lock(&self.0.sessions).remove(device);
    }

    /// Which registered device a request is from: the one its `User-Identify` header names, if
    /// that device registered from the request's address; without the header, the only device
    /// registered from that address.
    fn identify(&self, user_identify: Option<&str>, from: IpAddr) -> Option<String> {
        let sessions = lock(&self.0.sessions);
        match user_identify {
            Some(id) => (sessions.get(id) == Some(&from)).then(|| id.to_string()),
            None => {
                let mut at = sessions.iter().filter(|(_, ip)| **ip == from).map(|(id, _)| id);
                match (at.next(), at.next()) {
                    (Some(id), None) => Some(id.clone()),
                    _ => None,
                }
            }
        }
    }

    /// A sign of life from a device; if it had been reported offline, log its return.
    async fn alive(&self, device: &str) {
        let change = lock(&self.0.health).seen(device, self.now_ms());
        if let Some(change) = change {
            self.report(vec![change]).await;
        }
    }

    async fn report(&self, changes: Vec<HealthChange>) {
        if let Err(e) = self.0.ingest.checkpoint_health(&self.0.name, changes).await {
            tracing::error!(feed = %self.0.name, error = %e, "checkpoint-offline alert not stored");
        }
    }

    /// Raise an alert for every device that missed its keepalives. The node calls this on a
    /// timer.
    pub async fn check_health(&self) {
        let changes = {
            let mut h = lock(&self.0.health);
            let changes = h.tick(self.now_ms());
            self.0.ingest.metrics().checkpoints_offline.set(h.offline_count() as i64);
            changes
        };
        if !changes.is_empty() {
            self.report(changes).await;
        }
    }

    /// How often [`check_health`](Self::check_health) should run.
    pub fn health_tick(&self) -> std::time::Duration {
        let ms = lock(&self.0.health).min_interval_ms() / 4;
        std::time::Duration::from_millis(ms.clamp(250, 10_000))
    }

    /// Count a refused object or body.
    fn refused(&self, reason: &'static str, n: u64) {
        self.0
            .ingest
            .metrics()
            .decode_errors
            .get_or_create(&crate::metrics::ErrorLabels { feed: FEED, listener: self.0.name.to_string(), reason })
            .inc_by(n);
    }

    /// Make decoded vehicles durable, with the checkpoint's position added.
    pub async fn store_vehicles(&self, vehicles: Vec<Vehicle>) -> Result<Receipt, StoreError> {
        let metrics = self.0.ingest.metrics();
        let mut reads = Vec::with_capacity(vehicles.len());
        for mut v in vehicles {
            for image in &v.images {
                let labels =
                    crate::metrics::ImageLabels { listener: self.0.name.to_string(), kind: image.kind.clone() };
                metrics.viid_images.get_or_create(&labels).inc();
                metrics.viid_image_bytes.get_or_create(&labels).inc_by(image.bytes);
            }
            if let Some((lat, lon)) = self.0.places.position(v.tollgate.as_deref(), v.read.device.as_deref()) {
                v.read.lat = Some(lat);
                v.read.lon = Some(lon);
            }
            reads.push(v.read);
        }
        self.0.ingest.vehicles(&self.0.name, reads).await
    }
}
