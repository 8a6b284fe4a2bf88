//! The standard's JSON objects (GA/T 1400.4) as devices send them, decoded with bounds.
//!
//! Devices differ in small ways, and this module accepts the variants known from the field:
//! numbers sent as strings and strings sent as numbers (`"LaneNo": "2"`, `"PlateColor": 2`),
//! `HasPlate` as `"1"`, `1` or `true`, the register body's object named `RegisterObject` or
//! `Register`, and `KeepaliveObject` or `KeepAliveObject`. Unknown fields are ignored.
//!
//! Objects describing people never get through: `PersonObject` and `FaceObject` bodies are
//! refused whole by the listener, and a vehicle carrying a person list, a face list or an
//! image of a face or a person (image types 04, 05, 10 and 11) is refused here.

use super::time;
use crate::feeds::checkpoint::{MAX_FIELD_BYTES, MAX_PLATE_CHARS};
use crate::records::{PlateRead, VehicleRead};
use ::time::UtcOffset;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Most objects in one list.
pub const MAX_OBJECTS: usize = 1_000;
/// Most images attached to one object.
const MAX_IMAGES: usize = 16;
/// Longest object or device id (the standard's ids are 20 to 48 digits).
pub const MAX_ID_BYTES: usize = 64;

/// GA/T 1400.4's `StatusCode` values this node answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    OtherError = 1,
    DeviceBusy = 2,
    InvalidOperation = 4,
    InvalidJsonFormat = 7,
    InvalidJsonContent = 8,
}

/// Why one object was refused: the status to answer, a metrics label, and words for the device.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub status: Status,
    pub reason: &'static str,
    pub message: String,
}

impl Refusal {
    fn content(reason: &'static str, message: impl Into<String>) -> Refusal {
        Refusal { status: Status::InvalidJsonContent, reason, message: message.into() }
    }

    pub fn people(reason: &'static str, message: impl Into<String>) -> Refusal {
        Refusal { status: Status::InvalidOperation, reason, message: message.into() }
    }
}

/// Image types that show people: driver's and front passenger's face (04, 05), person (10),
/// face (11).
const PEOPLE_IMAGE_TYPES: &[&str] = &["04", "05", "10", "11"];

/// A JSON scalar as devices send it: string, number or boolean. Deserialized by hand rather
/// than as an untagged enum, which would buffer every field first (a third of the decode).
enum Scalar<'a> {
    Str(Cow<'a, str>),
    Int(i128),
    Float(f64),
    Bool(bool),
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, a number or a boolean")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Int(v.into()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Int(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Bool(v))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl Scalar<'_> {
    fn text(&self) -> Cow<'_, str> {
        match self {
            Scalar::Str(s) => Cow::Borrowed(s.trim()),
            Scalar::Int(n) => Cow::Owned(n.to_string()),
            Scalar::Float(n) => Cow::Owned(n.to_string()),
            Scalar::Bool(b) => Cow::Borrowed(if *b { "1" } else { "0" }),
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Scalar::Str(s) => s.trim().parse().ok(),
            Scalar::Int(n) => Some(*n as f64),
            Scalar::Float(n) => Some(*n),
            Scalar::Bool(_) => None,
        }
    }
}

