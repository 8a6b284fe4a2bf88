//! What the node stores as entry payloads: raw detections, alerts and audit records.
//!
//! These travel through the bincode codec, so no serde attribute that bincode cannot round-trip
//! (`flatten`, `skip_serializing_if`, `tag`, `untagged`) may appear here. They also print as
//! JSON for `yiwang-node export` and the API, with serde's default external enum tagging.

use proto::{codec, CodecError};
use serde::{Deserialize, Serialize};

/// A raw feed detection, kept on site for the retention period and never replicated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Detection {
    Plate(PlateRead),
    Vessel(VesselReport),
    Camera(CameraEvent),
    /// A vehicle from a GA/T 1400 (view library) checkpoint. A variant of its own, added last,
    /// so detections stored before it still decode.
    Vehicle(VehicleRead),
}

/// One plate read at a road checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlateRead {
    /// As the camera read it.
    pub plate: String,
    /// Recognition confidence, 0 to 100.
    pub confidence: f32,
    pub checkpoint: String,
    pub lane: Option<u8>,
    /// Free text from the device ("in", "out", "northbound").
    pub direction: Option<String>,
    /// Direction of travel in degrees, when the device gives one.
    pub heading_deg: Option<f32>,
    pub make: Option<String>,
    /// When the camera saw it, milliseconds since the Unix epoch.
    pub seen_ms: u64,
}

/// A vehicle passing a GA/T 1400 checkpoint: the plate read, plus what the standard says about
/// the vehicle and where the checkpoint stands: the fields of the mapping in docs/feeds.md and
/// no more (the object's own id answers the device but is not kept: every byte here is paid
/// per read, at 5,672 checkpoints). Codes (plate colour and class, vehicle class
/// and colour, direction) are kept as the device sent them: they are the standard's code
/// tables (GA 24.x), which this node does not translate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VehicleRead {
    /// `checkpoint` is the tollgate id, else the device id; `make` is `VehicleBrand`;
    /// `direction` is the direction code; `confidence` is `PlateReliability`, 0 when not given.
    pub read: PlateRead,
    /// `false` for a `NonMotorVehicleObject`.
    pub motor: bool,
    pub device: Option<String>,
    pub plate_colour: Option<String>,
    pub plate_class: Option<String>,
    pub vehicle_class: Option<String>,
    pub vehicle_colour: Option<String>,
    /// The checkpoint's position, from its registered tollgate or device.
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

/// A decoded AIS report as kept in the raw detections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VesselReport {
    pub mmsi: u32,
    pub msg_type: u8,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// Knots.
    pub speed: Option<f32>,
    /// Degrees.
    pub course: Option<f32>,
    pub heading: Option<u16>,
    pub shipname: Option<String>,
    pub received_ms: u64,
    /// The listener (and tag-block source when given) it came from.
    pub source: String,
}

/// An analytic event from a camera, named by its ONVIF topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraEvent {
    pub camera: String,
    pub topic: String,
    pub seen_ms: u64,
    /// ONVIF `Source` simple items (e.g. the rule or video source token).
    pub source: Vec<(String, String)>,
    /// ONVIF `Data` simple items (e.g. `State=true`, `ObjectId=12`).
    pub data: Vec<(String, String)>,
}

pub use crate::rules::watchlist::Subject;

