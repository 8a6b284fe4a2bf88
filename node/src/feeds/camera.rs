//! Camera feeds: analytic events named by their ONVIF topic, and heartbeats.
//!
//! ```json
//! {"camera_id": "cam-17", "topic": "tns1:RuleEngine/LineDetector/Crossed", "time": 1764146400000,
//!  "source": {"VideoSourceConfigurationToken": "vs1", "Rule": "line1"}, "data": {"ObjectId": "12"}}
//! {"camera_id": "cam-17", "topic": "heartbeat", "time": 1764146430000}
//! ```
//!
//! `source` and `data` are ONVIF's SimpleItem name/value pairs. Any message from a camera,
//! heartbeat or event, is a sign of life for the watchdog ([`CameraHealth`]).

use crate::recency::RecentMap;
use crate::records::CameraEvent;
use serde::Deserialize;
use std::collections::BTreeMap;

pub const HEARTBEAT_TOPIC: &str = "heartbeat";
pub const MAX_LINE_BYTES: usize = 16 * 1024;
pub const MAX_BODY_BYTES: usize = 8 << 20;
// Shared with the ONVIF subscriber (`feeds::onvif::parse`): one event, one set of bounds.
pub(crate) const MAX_TOPIC_BYTES: usize = 160;
pub(crate) const MAX_ITEMS: usize = 16;
pub(crate) const MAX_ITEM_BYTES: usize = 128;
const MAX_CAMERA_ID_BYTES: usize = 64;
/// Cameras not in the config the watchdog follows at most. Past it the one heard least
/// recently is dropped: anyone who can send an event can make up ids, and must not grow the
/// watchdog, nor crowd out the configured cameras, which are always followed.
pub const MAX_UNKNOWN_CAMERAS: usize = 1_024;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CameraError {
    #[error("not valid JSON for a camera event: {0}")]
    Json(String),
    #[error("camera_id is empty or longer than {MAX_CAMERA_ID_BYTES} bytes")]
    BadCamera,
    #[error("topic {0:?} is not an ONVIF topic such as tns1:RuleEngine/LineDetector/Crossed")]
    BadTopic(String),
    #[error("source or data has more than {MAX_ITEMS} items or an item longer than {MAX_ITEM_BYTES} bytes")]
    TooManyItems,
    #[error("time is missing or 0")]
    NoTime,
}

impl CameraError {
    pub fn reason(&self) -> &'static str {
        match self {
            CameraError::Json(_) => "json",
            CameraError::BadCamera => "bad_camera",
            CameraError::BadTopic(_) => "bad_topic",
            CameraError::TooManyItems => "too_many_items",
            CameraError::NoTime => "no_time",
        }
    }
}

/// A message from a camera: an analytic event or a heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub enum CameraMessage {
    Event(CameraEvent),
    Heartbeat { camera: String, seen_ms: u64 },
}

impl CameraMessage {
    pub fn camera(&self) -> &str {
        match self {
            CameraMessage::Event(e) => &e.camera,
            CameraMessage::Heartbeat { camera, .. } => camera,
        }
    }
}

#[derive(Deserialize)]
struct Raw {
    camera_id: String,
    topic: String,
    time: u64,
    #[serde(default)]
    source: BTreeMap<String, String>,
    #[serde(default)]
    data: BTreeMap<String, String>,
}

/// `prefix:Segment/Segment/...`: a namespace prefix, then path segments of letters, digits and
/// underscores. ONVIF's own topics use `tns1:`; vendors add their own prefixes.
pub(crate) fn is_onvif_topic(t: &str) -> bool {
    let Some((prefix, path)) = t.split_once(':') else { return false };
    let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    t.len() <= MAX_TOPIC_BYTES && word(prefix) && path.split('/').all(word)
}

fn items(map: BTreeMap<String, String>) -> Result<Vec<(String, String)>, CameraError> {
    if map.len() > MAX_ITEMS || map.iter().any(|(k, v)| k.len() > MAX_ITEM_BYTES || v.len() > MAX_ITEM_BYTES) {
        return Err(CameraError::TooManyItems);
    }
    Ok(map.into_iter().collect())
}

pub fn decode_one(json: &str) -> Result<CameraMessage, CameraError> {
    let raw: Raw = serde_json::from_str(json).map_err(|e| CameraError::Json(e.to_string()))?;
    if raw.camera_id.is_empty() || raw.camera_id.len() > MAX_CAMERA_ID_BYTES {
        return Err(CameraError::BadCamera);
    }
    if raw.time == 0 {
        return Err(CameraError::NoTime);
    }
    if raw.topic == HEARTBEAT_TOPIC {
        return Ok(CameraMessage::Heartbeat { camera: raw.camera_id, seen_ms: raw.time });
    }
    if !is_onvif_topic(&raw.topic) {
        return Err(CameraError::BadTopic(raw.topic.chars().take(MAX_TOPIC_BYTES).collect()));
    }
    Ok(CameraMessage::Event(CameraEvent {
        camera: raw.camera_id,
        topic: raw.topic,
        seen_ms: raw.time,
        source: items(raw.source)?,
        data: items(raw.data)?,
    }))
}