/// A vehicle object: `MotorVehicleObject` or `NonMotorVehicleObject`, only the fields kept.
#[derive(Deserialize)]
#[allow(non_snake_case)]
struct RawVehicle<'a> {
    #[serde(borrow, alias = "NonMotorVehicleID")]
    MotorVehicleID: Option<Scalar<'a>>,
    #[serde(borrow)]
    DeviceID: Option<Scalar<'a>>,
    #[serde(borrow)]
    TollgateID: Option<Scalar<'a>>,
    #[serde(borrow)]
    LaneNo: Option<Scalar<'a>>,
    #[serde(borrow)]
    HasPlate: Option<Scalar<'a>>,
    #[serde(borrow)]
    PlateNo: Option<Scalar<'a>>,
    #[serde(borrow)]
    PlateClass: Option<Scalar<'a>>,
    #[serde(borrow)]
    PlateColor: Option<Scalar<'a>>,
    #[serde(borrow)]
    PlateReliability: Option<Scalar<'a>>,
    #[serde(borrow)]
    Direction: Option<Scalar<'a>>,
    #[serde(borrow)]
    VehicleClass: Option<Scalar<'a>>,
    #[serde(borrow)]
    VehicleColor: Option<Scalar<'a>>,
    #[serde(borrow)]
    VehicleBrand: Option<Scalar<'a>>,
    #[serde(borrow)]
    PassTime: Option<Scalar<'a>>,
    #[serde(borrow)]
    MarkTime: Option<Scalar<'a>>,
    #[serde(borrow)]
    AppearTime: Option<Scalar<'a>>,
    #[serde(borrow)]
    SubImageList: Option<SubImageList<'a>>,
    // Nested people, which some vendors attach to a vehicle.
    #[serde(borrow, alias = "PersonListObject")]
    PersonList: Option<&'a RawValue>,
    #[serde(borrow, alias = "FaceListObject")]
    FaceList: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct SubImageList<'a> {
    #[serde(borrow, default)]
    SubImageInfoObject: Vec<SubImage<'a>>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct SubImage<'a> {
    #[serde(borrow)]
    Type: Option<Scalar<'a>>,
    #[serde(borrow)]
    FileSize: Option<Scalar<'a>>,
    /// Base64 image bytes: only its length is looked at.
    #[serde(borrow)]
    Data: Option<&'a RawValue>,
}

/// An image a device declared: its type code and its size in bytes. Counted, never stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSeen {
    pub kind: String,
    pub bytes: u64,
}

/// One decoded vehicle, before the node adds the checkpoint's position.
#[derive(Debug, Clone, PartialEq)]
pub struct Vehicle {
    /// The object's id (`MotorVehicleID` / `NonMotorVehicleID`): its status names it.
    pub id: String,
    pub read: VehicleRead,
    pub tollgate: Option<String>,
    pub images: Vec<ImageSeen>,
}

/// The object's id (its field `id_field`, e.g. `MotorVehicleID`), for its status, even when
/// the rest of it does not decode.
pub fn object_id(raw: &RawValue, id_field: &str) -> String {
    serde_json::from_str::<std::collections::BTreeMap<Cow<'_, str>, &RawValue>>(raw.get())
        .ok()
        .and_then(|fields| serde_json::from_str::<Scalar>(fields.get(id_field)?.get()).ok())
        .map(|s| s.text().chars().take(MAX_ID_BYTES).collect())
        .unwrap_or_default()
}

fn field(v: &Option<Scalar<'_>>, name: &'static str, max: usize) -> Result<Option<String>, Refusal> {
    match v.as_ref().map(Scalar::text) {
        None => Ok(None),
        Some(t) if t.is_empty() => Ok(None),
        Some(t) if t.len() > max => Err(Refusal::content("bad_field", format!("{name} is longer than {max} bytes"))),
        Some(t) => Ok(Some(t.into_owned())),
    }
}

fn is_null_or_empty(raw: &RawValue) -> bool {
    matches!(raw.get().trim(), "null" | "{}" | "[]" | "\"\"")
}

