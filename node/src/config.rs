//! The node's TOML configuration. Every section has defaults, unknown keys are refused (a typo
//! must not silently turn a feature off), and [`NodeConfig::load`] names the file and the key
//! in every error.
//!
//! ```toml
//! data_dir = "/var/lib/yiwang"      # top-level keys come before the first [section]
//!
//! [node]
//! id = "harbour-shidao"
//! role = "harbour"
//!
//! [http]
//! listen = "127.0.0.1:7800"        # /metrics (and later the API)
//!
//! [store]
//! disk_budget_mb = 16384
//! retention_days = 7
//! plate_read_retention_hours = 24  # plate reads that hit no list; 0: counted, never stored
//!
//! [[feeds.ais]]
//! name = "harbour-receiver"
//! udp = "0.0.0.0:10110"
//! tcp_connect = "192.168.1.20:5631"
//!
//! [[feeds.checkpoint]]
//! name = "roads"
//! http = "127.0.0.1:7810"
//! tcp = "127.0.0.1:7811"
//!
//! [[feeds.camera]]
//! name = "coast"
//! tcp = "127.0.0.1:7820"
//! default_heartbeat_s = 60
//! cameras = [{ id = "cam-17", heartbeat_s = 30 }]
//!
//! [[feeds.viid]]
//! name = "checkpoints"
//! http = "0.0.0.0:7812"
//! devices = [{ id = "37020200001190000001", password = "change-me" }]
//!
//! [[feeds.camera]]
//! name = "gate"                    # ONVIF cameras only: the node subscribes to their events
//! cameras = [
//!   { id = "cam-21", heartbeat_s = 30, onvif = { url = "http://10.0.0.21/onvif/device_service", username = "yiwang", password = "secret" } },
//!   { id = "cam-22", heartbeat_s = 60, onvif = { url = "http://10.0.0.22/onvif/device_service", pull_timeout = "20s", renew = "2m", message_limit = 50 } },
//! ]
//!
//! [watchlist]
//! file = "watchlist.csv"
//! max_expiry_days = 365           # the longest an entry (the file's or the API's) may run
//!
//! [fence]
//! boundary = "boundary.geojson"
//! zones = { warn_nm = 3.0, alert_nm = 1.0, recall_nm = 0.0, margin_nm = 0.1 }
//! ```

use crate::store::StoreConfig;
use proto::{NodeId, Role};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Largest config file read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    #[serde(default)]
    pub node: NodeSection,
    /// The config had no `[node]` section: `node` holds the defaults.
    #[serde(skip)]
    pub node_defaulted: bool,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub feeds: FeedsConfig,
    #[serde(default)]
    pub watchlist: WatchlistConfig,
    pub fence: Option<FenceConfig>,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub deadlines: crate::workflow::deadlines::DeadlineConfig,
    /// Grid categories (also the Open311 services); SEED.md's by default.
    #[serde(default = "crate::events::default_categories")]
    pub categories: Vec<crate::events::Category>,
    #[serde(default)]
    pub summaries: SummaryConfig,
    /// Links to the rest of the mesh; a node without it works alone.
    pub mesh: Option<MeshConfig>,
}

/// The node's place in the mesh (see docs/topology.md and docs/pki.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshConfig {
    /// UDP address of this node's QUIC endpoint.
    pub listen: SocketAddr,
    /// The topology file shared by every node of the mesh.
    pub topology: PathBuf,
    /// The city CA certificate, this node's certificate and its key (PEM).
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Per-link send cap in bytes per second; 0 for none.
    #[serde(default)]
    pub max_bytes_per_sec: u64,
    /// Batches in flight per link before one must be acknowledged.
    #[serde(default = "default_window")]
    pub window: usize,
    /// A silent peer counts as gone after this long; a dead parent is noticed this fast.
    #[serde(default = "default_idle", with = "humantime_serde")]
    pub idle_timeout: std::time::Duration,
    /// Incoming handshakes under way at once; past this, connections are refused unanswered.
    #[serde(default = "default_max_handshakes")]
    pub max_handshakes: usize,
    /// Refused handshakes are audited at most once per source address per this interval, with
    /// their count.
    #[serde(default = "default_refusal_audit_interval", with = "humantime_serde")]
    pub refusal_audit_interval: std::time::Duration,
    /// `[mesh.receive_quota]`: entries per second per origin taken of `alert`, `escalation`,
    /// `summary` and `audit` (0: no quota); past it a link waits (see `mesh::quota`).
    #[serde(default)]
    pub receive_quota: crate::mesh::quota::ReceiveQuota,
}

