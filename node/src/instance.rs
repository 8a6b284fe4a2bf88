//! One node instance: everything a site runs, assembled from a config and from the parts the
//! builder hands in (clock, store, metrics). The binary builds one; the simulator builds many.

use crate::api::{self, ApiState};
use crate::auth::Credentials;
use crate::clock::SharedClock;
use crate::config::NodeConfig;
use crate::enforcement::{Enforced, Enforcer};
use crate::events::{Events, Tiers};
use crate::feeds::ais::DecoderConfig;
use crate::feeds::ais_io::AisFeed;
use crate::feeds::camera::CameraHealth;
use crate::feeds::connections::{BoundedListener, ConnLimits, Peer};
use crate::feeds::sinks::{CameraFeed, CheckpointFeed, JsonFeed};
use crate::feeds::viid::{self, ViidFeed};
use crate::feeds::{http_ingest, onvif, tcp_json};
use crate::ingest::{Ingest, WatchlistHandle};
use crate::lists::Lists;
use crate::mesh::{Local, Mesh, MeshParts};
use crate::metrics::Metrics;
use crate::rng::Seed;
use crate::rules::{fence, watchlist};
use crate::store::Store;
use crate::vessels::VesselDesk;
use crate::workflow::Tier;
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use proto::Kind;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;

/// What the builder provides.
pub struct Parts {
    pub clock: SharedClock,
    pub store: Store,
    pub metrics: Metrics,
    /// The registry `metrics` is registered in, served at `/metrics`.
    pub registry: Arc<Registry>,
    /// API tokens and Open311 keys (the config's, plus whatever the builder added).
    pub credentials: Credentials,
    /// The mesh endpoint's socket, runtime, certificate and topology; `None` for a node that
    /// works alone.
    pub mesh: Option<MeshParts>,
    /// Every random choice the node makes comes from this seed (the binary draws it from the
    /// operating system; the simulator derives it from its run's seed).
    pub seed: Seed,
    /// Serve the HTTP API on `http.listen` (the simulator's nodes, driven in-process, do not).
    pub serve_http: bool,
}

/// Where each listener actually bound (ports given as 0 are chosen by the OS).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Addresses {
    pub http: Option<SocketAddr>,
    pub mesh: Option<SocketAddr>,
    pub feeds: BTreeMap<String, BTreeMap<&'static str, SocketAddr>>,
}