/// Decode one vehicle object. `motor` says which list it came from; `device` is who sent it,
/// the checkpoint of last resort.
pub fn vehicle(raw: &RawValue, motor: bool, device: &str, offset: UtcOffset) -> Result<Vehicle, Refusal> {
    let v: RawVehicle = serde_json::from_str(raw.get())
        .map_err(|e| Refusal::content("bad_object", format!("not a vehicle object: {e}")))?;
    if v.PersonList.is_some_and(|r| !is_null_or_empty(r)) || v.FaceList.is_some_and(|r| !is_null_or_empty(r)) {
        return Err(Refusal::people("person_object", "objects describing people are not accepted"));
    }
    let mut images = Vec::new();
    for image in v.SubImageList.map(|l| l.SubImageInfoObject).unwrap_or_default() {
        if images.len() == MAX_IMAGES {
            return Err(Refusal::content("too_many_images", format!("more than {MAX_IMAGES} images on one object")));
        }
        let kind = image.Type.as_ref().map(|t| format!("{:0>2}", t.text())).unwrap_or_default();
        if PEOPLE_IMAGE_TYPES.contains(&kind.as_str()) {
            return Err(Refusal::people(
                "person_image",
                format!("image type {kind} shows a person or a face; images of people are not accepted"),
            ));
        }
        let declared = image.FileSize.as_ref().and_then(Scalar::number).filter(|n| *n >= 0.0).map(|n| n as u64);
        // Base64 carries three bytes in four characters.
        let carried = image.Data.map(|d| d.get().len().saturating_sub(2) as u64 * 3 / 4);
        images.push(ImageSeen { kind: kind.chars().take(8).collect(), bytes: declared.or(carried).unwrap_or(0) });
    }

    let id = field(&v.MotorVehicleID, "MotorVehicleID", MAX_ID_BYTES)?
        .ok_or_else(|| Refusal::content("no_id", "the object has no MotorVehicleID"))?;
    let has_plate = v.HasPlate.as_ref().map(|h| h.text());
    let plate = field(&v.PlateNo, "PlateNo", 4 * MAX_PLATE_CHARS)?.filter(|_| has_plate.as_deref() != Some("0"));
    // Devices write these for a vehicle they saw but whose plate they could not read.
    let plate = plate.filter(|p| !matches!(p.as_str(), "无车牌" | "无牌" | "未识别" | "车牌" | "-"));
    let Some(plate) = plate else {
        return Err(Refusal::content("no_plate", "no plate number: only vehicles with a plate read are kept"));
    };
    if plate.chars().count() > MAX_PLATE_CHARS {
        return Err(Refusal::content("bad_plate", format!("PlateNo is longer than {MAX_PLATE_CHARS} characters")));
    }
    let time_text = [&v.PassTime, &v.MarkTime, &v.AppearTime].into_iter().find_map(|t| t.as_ref().map(Scalar::text));
    let seen_ms = time_text
        .as_deref()
        .map(|t| {
            time::parse(t, offset)
                .ok_or_else(|| Refusal::content("bad_time", format!("PassTime {t:?} is not yyyyMMddHHmmss")))
        })
        .transpose()?
        .ok_or_else(|| Refusal::content("no_time", "the object has no PassTime"))?;
    let confidence = match v.PlateReliability.as_ref().map(|r| r.number()) {
        None => 0.0,
        Some(Some(c)) if (0.0..=100.0).contains(&c) => c as f32,
        Some(_) => return Err(Refusal::content("bad_field", "PlateReliability is not a number from 0 to 100")),
    };
    let lane = match v.LaneNo.as_ref().map(|l| l.number()) {
        None => None,
        Some(Some(l)) if (0.0..=255.0).contains(&l) => Some(l as u8),
        Some(_) => return Err(Refusal::content("bad_field", "LaneNo is not a number from 0 to 255")),
    };
    let device_id = field(&v.DeviceID, "DeviceID", MAX_ID_BYTES)?;
    let tollgate = field(&v.TollgateID, "TollgateID", MAX_ID_BYTES)?;
    let checkpoint = tollgate.clone().or_else(|| device_id.clone()).unwrap_or_else(|| device.to_string());
    let read = PlateRead {
        plate,
        confidence,
        checkpoint,
        lane,
        direction: field(&v.Direction, "Direction", MAX_FIELD_BYTES)?,
        heading_deg: None,
        make: field(&v.VehicleBrand, "VehicleBrand", MAX_FIELD_BYTES)?,
        seen_ms,
    };
    Ok(Vehicle {
        id,
        read: VehicleRead {
            read,
            motor,
            device: device_id,
            plate_colour: field(&v.PlateColor, "PlateColor", MAX_FIELD_BYTES)?,
            plate_class: field(&v.PlateClass, "PlateClass", MAX_FIELD_BYTES)?,
            vehicle_class: field(&v.VehicleClass, "VehicleClass", MAX_FIELD_BYTES)?,
            vehicle_colour: field(&v.VehicleColor, "VehicleColor", MAX_FIELD_BYTES)?,
            lat: None,
            lon: None,
        },
        tollgate,
        images,
    })
}