/// Whether an event says the camera lost its video signal (ONVIF `VideoSource/SignalLoss` with
/// `State` true).
pub fn is_signal_loss(e: &CameraEvent) -> bool {
    e.topic.ends_with("VideoSource/SignalLoss")
        && e.data.iter().any(|(k, v)| k == "State" && v.eq_ignore_ascii_case("true"))
}

/// A change in a camera's health, reported once per change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthChange {
    Offline { camera: String, last_seen_ms: u64, silent_ms: u64 },
    Online { camera: String, silent_ms: u64 },
}

impl HealthChange {
    pub fn camera(&self) -> &str {
        match self {
            HealthChange::Offline { camera, .. } | HealthChange::Online { camera, .. } => camera,
        }
    }
}

struct Watched {
    interval_ms: u64,
    last_seen_ms: u64,
    offline: bool,
}

/// The camera-silence watchdog, without I/O: feed it signs of life and ticks of the clock, and
/// it says which cameras went offline (one alert per outage) or came back.
pub struct CameraHealth {
    configured: BTreeMap<String, Watched>,
    unknown: RecentMap<String, Watched>,
    default_interval_ms: u64,
}

impl CameraHealth {
    /// `configured` cameras are expected from the start: one that never speaks goes offline
    /// after its interval. Cameras not in the list are followed from their first message with
    /// `default_interval_ms`.
    pub fn new(configured: impl IntoIterator<Item = (String, u64)>, default_interval_ms: u64, now_ms: u64) -> Self {
        let configured = configured
            .into_iter()
            .map(|(id, interval_ms)| (id, Watched { interval_ms, last_seen_ms: now_ms, offline: false }))
            .collect();
        CameraHealth { configured, unknown: RecentMap::new(MAX_UNKNOWN_CAMERAS), default_interval_ms }
    }

    /// The camera's state: a configured camera's, or an unknown one's (made if new, which may
    /// drop the unknown camera heard least recently).
    fn watched(&mut self, camera: &str, now_ms: u64) -> &mut Watched {
        if self.configured.contains_key(camera) {
            return self.configured.get_mut(camera).expect("just checked");
        }
        let interval_ms = self.default_interval_ms;
        self.unknown
            .get_or_insert_with(camera.to_string(), || Watched { interval_ms, last_seen_ms: now_ms, offline: false })
            .0
    }

    /// A message arrived from `camera` at `now_ms` (our clock, not the camera's: camera clocks
    /// drift and the watchdog is about what we heard when).
    pub fn seen(&mut self, camera: &str, now_ms: u64) -> Option<HealthChange> {
        let w = self.watched(camera, now_ms);
        let silent_ms = now_ms.saturating_sub(w.last_seen_ms);
        w.last_seen_ms = w.last_seen_ms.max(now_ms);
        if w.offline {
            w.offline = false;
            return Some(HealthChange::Online { camera: camera.to_string(), silent_ms });
        }
        None
    }

    /// `camera` cannot be reached (its ONVIF subscription could not be created or renewed): it
    /// is offline now, without waiting out its interval. `None` if it was already reported
    /// offline, so an outage seen both by the watchdog and by the subscriber alerts once.
    pub fn lost(&mut self, camera: &str, now_ms: u64) -> Option<HealthChange> {
        let w = self.watched(camera, now_ms);
        if w.offline {
            return None;
        }
        w.offline = true;
        Some(HealthChange::Offline {
            camera: camera.to_string(),
            last_seen_ms: w.last_seen_ms,
            silent_ms: now_ms.saturating_sub(w.last_seen_ms),
        })
    }

    /// Cameras silent past their interval that were not already reported.
    pub fn tick(&mut self, now_ms: u64) -> Vec<HealthChange> {
        let mut out: Vec<HealthChange> = self
            .configured
            .iter_mut()
            .chain(self.unknown.iter_mut())
            .filter(|(_, w)| !w.offline && now_ms.saturating_sub(w.last_seen_ms) > w.interval_ms)
            .map(|(id, w)| {
                w.offline = true;
                HealthChange::Offline {
                    camera: id.clone(),
                    last_seen_ms: w.last_seen_ms,
                    silent_ms: now_ms - w.last_seen_ms,
                }
            })
            .collect();
        out.sort_by(|a, b| a.camera().cmp(b.camera()));
        out
    }

    pub fn offline_count(&self) -> usize {
        self.configured.values().chain(self.unknown.iter().map(|(_, w)| w)).filter(|w| w.offline).count()
    }

    /// Cameras followed: the configured ones and the unknown ones kept.
    pub fn followed(&self) -> usize {
        self.configured.len() + self.unknown.len()
    }

