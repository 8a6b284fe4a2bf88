//! A node subscribing to a (fake) ONVIF camera's events: pulled events become camera detections
//! with their topic, source, data and time; a camera reboot raises one camera-offline alert and
//! the subscription comes back by itself; wrong credentials are an outage too, counted by reason;
//! and a stopping node unsubscribes. The camera's clock is hours off the node's: the node dates its
//! security tokens by the camera's clock, which it asks for first.

use std::path::Path;
use std::time::{Duration, Instant};
use yiwang_tests::onvif_device::FakeCamera;
use yiwang_tests::{export, request, write_config, NodeProcess};

const CAMERA: &str = "cam-17";

/// A node whose feed "gate" has one ONVIF camera at `url`, pulled every second at most.
fn config(dir: &Path, url: &str, password: &str) -> std::path::PathBuf {
    let feeds = format!(
        r#"[[feeds.camera]]
name = "gate"
cameras = [{{ id = "{CAMERA}", heartbeat_s = 20, onvif = {{ url = "{url}", username = "yiwang", password = "{password}", pull_timeout = "1s", renew = "30s", message_limit = 10 }} }}]
"#
    );
    write_config(dir, "town-onvif", "town", &feeds)
}

fn metric(node: &NodeProcess, prefix: &str) -> Option<f64> {
    let text = request(node.http(), "GET", "/metrics", &[], b"").ok()?.body;
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

/// Poll `check` until it holds, or fail with `what` after 30 s.
fn wait_until(what: &str, node: &NodeProcess, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}; node log:\n{}", node.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_metric(node: &NodeProcess, prefix: &str, min: f64) {
    wait_until(&format!("{prefix} >= {min}"), node, || metric(node, prefix).is_some_and(|v| v >= min));
}

const INGESTED: &str = r#"yiwang_ingested_total{feed="camera",listener="gate"}"#;
const OFFLINE_ALERTS: &str = r#"yiwang_alerts_total{alert="camera_offline"}"#;

#[test]
fn events_are_pulled_a_reboot_is_one_outage_and_a_stop_unsubscribes() {
    let dir = tempfile::tempdir().unwrap();
    let cam = FakeCamera::start_with_clock_skew("yiwang", "s3cret", 3 * 3600 + 17);
    let config = config(dir.path(), &cam.device_url(), "s3cret");
    let node = NodeProcess::start(&config, dir.path());

    cam.queue_event(
        "RuleEngine/LineDetector/Crossed",
        "2026-11-30T08:40:00.123Z",
        &[("VideoSourceConfigurationToken", "vs1"), ("Rule", "line1")],
        &[("ObjectId", "12")],
    );
    cam.queue_event("VideoSource/SignalLoss", "2026-11-30T08:40:01Z", &[("Source", "vs1")], &[("State", "true")]);
    wait_for_metric(&node, INGESTED, 2.0);
    wait_for_metric(&node, r#"yiwang_alerts_total{alert="camera_signal_loss"}"#, 1.0);
    assert_eq!(cam.stats().created, 1);

    // The camera reboots: it forgets the subscription and refuses connections for a while.
    cam.reboot(Duration::from_secs(2));
    wait_for_metric(&node, OFFLINE_ALERTS, 1.0);
    wait_until("a new subscription after the reboot", &node, || cam.stats().created >= 2);
    cam.queue_event("RuleEngine/CellMotionDetector/Motion", "2026-11-30T08:41:00Z", &[], &[("IsMotion", "true")]);
    wait_for_metric(&node, INGESTED, 3.0);
    assert_eq!(metric(&node, OFFLINE_ALERTS), Some(1.0), "one alert for the outage");
    assert!(
        metric(&node, r#"yiwang_onvif_failures_total{listener="gate",camera="cam-17""#).is_some_and(|v| v >= 1.0),
        "the failures are counted"
    );

    let live = cam.stats().live;
    assert_eq!(live.len(), 1, "{live:?}");
    node.terminate();
    let stats = cam.stats();
    assert_eq!(stats.unsubscribed, live.into_iter().collect::<Vec<_>>(), "the stop unsubscribes: {stats:?}");
    assert_eq!(stats.auth_failures, 0);
    assert_eq!(stats.misaddressed, 0, "every request had its action and wsa:To");

    let events: Vec<_> = export(&config, "detection").into_iter().map(|d| d["record"]["Camera"].clone()).collect();
    assert_eq!(events.len(), 3, "{events:#?}");
    let line = &events[0];
    assert_eq!(line["camera"], CAMERA);
    assert_eq!(line["topic"], "tns1:RuleEngine/LineDetector/Crossed");
    assert_eq!(line["seen_ms"], 1_796_028_000_123u64);
    assert_eq!(line["source"], serde_json::json!([["VideoSourceConfigurationToken", "vs1"], ["Rule", "line1"]]));
    assert_eq!(line["data"], serde_json::json!([["ObjectId", "12"]]));
    assert_eq!(events[1]["topic"], "tns1:VideoSource/SignalLoss");
    assert_eq!(events[2]["topic"], "tns1:RuleEngine/CellMotionDetector/Motion");
    assert_eq!(events[2]["data"], serde_json::json!([["IsMotion", "true"]]));

    let alerts = export(&config, "alert");
    let offline: Vec<_> = alerts.iter().filter(|a| a["record"]["CameraOffline"]["camera"] == CAMERA).collect();
    assert_eq!(offline.len(), 1, "{alerts:#?}");
    assert!(alerts.iter().any(|a| a["record"]["CameraSignalLoss"]["camera"] == CAMERA), "{alerts:#?}");
}

#[test]
fn a_wrong_password_is_an_outage_counted_as_auth() {
    let dir = tempfile::tempdir().unwrap();
    let cam = FakeCamera::start("yiwang", "s3cret");
    let config = config(dir.path(), &cam.device_url(), "wrong");
    let node = NodeProcess::start(&config, dir.path());

    wait_for_metric(&node, r#"yiwang_onvif_failures_total{listener="gate",camera="cam-17",reason="auth"}"#, 2.0);
    wait_for_metric(&node, OFFLINE_ALERTS, 1.0);
    assert_eq!(metric(&node, OFFLINE_ALERTS), Some(1.0), "retries do not alert again");
    assert_eq!(cam.stats().created, 0);
    node.terminate();
    let alerts = export(&config, "alert");
    assert_eq!(alerts.iter().filter(|a| a["record"]["CameraOffline"]["camera"] == CAMERA).count(), 1, "{alerts:#?}");
}
