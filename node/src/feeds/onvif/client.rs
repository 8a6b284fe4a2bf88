//! The driver of one camera's subscription: carries out what [`Subscription`] decides over
//! HTTP, turns pulled notifications into camera events and commits them through the camera
//! feed (so the watchdog, signal-loss alerts and durable commit are those of JSON events), and
//! reports the camera offline and online.
//!
//! Each request gets its own connection (hyper's connection-level HTTP/1.1 client, driven in
//! this task: nothing is spawned, so the task owns everything it started) and a deadline: the
//! pull timeout plus [`REQUEST_DEADLINE`] for PullMessages, [`REQUEST_DEADLINE`] for the rest.
//! A subscriber sends a request every pull timeout at most, so a pool would save little.

use super::parse::{self, Answer, Fault, ParseError, MAX_BODY_BYTES};
use super::soap::{self, Credentials, Operation, Params};
use super::subscription::{self, Action, Event, Failure, Subscription};
use super::REQUEST_DEADLINE;
use crate::clock::{machine_now, sleep_until_timeout};
use crate::config::OnvifSpec;
use crate::feeds::camera::CameraMessage;
use crate::feeds::sinks::{CameraFeed, JsonFeed};
use crate::http_client::{self, ExchangeError};
use crate::records::CameraEvent;
use crate::rng::Rng;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HOST};
use std::time::Duration;
use tokio::sync::watch;

/// A camera clock further than this from ours is logged (the node copes, but the camera's
/// event times are off by as much).
const CLOCK_OFFSET_WARN_MS: i64 = 60_000;

/// Where the conventional event service lives on a camera that does not name its own.
pub const FALLBACK_EVENTS_PATH: &str = "/onvif/event_service";