/// An alert raised by a rule at ingest. Self-contained: it carries what it is about rather
/// than pointing at a raw detection, because detections never leave the site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Alert {
    /// A watchlist hit recorded before entries named their authority and legal basis: read
    /// (stored and replicated alerts are decoded by position), never written now.
    WatchlistHitV1 {
        subject: Subject,
        list: String,
        reason: String,
        added_by: String,
        /// Where: the checkpoint id, or the AIS listener.
        place: String,
        seen_ms: u64,
        lat: Option<f64>,
        lon: Option<f64>,
    },
    Fence {
        mmsi: u32,
        shipname: Option<String>,
        /// `warning` (3 nm), `alert` (1 nm) or `recall` (0 nm).
        zone: String,
        previous_zone: String,
        /// Geodesic distance to the nearest edge; `None` when over 3 nm (deep inside a zone).
        distance_m: Option<f64>,
        /// Inside a polygon of the boundary.
        inside: bool,
        lat: f64,
        lon: f64,
        seen_ms: u64,
    },
    CameraOffline {
        camera: String,
        last_seen_ms: u64,
        silent_ms: u64,
    },
    CameraSignalLoss {
        camera: String,
        seen_ms: u64,
    },
    /// An event's current step passed its deadline. About an event, so it does not become an
    /// event of its own.
    Overdue {
        event: proto::EntryId,
        category: String,
        step: String,
        due_ms: u64,
    },
    /// A GA/T 1400 device (checkpoint or lower platform) that stopped keeping alive.
    CheckpointOffline {
        device: String,
        last_seen_ms: u64,
        silent_ms: u64,
    },
    /// A plate or vessel on the city's sanctions lists, with the list version that said so.
    SanctionsHit {
        subject: crate::sanctions::SubjectId,
        /// `red` or `black`.
        list: String,
        name: String,
        authority: String,
        legal_basis: String,
        expires_ms: u64,
        /// The version (raft log index) of the lists this node enforced when it matched.
        list_version: u64,
        /// Where: the checkpoint id, or the AIS listener.
        place: String,
        seen_ms: u64,
        lat: Option<f64>,
        lon: Option<f64>,
    },
    /// A subject seen on the watchlist: the entry that matched (who listed it, who ordered the
    /// listing and under what law, until when) and where it was seen. Appended after the other
    /// variants so stored alerts keep their positions.
    WatchlistHit {
        subject: Subject,
        list: String,
        reason: String,
        added_by: String,
        /// Who ordered the listing and its legal basis; empty only for an entry replicated from
        /// before entries named them.
        authority: String,
        legal_basis: String,
        expires_ms: Option<u64>,
        /// Where: the checkpoint id, or the AIS listener.
        place: String,
        seen_ms: u64,
        lat: Option<f64>,
        lon: Option<f64>,
    },
}

impl Alert {
    /// Short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Alert::WatchlistHit { .. } | Alert::WatchlistHitV1 { .. } => "watchlist_hit",
            Alert::Fence { zone, .. } => match zone.as_str() {
                "warning" => "fence_warning",
                "alert" => "fence_alert",
                _ => "fence_recall",
            },
            Alert::CameraOffline { .. } => "camera_offline",
            Alert::CameraSignalLoss { .. } => "camera_signal_loss",
            Alert::Overdue { .. } => "overdue",
            Alert::CheckpointOffline { .. } => "checkpoint_offline",
            Alert::SanctionsHit { .. } => "sanctions_hit",
        }
    }
}

/// One line of the audit log: who did what, to what, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub at_ms: u64,
    /// A person's or token's identity, or `rule:<name>` for the node's own rules.
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub why: String,
}

/// Encode any record for an entry payload.
pub fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, CodecError> {
    codec::encode(record)
}

/// Decode an entry payload.
pub fn decode<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, CodecError> {
    codec::decode(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_roundtrip_through_the_codec() {
        let d = Detection::Camera(CameraEvent {
            camera: "cam-1".into(),
            topic: "tns1:RuleEngine/LineDetector/Crossed".into(),
            seen_ms: 5,
            source: vec![("Rule".into(), "line1".into())],
            data: vec![],
        });
        assert_eq!(decode::<Detection>(&encode(&d).unwrap()).unwrap(), d);
        let a = Alert::Fence {
            mmsi: 412000001,
            shipname: None,
            zone: "recall".into(),
            previous_zone: "alert".into(),
            distance_m: Some(0.0),
            inside: true,
            lat: 37.0,
            lon: 123.0,
            seen_ms: 9,
        };
        assert_eq!(decode::<Alert>(&encode(&a).unwrap()).unwrap(), a);
        assert_eq!(a.label(), "fence_recall");
    }
}