fn default_max_handshakes() -> usize {
    crate::mesh::DEFAULT_MAX_HANDSHAKES
}

fn default_refusal_audit_interval() -> std::time::Duration {
    crate::mesh::DEFAULT_REFUSAL_AUDIT_INTERVAL
}

fn default_idle() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

fn default_window() -> usize {
    4
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    pub id: NodeId,
    pub role: Role,
}

impl Default for NodeSection {
    /// A town node, for a config without `[node]`. The binary names it after the host
    /// ([`NodeConfig::node_defaulted`], [`node_id_for_host`]): reading the host's name is the
    /// process's business, not the library's.
    fn default() -> Self {
        NodeSection { id: NodeId::new("town-local").expect("valid id"), role: Role::Town }
    }
}

/// The id of a town node named after host `host`: `town-<host>`, lower-cased, with anything
/// but letters, digits and dashes turned into dashes (`town-local` for an empty name).
pub fn node_id_for_host(host: &str) -> NodeId {
    let cleaned: String = host
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' })
        .take(40)
        .collect();
    NodeId::new(format!("town-{}", if cleaned.is_empty() { "local" } else { &cleaned }))
        .unwrap_or_else(|_| NodeSection::default().id)
}

/// Who may use the HTTP API (see `node::auth`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    pub tokens: Vec<crate::auth::TokenSpec>,
    pub open311_keys: Vec<crate::auth::Open311KeySpec>,
    /// Grid categories whose events Open311 lists even when reported by grid workers rather
    /// than submitted through Open311. None by default: the public sees its own requests.
    pub open311_public_categories: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SummaryConfig {
    /// Length of a summary window.
    #[serde(with = "humantime_serde")]
    pub window: std::time::Duration,
}

impl Default for SummaryConfig {
    fn default() -> Self {
        SummaryConfig { window: std::time::Duration::from_secs(3600) }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("yiwang-data")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Metrics (and the API). Loopback by default: opening it wider is a decision.
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { listen: SocketAddr::from(([127, 0, 0, 1], 7800)) }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedsConfig {
    pub ais: Vec<AisFeed>,
    pub checkpoint: Vec<CheckpointFeed>,
    pub camera: Vec<CameraFeed>,
    /// GA/T 1400 view-library listeners for checkpoint devices and lower platforms.
    pub viid: Vec<ViidFeed>,
}

/// An AIS receiver. NMEA arrives by UDP datagrams, by receivers connecting to us over TCP, or by
/// us connecting to a receiver's TCP server; any combination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AisFeed {
    pub name: String,
    pub udp: Option<SocketAddr>,
    pub tcp_listen: Option<SocketAddr>,
    /// `host:port` of a receiver that serves NMEA over TCP; reconnected with backoff.
    pub tcp_connect: Option<String>,
    /// How long the first part of a multi-part message waits for the rest.
    #[serde(default = "default_fragment_timeout_ms")]
    pub fragment_timeout_ms: u64,
}

fn default_fragment_timeout_ms() -> u64 {
    10_000
}

/// A road-checkpoint feed: batches over HTTP POST and/or JSON lines over TCP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointFeed {
    pub name: String,
    pub http: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    /// Answer each durable batch on the TCP connection with a JSON line. Off by default: most
    /// devices never read, and their unread acknowledgements would fill the socket.
    #[serde(default)]
    pub tcp_acks: bool,
}

/// A camera feed: ONVIF-named events and heartbeats over HTTP POST and/or TCP JSON lines, and
/// the events of cameras the node subscribes to itself (those with an `onvif` table).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraFeed {
    pub name: String,
    pub http: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    #[serde(default)]
    pub tcp_acks: bool,
    /// Silence after which a camera not listed in `cameras` is reported offline.
    #[serde(default = "default_heartbeat_s")]
    pub default_heartbeat_s: u64,
    /// Cameras expected on this feed: one that never speaks is reported offline too.
    #[serde(default)]
    pub cameras: Vec<CameraSpec>,
}

