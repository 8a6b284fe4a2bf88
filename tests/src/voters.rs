//! Five `yiwang-control` voters as real processes on loopback (the city and four counties),
//! each reaching every other through a [`Relay`] a test can cut: shared by the raft test and
//! the raft benchmark.

use crate::relay::Relay;
use crate::{get_as, NodeProcess};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The voters: the city and four counties, with their certificate roles.
pub const VOTERS: [(&str, &str); 5] =
    [("city", "city"), ("county-a", "county"), ("county-b", "county"), ("county-c", "county"), ("county-d", "county")];
/// The operator token every voter of the group accepts.
pub const TOKEN: &str = "raft-test-operator-token";

pub struct Group {
    dirs: Vec<std::path::PathBuf>,
    procs: Vec<Option<NodeProcess>>,
    /// Where each voter's API is now (it moves when a voter restarts).
    pub api: Arc<Mutex<Vec<Option<SocketAddr>>>>,
    /// relays[(i, j)]: voter i dials voter j through it.
    relays: BTreeMap<(usize, usize), Relay>,
}

impl Group {
    pub fn start(root: &Path) -> Group {
        let validity = node::mesh::pki::Validity::days_from(time::OffsetDateTime::now_utc(), 30).unwrap();
        let ca = node::mesh::pki::CityCa::generate("raft test CA", validity).unwrap();
        // The voters' ports stay taken until the relays have bound theirs, so no relay gets one.
        let held: Vec<UdpSocket> = VOTERS.iter().map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
        let raft: Vec<SocketAddr> = held.iter().map(|s| s.local_addr().unwrap()).collect();
        let mut relays = BTreeMap::new();
        for i in 0..VOTERS.len() {
            for (j, target) in raft.iter().enumerate() {
                if i != j {
                    relays.insert((i, j), Relay::new(*target));
                }
            }
        }
        let mut dirs = Vec::new();
        for (i, (name, role)) in VOTERS.iter().enumerate() {
            let dir = root.join(name);
            let identity = proto::NodeIdentity { id: proto::NodeId::new(*name).unwrap(), role: role.parse().unwrap() };
            ca.issue(&identity, validity).unwrap().write(&dir.join("pki"), ca.cert_pem(), false).unwrap();
            let mut config = format!(
                "data_dir = \"data\"\n[pki]\nca = \"pki/ca.pem\"\ncert = \"pki/node.pem\"\nkey = \"pki/node.key\"\n\
                 [raft]\nlisten = \"{}\"\n",
                raft[i]
            );
            for (j, (other, _)) in VOTERS.iter().enumerate() {
                config.push_str(&format!("[[raft.voters]]\nname = \"{other}\"\naddr = \"{}\"\n", raft[j]));
            }
            for (j, (other, _)) in VOTERS.iter().enumerate() {
                if i != j {
                    config.push_str(&format!(
                        "[[raft.routes]]\nname = \"{other}\"\naddr = \"{}\"\n",
                        relays[&(i, j)].addr()
                    ));
                }
            }
            config.push_str(&format!(
                "[api]\nlisten = \"127.0.0.1:0\"\n[[api.tokens]]\nname = \"operator-test\"\nrole = \"operator\"\ntoken = \"{TOKEN}\"\n"
            ));
            std::fs::write(dir.join("control.toml"), config).unwrap();
            dirs.push(dir);
        }
        drop(held);
        let mut group = Group { dirs, procs: Vec::new(), api: Arc::new(Mutex::new(vec![None; VOTERS.len()])), relays };
        for i in 0..VOTERS.len() {
            group.procs.push(None);
            group.launch(i);
        }
        group
    }

    pub fn launch(&mut self, i: usize) {
        let config = self.dirs[i].join("control.toml");
        let p = NodeProcess::start_bin(
            "yiwang-control",
            &self.dirs[i].join("data"),
            &["--config".as_ref(), config.as_os_str()],
        );
        let api: SocketAddr = p.listening["api"].as_str().unwrap().parse().unwrap();
        self.api.lock().unwrap()[i] = Some(api);
        self.procs[i] = Some(p);
    }

    pub fn kill(&mut self, i: usize) {
        self.api.lock().unwrap()[i] = None;
        self.procs[i].take().expect("running").kill();
    }

    pub fn api(&self, i: usize) -> SocketAddr {
        self.api.lock().unwrap()[i].expect("voter running")
    }

    pub fn status(&self, i: usize) -> Value {
        self.status_at(i, "/api/v1/raft")
    }

    /// [`Group::status`] with the digest of the voter's lists.
    pub fn status_with_digest(&self, i: usize) -> Value {
        self.status_at(i, "/api/v1/raft?digest=true")
    }

    fn status_at(&self, i: usize, path: &str) -> Value {
        let r = get_as(self.api(i), TOKEN, path).expect("status");
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    /// The voter that leads, as every running voter in `among` agrees, within 20 s.
    pub fn leader(&self, among: &[usize]) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let leaders: BTreeSet<Option<String>> =
                among.iter().map(|i| self.status(*i)["leader"].as_str().map(String::from)).collect();
            if let [Some(name)] = leaders.iter().collect::<Vec<_>>()[..] {
                if let Some(i) = VOTERS.iter().position(|(n, _)| n == name).filter(|i| among.contains(i)) {
                    if self.status(i)["state"] == "leader" {
                        return i;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leader agreed among {among:?} within 20 s: {leaders:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Cut (or heal) every link between the two sides.
    pub fn partition(&self, side: &[usize], cut: bool) {
        for ((i, j), relay) in &self.relays {
            if side.contains(i) != side.contains(j) {
                relay.set_cut(cut);
            }
        }
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn rfc3339(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// The JSON body that adds vessel `mmsi` to the black list, in force from a day before
/// `now_ms` for a year.
pub fn add_vessel(mmsi: u32, now_ms: u64, why: &str) -> String {
    const DAY_MS: u64 = 86_400_000;
    serde_json::json!({
        "entry": {
            "list": "black", "subject": format!("mmsi:{mmsi}"), "name": format!("vessel {mmsi}"),
            "authority": "Municipal Ocean and Fisheries Bureau", "legal_basis": "Fisheries Law art. 38",
            "effective": rfc3339(now_ms - DAY_MS), "expires": rfc3339(now_ms + 365 * DAY_MS),
        },
        "why": why,
    })
    .to_string()
}

/// A CSV header and `rows` vessels (from `first_mmsi` on) for the red list, for imports.
pub fn import_csv(first_mmsi: u32, rows: u32, now_ms: u64) -> String {
    const DAY_MS: u64 = 86_400_000;
    let (from, to) = (rfc3339(now_ms - DAY_MS), rfc3339(now_ms + 365 * DAY_MS));
    let mut csv = String::from("list,subject_kind,subject,name,authority,legal_basis,effective,expires,note\n");
    for k in 0..rows {
        csv.push_str(&format!(
            "red,mmsi,{},vessel {k},Municipal Ocean and Fisheries Bureau,Fisheries Law art. 38,{from},{to},bench\n",
            first_mmsi + k
        ));
    }
    csv
}
