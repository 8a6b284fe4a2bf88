//! The two JSON feeds (checkpoints, cameras) seen the same way by the TCP and HTTP listeners:
//! decode one record, commit a batch.

use super::camera::{self, CameraHealth, CameraMessage, HealthChange};
use super::checkpoint;
use crate::ingest::{Ingest, Receipt};
use crate::records::PlateRead;
use crate::store::StoreError;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// A JSON feed: how to decode one record and how to commit a batch of them.
pub trait JsonFeed: Clone + Send + Sync + 'static {
    type Item: Send + 'static;
    /// `checkpoint` or `camera`, for metrics.
    const FEED: &'static str;
    const MAX_LINE_BYTES: usize;
    const MAX_BODY_BYTES: usize;
    /// The listener's configured name.
    fn name(&self) -> &str;
    fn ingest(&self) -> &Ingest;
    /// Count a refused record by reason.
    fn count_error(&self, reason: &'static str) {
        self.ingest().metrics().decode_error(Self::FEED, self.name(), reason);
    }
    /// Decode one record; an error is `(reason label, message)`.
    fn decode(&self, json: &str) -> Result<Self::Item, (&'static str, String)>;
    /// Make a batch durable.
    fn commit(&self, items: Vec<Self::Item>) -> impl Future<Output = Result<Receipt, StoreError>> + Send;
}

#[derive(Clone)]
pub struct CheckpointFeed {
    pub ingest: Ingest,
    pub name: Arc<str>,
}

impl JsonFeed for CheckpointFeed {
    type Item = PlateRead;
    const FEED: &'static str = "checkpoint";
    const MAX_LINE_BYTES: usize = checkpoint::MAX_LINE_BYTES;
    const MAX_BODY_BYTES: usize = checkpoint::MAX_BODY_BYTES;

    fn name(&self) -> &str {
        &self.name
    }

    fn ingest(&self) -> &Ingest {
        &self.ingest
    }

    fn decode(&self, json: &str) -> Result<PlateRead, (&'static str, String)> {
        checkpoint::decode_one(json).map_err(|e| (e.reason(), e.to_string()))
    }

    fn commit(&self, items: Vec<PlateRead>) -> impl Future<Output = Result<Receipt, StoreError>> + Send {
        let (ingest, name) = (self.ingest.clone(), self.name.clone());
        async move { ingest.plates(&name, items).await }
    }
}

/// A camera feed; both its listeners share one watchdog.
#[derive(Clone)]
pub struct CameraFeed {
    pub ingest: Ingest,
    pub name: Arc<str>,
    pub health: Arc<Mutex<CameraHealth>>,
}

impl CameraFeed {
    /// Ask the watchdog which cameras went silent, and raise their alerts.
    pub async fn check_health(&self) -> Result<Receipt, StoreError> {
        let now = self.ingest.clock().now_ms();
        let changes = {
            let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
            let changes = h.tick(now);
            self.ingest.metrics().cameras_offline.set(h.offline_count() as i64);
            changes
        };
        if changes.is_empty() {
            return Ok(Receipt::default());
        }
        self.ingest.camera_health(&self.name, changes).await
    }

    /// `camera` cannot be reached: report it offline now (once per outage; the watchdog and
    /// this share the camera's state). It is back online at its next message.
    pub async fn camera_lost(&self, camera: &str) -> Result<Receipt, StoreError> {
        let now = self.ingest.clock().now_ms();
        let change = {
            let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
            let change = h.lost(camera, now);
            self.ingest.metrics().cameras_offline.set(h.offline_count() as i64);
            change
        };
        match change {
            Some(change) => self.ingest.camera_health(&self.name, vec![change]).await,
            None => Ok(Receipt::default()),
        }
    }
}

impl JsonFeed for CameraFeed {
    type Item = CameraMessage;
    const FEED: &'static str = "camera";
    const MAX_LINE_BYTES: usize = camera::MAX_LINE_BYTES;
    const MAX_BODY_BYTES: usize = camera::MAX_BODY_BYTES;

    fn name(&self) -> &str {
        &self.name
    }

    fn ingest(&self) -> &Ingest {
        &self.ingest
    }

    fn decode(&self, json: &str) -> Result<CameraMessage, (&'static str, String)> {
        camera::decode_one(json).map_err(|e| (e.reason(), e.to_string()))
    }

    fn commit(&self, items: Vec<CameraMessage>) -> impl Future<Output = Result<Receipt, StoreError>> + Send {
        let feed = self.clone();
        async move {
            // Any message is a sign of life, heartbeat or not; "back online" is logged by ingest.
            let now = feed.ingest.clock().now_ms();
            let back: Vec<HealthChange> = {
                let mut h = feed.health.lock().unwrap_or_else(|p| p.into_inner());
                let back = items.iter().filter_map(|m| h.seen(m.camera(), now)).collect();
                feed.ingest.metrics().cameras_offline.set(h.offline_count() as i64);
                back
            };
            if !back.is_empty() {
                feed.ingest.camera_health(&feed.name, back).await?;
            }
            feed.ingest.camera_messages(&feed.name, items).await
        }
    }
}