/// A started node. Dropping it stops every task.
pub struct RunningNode {
    pub addresses: Addresses,
    pub ingest: Ingest,
    pub events: Events,
    pub lists: Lists,
    /// The sanctions lists this node enforces.
    pub sanctions: Enforced,
    pub mesh: Option<Mesh>,
    tasks: JoinSet<()>,
    /// The ONVIF subscribers, apart from `tasks` so a stop can wait for their Unsubscribes.
    subscriptions: JoinSet<()>,
    /// Tells the subscribers to unsubscribe and end.
    stopping: tokio::sync::watch::Sender<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind {what} to {addr}: {source}")]
    Bind { what: String, addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Watchlist(String),
    #[error("{0}")]
    Fence(String),
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot open the event desk: {0}")]
    Events(#[from] crate::events::EventError),
    #[error("cannot join the mesh: {0}")]
    Mesh(#[from] crate::mesh::MeshError),
}

impl RunningNode {
    /// Stop every listener and background task. Anything already acknowledged is on disk.
    pub async fn stop(mut self) {
        // Cameras keep a subscription until it expires: end ours, but do not let a camera that
        // does not answer hold the stop up past one request's deadline.
        let _ = self.stopping.send(true);
        let subscriptions = &mut self.subscriptions;
        let ended =
            tokio::time::timeout(onvif::REQUEST_DEADLINE, async { while subscriptions.join_next().await.is_some() {} });
        if ended.await.is_err() {
            tracing::warn!("ONVIF subscriptions not all ended in time");
        }
        self.subscriptions.shutdown().await;
        if let Some(m) = &self.mesh {
            m.close();
        }
        self.tasks.shutdown().await;
    }
}

async fn bind_tcp(what: String, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|source| StartError::Bind { what, addr, source })
}

pub async fn start(config: &NodeConfig, parts: Parts) -> Result<RunningNode, StartError> {
    let Parts { clock, store, metrics, registry, credentials, mesh, seed, serve_http } = parts;
    let mut tasks = JoinSet::new();
    let mut addresses = Addresses::default();

    let list = match &config.watchlist.file {
        Some(path) => {
            // Ten million lines take about ten seconds: say what the node is doing meanwhile.
            tracing::info!(file = %path.display(), "loading the watchlist file");
            // The file's entries may run no longer than the API's (`max_expiry_days`).
            let limits = watchlist::LoadLimits::expiring_within(clock.now_ms(), config.watchlist.max_expiry_days);
            watchlist::load_file(path, &limits).map_err(|e| StartError::Watchlist(e.to_string()))?
        }
        None => watchlist::Watchlist::new(),
    };
    tracing::info!(entries = list.len(), "watchlist file loaded");
    let watchlist = WatchlistHandle::default();
    let max_expiry = config.watchlist.max_expiry_days;
    let lists = Lists::open(store.clone(), list, watchlist.clone(), store.node().clone(), clock.clone(), max_expiry)
        .map_err(|e| StartError::Watchlist(e.to_string()))?;
    metrics.watchlist_entries.set(lists.index_entries() as i64);

    let tracker = match &config.fence {
        Some(f) => {
            let boundary = fence::Boundary::from_geojson_file(&f.boundary, &fence::BoundaryLimits::default())
                .map_err(|e| StartError::Fence(format!("boundary {}: {e}", f.boundary.display())))?;
            Some(
                fence::FenceTracker::new(boundary, f.zones.clone())
                    .map_err(|e| StartError::Fence(format!("fence.zones: {e}")))?,
            )
        }
        None => None,
    };
    let mut desk = VesselDesk::new(tracker);
    let (restored, dropped) = desk.restore(&store)?;
    if !dropped.is_empty() {
        tracing::info!(dropped = dropped.len(), "vessel states past the desk's capacity deleted");
        store.commit(dropped).await?;
    }
    tracing::info!(vessels = restored, "vessel states restored");

    // The sanctions lists in force before any input is taken: a restart enforces at least what
    // it enforced before.
    let sanctions = Enforced::default();
    let enforcer = Enforcer::open(store.clone(), sanctions.clone(), metrics.clone()).await?;
    tasks.spawn(enforcer.follow());
    let ingest =
        Ingest::new(store.clone(), clock.clone(), metrics.clone(), watchlist, desk).enforcing(sanctions.clone());

    for f in &config.feeds.ais {
        let decoder = DecoderConfig { fragment_timeout_ms: f.fragment_timeout_ms, ..DecoderConfig::default() };
        let feed = AisFeed::start(ingest.clone(), &f.name, decoder, &mut tasks);
        let bound = addresses.feeds.entry(f.name.clone()).or_default();
        if let Some(addr) = f.udp {
            let socket = UdpSocket::bind(addr).await.map_err(|source| StartError::Bind {
                what: format!("AIS feed {:?} (udp)", f.name),
                addr,
                source,
            })?;
            bound.insert("udp", socket.local_addr().unwrap_or(addr));
            tasks.spawn(feed.clone().serve_udp(socket));
        }
        if let Some(addr) = f.tcp_listen {
            let l = bind_tcp(format!("AIS feed {:?} (tcp)", f.name), addr).await?;
            bound.insert("tcp", l.local_addr().unwrap_or(addr));
            tasks.spawn(feed.clone().serve_tcp(l));
        }
        if let Some(remote) = &f.tcp_connect {
            tasks.spawn(feed.clone().connect_tcp(remote.clone(), seed.rng(&format!("ais connect {}", f.name))));
        }
    }

    for f in &config.feeds.checkpoint {
        let feed = CheckpointFeed { ingest: ingest.clone(), name: f.name.as_str().into() };
        let bound = listen_json(&mut tasks, &feed, f.tcp, f.http, f.tcp_acks).await?;
        addresses.feeds.insert(f.name.clone(), bound);
    }

    let (stopping, stop_signal) = tokio::sync::watch::channel(false);
    let mut subscriptions = JoinSet::new();
    for f in &config.feeds.camera {
        let configured = f.cameras.iter().map(|c| (c.id.clone(), c.heartbeat_s * 1000));
        let health = CameraHealth::new(configured, f.default_heartbeat_s * 1000, clock.now_ms());
        let tick = Duration::from_millis((health.min_interval_ms() / 4).clamp(250, 10_000));
        let feed =
            CameraFeed { ingest: ingest.clone(), name: f.name.as_str().into(), health: Arc::new(Mutex::new(health)) };
        let bound = listen_json(&mut tasks, &feed, f.tcp, f.http, f.tcp_acks).await?;
        addresses.feeds.insert(f.name.clone(), bound);
        for c in &f.cameras {
            if let Some(spec) = &c.onvif {
                let rng = seed.rng(&format!("onvif {} {}", f.name, c.id));
                subscriptions.spawn(onvif::client::run(
                    feed.clone(),
                    c.id.clone(),
                    spec.clone(),
                    rng,
                    stop_signal.clone(),
                ));
            }
        }
        tasks.spawn(async move {
            let mut every = tokio::time::interval(tick);
            loop {
                every.tick().await;
                if let Err(e) = feed.check_health().await {
                    tracing::error!(feed = %feed.name, error = %e, "camera-offline alert not stored");
                }
            }
        });
    }

    if !config.feeds.viid.is_empty() {
        // One registry of tollgates and devices for all of the node's VIID listeners.
        let places = viid::places::Places::load(store.clone())?;
        for f in &config.feeds.viid {
            let feed = ViidFeed::new(
                ingest.clone(),
                f,
                places.clone(),
                store.node().as_str(),
                seed.derive(&format!("viid {}", f.name)),
            );
            let bound = listen_viid(&mut tasks, feed, f).await?;
            addresses.feeds.entry(f.name.clone()).or_default().insert("http", bound);
        }
    }

    let window_ms = config.summaries.window.as_millis() as u64;
    let tiers = mesh.as_ref().map_or_else(Tiers::default, |m| {
        Tiers::new(m.topology.sites().iter().filter_map(|s| {
            let tier = match s.role {
                proto::Role::County => Tier::County,
                proto::Role::City => Tier::City,
                _ => return None,
            };
            Some((s.id.clone(), tier))
        }))
    });
    let events = Events::open(
        store.clone(),
        clock.clone(),
        config.deadlines.clone(),
        config.categories.clone(),
        window_ms,
        tiers,
    )
    .await?;
    tasks.spawn(follow_alerts(events.clone(), ingest.alert_signal()));
    tasks.spawn(watch_deadlines(events.clone()));

    let mesh = match mesh {
        Some(parts) => {
            let (mesh, applied) = Mesh::start(
                parts,
                store.clone(),
                clock.clone(),
                seed.derive("mesh"),
                metrics.clone(),
                Local { enforced: sanctions.clone(), events: events.clone() },
                &mut tasks,
            )?;
            addresses.mesh = mesh.local_addr();
            tasks.spawn(apply_replicated(applied, events.clone(), lists.clone(), metrics.clone()));
            Some(mesh)
        }
        None => None,
    };

    if serve_http {
        let http = bind_tcp("the HTTP server".into(), config.http.listen).await?;
        addresses.http = Some(http.local_addr().unwrap_or(config.http.listen));
        let api = api::router(ApiState {
            events: events.clone(),
            ingest: ingest.clone(),
            credentials: Arc::new(credentials),
            mesh: mesh.clone(),
            lists: lists.clone(),
            sanctions: sanctions.clone(),
            open311_public: Arc::new(config.api.open311_public_categories.iter().cloned().collect()),
        });
        let health_of = store.clone();
        let ops = Router::new()
            .route("/metrics", get(metrics_text))
            .route("/healthz", get(move || std::future::ready(crate::health::health(&health_of))))
            .with_state(registry);
        tasks.spawn(serve_router(http, api.merge(ops)));
    }

    tasks.spawn(crate::health::watch(store.clone(), metrics.clone()));
    let kept =
        [(Kind::Detection, config.store.retention_ms()), (Kind::PlateRead, config.store.plate_read_retention_ms())];
    tasks.spawn(retention(store.clone(), clock.clone(), kept));
    let collected = lists.clone();
    tasks.spawn(async move {
        // Tombstones and long-expired entries the whole mesh has seen can go.
        let mut every = tokio::time::interval(Duration::from_secs(600));
        loop {
            every.tick().await;
            collected.collect_garbage();
        }
    });

    Ok(RunningNode { addresses, ingest, events, lists, sanctions, mesh, tasks, subscriptions, stopping })
}

/// Serve a GA/T 1400 listener and watch its devices' keepalives; returns where it bound.
async fn listen_viid(
    tasks: &mut JoinSet<()>,
    feed: ViidFeed,
    config: &crate::config::ViidFeed,
) -> Result<SocketAddr, StartError> {
    let l = bind_tcp(format!("viid feed {:?} (http)", config.name), config.http).await?;
    let bound = l.local_addr().unwrap_or(config.http);
    // Devices are known by the address they registered from.
    let app = viid::http::router(feed.clone()).into_make_service_with_connect_info::<Peer>();
    let limits = ConnLimits::counted(feed.ingest().metrics(), viid::FEED, &config.name);
    let l = BoundedListener::new(l, &config.name, limits);
    tasks.spawn(async move {
        if let Err(e) = axum::serve(l, app).await {
            tracing::error!(error = %e, "VIID HTTP server stopped");
        }
    });
    tasks.spawn(async move {
        let mut every = tokio::time::interval(feed.health_tick());
        loop {
            every.tick().await;
            feed.check_health().await;
        }
    });
    Ok(bound)
}

/// Start a JSON feed's listeners (TCP JSON lines and/or HTTP batches); returns where they bound.
async fn listen_json<F: JsonFeed>(
    tasks: &mut JoinSet<()>,
    feed: &F,
    tcp: Option<SocketAddr>,
    http: Option<SocketAddr>,
    acks: bool,
) -> Result<BTreeMap<&'static str, SocketAddr>, StartError> {
    let mut bound = BTreeMap::new();
    if let Some(addr) = tcp {
        let l = bind_tcp(format!("{} feed {:?} (tcp)", F::FEED, feed.name()), addr).await?;
        bound.insert("tcp", l.local_addr().unwrap_or(addr));
        tasks.spawn(tcp_json::serve(l, feed.clone(), acks));
    }
    if let Some(addr) = http {
        let l = bind_tcp(format!("{} feed {:?} (http)", F::FEED, feed.name()), addr).await?;
        bound.insert("http", l.local_addr().unwrap_or(addr));
        // A feed's HTTP listener: its connections bounded in number and idle time.
        let limits = ConnLimits::counted(feed.ingest().metrics(), F::FEED, feed.name());
        let bounded = BoundedListener::new(l, feed.name(), limits);
        tasks.spawn(serve_router(bounded, http_ingest::router(feed.clone())));
    }
    Ok(bound)
}

async fn serve_router<L>(listener: L, router: Router)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!(error = %e, "HTTP server stopped");
    }
}

