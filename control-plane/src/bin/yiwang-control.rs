//! `yiwang-control`: one voter of the city's sanctions-list raft group and its operator API.
//! A thin wrapper: everything it runs lives in the `control_plane` library.

use clap::{Parser, Subcommand};
use control_plane::config::ControlConfig;
use control_plane::service::{self, ControlParts};
use node::auth::Credentials;
use node::clock::{SharedClock, SystemClock};
use node::mesh::tls::MeshIdentity;
use node::metrics::Metrics;
use node::store::{Store, StoreConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "yiwang-control",
    version,
    about = "One voter of the city's sanctions lists: an openraft group (by default the city and the county sites) that decides the red and black lists once for everyone, with an operator API to change and read them.",
    long_about = "One voter of the city's sanctions lists: an openraft group (by default the city and the county sites) that decides the red and black lists once for everyone, with an operator API to change and read them.\n\nEvery voter runs with the same [[raft.voters]] list; the first start of each forms the group. Writes and reads may go to any voter: writes reach the leader, reads are linearizable, and every call has a deadline, so a voter on the minority side of a partition answers 503 no_quorum instead of hanging. See control_plane::config for every key (`yiwang-control run --help`)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the voter and its operator API until SIGTERM or Ctrl-C.
    Run {
        /// The TOML config (data_dir, [pki], [raft] with its voters, [api]).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => ControlConfig::load(&config).and_then(run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("yiwang-control: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: ControlConfig) -> Result<(), String> {
    node::process::init_logging();
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let identity =
            MeshIdentity::load(&config.pki.ca, &config.pki.cert, &config.pki.key).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| format!("cannot create data dir {}: {e}", config.data_dir.display()))?;
        let clock: SharedClock = Arc::new(SystemClock);
        let store = Store::open(
            &config.data_dir.join("store"),
            identity.id().clone(),
            clock.clone(),
            StoreConfig::default(),
            Metrics::unregistered(),
        )
        .map_err(|e| e.to_string())?;
        let mut credentials = Credentials::from_specs(&config.api.tokens, &[])?;
        node::process::ensure_operator(&mut credentials, &config.data_dir)?;
        let (socket, quic_runtime) = node::process::quic_socket(config.raft.listen, "raft endpoint")?;
        let api = tokio::net::TcpListener::bind(config.api.listen)
            .await
            .map_err(|e| format!("cannot bind the operator API to {}: {e}", config.api.listen))?;
        let parts = ControlParts {
            identity,
            clock,
            store: store.clone(),
            seed: node::process::os_seed()?,
            socket,
            runtime: quic_runtime,
            credentials: Arc::new(credentials),
            api: Some(api),
        };
        let running = service::start(&config, parts).await.map_err(|e| e.to_string())?;
        node::process::write_addresses(&config.data_dir, &running.addresses)?;
        tracing::info!(voter = %running.voter.name(), addresses = ?running.addresses, "voter ready");
        node::process::wait_for_signal().await;
        tracing::info!("stopping");
        running.stop().await;
        store.close().await;
        Ok(())
    })
}