/// A list body: `{"<List>": {"<Object>": [ ... ]}}`, its objects left raw so each gets a
/// status of its own. An error is the whole body's refusal. One pass over the body: the
/// objects are read as raw slices on the way, other keys skipped.
pub fn list<'a>(body: &'a [u8], list: &str, object: &str) -> Result<Vec<&'a RawValue>, Refusal> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let found = serde::de::DeserializeSeed::deserialize(Level { key: list, then: Some(object) }, &mut de)
        .and_then(|found| de.end().map(|()| found));
    let found = match found {
        Ok(found) => found,
        Err(e) if e.is_syntax() || e.is_eof() => {
            return Err(Refusal {
                status: Status::InvalidJsonFormat,
                reason: "json",
                message: format!("the body is not JSON: {e}"),
            })
        }
        Err(e) => return Err(Refusal::content("no_list", format!("the body is not a {list}: {e}"))),
    };
    let objects = found.ok_or_else(|| Refusal::content("no_list", format!("the body has no {list}.{object}")))?;
    if objects.len() > MAX_OBJECTS {
        return Err(Refusal::content(
            "too_many",
            format!("{} objects in one body; the limit is {MAX_OBJECTS}", objects.len()),
        ));
    }
    Ok(objects)
}

/// One level of `{"<List>": {"<Object>": [...]}}`: find `key` in a map and read its value,
/// as the next level (`then`) or as the list of raw objects; `None` if the key is absent.
struct Level<'k> {
    key: &'k str,
    then: Option<&'k str>,
}

impl<'de, 'k> serde::de::DeserializeSeed<'de> for Level<'k> {
    type Value = Option<Vec<&'de RawValue>>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, 'k> serde::de::Visitor<'de> for Level<'k> {
    type Value = Option<Vec<&'de RawValue>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "an object with {}", self.key)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key != self.key || found.is_some() {
                map.next_value::<serde::de::IgnoredAny>()?;
                continue;
            }
            found = Some(match self.then {
                Some(next) => map.next_value_seed(Level { key: next, then: None })?,
                None => Some(map.next_value::<Vec<&'de RawValue>>()?),
            });
        }
        Ok(found.flatten())
    }
}

/// The device id in a system body: `{"RegisterObject": {"DeviceID": "..."}}` and the variants
/// named in `objects`.
pub fn device_id(body: &[u8], objects: &[&str]) -> Result<String, Refusal> {
    #[derive(Deserialize)]
    #[allow(non_snake_case)]
    struct Inner<'a> {
        #[serde(borrow)]
        DeviceID: Option<Scalar<'a>>,
    }
    let outer: std::collections::BTreeMap<Cow<'_, str>, &RawValue> =
        serde_json::from_slice(body).map_err(|e| Refusal {
            status: Status::InvalidJsonFormat,
            reason: "json",
            message: format!("the body is not a JSON object: {e}"),
        })?;
    let inner = objects
        .iter()
        .find_map(|o| outer.get(*o))
        .ok_or_else(|| Refusal::content("no_object", format!("the body has no {}", objects[0])))?;
    let inner: Inner = serde_json::from_str(inner.get())
        .map_err(|e| Refusal::content("no_object", format!("{} is not an object: {e}", objects[0])))?;
    field(&inner.DeviceID, "DeviceID", MAX_ID_BYTES)?
        .ok_or_else(|| Refusal::content("no_device", format!("{} has no DeviceID", objects[0])))
}

/// A registered place: a tollgate (`TollgateObject`) or a device (`APEObject`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct Place {
    pub id: String,
    pub name: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub place_code: Option<String>,
}