async fn metrics_text(
    axum::extract::State(registry): axum::extract::State<Arc<Registry>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let accept = headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let format = crate::metrics::Exposition::for_accept(accept);
    match format.encode(&registry) {
        Ok(body) => ([(axum::http::header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Turn alerts into events as they are raised (woken by ingest), and every few seconds in case
/// a wake-up was missed or a commit failed.
async fn follow_alerts(events: Events, signal: Arc<tokio::sync::Notify>) {
    loop {
        if let Err(e) = events.follow_alerts().await {
            tracing::error!(error = %e, "alerts not turned into events; retrying");
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), signal.notified()).await;
    }
}

/// Apply what the mesh delivered and made durable: watchlist edits from other nodes, and
/// answers to this node's escalations.
async fn apply_replicated(
    mut applied: tokio::sync::mpsc::Receiver<Vec<proto::Entry>>,
    events: Events,
    lists: Lists,
    metrics: Metrics,
) {
    while let Some(entries) = applied.recv().await {
        let (watchlist, commands): (Vec<_>, Vec<_>) = entries.into_iter().partition(|e| e.kind == Kind::Watchlist);
        let r = lists.apply_replicated(&watchlist);
        if r.applied > 0 {
            metrics.watchlist_entries.set(lists.index_entries() as i64);
        }
        if let Err(e) = events.apply_commands(&commands).await {
            tracing::error!(error = %e, "replicated answers not applied; they will be at the next start");
        }
    }
}

/// Check deadlines every second: overdue events get their alert within a second of the deadline.
async fn watch_deadlines(events: Events) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        if let Err(e) = events.check_deadlines().await {
            tracing::error!(error = %e, "deadline check failed");
        }
    }
}

/// Remove raw detections and plate reads past their retention periods (`(kind, ms)`): at
/// start, then every ten minutes, in chunks so ingest never waits long behind a sweep. A plate
/// read outlives its retention by at most those ten minutes.
async fn retention(store: Store, clock: SharedClock, kept: [(Kind, u64); 2]) {
    let mut every = tokio::time::interval(RETENTION_EVERY);
    loop {
        every.tick().await;
        for (kind, retention_ms) in kept {
            let cutoff = clock.now_ms().saturating_sub(retention_ms);
            loop {
                match store.sweep(kind, cutoff, 10_000).await {
                    Ok(outcome) if outcome.more => tokio::task::yield_now().await,
                    Ok(outcome) => {
                        if outcome.deleted > 0 {
                            tracing::info!(%kind, deleted = outcome.deleted, "retention removed old entries");
                        }
                        break;
                    }
                    Err(e) => {
                        tracing::error!(%kind, error = %e, "retention sweep failed");
                        break;
                    }
                }
            }
        }
    }
}

/// How often retention sweeps.
const RETENTION_EVERY: Duration = Duration::from_secs(600);