/// A GA/T 1400 (视图库, VIID) listener: checkpoint devices and lower platforms register with
/// HTTP Digest, keep alive, and push vehicle objects (see docs/feeds.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViidFeed {
    pub name: String,
    /// Where the `/VIID/...` HTTP API listens.
    pub http: SocketAddr,
    /// This platform's id as `GET /VIID/System/Time` reports it; the node id by default.
    pub server_id: Option<String>,
    /// The Digest realm devices see.
    #[serde(default = "default_viid_realm")]
    pub realm: String,
    /// The zone of the devices' local times (`yyyyMMddHHmmss` carries none).
    #[serde(default = "default_utc_offset")]
    pub utc_offset: String,
    /// A device silent this long (no keepalive, no data) is reported offline; a configured
    /// device that never registers too.
    #[serde(default = "default_keepalive_timeout", with = "humantime_serde")]
    pub keepalive_timeout: std::time::Duration,
    /// The devices (or lower platforms) allowed to register, with their Digest credentials.
    pub devices: Vec<ViidDevice>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViidDevice {
    /// The device's GA/T 1400 id (`DeviceID` in its register body).
    pub id: String,
    /// Its Digest user name; the device id when not given (as most devices do).
    pub username: Option<String>,
    pub password: Secret,
}

fn default_viid_realm() -> String {
    "yiwang".into()
}

fn default_utc_offset() -> String {
    "+08:00".into()
}

fn default_keepalive_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(180)
}

fn default_heartbeat_s() -> u64 {
    60
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraSpec {
    pub id: String,
    /// Silence after which the camera is reported offline. For an ONVIF camera every answered
    /// PullMessages counts as a sign of life, so this must be longer than `pull_timeout`.
    pub heartbeat_s: u64,
    /// Subscribe to the camera's ONVIF event service (see docs/feeds-onvif.md).
    #[serde(default)]
    pub onvif: Option<OnvifSpec>,
}

/// A password from the config. Its `Debug` says `<redacted>`, so a config printed to a log
/// shows no password.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where and how to subscribe to a camera's ONVIF events (a pull-point subscription).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnvifSpec {
    /// The device service, `http://host[:port]/onvif/device_service`; plain HTTP only.
    pub url: String,
    /// WS-Security UsernameToken credentials; an empty username sends none.
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: Secret,
    /// How long the camera may hold a PullMessages open while it has no events.
    #[serde(default = "default_pull_timeout", with = "humantime_serde")]
    pub pull_timeout: std::time::Duration,
    /// The termination time asked for at CreatePullPointSubscription and at every Renew; the
    /// node renews at half of it.
    #[serde(default = "default_renew", with = "humantime_serde")]
    pub renew: std::time::Duration,
    /// Most messages one PullMessages may return.
    #[serde(default = "default_message_limit")]
    pub message_limit: u32,
}

fn default_pull_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

fn default_renew() -> std::time::Duration {
    std::time::Duration::from_secs(60)
}

fn default_message_limit() -> u32 {
    100
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchlistConfig {
    /// A local watchlist file (format in `node::rules::watchlist`).
    pub file: Option<PathBuf>,
    /// The longest an entry may run, in days (default 365): an API add past it is refused, and
    /// so is a file line (the node does not start). The authority renews a listing instead.
    pub max_expiry_days: u32,
}

impl Default for WatchlistConfig {
    fn default() -> Self {
        WatchlistConfig { file: None, max_expiry_days: crate::lists::DEFAULT_MAX_EXPIRY_DAYS }
    }
}

/// Vessel fences around a sea boundary (see docs/fences.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FenceConfig {
    /// The sea boundary as GeoJSON.
    pub boundary: PathBuf,
    /// Ring distances, hysteresis margin and tracker bounds, under `[fence.zones]`.
    #[serde(default)]
    pub zones: crate::rules::fence::FenceConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config {path} is {size} bytes; the limit is {MAX_CONFIG_BYTES}")]
    TooLarge { path: String, size: u64 },
    #[error("config {path}: {message}")]
    Invalid { path: String, message: String },
}

