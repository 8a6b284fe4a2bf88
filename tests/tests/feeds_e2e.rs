//! Every feed of a real `yiwang-node` process over real sockets: AIS by UDP and TCP into the
//! fence and the vessel watchlist, checkpoint JSON lines with acknowledgements, camera events and
//! a camera that never speaks, bad input of every kind counted by reason, and the alerts found
//! in the store afterwards.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;
use yiwang_tests::{export, post_json, request, NodeProcess};

/// A class A position report from gpsd's test corpus: MMSI 244660274 at 52.8553950 N,
/// 5.6782833 E.
const REPORT: &str = "!AIVDM,1,1,,B,13aDp<PP000IwSlN?Wm@0?wN2<1T,0*29";
const MMSI: u64 = 244660274;

fn setup(dir: &std::path::Path) -> std::path::PathBuf {
    // A small polygon around the vessel: it is inside, so the fence orders a recall.
    let boundary =
        r#"{"type":"Polygon","coordinates":[[[5.66,52.84],[5.70,52.84],[5.70,52.87],[5.66,52.87],[5.66,52.84]]]}"#;
    std::fs::write(dir.join("boundary.geojson"), boundary).unwrap();
    std::fs::write(
        dir.join("watchlist.csv"),
        yiwang_tests::watchlist_line(
            "mmsi",
            &MMSI.to_string(),
            "detained-vessels",
            "port state control detention",
            "officer-wang",
        ),
    )
    .unwrap();
    yiwang_tests::write_config(dir, "harbour-test", "harbour", FEEDS)
}

const FEEDS: &str = r#"[watchlist]
file = "watchlist.csv"
[fence]
boundary = "boundary.geojson"
[[feeds.ais]]
name = "harbour-rx"
udp = "127.0.0.1:0"
tcp_listen = "127.0.0.1:0"
[[feeds.checkpoint]]
name = "roads"
tcp = "127.0.0.1:0"
http = "127.0.0.1:0"
tcp_acks = true
[[feeds.camera]]
name = "quay"
tcp = "127.0.0.1:0"
cameras = [{ id = "cam-silent", heartbeat_s = 1 }]
"#;

