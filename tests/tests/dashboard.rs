//! The operators' dashboard in a real browser: `yiwang-sim demo` (a 40-site city at four times
//! real time) on localhost, and headless Chromium driven by playwright-core
//! (`tests/browser/dashboard.mjs`) loading the page, cutting a county off from it, watching
//! the partition appear and heal, and adding a list entry. Screenshots of each stage are left
//! in `target/dashboard-screenshots/`.
//!
//! Needs Debian's `chromium` and `npm ci` in `tests/browser` (`.ci/run` does both). Without
//! them the test says what is missing and passes, unless `YIWANG_REQUIRE_BROWSER=1` (as CI
//! sets), when it fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the demo may take to print its address.
const START_LIMIT: Duration = Duration::from_secs(120);

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// What is missing to run the browser, if anything.
fn missing() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("no Chromium at {chromium} (apt-get install chromium, or set CHROMIUM)"));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("no `node` on PATH (apt-get install nodejs npm)".into());
    }
    if !browser_dir().join("node_modules/playwright-core").exists() {
        return Some(format!("playwright-core is not installed: run `npm ci` in {}", browser_dir().display()));
    }
    None
}

#[test]
fn the_dashboard_shows_a_partition_appear_and_heal_in_chromium() {
    if let Some(why) = missing() {
        assert!(std::env::var("YIWANG_REQUIRE_BROWSER").is_err(), "the browser test cannot run: {why}");
        eprintln!("skipped: the browser test cannot run: {why}");
        return;
    }
    let mut child = Command::new(yiwang_tests::bin("yiwang-sim"))
        .args(["demo", "--listen", "127.0.0.1:0", "--nodes", "40", "--speed", "4", "--for", "2h"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start yiwang-sim demo");
    let stdout = child.stdout.take().expect("piped");
    let demo = Demo(child);
    let started = Instant::now();
    let mut lines = BufReader::new(stdout).lines();
    let mut url = None;
    for line in lines.by_ref() {
        let line = line.expect("demo output");
        if let Some(u) = line.strip_prefix("dashboard: ") {
            url = Some(u.to_string());
            break;
        }
        assert!(started.elapsed() < START_LIMIT, "the demo did not start within {START_LIMIT:?}");
    }
    let url = url.expect("the demo printed its dashboard's address");
    // Keep reading what the demo prints, so its pipe never fills or closes under it.
    std::thread::spawn(move || lines.for_each(drop));
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for old in ["dashboard-healthy.png", "dashboard-partition.png", "dashboard-healed.png"] {
        let _ = std::fs::remove_file(shots.join(old));
    }
    let out =
        Command::new("node").arg(browser_dir().join("dashboard.mjs")).arg(&url).arg(&shots).output().expect("run node");
    drop(demo);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser test failed:\n{text}");
    assert!(text.contains("county-1 shows as cut off") && text.contains("the mesh is whole again"), "{text}");
    for shot in ["dashboard-healthy.png", "dashboard-partition.png", "dashboard-healed.png"] {
        let bytes = std::fs::read(shots.join(shot)).unwrap_or_else(|e| panic!("{shot}: {e}"));
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "{shot} is not a screenshot");
    }
}