impl NodeConfig {
    /// The config of a node started without a file: every default.
    pub fn empty() -> NodeConfig {
        NodeConfig::parse("").expect("the defaults are valid")
    }

    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let shown = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge { path: shown, size: meta.len() });
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
        let mut config =
            NodeConfig::parse(&text).map_err(|message| ConfigError::Invalid { path: shown.clone(), message })?;
        // Relative paths in the file are relative to the file, not to wherever the node started.
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        Ok(config)
    }

    pub fn parse(text: &str) -> Result<NodeConfig, String> {
        let mut config: NodeConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.node_defaulted = !text.parse::<toml::Table>().map_err(|e| e.to_string())?.contains_key("node");
        config.validate()?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.data_dir);
        if let Some(f) = self.watchlist.file.as_mut() {
            fix(f);
        }
        if let Some(f) = self.fence.as_mut() {
            fix(&mut f.boundary);
        }
        if let Some(m) = self.mesh.as_mut() {
            for p in [&mut m.topology, &mut m.ca, &mut m.cert, &mut m.key] {
                fix(p);
            }
        }
    }

    fn validate(&self) -> Result<(), String> {
        self.store.validate()?;
        if let Some(f) = &self.fence {
            f.zones.validate().map_err(|e| format!("fence.zones: {e}"))?;
        }
        let mut names = std::collections::HashSet::new();
        let feeds =
            self.feeds
                .ais
                .iter()
                .map(|f| (&f.name, f.udp.is_some() || f.tcp_listen.is_some() || f.tcp_connect.is_some()))
                .chain(self.feeds.checkpoint.iter().map(|f| (&f.name, f.http.is_some() || f.tcp.is_some())))
                .chain(self.feeds.camera.iter().map(|f| {
                    (&f.name, f.http.is_some() || f.tcp.is_some() || f.cameras.iter().any(|c| c.onvif.is_some()))
                }))
                .chain(self.feeds.viid.iter().map(|f| (&f.name, true)));
        for (name, has_address) in feeds {
            if name.is_empty() || name.len() > 64 {
                return Err(format!("feed name {name:?} must be 1 to 64 bytes"));
            }
            if !names.insert(name.clone()) {
                return Err(format!("two feeds are named {name:?}; names label metrics and must differ"));
            }
            if !has_address {
                return Err(format!("feed {name:?} has no address to listen on or connect to"));
            }
        }
        if self.summaries.window.as_millis() < 60_000 {
            return Err("summaries.window must be at least one minute".into());
        }
        let mut codes = std::collections::HashSet::new();
        for c in &self.categories {
            let ok = !c.code.is_empty()
                && c.code.len() <= 64
                && c.code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                return Err(format!("category code {:?} must be 1 to 64 of [a-z0-9_]", c.code));
            }
            if !codes.insert(&c.code) || crate::events::ALERT_CATEGORIES.contains(&c.code.as_str()) {
                return Err(format!("category code {:?} is used twice or is an alert category", c.code));
            }
        }
        crate::auth::Credentials::from_specs(&self.api.tokens, &self.api.open311_keys)?;
        for c in &self.api.open311_public_categories {
            if !self.categories.iter().any(|k| &k.code == c) {
                return Err(format!("api.open311_public_categories: {c:?} is not a grid category"));
            }
        }
        if !(1..=3650).contains(&self.watchlist.max_expiry_days) {
            return Err("watchlist.max_expiry_days must be 1 to 3650".into());
        }
        if let Some(m) = &self.mesh {
            if m.window == 0 || m.window > 64 {
                return Err("mesh.window must be 1 to 64".into());
            }
            if m.idle_timeout < std::time::Duration::from_secs(1)
                || m.idle_timeout > std::time::Duration::from_secs(600)
            {
                return Err("mesh.idle_timeout must be between 1 s and 10 min".into());
            }
            if m.max_handshakes == 0 || m.max_handshakes > 4096 {
                return Err("mesh.max_handshakes must be 1 to 4096".into());
            }
            if m.refusal_audit_interval < std::time::Duration::from_secs(1)
                || m.refusal_audit_interval > std::time::Duration::from_secs(86_400)
            {
                return Err("mesh.refusal_audit_interval must be between 1 s and 1 day".into());
            }
        }
        for f in &self.feeds.viid {
            f.check()?;
        }
        for f in &self.feeds.camera {
            if f.default_heartbeat_s == 0 || f.cameras.iter().any(|c| c.heartbeat_s == 0) {
                return Err(format!("camera feed {:?}: heartbeat intervals must be above 0 seconds", f.name));
            }
            let mut ids = std::collections::BTreeSet::new();
            for c in &f.cameras {
                if !ids.insert(&c.id) {
                    return Err(format!("camera feed {:?}: camera {:?} is listed twice", f.name, c.id));
                }
                if let Some(o) = &c.onvif {
                    crate::feeds::onvif::validate(o, c.heartbeat_s)
                        .map_err(|e| format!("camera feed {:?}, camera {:?}: onvif: {e}", f.name, c.id))?;
                }
            }
        }
        Ok(())
    }
}

