//! `yiwang-sim demo`: the reference city in one process, in real time, with the operators'
//! dashboard on localhost.
//!
//! It is a scenario run ([`crate::run::run_live`]) with no faults of its own, a workload livelier
//! than SEED's peak, and three differences from a simulation:
//!
//! - the runtime also drives real sockets, and virtual time is paced to the wall clock
//!   (`speed` times faster): every [`PACE_TICK`] of virtual time the loop sleeps until the
//!   wall clock has caught up. Between ticks the runtime still jumps over idle time, so the
//!   nodes behave as in a simulation; HTTP requests wait at most a tick;
//! - the city node serves its real HTTP API on 127.0.0.1, and the city's voter serves its
//!   real operator API with the dashboard beside it, refreshed by the same poller
//!   `yiwang-control` runs, from that node API;
//! - the dashboard takes fault requests (cut a site off, heal it, power cut, power back), which
//!   the run carries out between its own actions.
//!
//! A demo is not a pure function of its seed: operators act when they like.

use crate::cluster::{Cluster, HttpSite, SimError};
use crate::faults::{self, Link, Links};
use control_plane::api::{self, ControlState};
use control_plane::dashboard::{self, poller, FaultAction, FaultRequest};
use node::auth::{Credentials, TokenSpec};
use node::clock::SharedClock;
use proto::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How much virtual time passes between two waits for the wall clock.
pub const PACE_TICK: Duration = Duration::from_millis(50);
/// The demo's fence around a stretch of water off the harbours, where its fleet sails: a
/// small protected area, so vessels come and go across its rings all the time.
pub const DEMO_BOUNDARY: &str = include_str!("../demo/protected-waters.geojson");
/// How often the dashboard refreshes in the demo (virtual time).
const REFRESH: Duration = Duration::from_secs(1);
/// Fault requests waiting for the run.
const FAULT_QUEUE: usize = 16;

/// What a live run serves and how fast it goes.
pub struct Live {
    /// Virtual seconds per wall second.
    pub speed: f64,
    /// Where the operator API and the dashboard listen.
    pub listen: SocketAddr,
    /// The one token of the demo: operator of the city node and of the dashboard.
    pub token: String,
    /// The fence boundary file the harbours watch.
    pub boundary: PathBuf,
    faults: mpsc::Receiver<FaultRequest>,
    sender: mpsc::Sender<FaultRequest>,
    isolated: BTreeMap<NodeId, Vec<Link>>,
    /// (wall, virtual) when pacing began.
    paced_from: Option<(std::time::Instant, Duration)>,
    tasks: Vec<JoinHandle<()>>,
    ready: Option<Ready>,
}

/// Told where everything listens, once it does.
pub type Ready = Box<dyn FnOnce(&Serving) + Send>;

/// Where a live run's servers listen.
#[derive(Debug, Clone)]
pub struct Serving {
    pub dashboard: SocketAddr,
    pub city_api: SocketAddr,
    pub token: String,
}

impl Serving {
    /// The dashboard's address with the token in the fragment (never sent to a server).
    pub fn url(&self) -> String {
        format!("http://{}/dashboard#token={}", self.dashboard, self.token)
    }
}

impl Live {
    pub fn new(speed: f64, listen: SocketAddr, token: String, boundary: PathBuf, ready: Ready) -> Live {
        let (sender, faults) = mpsc::channel(FAULT_QUEUE);
        Live {
            speed,
            listen,
            token,
            boundary,
            faults,
            sender,
            isolated: BTreeMap::new(),
            paced_from: None,
            tasks: Vec::new(),
            ready: Some(ready),
        }
    }

    fn tokens(&self) -> Vec<TokenSpec> {
        vec![TokenSpec {
            name: "demo-operator".into(),
            role: "operator".into(),
            token: Some(self.token.clone()),
            token_sha256: None,
        }]
    }

    /// The city serves its node API on a free loopback port.
    pub fn http_site(&self, city: NodeId) -> HttpSite {
        HttpSite { site: city, listen: SocketAddr::from(([127, 0, 0, 1], 0)), tokens: self.tokens() }
    }