#[test]
fn every_feed_reaches_the_store_and_bad_input_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let node = NodeProcess::start(&config, dir.path());

    // AIS by UDP: the report, a corrupted copy and a GPS sentence, in one datagram.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let corrupt = REPORT.replace("*29", "*00");
    let datagram = format!("{REPORT}\r\n{corrupt}\r\n$GPGLL,5250.53669,N,00542.34920,E,213950.00,A,A*67\r\n");
    udp.send_to(datagram.as_bytes(), node.feed("harbour-rx", "udp")).unwrap();
    // AIS by TCP: the same vessel again (no second alert: it is still in the same zone).
    let mut ais_tcp = TcpStream::connect(node.feed("harbour-rx", "tcp")).unwrap();
    ais_tcp.write_all(format!("{REPORT}\n").as_bytes()).unwrap();
    ais_tcp.flush().unwrap();

    // Checkpoint JSON lines, acknowledged per batch once durable.
    let mut cp = TcpStream::connect(node.feed("roads", "tcp")).unwrap();
    cp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let good =
        r#"{"best_plate_number":"鲁K00001","best_confidence":88,"checkpoint_id":"cp-1","epoch_start":1764146400000}"#;
    cp.write_all(format!("{good}\n{{not json\n").as_bytes()).unwrap();
    let mut acks = BufReader::new(cp.try_clone().unwrap());
    let (mut accepted, mut rejected) = (0, Vec::new());
    while accepted + rejected.len() < 2 {
        let mut line = String::new();
        acks.read_line(&mut line).unwrap();
        let ack: serde_json::Value = serde_json::from_str(&line).unwrap();
        accepted += ack["accepted"].as_u64().unwrap() as usize;
        rejected.extend(ack["rejected"].as_array().unwrap().iter().cloned());
    }
    assert_eq!(accepted, 1);
    assert_eq!(rejected[0]["line"], 2);
    assert_eq!(rejected[0]["reason"], "json");

    // HTTP batches: clear errors for the wrong content type, a body that is not a list, and one
    // over the size limit.
    let http = node.feed("roads", "http");
    let r = request(http, "POST", "/ingest", &[("Content-Type", "text/plain")], b"[]").unwrap();
    assert_eq!(r.status, 415, "{}", r.body);
    let r = post_json(http, "/ingest", r#"{"plate":"x"}"#).unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "bad_json");
    let r = post_json(http, "/ingest", &format!("[{}]", vec![good; 40_000].join(","))).unwrap();
    assert_eq!(r.status, 413, "{}", &r.body[..r.body.len().min(200)]);
    let r = post_json(http, "/ingest", &format!("[{good}, {{\"best_confidence\": 5}}]")).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["rejected"][0]["index"], 1);

    // A camera reports a lost video signal.
    let mut cam = TcpStream::connect(node.feed("quay", "tcp")).unwrap();
    cam.write_all(b"{\"camera_id\":\"cam-9\",\"topic\":\"tns1:VideoSource/SignalLoss\",\"time\":1764146400000,\"data\":{\"State\":\"true\"}}\n{\"camera_id\":\"cam-9\",\"topic\":\"not a topic\",\"time\":1}\n").unwrap();

    // Everything shows in the metrics, errors by reason; cam-silent goes offline after 1 s.
    node.wait_for_metric(r#"yiwang_alerts_total{alert="fence_recall"}"#, 1.0);
    node.wait_for_metric(r#"yiwang_watchlist_hits_total{subject="mmsi",list="detained-vessels"}"#, 1.0);
    node.wait_for_metric(r#"yiwang_alerts_total{alert="camera_offline"}"#, 1.0);
    node.wait_for_metric(r#"yiwang_alerts_total{alert="camera_signal_loss"}"#, 1.0);
    node.wait_for_metric(r#"yiwang_decode_errors_total{feed="ais",listener="harbour-rx",reason="checksum"}"#, 1.0);
    node.wait_for_metric(r#"yiwang_decode_errors_total{feed="checkpoint",listener="roads",reason="json"}"#, 2.0);
    node.wait_for_metric(r#"yiwang_decode_errors_total{feed="camera",listener="quay",reason="bad_topic"}"#, 1.0);
    node.wait_for_metric(r#"yiwang_skipped_lines_total{feed="ais",listener="harbour-rx"}"#, 1.0);
    node.wait_for_metric(r#"yiwang_ingested_total{feed="ais",listener="harbour-rx"}"#, 2.0);
    node.wait_for_metric("yiwang_store_flush_seconds_count", 1.0);
    // The recall, as the dashboard reads it: position and zone, documented shape.
    let token = yiwang_tests::operator_token(dir.path());
    let r = yiwang_tests::get_as(node.http(), &token, "/api/v1/fences?limit=10").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let fences = r.json();
    yiwang_tests::Documented::fetch(node.http()).check("FenceAlerts", &fences);
    assert_eq!(fences["alerts"][0]["zone"], "recall", "{fences:#}");
    assert_eq!(fences["alerts"][0]["mmsi"], MMSI);
    assert!((fences["alerts"][0]["lat"].as_f64().unwrap() - 52.855395).abs() < 1e-6);
    let r = yiwang_tests::get_as(node.http(), &token, "/api/v1/fences?limit=0").unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    node.terminate();

    let alerts = export(&config, "alert");
    let recalls: Vec<_> = alerts.iter().filter(|a| a["record"]["Fence"]["zone"] == "recall").collect();
    assert_eq!(recalls.len(), 1, "one recall for a vessel that stays inside: {alerts:#?}");
    assert_eq!(recalls[0]["record"]["Fence"]["mmsi"], MMSI);
    assert_eq!(recalls[0]["record"]["Fence"]["inside"], true);
    assert!(alerts.iter().any(|a| a["record"]["WatchlistHit"]["subject"]["Mmsi"] == MMSI), "{alerts:#?}");
    assert!(alerts.iter().any(|a| a["record"]["CameraOffline"]["camera"] == "cam-silent"), "{alerts:#?}");
    assert!(alerts.iter().any(|a| a["record"]["CameraSignalLoss"]["camera"] == "cam-9"), "{alerts:#?}");
    let vessels: Vec<_> =
        export(&config, "detection").into_iter().filter(|d| d["record"]["Vessel"]["mmsi"] == MMSI).collect();
    assert_eq!(vessels.len(), 2, "both reports kept as raw detections");
    assert!((vessels[0]["record"]["Vessel"]["lat"].as_f64().unwrap() - 52.855395).abs() < 1e-6);
}

#[test]
fn decode_ais_prints_gpsd_json_and_fails_clearly() {
    use std::process::{Command, Stdio};
    let bin = yiwang_tests::bin("yiwang-node");
    let mut child = Command::new(&bin)
        .arg("decode-ais")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{REPORT}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["class"], "AIS");
    assert_eq!(v["mmsi"], MMSI);
    assert_eq!(v["lat"], 52.855395);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.nmea"), format!("{REPORT}\n")).unwrap();
    let out = Command::new(&bin).args(["decode-ais", "--unscaled"]).arg(dir.path().join("in.nmea")).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["scaled"], false);
    assert_eq!(v["lat"], 31713237, "1/10000 minute");

    let out = Command::new(&bin).args(["decode-ais", "/no/such/file.nmea"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file.nmea"));
}

/// A watchlist file whose lines do not name authority, legal basis and expiry (the format
/// before they were required) stops the node at start, naming the file and each bad line; a
/// listing longer than `max_expiry_days` is refused the same way.
#[test]
fn a_watchlist_file_without_authority_legal_basis_or_expiry_stops_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let good = yiwang_tests::watchlist_line("plate", "鲁K12345", "stolen", "reported stolen", "officer-li");
    let cases = [
        ("plate,鲁KD7777,stolen,reported stolen,officer-li\n", "expected 8 comma-separated fields"),
        ("plate,鲁KD7777,stolen,reported stolen,officer-li,2027-01-01,,Law 1\n", "authority is empty"),
        ("plate,鲁KD7777,stolen,reported stolen,officer-li,2099-01-01,Bureau,Law 1\n", "is after"),
    ];
    for (bad, says) in cases {
        std::fs::write(dir.path().join("watchlist.csv"), format!("{good}{bad}")).unwrap();
        let config =
            yiwang_tests::write_config(dir.path(), "town-list", "town", "[watchlist]\nfile = \"watchlist.csv\"\n");
        let log = dir.path().join("stderr.log");
        let mut node = std::process::Command::new(yiwang_tests::bin("yiwang-node"))
            .args(["run", "--config"])
            .arg(&config)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .map(KillOnDrop)
            .expect("run yiwang-node");
        // A node that took the file would run on: it must stop by itself, and soon.
        let mut status = None;
        yiwang_tests::wait_until("the node to refuse its watchlist", Duration::from_secs(30), || {
            status = node.0.try_wait().map_err(|e| e.to_string())?;
            status.map(drop).ok_or_else(|| format!("still running with {bad:?}"))
        });
        let stderr = std::fs::read_to_string(&log).unwrap();
        assert!(!status.unwrap().success(), "{stderr}");
        assert!(stderr.contains("watchlist.csv:2: ") && stderr.contains(says), "{bad:?}: {stderr}");
        assert!(stderr.contains("1 bad line(s), nothing loaded"), "{stderr}");
    }
}

/// A child process killed if the test fails while it runs.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
