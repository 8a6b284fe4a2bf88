//! A small mesh written by hand (certificates from `node::mesh::pki`, configs and the topology
//! as `yiwangctl deploy generate` would write them), node processes that are killed on drop,
//! and what the bench reads from them: `/metrics` over plain HTTP and `/proc/<pid>/status`.

use node::mesh::pki::{self, CityCa, Validity};
use proto::{NodeId, NodeIdentity, Role};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One site's directory: its config, its data dir and its certificate files.
pub struct SiteDir {
    pub id: NodeId,
    pub config: PathBuf,
    pub data: PathBuf,
}

/// A topology of `sites` (id, role, parents) on free loopback UDP ports under `root`, with a
/// CA and a certificate per site. Returns the sites in the order given.
pub fn write_mesh(root: &Path, sites: &[(&str, Role, &[&str])]) -> Vec<SiteDir> {
    let now = time::OffsetDateTime::now_utc();
    let ca = CityCa::generate("bench city CA", Validity::days_from(now, 30).unwrap()).unwrap();
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let qp = |p: &Path| q(p.to_str().expect("utf-8 temp path"));
    let mut topology = String::new();
    let mut out = Vec::new();
    // Hold every socket until all ports are chosen, so no two sites get the same one.
    let sockets: Vec<UdpSocket> = sites.iter().map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    for ((id, role, parents), socket) in sites.iter().zip(&sockets) {
        let mesh = socket.local_addr().unwrap();
        let parents: Vec<String> = parents.iter().map(|p| q(p)).collect();
        topology.push_str(&format!(
            "[[site]]\nid = {}\nrole = {}\nmesh = \"{mesh}\"\nparents = [{}]\n\n",
            q(id),
            q(role.as_str()),
            parents.join(", ")
        ));
        let dir = root.join(id);
        let pki_dir = dir.join("pki");
        let identity = NodeIdentity { id: NodeId::new(*id).unwrap(), role: *role };
        ca.issue(&identity, Validity::days_from(now, 30).unwrap())
            .unwrap()
            .write(&pki_dir, ca.cert_pem(), false)
            .unwrap();
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let config = dir.join("node.toml");
        // The audit quota lifted: the drain measures what replication can carry, not the rate
        // a county allows one town by default (docs/replication.md, "Receive quotas").
        let text = format!(
            "data_dir = {data}\n\n[node]\nid = {id}\nrole = {role}\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n\
             [mesh]\nlisten = \"{mesh}\"\ntopology = {topology}\nca = {ca}\ncert = {cert}\nkey = {key}\n\n\
             [mesh.receive_quota]\naudit = 0\n",
            data = qp(&data),
            id = q(id),
            role = q(role.as_str()),
            topology = qp(&root.join("topology.toml")),
            ca = qp(&pki_dir.join(pki::CA_CERT_FILE)),
            cert = qp(&pki_dir.join(pki::NODE_CERT_FILE)),
            key = qp(&pki_dir.join(pki::NODE_KEY_FILE)),
        );
        std::fs::write(&config, text).unwrap();
        out.push(SiteDir { id: identity.id, config, data });
    }
    drop(sockets);
    std::fs::write(root.join("topology.toml"), topology).unwrap();
    out
}

/// A running `yiwang-node`, killed (SIGKILL) when dropped, also on panic.
pub struct NodeProc {
    child: Child,
    log: PathBuf,
    pub http: SocketAddr,
}

impl NodeProc {
    /// Start `yiwang-node run --config <site.config>` and wait for its `listening.json`.
    pub fn start(site: &SiteDir) -> NodeProc {
        let listening = site.data.join("listening.json");
        let _ = std::fs::remove_file(&listening);
        let log = site.data.with_file_name("node.log");
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_yiwang-node"))
            .arg("run")
            .arg("--config")
            .arg(&site.config)
            .env("RUST_LOG", std::env::var("YIWANG_BENCH_NODE_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start yiwang-node");
        let mut node = NodeProc { child, log, http: SocketAddr::from(([127, 0, 0, 1], 0)) };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(text) = std::fs::read_to_string(&listening) {
                let v: serde_json::Value = serde_json::from_str(&text).expect("listening.json");
                node.http = v["http"].as_str().and_then(|s| s.parse().ok()).expect("http address");
                return node;
            }
            node.check_alive();
            assert!(Instant::now() < deadline, "{} did not start within 60 s; log:\n{}", site.id, node.log_tail());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics with the log if the process has exited.
    pub fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("yiwang-node exited with {status}; log:\n{}", self.log_tail());
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// `/proc/<pid>/status` field in MiB (`VmRSS`, `VmHWM`).
    pub fn status_mib(&self, field: &str) -> f64 {
        proc_status_kib(self.pid(), field) as f64 / 1024.0
    }

    /// The value of one sample in `/metrics`, e.g.
    /// `yiwang_mesh_entries_received_total{peer="town-bench"}`; `None` while it is absent.
    pub fn metric(&self, sample: &str) -> Option<f64> {
        let body = http_get(self.http, "/metrics").ok()?;
        body.lines().find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A minimal HTTP/1.1 GET; the body of a 200 answer.
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(head.lines().next().unwrap_or("").to_string()));
    }
    Ok(body.to_string())
}
