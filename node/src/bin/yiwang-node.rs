//! `yiwang-node`: the edge node binary. A thin wrapper: everything it runs lives in the `node`
//! library, so the simulator runs the same code.

use clap::{Parser, Subcommand};
use node::audit_chain::ChainCheck;
use node::auth::Credentials;
use node::clock::{GuardedClock, SharedClock, SystemClock};
use node::config::NodeConfig;
use node::events::Change;
use node::instance::{self, Parts};
use node::mesh::tls::MeshIdentity;
use node::mesh::topology::Topology;
use node::mesh::{LinkSettings, MeshParts};
use node::metrics::Metrics;
use node::records::{Alert, AuditRecord, Detection};
use node::store::Store;
use prometheus_client::registry::Registry;
use proto::Kind;
use proto::{NodeId, Role};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "yiwang-node",
    version,
    about = "The yiwang edge node: ingests a site's feeds (vessel AIS, road checkpoints, cameras), runs watchlist and fence rules at ingest, and keeps everything durable in its own store."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the node's settings come from: a config file, overridden by flags.
#[derive(clap::Args)]
struct NodeArgs {
    /// The node's TOML config (every key documented in deploy/examples/harbour.toml). Without
    /// it the node runs on defaults: a town node, no feeds, the HTTP API on 127.0.0.1:7800.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the node keeps its store and operator token [config: data_dir; default ./yiwang-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address of the HTTP API and /metrics [config: http.listen; default 127.0.0.1:7800].
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// This node's id [config: node.id; default town-<hostname>].
    #[arg(long, value_name = "ID")]
    node_id: Option<NodeId>,
    /// This node's role: city, county, town or harbour [config: node.role; default town].
    #[arg(long, value_name = "ROLE")]
    role: Option<Role>,
}