#[derive(Debug, thiserror::Error)]
pub enum OnvifError {
    #[error("{url:?} is not a URL: {source}")]
    InvalidUrl { url: String, source: hyper::http::uri::InvalidUri },
    #[error("{url:?} is not an http:// URL with a host (HTTPS is not supported)")]
    BadUrl { url: String },
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("HTTP exchange failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("cannot build the request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("cannot read the answer: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the answer is over {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("SOAP fault {fault} (HTTP status {status})")]
    Fault { status: u16, fault: Fault },
    #[error("unreadable answer: {0}")]
    Parse(#[from] ParseError),
    #[error("the answer has no {0}")]
    Missing(&'static str),
}

impl From<ExchangeError> for OnvifError {
    fn from(e: ExchangeError) -> OnvifError {
        match e {
            ExchangeError::Http(e) => OnvifError::Http(e),
            ExchangeError::TooLarge(_) => OnvifError::TooLarge,
            ExchangeError::Body(e) => OnvifError::Body(e),
        }
    }
}

impl OnvifError {
    /// The label of the failure metric.
    pub fn reason(&self) -> &'static str {
        match self.failure() {
            Failure::Unauthorized => "auth",
            _ => match self {
                OnvifError::InvalidUrl { .. } | OnvifError::BadUrl { .. } => "bad_url",
                OnvifError::Connect { .. } => "connect",
                OnvifError::Http(_) | OnvifError::Request(_) | OnvifError::Body(_) => "http",
                OnvifError::Timeout(_) => "timeout",
                OnvifError::TooLarge => "too_large",
                OnvifError::Status(_) => "http_status",
                OnvifError::Fault { .. } => "fault",
                OnvifError::Parse(e) => e.reason(),
                OnvifError::Missing(_) => "missing",
            },
        }
    }

    pub fn failure(&self) -> Failure {
        match self {
            OnvifError::Fault { fault, status } if fault.is_auth() || *status == 401 => Failure::Unauthorized,
            OnvifError::Status(401 | 403) => Failure::Unauthorized,
            OnvifError::Fault { .. } => Failure::Fault,
            OnvifError::Parse(_) | OnvifError::Missing(_) | OnvifError::TooLarge => Failure::Garbled,
            _ => Failure::Unreachable,
        }
    }
}

/// An `http://host[:port]/path` to send to.
#[derive(Debug, Clone)]
pub struct Target {
    host: String,
    port: u16,
    authority: String,
    path: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, OnvifError> {
        let shown = || url.chars().take(200).collect::<String>();
        let bad = || OnvifError::BadUrl { url: shown() };
        let uri: hyper::Uri = url.parse().map_err(|source| OnvifError::InvalidUrl { url: shown(), source })?;
        if uri.scheme_str() != Some("http") {
            return Err(bad());
        }
        let authority = uri.authority().ok_or_else(bad)?;
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
        if host.is_empty() {
            return Err(bad());
        }
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        Ok(Target { host, port: authority.port_u16().unwrap_or(80), authority: authority.as_str().to_string(), path })
    }

    /// The camera's conventional event service: same host, [`FALLBACK_EVENTS_PATH`].
    pub fn fallback_events_url(&self) -> String {
        format!("http://{}{FALLBACK_EVENTS_PATH}", self.authority)
    }
}

/// POST `envelope` as `op` to `target` and read the answer, all within `deadline`.
pub async fn exchange(
    target: &Target,
    op: Operation,
    envelope: String,
    deadline: Duration,
) -> Result<Answer, OnvifError> {
    tokio::time::timeout(deadline, exchange_inner(target, op, envelope))
        .await
        .map_err(|_| OnvifError::Timeout(deadline))?
}

async fn exchange_inner(target: &Target, op: Operation, envelope: String) -> Result<Answer, OnvifError> {
    let addr = format!("{}:{}", target.host, target.port);
    // An IP literal connects directly; a host name goes to the system's resolver.
    let stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|source| OnvifError::Connect { addr, source })?;
    let request = hyper::Request::post(target.path.as_str())
        .header(HOST, target.authority.as_str())
        .header(CONTENT_TYPE, format!("application/soap+xml; charset=utf-8; action=\"{}\"", op.action()))
        .body(Full::new(bytes::Bytes::from(envelope)))?;
    let (status, body) = http_client::exchange(stream, request, MAX_BODY_BYTES).await?;
    let parsed = parse::parse(&body);
    match parsed {
        Ok(Answer { fault: Some(fault), .. }) => Err(OnvifError::Fault { status: status.as_u16(), fault }),
        Ok(answer) if status.is_success() => Ok(answer),
        Ok(_) => Err(OnvifError::Status(status.as_u16())),
        // An error status with a body that is not SOAP (a web server's 401 page) says more by
        // its status.
        Err(_) if !status.is_success() => Err(OnvifError::Status(status.as_u16())),
        Err(e) => Err(e.into()),
    }
}

/// One camera's subscriber.
struct Subscriber {
    feed: CameraFeed,
    camera: String,
    spec: OnvifSpec,
    credentials: Credentials,
    /// Nonces and message ids.
    rng: Rng,
    /// The camera's clock less ours, from GetSystemDateAndTime: tokens are dated by the
    /// camera's clock, since a camera refuses a token too far from its own time.
    clock_offset_ms: i64,
}

/// Subscribe to camera `camera`'s events as `spec` says, until `shutdown` turns true (or its
/// sender is gone); then Unsubscribe. Jitter, nonces and message ids come from `rng`.
pub async fn run(feed: CameraFeed, camera: String, spec: OnvifSpec, mut rng: Rng, mut shutdown: watch::Receiver<bool>) {
    let device = match Target::parse(&spec.url) {
        Ok(t) => t,
        Err(e) => {
            // The config was validated; this is only reached by a builder that skipped that.
            tracing::error!(feed = %feed.name, camera, error = %e, "ONVIF subscription not started");
            return;
        }
    };
    let now = machine_now();
    let machine_rng = Rng::new(rng.next_u64());
    let mut machine = Subscription::new(
        subscription::Config::new(spec.renew),
        spec.url.clone(),
        device.fallback_events_url(),
        machine_rng,
        now,
    );
    let credentials = Credentials { username: spec.username.clone(), password: spec.password.expose().to_string() };
    let mut s = Subscriber { feed, camera, spec, credentials, rng, clock_offset_ms: 0 };
    let mut stopping = false;
    loop {
        let mut next = None;
        while let Some(action) = machine.poll_action() {
            match action {
                Action::Send { op, url } => next = Some((op, url)),
                Action::Offline { reason } => s.offline(&reason).await,
                Action::Online => s.online().await,
                Action::Stopped => return,
            }
        }
        let event = match next {
            Some((op, url)) => {
                let exchanged = s.send(op, &url);
                if stopping {
                    Some((op, exchanged.await))
                } else {
                    tokio::select! {
                        biased;
                        _ = stopped(&mut shutdown) => None,
                        r = exchanged => Some((op, r)),
                    }
                }
            }
            // Stopping and nothing left to send: the machine has nothing more to say.
            None if stopping => return,
            None => {
                let wake = machine.poll_timeout();
                tokio::select! {
                    biased;
                    _ = stopped(&mut shutdown) => None,
                    _ = sleep_until_timeout(wake) => {
                        machine.handle_timeout(machine_now());
                        continue;
                    }
                }
            }
        };
        let event = match event {
            Some((op, result)) => s.outcome(op, result).await,
            None => {
                stopping = true;
                Event::Shutdown
            }
        };
        machine.handle(event, machine_now());
    }
}

/// Resolves once the node is stopping.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: the node is gone too.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

impl Subscriber {
    /// Send `op` to `url` (the returned future borrows nothing, so it can race the shutdown).
    fn send(
        &mut self,
        op: Operation,
        url: &str,
    ) -> impl std::future::Future<Output = Result<Answer, OnvifError>> + use<> {
        let params = Params {
            termination: self.spec.renew,
            pull_timeout: self.spec.pull_timeout,
            message_limit: self.spec.message_limit,
        };
        let deadline =
            if op == Operation::PullMessages { self.spec.pull_timeout + REQUEST_DEADLINE } else { REQUEST_DEADLINE };
        let target = Target::parse(url);
        let camera_now_ms = self.feed.ingest.clock().now_ms().saturating_add_signed(self.clock_offset_ms);
        let envelope = soap::envelope(op, url, &params, &self.credentials, camera_now_ms, &mut self.rng);
        async move {
            // An address from the camera may be unusable: that is the request's failure.
            exchange(&target?, op, envelope, deadline).await
        }
    }

    /// What an answer (or failure) of `op` means for the machine; pulled events are committed
    /// here, outside the select on shutdown, so a stop never cuts a commit short.
    async fn outcome(&mut self, op: Operation, result: Result<Answer, OnvifError>) -> Event {
        let answer = match result {
            Ok(answer) => answer,
            Err(e) => return self.failed(op, e),
        };
        let granted = match (answer.current_time_ms, answer.termination_time_ms) {
            (Some(now), Some(end)) if end > now => Some(Duration::from_millis(end - now)),
            _ => None,
        };
        match op {
            Operation::GetSystemDateAndTime => {
                if let Some(camera_ms) = answer.camera_utc_ms {
                    // Our clock when the answer arrived; the camera's was read up to a request's
                    // time earlier, well within the minutes cameras allow.
                    let ours = self.feed.ingest.clock().now_ms();
                    self.clock_offset_ms = camera_ms as i64 - ours as i64;
                    if self.clock_offset_ms.abs() > CLOCK_OFFSET_WARN_MS {
                        tracing::warn!(feed = %self.feed.name, camera = self.camera, offset_ms = self.clock_offset_ms, "camera clock differs from ours; dating tokens by the camera's");
                    }
                }
                Event::ClockRead
            }
            Operation::GetCapabilities => {
                let events_url = answer.events_xaddr.filter(|url| match Target::parse(url) {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::warn!(feed = %self.feed.name, camera = self.camera, error = %e, "unusable event service address; using the conventional one");
                        false
                    }
                });
                Event::Discovered { events_url }
            }
            Operation::CreatePullPointSubscription => match answer.subscription {
                Some(address) => {
                    tracing::info!(feed = %self.feed.name, camera = self.camera, %address, "ONVIF subscription created");
                    Event::Created { address, granted }
                }
                None => self.failed(op, OnvifError::Missing("SubscriptionReference/Address")),
            },
            Operation::PullMessages => {
                let messages = answer.messages.len();
                self.commit(answer).await;
                Event::Pulled { messages }
            }
            Operation::Renew => Event::Renewed { granted },
            Operation::Unsubscribe => {
                tracing::info!(feed = %self.feed.name, camera = self.camera, "ONVIF subscription ended");
                Event::Unsubscribed
            }
        }
    }

    fn failed(&self, op: Operation, e: OnvifError) -> Event {
        self.feed.ingest.metrics().onvif_failure(&self.feed.name, &self.camera, e.reason());
        tracing::warn!(feed = %self.feed.name, camera = self.camera, op = op.name(), error = %e, "ONVIF request failed");
        Event::Failed { op, failure: e.failure(), reason: e.to_string() }
    }

    /// Commit a pull's events, and a heartbeat: an answered pull, even an empty one, is a sign
    /// of life.
    async fn commit(&self, answer: Answer) {
        for reason in &answer.dropped {
            self.feed.count_error(reason);
        }
        let now_ms = self.feed.ingest.clock().now_ms();
        let mut items: Vec<CameraMessage> = answer
            .messages
            .into_iter()
            .map(|n| {
                CameraMessage::Event(CameraEvent {
                    camera: self.camera.clone(),
                    topic: n.topic,
                    // A camera without a readable UtcTime is dated by our clock on receipt.
                    seen_ms: n.utc_ms.unwrap_or(now_ms),
                    source: n.source,
                    data: n.data,
                })
            })
            .collect();
        items.push(CameraMessage::Heartbeat { camera: self.camera.clone(), seen_ms: now_ms });
        if let Err(e) = self.feed.commit(items).await {
            tracing::error!(feed = %self.feed.name, camera = self.camera, error = %e, "pulled ONVIF events not stored");
        }
    }

    async fn offline(&self, reason: &str) {
        tracing::warn!(feed = %self.feed.name, camera = self.camera, reason, "ONVIF camera unreachable");
        if let Err(e) = self.feed.camera_lost(&self.camera).await {
            tracing::error!(feed = %self.feed.name, camera = self.camera, error = %e, "camera-offline alert not stored");
        }
    }

    /// A subscription is back: a sign of life, which turns the camera online in the watchdog.
    async fn online(&self) {
        let now_ms = self.feed.ingest.clock().now_ms();
        let beat = vec![CameraMessage::Heartbeat { camera: self.camera.clone(), seen_ms: now_ms }];
        if let Err(e) = self.feed.commit(beat).await {
            tracing::error!(feed = %self.feed.name, camera = self.camera, error = %e, "camera heartbeat not stored");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_plain_http_with_a_host() {
        let t = Target::parse("http://10.0.0.17/onvif/device_service").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("10.0.0.17", 80, "/onvif/device_service"));
        assert_eq!(t.fallback_events_url(), "http://10.0.0.17/onvif/event_service");
        let t = Target::parse("http://[::1]:8080/onvif/Subscription?Idx=3").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("::1", 8080, "/onvif/Subscription?Idx=3"));
        assert_eq!(t.fallback_events_url(), "http://[::1]:8080/onvif/event_service");
        for bad in ["https://10.0.0.17/onvif", "10.0.0.17/onvif", "http:///onvif", "", "ftp://x/"] {
            assert_eq!(Target::parse(bad).unwrap_err().reason(), "bad_url", "{bad}");
        }
    }

    #[test]
    fn failures_are_classified() {
        let auth =
            Fault { code: "env:Sender".into(), subcode: Some("ter:NotAuthorized".into()), reason: String::new() };
        assert_eq!(OnvifError::Fault { status: 400, fault: auth }.failure(), Failure::Unauthorized);
        let gone =
            Fault { code: "env:Sender".into(), subcode: Some("ter:InvalidArgVal".into()), reason: String::new() };
        assert_eq!(OnvifError::Fault { status: 400, fault: gone.clone() }.failure(), Failure::Fault);
        assert_eq!(OnvifError::Fault { status: 400, fault: gone }.reason(), "fault");
        assert_eq!(OnvifError::Status(401).reason(), "auth");
        assert_eq!(OnvifError::Status(503).failure(), Failure::Unreachable);
        assert_eq!(OnvifError::Timeout(Duration::from_secs(1)).reason(), "timeout");
        assert_eq!(OnvifError::Missing("x").failure(), Failure::Garbled);
    }

    /// A one-route server on loopback answering every POST with `answer`.
    async fn server(
        tasks: &mut tokio::task::JoinSet<()>,
        answer: fn() -> axum::response::Response,
        delay: Duration,
    ) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(move || async move {
            tokio::time::sleep(delay).await;
            answer()
        });
        tasks.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}/onvif/device_service")
    }

    async fn post(url: &str, deadline: Duration) -> Result<Answer, OnvifError> {
        exchange(&Target::parse(url).unwrap(), Operation::GetCapabilities, String::new(), deadline).await
    }

    #[tokio::test]
    async fn every_exchange_is_bounded_in_size_and_time() {
        use axum::response::IntoResponse;
        let mut tasks = tokio::task::JoinSet::new();
        let big = server(&mut tasks, || vec![b' '; MAX_BODY_BYTES + 1].into_response(), Duration::ZERO).await;
        assert_eq!(post(&big, Duration::from_secs(5)).await.unwrap_err().reason(), "too_large");
        let slow = server(&mut tasks, || "late".into_response(), Duration::from_secs(30)).await;
        assert_eq!(post(&slow, Duration::from_millis(200)).await.unwrap_err().reason(), "timeout");
        let page = server(
            &mut tasks,
            || (axum::http::StatusCode::UNAUTHORIZED, "<html>401</html>").into_response(),
            Duration::ZERO,
        )
        .await;
        assert_eq!(post(&page, Duration::from_secs(5)).await.unwrap_err().reason(), "auth");
        let fixture = server(
            &mut tasks,
            || include_str!("fixtures/get_capabilities_response.xml").into_response(),
            Duration::ZERO,
        )
        .await;
        let answer = post(&fixture, Duration::from_secs(5)).await.unwrap();
        assert_eq!(answer.events_xaddr.as_deref(), Some("http://192.168.0.10/onvif/services/events"));
        // Nothing listens on a port just released.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/onvif", l.local_addr().unwrap())
        };
        assert_eq!(post(&closed, Duration::from_secs(5)).await.unwrap_err().reason(), "connect");
    }
}
