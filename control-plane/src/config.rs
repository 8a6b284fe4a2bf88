//! `yiwang-control`'s configuration: one TOML file per voter site.
//!
//! ```toml
//! data_dir = "control-data"          # the raft log, snapshots, operator.token
//!
//! [pki]                              # the site's certificate (the same as its node's)
//! ca = "pki/ca.pem"
//! cert = "pki/node.pem"
//! key = "pki/node.key"
//!
//! [raft]
//! listen = "0.0.0.0:7900"            # QUIC, mutual TLS
//! heartbeat = "40ms"
//! election_timeout_min = "120ms"
//! election_timeout_max = "280ms"
//! call_deadline = "3s"               # a write or read with no deadline of its own
//! snapshot_every = 5000              # log entries between snapshots
//! logs_kept = 1000                   # log entries kept behind a snapshot (lagging followers)
//! join = false                       # true: a site joining a running group (`yiwangctl raft add`)
//!
//! [[raft.voters]]                    # the first voter set (this site among them)
//! name = "city"
//! addr = "10.20.0.1:7900"
//! [[raft.voters]]
//! name = "county-a"
//! addr = "10.20.1.1:7900"
//! [[raft.voters]]
//! name = "county-b"
//! addr = "10.20.2.1:7900"
//!
//! [[raft.routes]]                    # optional: reach a voter at another address from here
//! name = "county-b"
//! addr = "127.0.0.1:17902"
//!
//! [api]
//! listen = "127.0.0.1:7901"          # the operator API (HTTP, JSON)
//! [[api.tokens]]                     # roles: operator (changes lists), auditor (reads)
//! name = "operator-li"
//! role = "operator"
//! token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//!
//! [dashboard]                        # optional: the operators' dashboard at /dashboard
//! node_api = "127.0.0.1:7800"        # this site's node HTTP API (at the city: every node)
//! node_token_file = "data/operator.token"  # an operator or auditor token of that node
//! topology = "topology.toml"         # the sites, their links and positions on the map
//! boundaries = ["boundary.geojson"]  # fence boundaries drawn under the vessels (optional)
//! poll = "2s"                        # how often the view is refreshed
//! ```
//!
//! Without `[[api.tokens]]` the first start writes an operator token to
//! `<data_dir>/operator.token` (mode 0600), as a node does.

use crate::raft::voter::RaftSettings;
use node::auth::TokenSpec;
use proto::NodeId;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    pub data_dir: PathBuf,
    pub pki: PkiFiles,
    pub raft: RaftConfig,
    #[serde(default)]
    pub api: ApiConfig,
    /// The operators' dashboard (docs/dashboard.md); none without this section.
    #[serde(default)]
    pub dashboard: Option<DashboardConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    /// This site's node HTTP API, whose mesh view, escalations and fence alerts the dashboard
    /// shows.
    pub node_api: SocketAddr,
    /// A file holding an operator or auditor token of that node.
    pub node_token_file: PathBuf,
    /// The topology file: sites, links and positions.
    pub topology: PathBuf,
    /// GeoJSON boundaries of the vessel fences, drawn on the map.
    #[serde(default)]
    pub boundaries: Vec<PathBuf>,
    #[serde(default = "default_poll", with = "humantime_serde")]
    pub poll: Duration,
}