impl NodeArgs {
    fn load(&self) -> Result<NodeConfig> {
        let mut config = match &self.config {
            Some(path) => NodeConfig::load(path).map_err(|e| e.to_string())?,
            None => NodeConfig::empty(),
        };
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(h) = self.http {
            config.http.listen = h;
        }
        match &self.node_id {
            Some(id) => config.node.id = id.clone(),
            None if config.node_defaulted => {
                let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
                config.node.id = node::config::node_id_for_host(&host);
            }
            None => {}
        }
        if let Some(r) = self.role {
            config.node.role = r;
        }
        Ok(config)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the node: feed listeners, rules, the event workflow, the HTTP API (/api/v1, Open311 at
    /// /open311/v2, /openapi.json) and /metrics, until SIGINT or SIGTERM.
    ///
    /// On first start without an operator token in the config, the node creates one and saves it
    /// to <data-dir>/operator.token.
    Run {
        #[command(flatten)]
        node: NodeArgs,
        /// Accept this Open311 GeoReport v2 API key (repeat for several).
        #[arg(long = "open311-api-key", value_name = "KEY")]
        open311_api_keys: Vec<String>,
    },
    /// Decode AIS NMEA 0183 and print one JSON object per message, with gpsd's field names and units.
    DecodeAis {
        /// Print gpsd's daemon units (lat/lon in 1/10000 minute, speed in 1/10 knot, ...) instead of gpsdecode -j's scaled ones.
        #[arg(long)]
        unscaled: bool,
        /// NMEA file to read; standard input without it.
        file: Option<PathBuf>,
    },
    /// Print a stopped node's stored entries as JSON lines (the node must not be running).
    Export {
        #[command(flatten)]
        node: NodeArgs,
        /// detection, alert, audit, ... (all kinds without it).
        #[arg(long)]
        kind: Option<String>,
    },
    /// Check the audit log's hash chains: each origin's records, each carrying the hash of the
    /// record before it. Reads a stopped node's store, or with --export the output of
    /// `export --kind audit`. Names the first broken link and exits with status 1 if there is
    /// one; records whose predecessor is not held (deleted by retention) start the check anew.
    VerifyAudit {
        #[command(flatten)]
        node: NodeArgs,
        /// JSON lines from `yiwang-node export --kind audit` ("-" for standard input) instead
        /// of the store.
        #[arg(long, value_name = "FILE")]
        export: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { node, open311_api_keys } => node.load().and_then(|c| run(c, &open311_api_keys)),
        Command::DecodeAis { unscaled, file } => decode_ais(file.as_deref(), !unscaled),
        Command::Export { node, kind } => node.load().and_then(|c| export(c, kind.as_deref())),
        Command::VerifyAudit { node, export } => match export {
            Some(file) => verify_audit_export(&file),
            None => node.load().and_then(verify_audit_store),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("yiwang-node: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, String>;

fn open_store(config: &NodeConfig, clock: SharedClock, metrics: Metrics) -> Result<Store> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", config.data_dir.display()))?;
    Store::open(&config.data_dir.join("store"), config.node.id.clone(), clock, config.store.clone(), metrics)
        .map_err(|e| e.to_string())
}

/// The config's tokens and keys, the flags' Open311 keys, and the operator token file when the
/// config names no operator.
fn credentials(config: &NodeConfig, open311_api_keys: &[String]) -> Result<Credentials> {
    let mut c = Credentials::from_specs(&config.api.tokens, &config.api.open311_keys)?;
    for (i, key) in open311_api_keys.iter().enumerate() {
        c.add_open311_key(&format!("cli-key-{}", i + 1), key)?;
    }
    node::process::ensure_operator(&mut c, &config.data_dir)?;
    Ok(c)
}

fn run(config: NodeConfig, open311_api_keys: &[String]) -> Result<()> {
    node::process::init_logging();
    // One malloc arena: glibc's default of one per thread (up to 8 per core) let a county
    // draining a million-entry backlog grow by 12-16 bytes per entry in arenas alone (see the
    // replication benchmark); with one, its memory follows sled's own. Allocation here is not
    // contended enough for the shared lock to show in the ingest or drain rates.
    // SAFETY: called once, before the runtime starts any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        // Held back when the system clock jumps ahead while the node runs (clock::JumpGuard).
        let clock: SharedClock = Arc::new(GuardedClock::new(SystemClock, metrics.clone()));
        let store = open_store(&config, clock.clone(), metrics.clone())?;
        let credentials = credentials(&config, open311_api_keys)?;
        let mesh = mesh_parts(&config)?;
        let parts = Parts {
            clock,
            store: store.clone(),
            metrics,
            registry: Arc::new(registry),
            credentials,
            mesh,
            seed: node::process::os_seed()?,
            serve_http: true,
        };
        let running = instance::start(&config, parts).await.map_err(|e| e.to_string())?;
        node::process::write_addresses(&config.data_dir, &running.addresses)?;
        tracing::info!(node = %config.node.id, role = %config.node.role, addresses = ?running.addresses, "node ready");
        let failed = tokio::select! {
            _ = node::process::wait_for_signal() => false,
            _ = store.failure() => true,
        };
        tracing::info!("stopping");
        running.stop().await;
        store.close().await;
        if failed {
            // Fail-stop: what the store holds in memory may not match the disk any more; a
            // restart (systemd's Restart=on-failure) recovers from what is durable.
            return Err("the store failed (a write or flush was refused: see the log above); stopped so the node restarts on what is durable".into());
        }
        Ok(())
    })
}

/// The mesh endpoint from `[mesh]`: a real UDP socket, tokio's runtime, the certificate files
/// and the topology.
fn mesh_parts(config: &NodeConfig) -> Result<Option<MeshParts>> {
    let Some(m) = &config.mesh else { return Ok(None) };
    let identity = MeshIdentity::load(&m.ca, &m.cert, &m.key).map_err(|e| e.to_string())?;
    let topology = Topology::load(&m.topology).map_err(|e| format!("topology {}: {e}", m.topology.display()))?;
    let (socket, runtime) = node::process::quic_socket(m.listen, "mesh endpoint")?;
    let settings = LinkSettings {
        window: m.window,
        max_bytes_per_sec: m.max_bytes_per_sec,
        idle_timeout: m.idle_timeout,
        keep_alive: m.idle_timeout / 5,
        max_handshakes: m.max_handshakes,
        refusal_audit_interval: m.refusal_audit_interval,
        receive_quota: m.receive_quota,
    };
    Ok(Some(MeshParts { socket, runtime, identity, topology: Arc::new(topology), settings }))
}

fn decode_ais(file: Option<&Path>, scaled: bool) -> Result<()> {
    let stdout = std::io::stdout().lock();
    let out = std::io::BufWriter::new(stdout);
    let stats = match file {
        Some(path) => {
            let f = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            node::feeds::ais::decode_stream(std::io::BufReader::new(f), out, scaled)
        }
        None => node::feeds::ais::decode_stream(std::io::stdin().lock(), out, scaled),
    }
    .map_err(|e| format!("cannot decode: {e}"))?;
    eprintln!("{stats}");
    Ok(())
}

fn export(config: NodeConfig, kind: Option<&str>) -> Result<()> {
    let kinds = match kind {
        Some(k) => vec![Kind::parse(k)
            .ok_or_else(|| format!("unknown kind {k:?}; one of: {}", Kind::ALL.map(|k| k.as_str()).join(", ")))?],
        None => Kind::ALL.to_vec(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().build().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let store = open_store(&config, Arc::new(SystemClock), Metrics::unregistered())?;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for kind in kinds {
            for entry in store.all_entries(kind) {
                let entry = entry.map_err(|e| e.to_string())?;
                let record = match kind {
                    Kind::Detection | Kind::PlateRead => node::records::decode::<Detection>(&entry.payload)
                        .map(|r| serde_json::to_value(r).unwrap_or_default()),
                    Kind::Alert => node::records::decode::<Alert>(&entry.payload)
                        .map(|r| serde_json::to_value(r).unwrap_or_default()),
                    Kind::Audit => {
                        node::audit_chain::record(&entry.payload).map(|r| serde_json::to_value(r).unwrap_or_default())
                    }
                    Kind::Event | Kind::Transition | Kind::Escalation | Kind::Command => {
                        Change::decode(kind, &entry.payload).map(|c| change_json(&c))
                    }
                    _ => Ok(serde_json::Value::Null),
                }
                .unwrap_or_else(|e| serde_json::json!({ "undecodable": e.to_string() }));
                let digest: String = node::store::content_digest(&entry).iter().map(|b| format!("{b:02x}")).collect();
                let mut line = serde_json::json!({
                    "kind": kind.as_str(),
                    "origin": entry.origin.as_str(),
                    "seq": entry.seq,
                    "hlc": entry.hlc.to_string(),
                    "record": record,
                    // Stamp and payload: equal on every node that holds this entry.
                    "sha256": digest,
                });
                if kind == Kind::Audit {
                    // The record's link in its origin's chain: `verify-audit --export` checks it.
                    let link = node::audit_chain::split(&entry.payload).ok().and_then(|(_, l)| l);
                    line["link"] = link.map_or(serde_json::Value::Null, |l| hex(&l).into());
                }
                writeln!(out, "{line}").map_err(|e| e.to_string())?;
            }
        }
        out.flush().map_err(|e| e.to_string())?;
        store.close().await;
        Ok(())
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Check the audit chains of a stopped node's store.
fn verify_audit_store(config: NodeConfig) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().build().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let store = open_store(&config, Arc::new(SystemClock), Metrics::unregistered())?;
        let mut check = ChainCheck::new();
        let mut first_break = None;
        for entry in store.all_entries(Kind::Audit) {
            let entry = entry.map_err(|e| e.to_string())?;
            let stored = proto::codec::encode(&entry).map_err(|e| e.to_string())?;
            if let Err(b) = check.check(&entry.origin, entry.seq, &stored, &entry.payload) {
                first_break.get_or_insert(b);
            }
        }
        store.close().await;
        chain_verdict(&check, first_break)
    })
}

/// Check the audit chains in `export --kind audit` output: each line's entry is rebuilt from
/// its fields, so a changed field changes the hash the next record must carry.
fn verify_audit_export(file: &Path) -> Result<()> {
    use std::io::BufRead;
    let input: Box<dyn BufRead> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut check = ChainCheck::new();
    let mut first_break = None;
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let entry = exported_audit(&line).map_err(|e| format!("{}:{}: {e}", file.display(), i + 1))?;
        let stored = proto::codec::encode(&entry).map_err(|e| e.to_string())?;
        if let Err(b) = check.check(&entry.origin, entry.seq, &stored, &entry.payload) {
            first_break.get_or_insert(b);
        }
    }
    chain_verdict(&check, first_break)
}

/// The audit entry one line of `export` output stands for.
fn exported_audit(line: &str) -> Result<proto::Entry> {
    #[derive(serde::Deserialize)]
    struct Line {
        kind: String,
        origin: NodeId,
        seq: u64,
        hlc: String,
        record: AuditRecord,
        link: Option<String>,
    }
    let l: Line = serde_json::from_str(line).map_err(|e| format!("not an exported audit record: {e}"))?;
    if l.kind != Kind::Audit.as_str() {
        return Err(format!("a {} entry: export with --kind audit", l.kind));
    }
    let mut payload = node::records::encode(&l.record).map_err(|e| e.to_string())?;
    if let Some(link) = l.link {
        let bytes = (0..link.len())
            .step_by(2)
            .map(|i| link.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect::<Option<Vec<u8>>>()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| format!("link {link:?} is not 32 bytes of hex"))?;
        payload.extend_from_slice(&bytes);
    }
    Ok(proto::Entry { origin: l.origin, seq: l.seq, hlc: l.hlc.parse()?, kind: Kind::Audit, payload })
}

fn chain_verdict(check: &ChainCheck, first_break: Option<node::audit_chain::Break>) -> Result<()> {
    match first_break {
        Some(b) => Err(format!("{b} ({} records of {} origins checked)", check.checked(), check.origins())),
        None => {
            println!(
                "audit chains intact: {} records of {} origins ({} written before the chain)",
                check.checked(),
                check.origins(),
                check.unlinked()
            );
            Ok(())
        }
    }
}

fn change_json(c: &Change) -> serde_json::Value {
    match c {
        Change::Created(x) => serde_json::to_value(x),
        Change::Transition(x) => serde_json::to_value(x),
        Change::Escalation(x) => serde_json::to_value(x),
        Change::Command(x) => serde_json::to_value(x),
    }
    .unwrap_or_default()
}
