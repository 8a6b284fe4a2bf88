#![no_main]
//! The checkpoint (plate reader) feeds' decoders.
//!
//! The first byte picks the way in, the rest is the body:
//! - JSON lines over TCP: `node::feeds::lines::LineReader` (on a current-thread tokio runtime
//!   over the slice, with a small read buffer and, sometimes, a small line cap) and
//!   `checkpoint::decode_one` for each non-blank line, as `feeds::tcp_json` does;
//! - `POST /ingest`: a JSON array of raw records, each through `checkpoint::decode_one`, as
//!   `feeds::http_ingest` does;
//! - GA/T 1400 (VIID) vehicle lists: `viid::objects::list`, then `object_id` and `vehicle` for
//!   each object, as `viid::http` does for motor and non-motor vehicles;
//! - VIID system bodies and places: `device_id`, `list` + `place`, and the VIID time parsers.

use libfuzzer_sys::fuzz_target;
use node::feeds::checkpoint;
use node::feeds::lines::{Line, LineReader};
use node::feeds::viid::{objects, time as viid_time};
use serde_json::value::RawValue;
use std::sync::OnceLock;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().unwrap())
}

fn offset(selector: u8) -> time::UtcOffset {
    time::UtcOffset::from_whole_seconds(i32::from(selector as i8) * 900).unwrap_or(time::UtcOffset::UTC)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    match selector % 4 {
        0 => {
            let cap = if selector & 4 == 4 { 48 } else { checkpoint::MAX_LINE_BYTES };
            let buffer = usize::from(selector >> 3) + 1;
            runtime().block_on(async {
                let mut lines = LineReader::new(tokio::io::BufReader::with_capacity(buffer, rest), cap);
                while let Some(line) = lines.next_line().await.expect("reading a slice cannot fail") {
                    match line {
                        Line::Text(t) => {
                            assert!(t.len() <= cap, "a line over the cap came through");
                            if !t.trim().is_empty() {
                                let _ = checkpoint::decode_one(&t).map_err(|e| e.reason());
                            }
                        }
                        Line::TooLong(n) => assert!(n > cap),
                        Line::NotUtf8 => {}
                    }
                }
            });
        }
        1 => {
            if let Ok(elements) = serde_json::from_slice::<Vec<&RawValue>>(rest) {
                for raw in elements.iter().take(10_000) {
                    let _ = checkpoint::decode_one(raw.get()).map_err(|e| e.reason());
                }
            }
        }
        2 => {
            let motor = selector & 4 == 4;
            let (list, object, id) = if motor {
                ("MotorVehicleListObject", "MotorVehicleObject", "MotorVehicleID")
            } else {
                ("NonMotorVehicleListObject", "NonMotorVehicleObject", "NonMotorVehicleID")
            };
            if let Ok(raws) = objects::list(rest, list, object) {
                for raw in raws {
                    let _ = objects::object_id(raw, id);
                    let _ = objects::vehicle(raw, motor, "fuzz-device", offset(selector));
                }
            }
        }
        _ => {
            let _ = objects::device_id(rest, &["RegisterObject", "Register"]);
            let _ = objects::device_id(rest, &["KeepaliveObject", "KeepAliveObject"]);
            let tollgate = selector & 4 == 4;
            let (list, object, id) = if tollgate {
                ("TollgateListObject", "TollgateObject", "TollgateID")
            } else {
                ("APEListObject", "APEObject", "ApeID")
            };
            if let Ok(raws) = objects::list(rest, list, object) {
                for raw in raws {
                    let _ = objects::object_id(raw, id);
                    let _ = objects::place(raw, tollgate);
                }
            }
            if let Ok(s) = std::str::from_utf8(rest) {
                let _ = viid_time::parse(s, offset(selector));
                let _ = viid_time::parse_offset(s);
            }
        }
    }
});
