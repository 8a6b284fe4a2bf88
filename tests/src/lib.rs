//! Helpers for yiwang's integration tests: find the built binaries, run a node process with a
//! config written by the test, and speak plain HTTP/1.1 to it.

pub mod netns;
pub mod onvif_device;
pub mod relay;
pub mod viid_device;
pub mod voters;

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

/// The official JSON Schema of OpenAPI 3.0 documents.
pub const OFFICIAL_OPENAPI_3_0_SCHEMA: &str = include_str!("../../node/src/api/openapi-3.0-schema.json");

/// An OpenAPI document (a node's or the control plane's), checked against the official schema,
/// and a check of answers against its component schemas.
pub struct Documented {
    doc: serde_json::Value,
}

impl Documented {
    pub fn new(doc: serde_json::Value) -> Documented {
        let official: serde_json::Value = serde_json::from_str(OFFICIAL_OPENAPI_3_0_SCHEMA).unwrap();
        let validator = jsonschema::draft4::new(&official).unwrap();
        let errors: Vec<String> =
            validator.iter_errors(&doc).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "the document is not OpenAPI 3.0: {errors:#?}");
        Documented { doc }
    }

    /// Fetch `/openapi.json` from `api`.
    pub fn fetch(api: SocketAddr) -> Documented {
        let r = get(api, "/openapi.json").unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        Documented::new(r.json())
    }

    /// Assert that `value` matches the component schema `schema`.
    pub fn check(&self, schema: &str, value: &serde_json::Value) {
        let root = serde_json::json!({
            "allOf": [{ "$ref": format!("#/components/schemas/{schema}") }],
            "components": { "schemas": openapi_to_json_schema(&self.doc["components"]["schemas"]) },
        });
        let v = jsonschema::options().with_draft(jsonschema::Draft::Draft4).build(&root).unwrap();
        let errors: Vec<String> = v.iter_errors(value).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{schema} does not match openapi.json: {errors:#?}\n{value:#}");
    }
}

/// Write `topology` to `<dir>/topology.toml` and run `yiwangctl deploy generate` on it into
/// `<dir>/gen`, as an operator would; returns `<dir>/gen` (a directory per site).
pub fn deploy_generate(dir: &Path, topology: &str) -> PathBuf {
    std::fs::write(dir.join("topology.toml"), topology).unwrap();
    let gen = dir.join("gen");
    let out = Command::new(bin("yiwangctl"))
        .args(["deploy", "generate", "--topology"])
        .arg(dir.join("topology.toml"))
        .arg("--out")
        .arg(&gen)
        .output()
        .unwrap();
    assert!(out.status.success(), "deploy generate: {}", String::from_utf8_lossy(&out.stderr));
    gen
}

/// A test's directory: removed when dropped, unless `YIWANG_KEEP_TEST_DIRS` is set, which
/// keeps it (its path is printed) for a look at the nodes' data and logs after a failure.
pub struct TestDir {
    path: PathBuf,
    _removed_on_drop: Option<tempfile::TempDir>,
}

impl TestDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A fresh [`TestDir`] for the test `name`.
pub fn test_dir(name: &str) -> TestDir {
    let tmp = tempfile::tempdir().expect("temporary directory");
    if std::env::var_os("YIWANG_KEEP_TEST_DIRS").is_some() {
        let kept = tmp.keep();
        eprintln!("{name} test dir: {}", kept.display());
        TestDir { path: kept, _removed_on_drop: None }
    } else {
        TestDir { path: tmp.path().to_path_buf(), _removed_on_drop: Some(tmp) }
    }
}

