#![no_main]
//! The camera feeds' decoders.
//!
//! The first byte picks the way in, the rest is the body:
//! - JSON lines over TCP: `node::feeds::lines::LineReader` (on a current-thread tokio runtime
//!   over the slice, with a small read buffer and, sometimes, a small line cap) and
//!   `camera::decode_one` for each non-blank line, as `feeds::tcp_json` does; each message then
//!   goes to the camera watchdog (`CameraHealth`) as the camera feed's commit does;
//! - `POST /ingest`: a JSON array of raw records, each through `camera::decode_one`;
//! - an ONVIF camera's SOAP answer: `onvif::parse::parse`, and `parse_utc_ms` on the text.

use libfuzzer_sys::fuzz_target;
use node::feeds::camera::{self, CameraHealth, CameraMessage};
use node::feeds::lines::{Line, LineReader};
use node::feeds::onvif::parse as onvif;
use serde_json::value::RawValue;
use std::sync::OnceLock;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().unwrap())
}

fn watch(health: &mut CameraHealth, msg: &CameraMessage) {
    let now = match msg {
        CameraMessage::Event(e) => {
            if camera::is_signal_loss(e) {
                let _ = health.lost(&e.camera, e.seen_ms);
            }
            e.seen_ms
        }
        CameraMessage::Heartbeat { seen_ms, .. } => *seen_ms,
    };
    let _ = health.seen(msg.camera(), now);
    let _ = health.tick(now.saturating_add(health.min_interval_ms()));
    let _ = health.offline_count();
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    match selector % 3 {
        0 => {
            let cap = if selector & 4 == 4 { 48 } else { camera::MAX_LINE_BYTES };
            let buffer = usize::from(selector >> 3) + 1;
            let mut health = CameraHealth::new([("cam-1".to_string(), 30_000)], 60_000, 0);
            runtime().block_on(async {
                let mut lines = LineReader::new(tokio::io::BufReader::with_capacity(buffer, rest), cap);
                while let Some(line) = lines.next_line().await.expect("reading a slice cannot fail") {
                    match line {
                        Line::Text(t) => {
                            assert!(t.len() <= cap, "a line over the cap came through");
                            if t.trim().is_empty() {
                                continue;
                            }
                            match camera::decode_one(&t) {
                                Ok(msg) => watch(&mut health, &msg),
                                Err(e) => drop(e.reason()),
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
                let mut health = CameraHealth::new([], 60_000, 0);
                for raw in elements.iter().take(10_000) {
                    match camera::decode_one(raw.get()) {
                        Ok(msg) => watch(&mut health, &msg),
                        Err(e) => drop(e.reason()),
                    }
                }
            }
        }
        _ => {
            if let Ok(answer) = onvif::parse(rest) {
                drop(answer);
            }
            if let Ok(s) = std::str::from_utf8(rest) {
                let _ = onvif::parse_utc_ms(s);
            }
        }
    }
});
