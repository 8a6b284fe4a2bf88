//! Road checkpoint detections: plate reads as JSON shaped like the widespread `alpr_group`
//! record (OpenALPR and its successors), plus the checkpoint id, lane and direction.
//!
//! ```json
//! {"data_type": "alpr_group", "best_plate_number": "鲁K12345", "best_confidence": 91.5,
//!  "checkpoint_id": "cp-0412", "lane": 2, "direction": "inbound", "travel_direction": 87.0,
//!  "vehicle": {"make": [{"name": "byd", "confidence": 88.1}]}, "epoch_start": 1764146400000}
//! ```
//!
//! Unknown fields are ignored, as `alpr_group` records carry many this node has no use for.
//! Every decode is bounded: the listener caps the bytes (line or body), and this module caps
//! strings and lists.

use crate::records::PlateRead;
use serde::Deserialize;
use std::borrow::Cow;

/// Longest plate accepted, in characters.
pub const MAX_PLATE_CHARS: usize = 16;
/// Longest checkpoint id, direction or make name, in bytes.
pub const MAX_FIELD_BYTES: usize = 64;
/// Largest JSON line on the TCP feed.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Largest HTTP batch body (a JSON array of records).
pub const MAX_BODY_BYTES: usize = 8 << 20;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CheckpointError {
    #[error("not valid JSON for a plate detection: {0}")]
    Json(String),
    #[error("data_type is {0:?}; expected \"alpr_group\"")]
    WrongType(String),
    #[error("plate {0:?} is empty or longer than {MAX_PLATE_CHARS} characters")]
    BadPlate(String),
    #[error("confidence {0} is outside 0..=100")]
    BadConfidence(f64),
    #[error("{field} is empty or longer than {MAX_FIELD_BYTES} bytes")]
    BadField { field: &'static str },
    #[error("epoch_start is missing or 0")]
    NoTime,
}

impl CheckpointError {
    pub fn reason(&self) -> &'static str {
        match self {
            CheckpointError::Json(_) => "json",
            CheckpointError::WrongType(_) => "wrong_type",
            CheckpointError::BadPlate(_) => "bad_plate",
            CheckpointError::BadConfidence(_) => "bad_confidence",
            CheckpointError::BadField { .. } => "bad_field",
            CheckpointError::NoTime => "no_time",
        }
    }
}

// Strings borrow from the input where they can (no escapes), so a record costs allocations
// only for the fields kept.
#[derive(Deserialize)]
struct AlprGroup<'a> {
    #[serde(borrow)]
    data_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    best_plate_number: Cow<'a, str>,
    best_confidence: f64,
    #[serde(borrow)]
    checkpoint_id: Cow<'a, str>,
    lane: Option<u8>,
    #[serde(borrow)]
    direction: Option<Cow<'a, str>>,
    travel_direction: Option<f64>,
    #[serde(borrow)]
    vehicle: Option<Vehicle<'a>>,
    epoch_start: u64,
}

#[derive(Deserialize)]
struct Vehicle<'a> {
    #[serde(borrow, default, deserialize_with = "at_most_16")]
    make: Vec<Candidate<'a>>,
}

#[derive(Deserialize)]
struct Candidate<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    confidence: f64,
}

/// Refuse candidate lists longer than 16 while parsing, before they are built.
fn at_most_16<'de: 'a, 'a, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Candidate<'a>>, D::Error> {
    struct V<'a>(std::marker::PhantomData<&'a ()>);
    impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
        type Value = Vec<Candidate<'a>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of at most 16 candidates")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(c) = seq.next_element()? {
                if out.len() == 16 {
                    return Err(serde::de::Error::custom("more than 16 candidates"));
                }
                out.push(c);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V(std::marker::PhantomData))
}

fn checked_field(value: Cow<'_, str>, field: &'static str) -> Result<String, CheckpointError> {
    if value.is_empty() || value.len() > MAX_FIELD_BYTES {
        return Err(CheckpointError::BadField { field });
    }
    Ok(value.into_owned())
}

