//! gpsd-compatible JSON (`"class":"AIS"`), in gpsd's field names and order.
//!
//! Unscaled output (`"scaled":false`) is what gpsd's daemon sends: raw air-interface units.
//! Scaled output is what `gpsdecode -j` prints by default: degrees, knots, metres, with the
//! sentinel codes spelled out ("nan", "fastleft", "fastright", "fast", "high").
//!
//! Deliberate differences from gpsd: binary payloads (`data` of types 6, 8, 17) are not
//! printed, nor the ERI `shiptype_text` of inland type 8; scaled type 17 and 23 positions use
//! 4 decimals (gpsd rounds type 17 to 0.1° and quotes type 23's); `turn` is a signed number.
//! One field list feeds both the text writer and the `serde_json::Value` builder, so the two
//! cannot drift apart.

use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

use super::legends::*;
use super::messages::*;

/// Builds the gpsd JSON object of `msg` (without `device`).
pub fn to_gpsd_json(msg: &AisMessage, scaled: bool) -> Value {
    let mut sink = ValueSink(Map::new());
    emit(&mut sink, msg, scaled, None);
    Value::Object(sink.0)
}

/// Appends the gpsd JSON text of `msg` to `out` (no newline), with `"device"` when given.
/// Field order is gpsd's.
pub fn write_gpsd_json(msg: &AisMessage, scaled: bool, device: Option<&str>, out: &mut String) {
    let mut sink = TextSink { out, first: true };
    sink.out.push('{');
    emit(&mut sink, msg, scaled, device);
    sink.out.push('}');
}