    /// The shortest interval, so the caller knows how often to tick.
    pub fn min_interval_ms(&self) -> u64 {
        self.configured
            .values()
            .map(|w| w.interval_ms)
            .min()
            .unwrap_or(self.default_interval_ms)
            .min(self.default_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_events_and_heartbeats() {
        let e = decode_one(r#"{"camera_id":"cam-17","topic":"tns1:RuleEngine/LineDetector/Crossed","time":5,"source":{"Rule":"line1"},"data":{"ObjectId":"12"}}"#).unwrap();
        match e {
            CameraMessage::Event(ev) => {
                assert_eq!(ev.topic, "tns1:RuleEngine/LineDetector/Crossed");
                assert_eq!(ev.source, vec![("Rule".to_string(), "line1".to_string())]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decode_one(r#"{"camera_id":"cam-17","topic":"heartbeat","time":5}"#).unwrap(),
            CameraMessage::Heartbeat { camera: "cam-17".into(), seen_ms: 5 }
        );
        assert_eq!(decode_one(r#"{"camera_id":"c","topic":"RuleEngine","time":5}"#).unwrap_err().reason(), "bad_topic");
        assert_eq!(decode_one(r#"{"camera_id":"c","topic":"tns1:A//B","time":5}"#).unwrap_err().reason(), "bad_topic");
        assert_eq!(decode_one(r#"{"camera_id":"","topic":"heartbeat","time":5}"#).unwrap_err().reason(), "bad_camera");
        assert_eq!(decode_one(r#"{"camera_id":"c","topic":"heartbeat","time":0}"#).unwrap_err().reason(), "no_time");
    }

    #[test]
    fn signal_loss_is_recognised() {
        let CameraMessage::Event(e) =
            decode_one(r#"{"camera_id":"c","topic":"tns1:VideoSource/SignalLoss","time":5,"data":{"State":"true"}}"#)
                .unwrap()
        else {
            panic!()
        };
        assert!(is_signal_loss(&e));
    }

    #[test]
    fn a_silent_camera_goes_offline_once_and_comes_back() {
        let mut h = CameraHealth::new([("cam-1".to_string(), 30_000)], 60_000, 0);
        assert!(h.tick(30_000).is_empty(), "exactly at the interval is not yet silent");
        let off = h.tick(30_001);
        assert_eq!(off, vec![HealthChange::Offline { camera: "cam-1".into(), last_seen_ms: 0, silent_ms: 30_001 }]);
        assert!(h.tick(90_000).is_empty(), "one alert per outage");
        assert_eq!(h.offline_count(), 1);
        assert_eq!(h.seen("cam-1", 100_000), Some(HealthChange::Online { camera: "cam-1".into(), silent_ms: 100_000 }));
        assert!(h.tick(120_000).is_empty());
        assert_eq!(h.tick(130_001).len(), 1, "a second outage alerts again");
    }

    /// Thousands of made-up camera ids neither grow the watchdog past its cap nor crowd out
    /// the configured camera, which still goes offline when silent and comes back.
    #[test]
    fn made_up_camera_ids_never_crowd_out_the_configured_ones() {
        let mut h = CameraHealth::new([("cam-gate".to_string(), 30_000)], 60_000, 0);
        for i in 0..10_000 {
            assert_eq!(h.seen(&format!("fake-{i}"), 1_000), None);
        }
        assert_eq!(h.followed(), 1 + MAX_UNKNOWN_CAMERAS);
        let off = h.tick(30_001);
        assert_eq!(off, vec![HealthChange::Offline { camera: "cam-gate".into(), last_seen_ms: 0, silent_ms: 30_001 }]);
        assert!(matches!(h.seen("cam-gate", 31_000), Some(HealthChange::Online { .. })));
        // The newest made-up ids are the ones kept, and they go offline in their turn.
        let off = h.tick(61_002);
        let fakes: Vec<u32> = off.iter().filter_map(|c| c.camera().strip_prefix("fake-")?.parse().ok()).collect();
        assert_eq!(fakes.len(), MAX_UNKNOWN_CAMERAS);
        assert!(fakes.iter().all(|&n| n >= 10_000 - MAX_UNKNOWN_CAMERAS as u32), "{fakes:?}");
    }

    #[test]
    fn a_lost_camera_is_offline_once_whoever_notices() {
        let mut h = CameraHealth::new([("cam-1".to_string(), 30_000)], 60_000, 0);
        h.seen("cam-1", 1_000);
        assert_eq!(
            h.lost("cam-1", 5_000),
            Some(HealthChange::Offline { camera: "cam-1".into(), last_seen_ms: 1_000, silent_ms: 4_000 })
        );
        assert_eq!(h.lost("cam-1", 6_000), None, "one alert per outage");
        assert!(h.tick(100_000).is_empty(), "the watchdog does not report it again");
        assert!(matches!(h.seen("cam-1", 101_000), Some(HealthChange::Online { .. })));
        assert!(h.lost("cam-1", 102_000).is_some(), "a new outage alerts again");
    }

    #[test]
    fn unknown_cameras_are_followed_from_their_first_message() {
        let mut h = CameraHealth::new([], 10_000, 0);
        assert!(h.tick(50_000).is_empty());
        h.seen("cam-x", 50_000);
        assert!(h.tick(60_000).is_empty());
        assert_eq!(h.tick(60_001).len(), 1);
    }

    proptest! {
        #[test]
        fn garbage_never_panics(s in ".{0,300}") {
            let _ = decode_one(&s);
        }
    }
}