/// Poll `check` every 250 ms until it passes; panic with its last complaint after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + limit;
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("{what} did not happen within {limit:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
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
        let mut node = NodeProcess::start_with_args(data_dir, &["--config".as_ref(), config.as_os_str()]);
        node.config = config.to_path_buf();
        node
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

    /// The node's `/metrics` text.
    pub fn metrics(&self) -> String {
        request(self.http(), "GET", "/metrics", &[], b"").expect("GET /metrics").body
    }

    /// The value of the first `/metrics` sample line starting with `prefix`.
    pub fn metric(&self, prefix: &str) -> Option<f64> {
        self.metrics().lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// Wait (up to 15 s) until the sample line starting with `prefix` reaches `min`.
    pub fn wait_for_metric(&self, prefix: &str, min: f64) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.metric(prefix).is_some_and(|v| v >= min) {
            assert!(Instant::now() < deadline, "metric {prefix} never reached {min}; metrics:\n{}", self.metrics());
            std::thread::sleep(Duration::from_millis(100));
        }
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

/// A test that fails half-way must not leave its node running: kill it when the handle goes.
impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Write `<dir>/node.toml` for a node `id` of `role` keeping its data in `dir`, with its HTTP
/// server on a port the OS picks, followed by `rest` (feeds, tokens, ...). Returns its path.
pub fn write_config(dir: &Path, id: &str, role: &str, rest: &str) -> PathBuf {
    let config = dir.join("node.toml");
    let text = format!(
        "data_dir = \"{}\"\n[node]\nid = \"{id}\"\nrole = \"{role}\"\n[http]\nlisten = \"127.0.0.1:0\"\n{rest}",
        dir.display()
    );
    std::fs::write(&config, text).expect("write node.toml");
    config
}

/// The authority and legal basis [`watchlist_line`] names.
pub const WATCHLIST_AUTHORITY: &str = "City Public Security Bureau";
pub const WATCHLIST_LEGAL_BASIS: &str = "Road Traffic Safety Law art. 96";

/// One line of a watchlist file (with its newline): `kind,subject,list,reason,added_by` as
/// given, then what every entry must also name: an expiry (thirty days from now, inside the
/// default maximum of a year), [`WATCHLIST_AUTHORITY`] and [`WATCHLIST_LEGAL_BASIS`].
pub fn watchlist_line(kind: &str, subject: &str, list: &str, reason: &str, added_by: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970");
    let expires_ms = now.as_millis() + 30 * 86_400_000;
    format!("{kind},{subject},{list},{reason},{added_by},{expires_ms},{WATCHLIST_AUTHORITY},{WATCHLIST_LEGAL_BASIS}\n")
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
    let r = request_with_headers(addr, method, path, headers, body)?;
    Ok(Response { status: r.status, body: r.body })
}

pub fn post_json(addr: SocketAddr, path: &str, body: &str) -> std::io::Result<Response> {
    request(addr, "POST", path, &[("Content-Type", "application/json")], body.as_bytes())
}

impl NodeProcess {
    /// Start `yiwang-node run <args>` (no config file unless `args` names one) and wait until it
    /// has written `<data_dir>/listening.json`; `args` must point the node at `data_dir`.
    pub fn start_with_args(data_dir: &Path, args: &[&std::ffi::OsStr]) -> NodeProcess {
        NodeProcess::start_bin("yiwang-node", data_dir, args)
    }

    /// Start `<binary> run <args>` (`yiwang-node` or `yiwang-control`) and wait until it has
    /// written `<data_dir>/listening.json`.
    pub fn start_bin(binary: &str, data_dir: &Path, args: &[&std::ffi::OsStr]) -> NodeProcess {
        NodeProcess::start_prefixed(&[], binary, data_dir, args)
    }

    /// [`NodeProcess::start_bin`] under `prefix` (e.g. `ip netns exec NS`, which becomes the
    /// program itself, so the handle still signals it).
    pub fn start_prefixed(prefix: &[String], binary: &str, data_dir: &Path, args: &[&std::ffi::OsStr]) -> NodeProcess {
        std::fs::create_dir_all(data_dir).expect("data dir");
        let listening_path = data_dir.join("listening.json");
        let _ = std::fs::remove_file(&listening_path);
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(data_dir.join("node.log")).expect("log file");
        let mut command = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin(binary));
                c
            }
            None => Command::new(bin(binary)),
        };
        let child = command
            .arg("run")
            .args(args)
            .env("RUST_LOG", std::env::var("YIWANG_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary}: {e}"));
        let mut node = NodeProcess {
            child,
            data_dir: data_dir.to_path_buf(),
            config: PathBuf::new(),
            listening: serde_json::Value::Null,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&listening_path) {
                node.listening = serde_json::from_str(&text).expect("listening.json");
                return node;
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("{binary} exited early with {status}; log:\n{}", node.log());
            }
            assert!(Instant::now() < deadline, "{binary} did not start within 30 s; log:\n{}", node.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// An HTTP/1.1 response with its headers (names in lower case).
#[derive(Debug)]
pub struct FullResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl FullResponse {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Like [`request`], and keeps the response's headers.
pub fn request_with_headers(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<FullResponse> {
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
    let mut response_headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            response_headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let find = |name: &str| response_headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.to_ascii_lowercase());
    let chunked = find("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let length = find("content-length").and_then(|v| v.parse::<usize>().ok());
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
    } else if method != "HEAD" {
        reader.read_to_end(&mut body)?;
    }
    Ok(FullResponse { status, headers: response_headers, body: String::from_utf8_lossy(&body).into_owned() })
}

/// `GET path` with no body.
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    request(addr, "GET", path, &[], b"")
}

/// `POST path` with an `application/x-www-form-urlencoded` body (see [`form`]).
pub fn post_form(addr: SocketAddr, path: &str, body: &str) -> std::io::Result<Response> {
    request(addr, "POST", path, &[("Content-Type", "application/x-www-form-urlencoded")], body.as_bytes())
}

/// `POST path` with a JSON body and `Authorization: Bearer <token>`.
pub fn post_json_as(addr: SocketAddr, token: &str, path: &str, body: &str) -> std::io::Result<Response> {
    let auth = format!("Bearer {token}");
    request(addr, "POST", path, &[("Content-Type", "application/json"), ("Authorization", &auth)], body.as_bytes())
}

/// `GET path` with `Authorization: Bearer <token>`.
pub fn get_as(addr: SocketAddr, token: &str, path: &str) -> std::io::Result<Response> {
    let auth = format!("Bearer {token}");
    request(addr, "GET", path, &[("Authorization", &auth)], b"")
}

/// The operator token a node made in its data dir (when its config names no operator).
pub fn operator_token(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("operator.token")).expect("operator.token").trim().to_string()
}

/// Percent-encode one form component: unreserved characters stay, everything else is `%XX`
/// of its UTF-8 bytes.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An `application/x-www-form-urlencoded` body (or query string) from name/value pairs.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v))).collect::<Vec<_>>().join("&")
}

/// An OpenAPI 3.0 schema as JSON Schema (draft 4) sees it: `nullable` becomes a `null` type.
pub fn openapi_to_json_schema(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::{json, Value};
    match v {
        Value::Object(m) => {
            let mut out: serde_json::Map<String, Value> =
                m.iter().map(|(k, v)| (k.clone(), openapi_to_json_schema(v))).collect();
            if out.remove("nullable") == Some(Value::Bool(true)) {
                if !out.contains_key("type") {
                    // `allOf: [{$ref}]` made nullable.
                    return json!({ "anyOf": [{ "type": "null" }, Value::Object(out)] });
                }
                let t = out["type"].clone();
                out.insert("type".into(), json!([t, "null"]));
                if let Some(Value::Array(e)) = out.get_mut("enum") {
                    e.push(Value::Null);
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(openapi_to_json_schema).collect()),
        other => other.clone(),
    }
}