/// Where fields go. `f` rounds to `decimals` places, as gpsd's printf formats do.
trait Sink {
    fn u(&mut self, key: &'static str, v: u64);
    fn i(&mut self, key: &'static str, v: i64);
    fn f(&mut self, key: &'static str, v: f64, decimals: usize);
    fn b(&mut self, key: &'static str, v: bool);
    fn s(&mut self, key: &'static str, v: &str);
}

struct ValueSink(Map<String, Value>);

impl Sink for ValueSink {
    fn u(&mut self, key: &'static str, v: u64) {
        self.0.insert(key.into(), Value::from(v));
    }
    fn i(&mut self, key: &'static str, v: i64) {
        self.0.insert(key.into(), Value::from(v));
    }
    fn f(&mut self, key: &'static str, v: f64, decimals: usize) {
        let p = 10f64.powi(decimals as i32);
        let r = (v * p).round() / p;
        let n = Number::from_f64(r).map_or(Value::Null, Value::Number);
        self.0.insert(key.into(), n);
    }
    fn b(&mut self, key: &'static str, v: bool) {
        self.0.insert(key.into(), Value::Bool(v));
    }
    fn s(&mut self, key: &'static str, v: &str) {
        self.0.insert(key.into(), Value::String(v.to_owned()));
    }
}

struct TextSink<'a> {
    out: &'a mut String,
    first: bool,
}

impl TextSink<'_> {
    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }
}

impl Sink for TextSink<'_> {
    fn u(&mut self, key: &'static str, v: u64) {
        self.key(key);
        let _ = write!(self.out, "{v}");
    }
    fn i(&mut self, key: &'static str, v: i64) {
        self.key(key);
        let _ = write!(self.out, "{v}");
    }
    fn f(&mut self, key: &'static str, v: f64, decimals: usize) {
        self.key(key);
        if v.is_finite() {
            let _ = write!(self.out, "{v:.decimals$}");
        } else {
            self.out.push_str("null");
        }
    }
    fn b(&mut self, key: &'static str, v: bool) {
        self.key(key);
        self.out.push_str(if v { "true" } else { "false" });
    }
    fn s(&mut self, key: &'static str, v: &str) {
        self.key(key);
        push_json_string(self.out, v);
    }
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

const DEG_1E4_MIN: f64 = 600_000.0;
const DEG_1E1_MIN: f64 = 600.0;

/// Rate of turn in °/min from the raw field: ROT = (raw / 4.733)², keeping the sign.
fn turn_deg_per_min(raw: i8) -> f64 {
    let r = raw as f64 / 4.733;
    (r * r).copysign(raw as f64)
}

fn emit(k: &mut dyn Sink, msg: &AisMessage, scaled: bool, device: Option<&str>) {
    let h = msg.report.header();
    k.s("class", "AIS");
    if let Some(d) = device.filter(|d| !d.is_empty()) {
        k.s("device", d);
    }
    k.u("type", h.msg_type as u64);
    k.u("repeat", h.repeat as u64);
    k.u("mmsi", h.mmsi as u64);
    k.b("scaled", scaled);

    // lat/lon in 1/10000 minute
    let latlon = |k: &mut dyn Sink, key: &'static str, v: i32| {
        if scaled {
            k.f(key, v as f64 / DEG_1E4_MIN, 7);
        } else {
            k.i(key, v as i64);
        }
    };
    // lat/lon in 1/10 minute (types 17, 23, 27)
    let latlon_coarse = |k: &mut dyn Sink, key: &'static str, v: i32| {
        if scaled {
            k.f(key, v as f64 / DEG_1E1_MIN, 4);
        } else {
            k.i(key, v as i64);
        }
    };
    let tenths = |k: &mut dyn Sink, key: &'static str, v: u64| {
        if scaled {
            k.f(key, v as f64 / 10.0, 1);
        } else {
            k.u(key, v);
        }
    };

    match &msg.report {
        Report::PositionA(m) => {
            k.u("status", m.status as u64);
            k.s("status_text", nav_status_text(m.status));
            if scaled {
                match m.turn {
                    -128 => k.s("turn", "nan"),
                    -127 => k.s("turn", "fastleft"),
                    127 => k.s("turn", "fastright"),
                    t => k.f("turn", turn_deg_per_min(t), 2),
                }
                match m.speed {
                    SPEED_NOT_AVAILABLE => k.s("speed", "nan"),
                    1022 => k.s("speed", "fast"),
                    v => k.f("speed", v as f64 / 10.0, 1),
                }
            } else {
                k.i("turn", m.turn as i64);
                k.u("speed", m.speed as u64);
            }
            k.b("accuracy", m.accuracy);
            latlon(k, "lon", m.lon);
            latlon(k, "lat", m.lat);
            tenths(k, "course", m.course as u64);
            k.u("heading", m.heading as u64);
            k.u("second", m.second as u64);
            k.u("maneuver", m.maneuver as u64);
            k.b("raim", m.raim);
            k.u("radio", m.radio as u64);
        }
        Report::BaseStation(m) => {
            let ts =
                format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", m.year, m.month, m.day, m.hour, m.minute, m.second);
            k.s("timestamp", &ts);
            k.b("accuracy", m.accuracy);
            latlon(k, "lon", m.lon);
            latlon(k, "lat", m.lat);
            k.u("epfd", m.epfd as u64);
            k.s("epfd_text", epfd_text(m.epfd));
            k.b("raim", m.raim);
            k.u("radio", m.radio as u64);
        }
        Report::StaticVoyage(m) => {
            k.u("imo", m.imo as u64);
            k.u("ais_version", m.ais_version as u64);
            k.s("callsign", &m.callsign);
            k.s("shipname", &m.shipname);
            k.u("shiptype", m.shiptype as u64);
            k.s("shiptype_text", shiptype_text(m.shiptype));
            k.u("to_bow", m.to_bow as u64);
            k.u("to_stern", m.to_stern as u64);
            k.u("to_port", m.to_port as u64);
            k.u("to_starboard", m.to_starboard as u64);
            k.u("epfd", m.epfd as u64);
            k.s("epfd_text", epfd_text(m.epfd));
            let eta = format!("{:02}-{:02}T{:02}:{:02}Z", m.month, m.day, m.hour, m.minute);
            k.s("eta", &eta);
            tenths(k, "draught", m.draught as u64);
            k.s("destination", &m.destination);
            k.u("dte", m.dte as u64);
        }
        Report::Binary(m) => {
            if let (Some(seqno), Some(dest), Some(rt)) = (m.seqno, m.dest_mmsi, m.retransmit) {
                k.u("seqno", seqno as u64);
                k.u("dest_mmsi", dest as u64);
                k.b("retransmit", rt);
            }
            k.u("dac", m.dac as u64);
            k.u("fid", m.fid as u64);
        }
        Report::InlandStatic(m) => {
            k.u("dac", 200);
            k.u("fid", 10);
            k.s("vin", &m.vin);
            k.u("length", m.length as u64);
            k.u("beam", m.beam as u64);
            k.u("shiptype", m.shiptype as u64);
            k.u("hazard", m.hazard as u64);
            k.s("hazard_text", inland_hazard_text(m.hazard));
            k.u("draught", m.draught as u64);
            k.u("loaded", m.loaded as u64);
            k.s("loaded_text", inland_loaded_text(m.loaded));
            k.b("speed_q", m.speed_q);
            k.b("course_q", m.course_q);
            k.b("heading_q", m.heading_q);
        }
        Report::SarAircraft(m) => {
            if scaled {
                match m.alt {
                    4095 => k.s("alt", "nan"),
                    4094 => k.s("alt", "high"),
                    a => k.u("alt", a as u64),
                }
                match m.speed {
                    1023 => k.s("speed", "nan"),
                    1022 => k.s("speed", "fast"),
                    v => k.u("speed", v as u64),
                }
            } else {
                k.u("alt", m.alt as u64);
                k.u("speed", m.speed as u64);
            }
            k.b("accuracy", m.accuracy);
            latlon(k, "lon", m.lon);
            latlon(k, "lat", m.lat);
            tenths(k, "course", m.course as u64);
            k.u("second", m.second as u64);
            k.u("regional", m.regional as u64);
            k.u("dte", m.dte as u64);
            k.b("raim", m.raim);
            k.u("radio", m.radio as u64);
        }
        Report::GnssBroadcast(m) => {
            latlon_coarse(k, "lon", m.lon);
            latlon_coarse(k, "lat", m.lat);
        }
        Report::PositionB(m) => {
            k.u("reserved", m.reserved as u64);
            tenths(k, "speed", m.speed as u64);
            k.b("accuracy", m.accuracy);
            latlon(k, "lon", m.lon);
            latlon(k, "lat", m.lat);
            tenths(k, "course", m.course as u64);
            k.u("heading", m.heading as u64);
            k.u("second", m.second as u64);
            k.u("regional", m.regional as u64);
            k.b("cs", m.cs);
            k.b("display", m.display);
            k.b("dsc", m.dsc);
            k.b("band", m.band);
            k.b("msg22", m.msg22);
            k.b("raim", m.raim);
            k.u("radio", m.radio as u64);
        }
        Report::PositionBExtended(m) => {
            k.u("reserved", m.reserved as u64);
            tenths(k, "speed", m.speed as u64);
            k.b("accuracy", m.accuracy);
            latlon(k, "lon", m.lon);
            latlon(k, "lat", m.lat);
            tenths(k, "course", m.course as u64);
            k.u("heading", m.heading as u64);
            k.u("second", m.second as u64);
            k.u("regional", m.regional as u64);
            k.s("shipname", &m.shipname);
            k.u("shiptype", m.shiptype as u64);
            k.s("shiptype_text", shiptype_text(m.shiptype));
            k.u("to_bow", m.to_bow as u64);
            k.u("to_stern", m.to_stern as u64);
            k.u("to_port", m.to_port as u64);
            k.u("to_starboard", m.to_starboard as u64);
            k.u("epfd", m.epfd as u64);
            k.s("epfd_text", epfd_text(m.epfd));
            k.b("raim", m.raim);
            k.u("dte", m.dte as u64);
            k.b("assigned", m.assigned);
        }
        Report::AidToNavigation(m) => {
            k.u("aid_type", m.aid_type as u64);
            k.s("aid_type_text", aid_type_text(m.aid_type));
            k.s("name", &m.name);
            // gpsd orders these differently in its two modes; follow it.
            if scaled {
                latlon(k, "lon", m.lon);
                latlon(k, "lat", m.lat);
                k.b("accuracy", m.accuracy);
            } else {
                k.b("accuracy", m.accuracy);
                latlon(k, "lon", m.lon);
                latlon(k, "lat", m.lat);
            }
            k.u("to_bow", m.to_bow as u64);
            k.u("to_stern", m.to_stern as u64);
            k.u("to_port", m.to_port as u64);
            k.u("to_starboard", m.to_starboard as u64);
            k.u("epfd", m.epfd as u64);
            k.s("epfd_text", epfd_text(m.epfd));
            k.u("second", m.second as u64);
            k.u("regional", m.regional as u64);
            k.b("off_position", m.off_position);
            k.b("raim", m.raim);
            k.b("virtual_aid", m.virtual_aid);
        }
        Report::GroupAssignment(m) => {
            latlon_coarse(k, "ne_lon", m.ne_lon);
            latlon_coarse(k, "ne_lat", m.ne_lat);
            latlon_coarse(k, "sw_lon", m.sw_lon);
            latlon_coarse(k, "sw_lat", m.sw_lat);
            k.u("stationtype", m.stationtype as u64);
            k.s("stationtype_text", station_type_text(m.stationtype));
            k.u("shiptype", m.shiptype as u64);
            k.s("shiptype_text", shiptype_text(m.shiptype));
            k.u("interval", m.interval as u64);
            k.u("quiet", m.quiet as u64);
        }
        Report::StaticDataB(m) => {
            match m.part {
                Type24Part::A => k.s("part", "A"),
                Type24Part::B => k.s("part", "B"),
                Type24Part::Both => {}
            }
            if m.part != Type24Part::B {
                k.s("shipname", &m.shipname);
            }
            if m.part != Type24Part::A {
                k.u("shiptype", m.shiptype as u64);
                k.s("shiptype_text", shiptype_text(m.shiptype));
                k.s("vendorid", &m.vendorid);
                k.u("model", m.model as u64);
                k.u("serial", m.serial as u64);
                k.s("callsign", &m.callsign);
                if let Some(mother) = m.mothership_mmsi {
                    k.u("mothership_mmsi", mother as u64);
                } else {
                    k.u("to_bow", m.to_bow as u64);
                    k.u("to_stern", m.to_stern as u64);
                    k.u("to_port", m.to_port as u64);
                    k.u("to_starboard", m.to_starboard as u64);
                }
            }
        }
        Report::LongRange(m) => {
            k.u("status", m.status as u64);
            if scaled {
                k.s("status_text", nav_status_text(m.status));
            }
            k.b("accuracy", m.accuracy);
            latlon_coarse(k, "lon", m.lon);
            latlon_coarse(k, "lat", m.lat);
            k.u("speed", m.speed as u64);
            k.u("course", m.course as u64);
            k.b("raim", m.raim);
            k.b("gnss", m.gnss);
        }
        Report::Other(_) => {}
    }
}
