//! What a yiwang binary does around its library instance, shared by `yiwang-node` and
//! `yiwang-control`: logging, the operating system's seed, the operator token, a real UDP
//! socket for quinn, `listening.json`, and waiting for a stop signal. Nothing here runs in the
//! simulator.

use crate::auth::{operator_token, Credentials};
use crate::events::Identity;
use crate::rng::Seed;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// Log to stderr, filtered by `RUST_LOG` (default `info`). Colours only when stderr is a
/// terminal: a log file or journald would keep the escape codes as noise.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// The instance's seed, from the operating system: in production nothing needs to replay.
pub fn os_seed() -> Result<Seed, String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for the instance's seed: {e}"))?;
    Ok(Seed(u64::from_le_bytes(bytes)))
}

/// Add the operator token kept in `data_dir` (made on first start) to `credentials` when they
/// name no operator, and say where it is.
pub fn ensure_operator(credentials: &mut Credentials, data_dir: &Path) -> Result<(), String> {
    if credentials.has_operator() {
        return Ok(());
    }
    let (token, path, created) = operator_token(data_dir)?;
    if created {
        tracing::info!(path = %path.display(), "created an operator token; send it as 'Authorization: Bearer <token>'");
    } else {
        tracing::info!(path = %path.display(), "operator token");
    }
    credentials.add_token(&token, Identity { name: "operator".into(), role: crate::workflow::Role::Operator });
    Ok(())
}

/// A socket for quinn and the runtime that drives it.
pub type QuicSocket = (Arc<dyn quinn::AsyncUdpSocket>, Arc<dyn quinn::Runtime>);

/// A real UDP socket bound to `addr`, for quinn on tokio.
pub fn quic_socket(addr: SocketAddr, what: &str) -> Result<QuicSocket, String> {
    let socket = std::net::UdpSocket::bind(addr).map_err(|e| format!("cannot bind the {what} to {addr}: {e}"))?;
    let runtime: Arc<dyn quinn::Runtime> = Arc::new(quinn::TokioRuntime);
    let socket = runtime.wrap_udp_socket(socket).map_err(|e| format!("{what} socket: {e}"))?;
    Ok((socket, runtime))
}

/// Write `<dir>/listening.json` (atomically): where every listener bound, for tools and tests
/// that asked for port 0.
pub fn write_addresses<T: Serialize>(dir: &Path, addresses: &T) -> Result<(), String> {
    let tmp = dir.join("listening.json.tmp");
    let json = serde_json::to_vec_pretty(addresses).map_err(|e| e.to_string())?;
    std::fs::write(&tmp, json)
        .and_then(|_| std::fs::rename(&tmp, dir.join("listening.json")))
        .map_err(|e| format!("cannot write listening.json: {e}"))
}

/// Wait for Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
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