impl AlprGroup<'_> {
    fn validate(self) -> Result<PlateRead, CheckpointError> {
        if let Some(t) = self.data_type.filter(|t| t != "alpr_group") {
            return Err(CheckpointError::WrongType(t.chars().take(MAX_FIELD_BYTES).collect()));
        }
        let plate = self.best_plate_number.trim().to_string();
        if plate.is_empty() || plate.chars().count() > MAX_PLATE_CHARS {
            return Err(CheckpointError::BadPlate(plate.chars().take(MAX_PLATE_CHARS + 1).collect()));
        }
        if !(0.0..=100.0).contains(&self.best_confidence) {
            return Err(CheckpointError::BadConfidence(self.best_confidence));
        }
        if self.epoch_start == 0 {
            return Err(CheckpointError::NoTime);
        }
        let heading_deg = match self.travel_direction {
            Some(d) if (0.0..=360.0).contains(&d) => Some(d as f32),
            Some(_) => return Err(CheckpointError::BadField { field: "travel_direction" }),
            None => None,
        };
        let make = self
            .vehicle
            .and_then(|v| v.make.into_iter().max_by(|a, b| a.confidence.total_cmp(&b.confidence)))
            .map(|c| checked_field(c.name, "vehicle.make"))
            .transpose()?;
        Ok(PlateRead {
            plate,
            confidence: self.best_confidence as f32,
            checkpoint: checked_field(self.checkpoint_id, "checkpoint_id")?,
            lane: self.lane,
            direction: self.direction.map(|d| checked_field(d, "direction")).transpose()?,
            heading_deg,
            make,
            seen_ms: self.epoch_start,
        })
    }
}

/// Decode one detection (one TCP line). The caller has capped the length.
pub fn decode_one(json: &str) -> Result<PlateRead, CheckpointError> {
    let raw: AlprGroup = serde_json::from_str(json).map_err(|e| CheckpointError::Json(e.to_string()))?;
    raw.validate()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GOOD: &str = r#"{"data_type":"alpr_group","best_plate_number":"鲁K12345","best_confidence":91.5,"checkpoint_id":"cp-0412","lane":2,"direction":"inbound","travel_direction":87.0,"vehicle":{"make":[{"name":"toyota","confidence":10.0},{"name":"byd","confidence":88.1}]},"epoch_start":1764146400000,"uuids":["x"],"best_plate":{"plate":"x"}}"#;

    #[test]
    fn decodes_an_alpr_group_record() {
        let p = decode_one(GOOD).unwrap();
        assert_eq!(p.plate, "鲁K12345");
        assert_eq!(p.checkpoint, "cp-0412");
        assert_eq!(p.lane, Some(2));
        assert_eq!(p.make.as_deref(), Some("byd"));
        assert_eq!(p.heading_deg, Some(87.0));
        assert_eq!(p.seen_ms, 1764146400000);
    }

    #[test]
    fn bad_records_get_reasons() {
        let cases = [
            ("{", "json"),
            (
                r#"{"best_plate_number":"A","best_confidence":50,"checkpoint_id":"c","epoch_start":1,"data_type":"alpr_results"}"#,
                "wrong_type",
            ),
            (r#"{"best_plate_number":"","best_confidence":50,"checkpoint_id":"c","epoch_start":1}"#, "bad_plate"),
            (
                r#"{"best_plate_number":"ABCDEFGHIJKLMNOPQ","best_confidence":50,"checkpoint_id":"c","epoch_start":1}"#,
                "bad_plate",
            ),
            (
                r#"{"best_plate_number":"A1","best_confidence":150,"checkpoint_id":"c","epoch_start":1}"#,
                "bad_confidence",
            ),
            (r#"{"best_plate_number":"A1","best_confidence":50,"checkpoint_id":"","epoch_start":1}"#, "bad_field"),
            (r#"{"best_plate_number":"A1","best_confidence":50,"checkpoint_id":"c","epoch_start":0}"#, "no_time"),
            (r#"{"best_plate_number":"A1","best_confidence":50,"checkpoint_id":"c"}"#, "json"),
        ];
        for (json, reason) in cases {
            assert_eq!(decode_one(json).unwrap_err().reason(), reason, "{json}");
        }
    }

    #[test]
    fn candidate_lists_are_capped() {
        let makes = vec![r#"{"name":"m","confidence":1}"#; 17].join(",");
        let json = format!(
            r#"{{"best_plate_number":"A1","best_confidence":50,"checkpoint_id":"c","epoch_start":1,"vehicle":{{"make":[{makes}]}}}}"#
        );
        assert_eq!(decode_one(&json).unwrap_err().reason(), "json");
    }

    proptest! {
        #[test]
        fn garbage_never_panics(s in ".{0,300}") {
            let _ = decode_one(&s);
        }

        #[test]
        fn mutated_records_never_panic(pos in 0usize..400, byte in any::<u8>()) {
            let mut b = GOOD.as_bytes().to_vec();
            let i = pos % b.len();
            b[i] = byte;
            if let Ok(s) = std::str::from_utf8(&b) { let _ = decode_one(s); }
        }
    }
}