fn default_poll() -> Duration {
    crate::dashboard::DEFAULT_POLL
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PkiFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoterAddr {
    pub name: NodeId,
    pub addr: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftConfig {
    pub listen: SocketAddr,
    pub voters: Vec<VoterAddr>,
    #[serde(default)]
    pub routes: Vec<VoterAddr>,
    #[serde(default = "defaults::heartbeat", with = "humantime_serde")]
    pub heartbeat: Duration,
    #[serde(default = "defaults::election_timeout_min", with = "humantime_serde")]
    pub election_timeout_min: Duration,
    #[serde(default = "defaults::election_timeout_max", with = "humantime_serde")]
    pub election_timeout_max: Duration,
    #[serde(default = "defaults::call_deadline", with = "humantime_serde")]
    pub call_deadline: Duration,
    #[serde(default = "defaults::snapshot_every")]
    pub snapshot_every: u64,
    #[serde(default = "defaults::logs_kept")]
    pub logs_kept: u64,
    /// A site joining a group that already runs: it forms no group of its own and waits to be
    /// added by an operator.
    #[serde(default)]
    pub join: bool,
}

/// The defaults are [`RaftSettings::default`]'s: one definition.
mod defaults {
    use super::*;
    pub fn heartbeat() -> Duration {
        RaftSettings::default().heartbeat
    }
    pub fn election_timeout_min() -> Duration {
        RaftSettings::default().election_timeout_min
    }
    pub fn election_timeout_max() -> Duration {
        RaftSettings::default().election_timeout_max
    }
    pub fn call_deadline() -> Duration {
        RaftSettings::default().call_deadline
    }
    pub fn snapshot_every() -> u64 {
        RaftSettings::default().snapshot_every
    }
    pub fn logs_kept() -> u64 {
        RaftSettings::default().logs_kept
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    #[serde(default = "default_api_listen")]
    pub listen: SocketAddr,
    #[serde(default)]
    pub tokens: Vec<TokenSpec>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig { listen: default_api_listen(), tokens: Vec::new() }
    }
}

fn default_api_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7901))
}

impl RaftConfig {
    pub fn settings(&self) -> RaftSettings {
        RaftSettings {
            heartbeat: self.heartbeat,
            election_timeout_min: self.election_timeout_min,
            election_timeout_max: self.election_timeout_max,
            call_deadline: self.call_deadline,
            snapshot_every: self.snapshot_every,
            logs_kept: self.logs_kept,
        }
    }
}

impl ControlConfig {
    /// Read and check a config file; relative paths in it are taken from the file's folder.
    pub fn load(path: &Path) -> Result<ControlConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut config: ControlConfig = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut paths = vec![&mut config.data_dir, &mut config.pki.ca, &mut config.pki.cert, &mut config.pki.key];
        if let Some(d) = &mut config.dashboard {
            paths.push(&mut d.node_token_file);
            paths.push(&mut d.topology);
            paths.extend(d.boundaries.iter_mut());
        }
        for p in paths {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        config.check().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        let r = &self.raft;
        if r.voters.is_empty() {
            return Err("raft.voters is empty: list the voting sites, this one among them".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for v in &r.voters {
            if !seen.insert(v.name.clone()) {
                return Err(format!("raft.voters names {} twice", v.name));
            }
            if v.addr.parse::<SocketAddr>().is_err() {
                return Err(format!("raft.voters {}: addr {:?} is not an IP address and port", v.name, v.addr));
            }
        }
        if r.election_timeout_min <= r.heartbeat || r.election_timeout_max <= r.election_timeout_min {
            return Err("raft: need heartbeat < election_timeout_min < election_timeout_max".into());
        }
        if r.call_deadline.is_zero() {
            return Err("raft.call_deadline must be above zero".into());
        }
        if let Some(d) = &self.dashboard {
            if d.poll < crate::dashboard::MIN_POLL {
                return Err(format!("dashboard.poll is at least {:?}", crate::dashboard::MIN_POLL));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses_and_checks() {
        let text = node::doc_toml_example(include_str!("config.rs"));
        let config: ControlConfig = toml::from_str(&text).unwrap();
        config.check().unwrap();
        assert_eq!(config.raft.voters.len(), 3);
        assert_eq!(config.raft.routes[0].addr, "127.0.0.1:17902");
        assert_eq!(config.raft.settings().election_timeout_max, Duration::from_millis(280));
        assert_eq!(config.dashboard.unwrap().poll, Duration::from_secs(2));
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let base = node::doc_toml_example(include_str!("config.rs"));
        let twice = base
            .replace("name = \"county-b\"\naddr = \"10.20.2.1:7900\"", "name = \"city\"\naddr = \"10.20.2.1:7900\"");
        let c: ControlConfig = toml::from_str(&twice).unwrap();
        assert!(c.check().unwrap_err().contains("twice"));
        let slow = base.replace("heartbeat = \"40ms\"", "heartbeat = \"1s\"");
        let c: ControlConfig = toml::from_str(&slow).unwrap();
        assert!(c.check().unwrap_err().contains("heartbeat <"));
        let addr = base.replace("10.20.1.1:7900", "county-a:7900");
        let c: ControlConfig = toml::from_str(&addr).unwrap();
        assert!(c.check().unwrap_err().contains("not an IP address"));
    }
}