    /// Once the city runs: its voter's operator API and the dashboard, on `listen`.
    pub async fn serve(&mut self, cluster: &Cluster) -> Result<Serving, SimError> {
        let city = cluster.topology.city().id.clone();
        let fail = |message: String| SimError::Node { node: city.clone(), message };
        let node = cluster.get(&city).ok_or_else(|| fail("the city is not running".into()))?;
        let city_api = node.running.addresses.http.ok_or_else(|| fail("the city serves no HTTP".into()))?;
        let voter = node.voter.as_ref().ok_or_else(|| fail("the city runs no voter".into()))?.node.clone();
        let boundaries = serde_json::json!({
            "type": "FeatureCollection",
            "features": dashboard::boundary_features(DEMO_BOUNDARY).map_err(&fail)?,
        });
        let source = poller::Source {
            node_api: city_api,
            token: poller::Token::Value(self.token.clone()),
            voter: voter.clone(),
            every: REFRESH,
        };
        let (served, refresh) = dashboard::start(source, &cluster.topology, boundaries, Some(self.sender.clone()));
        self.tasks.push(refresh);
        let credentials = Credentials::from_specs(&self.tokens(), &[]).map_err(fail)?;
        let clock: SharedClock = Arc::new(cluster.clock(&city).clone());
        let state = ControlState { voter, credentials: Arc::new(credentials), clock, dashboard: Some(served) };
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .map_err(|e| fail(format!("cannot listen on {}: {e}", self.listen)))?;
        let dashboard = listener.local_addr().map_err(|e| fail(e.to_string()))?;
        self.tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, api::router(state)).await {
                tracing::error!(error = %e, "the demo's API stopped");
            }
        }));
        let serving = Serving { dashboard, city_api, token: self.token.clone() };
        if let Some(ready) = self.ready.take() {
            ready(&serving);
        }
        Ok(serving)
    }

    /// The next fault request (never, once the dashboard is gone).
    pub async fn next_fault(&mut self) -> Option<FaultRequest> {
        self.faults.recv().await
    }

    /// Carry out a fault request; the answer goes back to the page.
    pub async fn apply(&mut self, request: FaultRequest, cluster: &mut Cluster, links: &mut Links) {
        let answer = self.carry_out(request.action, &request.site, cluster, links).await;
        tracing::info!(site = %request.site, action = ?request.action, ?answer, "fault asked from the dashboard");
        let _ = request.reply.send(answer);
    }

    async fn carry_out(
        &mut self,
        action: FaultAction,
        site: &NodeId,
        cluster: &mut Cluster,
        links: &mut Links,
    ) -> Result<String, String> {
        if cluster.topology.site(site).is_none() {
            return Err(format!("{site} is not a site of the city"));
        }
        let city = &cluster.topology.city().id;
        match action {
            FaultAction::Isolate => {
                if self.isolated.contains_key(site) {
                    return Err(format!("{site} is already cut off"));
                }
                let one = BTreeSet::from([site.clone()]);
                let rest: BTreeSet<NodeId> =
                    cluster.topology.sites().iter().map(|s| s.id.clone()).filter(|id| id != site).collect();
                let cut = faults::links_between(cluster, &one, &rest, true);
                links.cut(&cluster.fabric, &cut);
                self.isolated.insert(site.clone(), cut);
                Ok(format!("{site} is cut off from every other site"))
            }
            FaultAction::Heal => {
                let cut = self.isolated.remove(site).ok_or_else(|| format!("{site} is not cut off"))?;
                links.heal(&cluster.fabric, &cut);
                Ok(format!("{site}'s links are back"))
            }
            FaultAction::Crash if site == city => {
                Err("the dashboard runs at the city: cut its links, or crash another site".into())
            }
            FaultAction::Crash => match cluster.crash(site).await {
                Some(_) => Ok(format!("{site} lost power")),
                None => Err(format!("{site} is already down")),
            },
            FaultAction::Restart if cluster.is_running(site) => Err(format!("{site} is already running")),
            FaultAction::Restart => {
                cluster.start(site).await.map_err(|e| e.to_string())?;
                Ok(format!("{site} has power again"))
            }
        }
    }

    /// Wait until the wall clock has caught up with `virtual_elapsed` (at `speed`). Blocks the
    /// runtime's thread on purpose: that is what holds virtual time to the wall clock.
    pub fn pace(&mut self, virtual_elapsed: Duration) {
        let (wall, from) = *self.paced_from.get_or_insert((std::time::Instant::now(), virtual_elapsed));
        let due = wall + virtual_elapsed.saturating_sub(from).div_f64(self.speed);
        let now = std::time::Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
