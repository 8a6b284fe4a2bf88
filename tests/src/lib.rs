//! Helpers for yiwang's integration tests: find the built binaries, run a node process with a
//! config written by the test, and speak plain HTTP/1.1 to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Path of a workspace binary built in the same profile as the running test. `cargo test
/// --workspace` builds them, since `yiwang-node` has integration tests of its own.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` in this profile first",
        path.display()
    );
    path
}

/// A running `yiwang-node run` process.
pub struct NodeProcess {
    pub child: Child,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub listening: serde_json::Value,
}

impl NodeProcess {
    /// Start `yiwang-node run --config <config>` and wait until it has written
    /// `listening.json` (deleted first, so a stale one from an earlier run is not read).
    pub fn start(config: &Path, data_dir: &Path) -> NodeProcess {
        let listening_path = data_dir.join("listening.json");
        let _ = std::fs::remove_file(&listening_path);
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(data_dir.join("node.log")).expect("log file");
        let child = Command::new(bin("yiwang-node"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start yiwang-node");
        let mut node = NodeProcess {
            child,
            data_dir: data_dir.to_path_buf(),
            config: config.to_path_buf(),
            listening: serde_json::Value::Null,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&listening_path) {
                node.listening = serde_json::from_str(&text).expect("listening.json");
                return node;
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("yiwang-node exited early with {status}; log:\n{}", node.log());
            }
            assert!(Instant::now() < deadline, "yiwang-node did not start within 30 s; log:\n{}", node.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("node.log")).unwrap_or_default()
    }

    /// A listener's address from `listening.json`: `feed("roads", "http")`.
    pub fn feed(&self, name: &str, transport: &str) -> SocketAddr {
        self.listening["feeds"][name][transport]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no {transport} listener for feed {name}"))
    }

    pub fn http(&self) -> SocketAddr {
        self.listening["http"].as_str().and_then(|s| s.parse().ok()).expect("http address")
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(mut self) {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().expect("kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "node exited with {status}; log:\n{}", self.log());
                return;
            }
            assert!(Instant::now() < deadline, "node did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Run `yiwang-node export` on a stopped node and parse its JSON lines.
pub fn export(config: &Path, kind: &str) -> Vec<serde_json::Value> {
    let out = Command::new(bin("yiwang-node"))
        .args(["export", "--kind", kind, "--config"])
        .arg(config)
        .output()
        .expect("export");
    assert!(out.status.success(), "export failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").lines().map(|l| serde_json::from_str(l).expect("json line")).collect()
}

/// A plain HTTP/1.1 response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP request on a fresh connection (`Connection: close`), so nothing here hides a
/// connection-reuse bug.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut reader = BufReader::new(s);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
    let mut chunked = false;
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16).map_err(std::io::Error::other)?;
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(Response { status, body: String::from_utf8_lossy(&body).into_owned() })
}

pub fn post_json(addr: SocketAddr, path: &str, body: &str) -> std::io::Result<Response> {
    request(addr, "POST", path, &[("Content-Type", "application/json")], body.as_bytes())
}