impl ViidFeed {
    fn check(&self) -> Result<(), String> {
        let name = &self.name;
        if crate::feeds::viid::time::parse_offset(&self.utc_offset).is_none() {
            return Err(format!("viid feed {name:?}: utc_offset {:?} is not like +08:00", self.utc_offset));
        }
        if self.keepalive_timeout < std::time::Duration::from_secs(1) {
            return Err(format!("viid feed {name:?}: keepalive_timeout must be at least 1 s"));
        }
        if self.devices.is_empty() {
            return Err(format!("viid feed {name:?} lists no devices: none could register"));
        }
        let (mut ids, mut users) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
        for d in &self.devices {
            let max = crate::feeds::viid::objects::MAX_ID_BYTES;
            if d.id.is_empty() || d.id.len() > max || d.password.expose().is_empty() {
                return Err(format!(
                    "viid feed {name:?}: device {:?} needs an id of 1 to {max} bytes and a password",
                    d.id
                ));
            }
            if !ids.insert(&d.id) || !users.insert(d.username.as_ref().unwrap_or(&d.id)) {
                return Err(format!("viid feed {name:?}: device {:?} or its user name is listed twice", d.id));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let example = crate::doc_toml_example(include_str!("config.rs"));
        let c = NodeConfig::parse(&example).unwrap();
        assert_eq!(c.node.id.as_str(), "harbour-shidao");
        assert_eq!(c.feeds.camera[0].cameras[0].heartbeat_s, 30);
        assert_eq!(c.feeds.viid[0].utc_offset, "+08:00");
        assert_eq!(c.feeds.viid[0].keepalive_timeout.as_secs(), 180);
        assert_eq!(c.feeds.viid[0].devices[0].password.expose(), "change-me");
        assert!(!format!("{:?}", c.feeds.viid[0]).contains("change-me"), "the password stays out of logs");
        let onvif = c.feeds.camera[1].cameras[1].onvif.as_ref().unwrap();
        assert_eq!(onvif.pull_timeout.as_secs(), 20);
        assert_eq!(onvif.message_limit, 50);
        let first = c.feeds.camera[1].cameras[0].onvif.as_ref().unwrap();
        assert_eq!((first.pull_timeout.as_secs(), first.renew.as_secs(), first.message_limit), (10, 60, 100));
        assert!(!format!("{first:?}").contains("secret"), "the password stays out of logs");
        assert_eq!(c.store.retention_days, 7.0);
    }

    #[test]
    fn receive_quotas_have_defaults_and_can_be_set_or_lifted() {
        use crate::mesh::quota::ReceiveQuota;
        let base = "[node]\nid = \"county-a\"\nrole = \"county\"\n[mesh]\nlisten = \"127.0.0.1:7900\"\n\
                    topology = \"t.toml\"\nca = \"ca.pem\"\ncert = \"n.pem\"\nkey = \"n.key\"\n";
        let c = NodeConfig::parse(base).unwrap();
        assert_eq!(c.mesh.unwrap().receive_quota, ReceiveQuota::default());
        let c = NodeConfig::parse(&format!("{base}[mesh.receive_quota]\naudit = 0\nalert = 50\n")).unwrap();
        let q = c.mesh.unwrap().receive_quota;
        assert_eq!((q.audit, q.alert, q.summary), (0, 50, ReceiveQuota::default().summary));
        let err = NodeConfig::parse(&format!("{base}[mesh.receive_quota]\nwatchlist = 5\n")).unwrap_err();
        assert!(err.contains("watchlist"), "{err}");
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = NodeConfig::parse("[node]\nid = \"town-a\"\nrole = \"town\"\n").unwrap();
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:7800");
        assert_eq!(c.store.retention_days, 7.0);
        assert_eq!(c.store.plate_read_retention_hours, 24.0);
        assert!(c.fence.is_none());
    }

    #[test]
    fn plate_read_retention_runs_from_zero_to_the_detections_retention() {
        let base = "[node]\nid = \"town-a\"\nrole = \"town\"\n[store]\nretention_days = 2\n";
        let c = NodeConfig::parse(&format!("{base}plate_read_retention_hours = 0\n")).unwrap();
        assert!(!c.store.keeps_plate_reads());
        let c = NodeConfig::parse(&format!("{base}plate_read_retention_hours = 48\n")).unwrap();
        assert_eq!(c.store.plate_read_retention_ms(), 48 * 3_600_000);
        for bad in ["49", "-1", "nan"] {
            let err = NodeConfig::parse(&format!("{base}plate_read_retention_hours = {bad}\n")).unwrap_err();
            assert!(err.contains("store.plate_read_retention_hours must be 0 (not stored) to 48"), "{bad}: {err}");
        }
    }

    #[test]
    fn no_file_at_all_is_a_working_config() {
        let c = NodeConfig::empty();
        assert_eq!(c.node.id.as_str(), "town-local");
        assert!(c.node_defaulted, "the binary names such a node after its host");
        assert!(!NodeConfig::parse("[node]\nid = \"town-a\"\nrole = \"town\"\n").unwrap().node_defaulted);
        assert_eq!(c.categories.len(), 7);
        assert_eq!(c.summaries.window.as_secs(), 3600);
    }

    #[test]
    fn a_host_name_makes_a_valid_node_id() {
        assert_eq!(node_id_for_host("Harbour_Box.local\n").as_str(), "town-harbour-box-local");
        assert_eq!(node_id_for_host("").as_str(), "town-local");
        assert_eq!(node_id_for_host("   ").as_str(), "town-local");
        assert!(node_id_for_host(&"x".repeat(300)).as_str().len() <= proto::ids::MAX_NODE_ID_LEN);
    }

    #[test]
    fn mistakes_are_named() {
        let err =
            NodeConfig::parse("[node]\nid = \"town-a\"\nrole = \"town\"\n[store]\nretention_dayz = 3\n").unwrap_err();
        assert!(err.contains("retention_dayz"), "{err}");
        let err = NodeConfig::parse("[node]\nid = \"Town A\"\nrole = \"town\"\n").unwrap_err();
        assert!(err.contains("lower-case"), "{err}");
        let err = NodeConfig::parse("[node]\nid = \"t\"\nrole = \"town\"\n[[feeds.ais]]\nname = \"a\"\n").unwrap_err();
        assert!(err.contains("no address"), "{err}");
        let err = NodeConfig::parse("[node]\nid = \"t\"\nrole = \"mayor\"\n").unwrap_err();
        assert!(err.contains("mayor"), "{err}");
        let err =
            NodeConfig::parse("[[api.tokens]]\nname = \"x\"\nrole = \"operator\"\ntoken = \"short\"\n").unwrap_err();
        assert!(err.contains("16 characters"), "{err}");
        let err = NodeConfig::parse(
            "[[feeds.camera]]\nname = \"c\"\ncameras = [{ id = \"a\", heartbeat_s = 5, onvif = { url = \"https://x/onvif\" } }]\n",
        )
        .unwrap_err();
        assert!(err.contains("http://"), "{err}");
        let err = NodeConfig::parse(
            "[[feeds.camera]]\nname = \"c\"\ncameras = [{ id = \"a\", heartbeat_s = 5, onvif = { url = \"http://x/onvif\" } }]\n",
        )
        .unwrap_err();
        assert!(err.contains("heartbeat"), "{err}");
        let err = NodeConfig::parse("[deadlines.default]\nreported = \"whenever\"\n").unwrap_err();
        assert!(err.contains("whenever") || err.contains("reported"), "{err}");
    }
}