/// Decode a `TollgateObject` or `APEObject`. (0, 0) is how devices say "position unknown".
pub fn place(raw: &RawValue, tollgate: bool) -> Result<Place, Refusal> {
    #[derive(Deserialize)]
    #[allow(non_snake_case)]
    struct RawPlace<'a> {
        #[serde(borrow)]
        TollgateID: Option<Scalar<'a>>,
        #[serde(borrow)]
        ApeID: Option<Scalar<'a>>,
        #[serde(borrow)]
        Name: Option<Scalar<'a>>,
        #[serde(borrow)]
        Longitude: Option<Scalar<'a>>,
        #[serde(borrow)]
        Latitude: Option<Scalar<'a>>,
        #[serde(borrow)]
        PlaceCode: Option<Scalar<'a>>,
    }
    let what = if tollgate { "TollgateID" } else { "ApeID" };
    let p: RawPlace = serde_json::from_str(raw.get()).map_err(|e| {
        Refusal::content("bad_object", format!("not a {} object: {e}", if tollgate { "tollgate" } else { "APE" }))
    })?;
    let id = field(if tollgate { &p.TollgateID } else { &p.ApeID }, what, MAX_ID_BYTES)?
        .ok_or_else(|| Refusal::content("no_id", format!("no {what}")))?;
    let (lat, lon) = match (p.Latitude.as_ref().and_then(Scalar::number), p.Longitude.as_ref().and_then(Scalar::number))
    {
        (Some(lat), Some(lon)) if lat == 0.0 && lon == 0.0 => (None, None),
        (Some(lat), Some(lon)) if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) => {
            (Some(lat), Some(lon))
        }
        (None, None) => (None, None),
        _ => return Err(Refusal::content("bad_position", "Longitude and Latitude must both be given, in degrees")),
    };
    Ok(Place {
        id,
        name: field(&p.Name, "Name", 4 * MAX_FIELD_BYTES)?,
        lat,
        lon,
        place_code: field(&p.PlaceCode, "PlaceCode", MAX_FIELD_BYTES)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cst() -> UtcOffset {
        super::super::time::parse_offset("+08:00").unwrap()
    }

    /// A motor-vehicle object with the fields of GA/T 1400.4's `MotorVehicleObject`, numbers
    /// as some devices send them (as strings) and an image of the vehicle.
    const MOTOR: &str = r#"{"MotorVehicleListObject":{"MotorVehicleObject":[{
        "MotorVehicleID":"370202000011900000010220261130180000000010200001","InfoKind":1,
        "SourceID":"37020200001190000001022026113018000000001","TollgateID":"37020200001210000001",
        "DeviceID":"37020200001190000001","StorageUrl1":"http://10.0.0.5/a.jpg","LaneNo":"2",
        "HasPlate":"1","PlateClass":"02","PlateColor":"2","PlateNo":"鲁B12345","PlateReliability":"92",
        "Direction":"1","VehicleClass":"K33","VehicleBrand":"12","VehicleColor":"A","Speed":48.5,
        "PassTime":"20261130180000","SafetyBelt":"1",
        "SubImageList":{"SubImageInfoObject":[{"ImageID":"x","EventSort":1,"DeviceID":"37020200001190000001",
            "StoragePath":"","Type":"01","FileFormat":"Jpeg","ShotTime":"20261130180000","Width":1920,
            "Height":1080,"FileSize":"183000","Data":"AAAA"}]}}]}}"#;

    fn first(body: &str) -> Result<Vehicle, Refusal> {
        let raws = list(body.as_bytes(), "MotorVehicleListObject", "MotorVehicleObject").unwrap();
        vehicle(raws[0], true, "sender", cst())
    }

    #[test]
    fn a_standard_motor_vehicle_becomes_a_plate_read() {
        let v = first(MOTOR).unwrap();
        assert_eq!(v.read.read.plate, "鲁B12345");
        assert_eq!(v.read.read.checkpoint, "37020200001210000001");
        assert_eq!(v.read.read.lane, Some(2));
        assert_eq!(v.read.read.confidence, 92.0);
        assert_eq!(v.read.read.seen_ms, 1_796_032_800_000);
        assert_eq!(v.read.read.make.as_deref(), Some("12"));
        assert_eq!(v.read.plate_colour.as_deref(), Some("2"));
        assert_eq!(v.read.vehicle_class.as_deref(), Some("K33"));
        assert_eq!(v.id, "370202000011900000010220261130180000000010200001");
        assert_eq!(v.tollgate.as_deref(), Some("37020200001210000001"));
        assert_eq!(v.images, vec![ImageSeen { kind: "01".into(), bytes: 183_000 }]);
    }

    #[test]
    fn people_are_refused_whatever_way_they_come() {
        for (from, to) in [
            (r#""Type":"01""#, r#""Type":"04""#),
            (r#""Type":"01""#, r#""Type":11"#),
            (r#""SafetyBelt":"1""#, r#""FaceList":{"FaceObject":[{"FaceID":"f"}]}"#),
            (r#""SafetyBelt":"1""#, r#""PersonList":{"PersonObject":[{"PersonID":"p"}]}"#),
        ] {
            let body = MOTOR.replace(from, to);
            let r = first(&body).unwrap_err();
            assert_eq!(r.status, Status::InvalidOperation, "{to}");
            assert!(r.reason.starts_with("person_"), "{to}: {}", r.reason);
        }
        // An empty face list is nobody.
        assert!(first(&MOTOR.replace(r#""SafetyBelt":"1""#, r#""FaceList":null"#)).is_ok());
    }

    #[test]
    fn bad_objects_get_reasons() {
        let cases = [
            (r#""PlateNo":"鲁B12345""#, r#""PlateNo":"无车牌""#, "no_plate"),
            (r#""HasPlate":"1""#, r#""HasPlate":0"#, "no_plate"),
            (r#""PassTime":"20261130180000""#, r#""PassTime":"2026-11-30""#, "bad_time"),
            (r#""PassTime":"20261130180000""#, r#""Other":"x""#, "no_time"),
            (r#""LaneNo":"2""#, r#""LaneNo":"-1""#, "bad_field"),
            (r#""PlateReliability":"92""#, r#""PlateReliability":"high""#, "bad_field"),
            (r#""Direction":"1""#, &format!(r#""Direction":"{}""#, "x".repeat(65)), "bad_field"),
            (r#""MotorVehicleID":"370202000011900000010220261130180000000010200001","#, "", "no_id"),
            (r#""InfoKind":1,"#, r#""InfoKind":1,"LaneNo":[1],"#, "bad_object"),
        ];
        for (from, to, reason) in cases {
            let body = MOTOR.replacen(from, to, 1);
            assert_ne!(body, MOTOR, "{from}");
            assert_eq!(first(&body).unwrap_err().reason, reason, "{to}");
        }
    }

    #[test]
    fn bodies_that_are_not_lists_are_refused_whole() {
        assert_eq!(
            list(b"{", "MotorVehicleListObject", "MotorVehicleObject").unwrap_err().status,
            Status::InvalidJsonFormat
        );
        for body in
            [r#"{}"#, r#"{"MotorVehicleListObject":{}}"#, r#"{"MotorVehicleListObject":{"MotorVehicleObject":{}}}"#]
        {
            let r = list(body.as_bytes(), "MotorVehicleListObject", "MotorVehicleObject").unwrap_err();
            assert_eq!(r.status, Status::InvalidJsonContent, "{body}");
        }
        let many = format!(r#"{{"L":{{"O":[{}]}}}}"#, vec!["{}"; MAX_OBJECTS + 1].join(","));
        assert_eq!(list(many.as_bytes(), "L", "O").unwrap_err().reason, "too_many");
    }

    #[test]
    fn register_body_variants() {
        for body in [r#"{"RegisterObject":{"DeviceID":"3702"}}"#, r#"{"Register":{"DeviceID":3702}}"#] {
            assert_eq!(device_id(body.as_bytes(), &["RegisterObject", "Register"]).unwrap(), "3702");
        }
        let r = device_id(br#"{"RegisterObject":{}}"#, &["RegisterObject", "Register"]).unwrap_err();
        assert_eq!(r.reason, "no_device");
    }

    #[test]
    fn places_keep_positions_and_zero_means_unknown() {
        let raw = |s: &str| serde_json::from_str::<&RawValue>(s).unwrap().to_owned();
        let p =
            place(&raw(r#"{"TollgateID":"t1","Name":"北门","Longitude":"120.38","Latitude":36.07}"#), true).unwrap();
        assert_eq!((p.lat, p.lon, p.name.as_deref()), (Some(36.07), Some(120.38), Some("北门")));
        let p = place(&raw(r#"{"ApeID":"a1","Longitude":0,"Latitude":0}"#), false).unwrap();
        assert_eq!((p.lat, p.lon), (None, None));
        assert_eq!(
            place(&raw(r#"{"TollgateID":"t1","Latitude":95,"Longitude":1}"#), true).unwrap_err().reason,
            "bad_position"
        );
    }

    proptest! {
        #[test]
        fn mutated_bodies_never_panic(pos in 0usize..2000, byte in any::<u8>()) {
            let mut b = MOTOR.as_bytes().to_vec();
            let i = pos % b.len();
            b[i] = byte;
            if let Ok(raws) = list(&b, "MotorVehicleListObject", "MotorVehicleObject") {
                for r in raws {
                    let _ = vehicle(r, true, "d", cst());
                    let _ = object_id(r, "MotorVehicleID");
                }
            }
        }

        #[test]
        fn garbage_never_panics(s in ".{0,300}") {
            let _ = list(s.as_bytes(), "MotorVehicleListObject", "MotorVehicleObject");
            let _ = device_id(s.as_bytes(), &["RegisterObject"]);
        }
    }
}
