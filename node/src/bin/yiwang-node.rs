//! `yiwang-node`: the edge node binary. A thin wrapper: everything it runs lives in the `node`
//! library, so the simulator runs the same code.

use clap::{Parser, Subcommand};
use node::clock::{SharedClock, SystemClock};
use node::config::NodeConfig;
use node::instance::{self, Parts};
use node::metrics::Metrics;
use node::records::{Alert, AuditRecord, Detection};
use node::store::Store;
use prometheus_client::registry::Registry;
use proto::Kind;
use std::io::Write;
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

#[derive(Subcommand)]
enum Command {
    /// Run the node: start the feed listeners and the HTTP server (/metrics), until SIGINT or SIGTERM.
    Run {
        /// The node's TOML config (see the `node::config` docs or deploy/examples/).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
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
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// detection, alert, audit, ... (all kinds without it).
        #[arg(long)]
        kind: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(&config),
        Command::DecodeAis { unscaled, file } => decode_ais(file.as_deref(), !unscaled),
        Command::Export { config, kind } => export(&config, kind.as_deref()),
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

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn open_store(config: &NodeConfig, clock: SharedClock, metrics: Metrics) -> Result<Store> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", config.data_dir.display()))?;
    Store::open(&config.data_dir.join("store"), config.node.id.clone(), clock, config.store.clone(), metrics)
        .map_err(|e| e.to_string())
}

fn run(config_path: &Path) -> Result<()> {
    init_logging();
    let config = NodeConfig::load(config_path).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let clock: SharedClock = Arc::new(SystemClock);
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let store = open_store(&config, clock.clone(), metrics.clone())?;
        let parts = Parts { clock, store: store.clone(), metrics, registry: Arc::new(registry) };
        let running = instance::start(&config, parts).await.map_err(|e| e.to_string())?;
        write_addresses(&config.data_dir, &running.addresses)?;
        tracing::info!(node = %config.node.id, role = %config.node.role, addresses = ?running.addresses, "node ready");
        wait_for_signal().await;
        tracing::info!("stopping");
        running.stop().await;
        store.close().await;
        Ok(())
    })
}

/// `listening.json` in the data dir says where every listener bound, for tools and tests that
/// asked for port 0.
fn write_addresses(dir: &Path, addresses: &instance::Addresses) -> Result<()> {
    let tmp = dir.join("listening.json.tmp");
    let json = serde_json::to_vec_pretty(addresses).map_err(|e| e.to_string())?;
    std::fs::write(&tmp, json)
        .and_then(|_| std::fs::rename(&tmp, dir.join("listening.json")))
        .map_err(|e| format!("cannot write listening.json: {e}"))
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
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

fn export(config_path: &Path, kind: Option<&str>) -> Result<()> {
    let config = NodeConfig::load(config_path).map_err(|e| e.to_string())?;
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
                    Kind::Detection => node::records::decode::<Detection>(&entry.payload)
                        .map(|r| serde_json::to_value(r).unwrap_or_default()),
                    Kind::Alert => node::records::decode::<Alert>(&entry.payload)
                        .map(|r| serde_json::to_value(r).unwrap_or_default()),
                    Kind::Audit => node::records::decode::<AuditRecord>(&entry.payload)
                        .map(|r| serde_json::to_value(r).unwrap_or_default()),
                    _ => Ok(serde_json::Value::Null),
                }
                .unwrap_or_else(|e| serde_json::json!({ "undecodable": e.to_string() }));
                let line = serde_json::json!({
                    "kind": kind.as_str(),
                    "origin": entry.origin.as_str(),
                    "seq": entry.seq,
                    "hlc": entry.hlc.to_string(),
                    "record": record,
                });
                writeln!(out, "{line}").map_err(|e| e.to_string())?;
            }
        }
        out.flush().map_err(|e| e.to_string())?;
        store.close().await;
        Ok(())
    })
}
