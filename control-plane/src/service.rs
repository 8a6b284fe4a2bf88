//! A running `yiwang-control`: one raft voter and the operator API over it. A library instance
//! like a node: the binary, tests and the simulator hand it its identity, clock, store, seed,
//! socket and credentials.

use crate::api::{self, ControlState};
use crate::config::ControlConfig;
use crate::dashboard::{self, poller, Dashboard};
use crate::raft::voter::{VoterError, VoterNode, VoterParts};
use node::auth::Credentials;
use node::clock::SharedClock;
use node::mesh::tls::MeshIdentity;
use node::mesh::topology::Topology;
use node::rng::Seed;
use node::store::Store;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

pub struct ControlParts {
    pub identity: MeshIdentity,
    pub clock: SharedClock,
    pub store: Store,
    pub seed: Seed,
    pub socket: Arc<dyn quinn::AsyncUdpSocket>,
    pub runtime: Arc<dyn quinn::Runtime>,
    pub credentials: Arc<Credentials>,
    /// Where the operator API listens; `None` serves none (the simulator).
    pub api: Option<TcpListener>,
}

/// Where a started instance listens (written to `<data_dir>/listening.json` by the binary).
#[derive(Debug, Clone, Serialize)]
pub struct Addresses {
    pub raft: Option<SocketAddr>,
    pub api: Option<SocketAddr>,
}

pub struct RunningControl {
    pub voter: Arc<VoterNode>,
    pub addresses: Addresses,
    api: Option<tokio::task::JoinHandle<()>>,
    /// The dashboard's refresh, if it serves one.
    refresh: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Voter(#[from] VoterError),
    #[error("dashboard: {0}")]
    Dashboard(String),
}

/// The dashboard of `config`, refreshed from its node API: what to serve and its refresh task.
fn dashboard(
    config: &crate::config::DashboardConfig,
    voter: Arc<VoterNode>,
) -> Result<(Dashboard, tokio::task::JoinHandle<()>), StartError> {
    let topology = Topology::load(&config.topology).map_err(|e| StartError::Dashboard(e.to_string()))?;
    let boundaries = dashboard::load_boundaries(&config.boundaries).map_err(StartError::Dashboard)?;
    let source = poller::Source {
        node_api: config.node_api,
        token: poller::Token::File(config.node_token_file.clone()),
        voter,
        every: config.poll,
    };
    Ok(dashboard::start(source, &topology, boundaries, None))
}

pub async fn start(config: &ControlConfig, parts: ControlParts) -> Result<RunningControl, StartError> {
    let voters = config.raft.voters.iter().map(|v| (v.name.clone(), v.addr.clone())).collect();
    let routes = config.raft.routes.iter().filter_map(|r| r.addr.parse().ok().map(|a| (r.name.clone(), a))).collect();
    let voter = Arc::new(
        VoterNode::start(VoterParts {
            identity: parts.identity,
            clock: parts.clock.clone(),
            store: parts.store,
            seed: parts.seed,
            socket: parts.socket,
            runtime: parts.runtime,
            settings: config.raft.settings(),
            voters,
            routes,
            join: config.raft.join,
        })
        .await?,
    );
    let mut addresses = Addresses { raft: voter.local_addr(), api: None };
    let (served, refresh) = match (&config.dashboard, &parts.api) {
        (Some(d), Some(_)) => match dashboard(d, voter.clone()) {
            Ok((served, task)) => (Some(served), Some(task)),
            Err(e) => {
                voter.shutdown().await;
                return Err(e);
            }
        },
        _ => (None, None),
    };
    let api = parts.api.map(|listener| {
        addresses.api = listener.local_addr().ok();
        let state = ControlState {
            voter: voter.clone(),
            credentials: parts.credentials,
            clock: parts.clock,
            dashboard: served,
        };
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, api::router(state)).await {
                tracing::error!(error = %e, "operator API stopped");
            }
        })
    });
    Ok(RunningControl { voter, addresses, api, refresh })
}

impl RunningControl {
    /// Stop serving the API, then the voter.
    pub async fn stop(self) {
        if let Some(refresh) = self.refresh {
            refresh.abort();
            let _ = refresh.await;
        }
        if let Some(api) = self.api {
            api.abort();
            let _ = api.await;
        }
        self.voter.shutdown().await;
    }
}
