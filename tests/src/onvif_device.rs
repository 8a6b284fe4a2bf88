//! A fake ONVIF camera for the integration tests, written from the message examples of the ONVIF
//! Core specification (device and event services) and WS-Security's UsernameToken profile, not
//! from any vendor's code. It serves GetSystemDateAndTime (without authentication, as the
//! specification allows; its clock can be set off from the machine's), GetCapabilities, CreatePullPointSubscription, PullMessages
//! (long-polling until an event is queued or the request's Timeout passes), Renew and
//! Unsubscribe; checks every other request's PasswordDigest, and that its Created time is within
//! [`MAX_TOKEN_AGE`] of the camera's clock; and can "reboot": forget its
//! subscriptions, answer pending pulls with 503 and refuse connections for a while.
//!
//! It runs on its own tokio runtime so a test stays synchronous (the node is another process).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SOAP_HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa5="http://www.w3.org/2005/08/addressing" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:tev="http://www.onvif.org/ver10/events/wsdl" xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" xmlns:ter="http://www.onvif.org/ver10/error"><SOAP-ENV:Body>"#;
const SOAP_TAIL: &str = "</SOAP-ENV:Body></SOAP-ENV:Envelope>";
/// How far a token's Created time may be from the camera's clock.
pub const MAX_TOKEN_AGE: Duration = Duration::from_secs(60);

/// What the camera has seen, for the test's assertions.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Subscriptions created, over every boot.
    pub created: u64,
    /// Live subscriptions' ids.
    pub live: BTreeSet<u64>,
    /// Ids of subscriptions ended by Unsubscribe.
    pub unsubscribed: Vec<u64>,
    /// Requests refused for their credentials.
    pub auth_failures: u64,
    /// PullMessages answered.
    pub pulls: u64,
    /// Requests whose `wsa:To` was not the address they were sent to, or that had no action.
    pub misaddressed: u64,
}

struct Inner {
    queue: VecDeque<String>,
    next_id: u64,
    /// Bumped at every reboot, so pulls waiting across one fail.
    boot: u64,
    stats: Stats,
}

struct Shared {
    username: String,
    password: String,
    /// The camera's clock less the machine's, in seconds.
    skew_s: i64,
    addr: SocketAddr,
    inner: Mutex<Inner>,
    wake: tokio::sync::Notify,
}

/// A running fake camera.
pub struct FakeCamera {
    shared: Arc<Shared>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
    rt: tokio::runtime::Runtime,
}

impl FakeCamera {
    /// A camera on 127.0.0.1 (a port the OS picks) accepting `username` and `password`.
    pub fn start(username: &str, password: &str) -> FakeCamera {
        FakeCamera::start_with_clock_skew(username, password, 0)
    }

    /// A camera whose clock is `skew_s` seconds off the machine's (positive: ahead).
    pub fn start_with_clock_skew(username: &str, password: &str, skew_s: i64) -> FakeCamera {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("fake camera runtime");
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind fake camera");
        let addr = listener.local_addr().expect("fake camera address");
        let shared = Arc::new(Shared {
            username: username.to_string(),
            password: password.to_string(),
            skew_s,
            addr,
            inner: Mutex::new(Inner { queue: VecDeque::new(), next_id: 1, boot: 0, stats: Stats::default() }),
            wake: tokio::sync::Notify::new(),
        });
        let server = rt.spawn(serve(listener, shared.clone()));
        FakeCamera { shared, server: Mutex::new(Some(server)), rt }
    }

    /// The device service's URL, for the node's config.
    pub fn device_url(&self) -> String {
        format!("http://{}/onvif/device_service", self.shared.addr)
    }

    pub fn stats(&self) -> Stats {
        self.shared.inner.lock().unwrap().stats.clone()
    }

    /// Queue a notification for the next pull. `topic` is written with the prefix `ev:`, bound
    /// on the Topic element to ONVIF's topic namespace (the node must read it as `tns1:`).
    pub fn queue_event(&self, topic: &str, utc: &str, source: &[(&str, &str)], data: &[(&str, &str)]) {
        let items = |list: &[(&str, &str)]| -> String {
            list.iter().map(|(n, v)| format!(r#"<tt:SimpleItem Name="{n}" Value="{v}"/>"#)).collect()
        };
        let xml = format!(
            r#"<wsnt:NotificationMessage><wsnt:Topic xmlns:ev="http://www.onvif.org/ver10/topics" Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">ev:{topic}</wsnt:Topic><wsnt:Message><tt:Message UtcTime="{utc}" PropertyOperation="Changed"><tt:Source>{}</tt:Source><tt:Data>{}</tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>"#,
            items(source),
            items(data)
        );
        self.shared.inner.lock().unwrap().queue.push_back(xml);
        self.shared.wake.notify_waiters();
    }

    /// Reboot: forget every subscription, fail the pulls waiting, refuse connections for
    /// `down_for`, then listen again on the same port.
    pub fn reboot(&self, down_for: Duration) {
        if let Some(server) = self.server.lock().unwrap().take() {
            server.abort();
            // Wait until the listener is closed: from here on, connections are refused.
            let _ = self.rt.block_on(server);
        }
        {
            let mut inner = self.shared.inner.lock().unwrap();
            inner.boot += 1;
            inner.stats.live.clear();
        }
        self.shared.wake.notify_waiters();
        let shared = self.shared.clone();
        let server = self.rt.spawn(async move {
            tokio::time::sleep(down_for).await;
            // A camera boots with no subscriptions, whatever it took while going down.
            shared.inner.lock().unwrap().stats.live.clear();
            let listener = tokio::net::TcpListener::bind(shared.addr).await.expect("rebind fake camera");
            serve(listener, shared).await;
        });
        *self.server.lock().unwrap() = Some(server);
    }
}

async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let app = axum::Router::new().fallback(handle).with_state(shared);
    let _ = axum::serve(listener, app).await;
}

/// The text of the first element whose local name is `local` (any prefix).
fn text_of<'a>(body: &'a str, local: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(i) = body[from..].find(local) {
        let at = from + i;
        let before = body[..at].chars().last();
        let after = body[at + local.len()..].chars().next();
        if matches!(before, Some(':') | Some('<')) && matches!(after, Some('>') | Some(' ')) {
            let open_end = at + body[at..].find('>')?;
            if body[..open_end].ends_with('/') {
                return Some("");
            }
            let rest = &body[open_end + 1..];
            return Some(&rest[..rest.find('<')?]);
        }
        from = at + local.len();
    }
    None
}

fn seconds(duration: &str) -> u64 {
    duration.trim().trim_start_matches("PT").trim_end_matches('S').parse().unwrap_or(10)
}

/// `2026-11-30T12:00:00Z` plus `plus` seconds (the node only uses differences of these times).
fn noon_plus(plus: u64) -> String {
    let s = 12 * 3600 + plus;
    format!("2026-11-30T{:02}:{:02}:{:02}Z", s / 3600 % 24, s / 60 % 60, s % 60)
}

fn envelope(body: &str) -> Response {
    (StatusCode::OK, [("content-type", "application/soap+xml; charset=utf-8")], format!("{SOAP_HEAD}{body}{SOAP_TAIL}"))
        .into_response()
}

fn fault(status: StatusCode, code: &str, subcode: &str, reason: &str) -> Response {
    let body = format!(
        r#"<SOAP-ENV:Fault><SOAP-ENV:Code><SOAP-ENV:Value>{code}</SOAP-ENV:Value><SOAP-ENV:Subcode><SOAP-ENV:Value>{subcode}</SOAP-ENV:Value></SOAP-ENV:Subcode></SOAP-ENV:Code><SOAP-ENV:Reason><SOAP-ENV:Text xml:lang="en">{reason}</SOAP-ENV:Text></SOAP-ENV:Reason></SOAP-ENV:Fault>"#
    );
    (status, [("content-type", "application/soap+xml; charset=utf-8")], format!("{SOAP_HEAD}{body}{SOAP_TAIL}"))
        .into_response()
}

/// The camera's clock.
fn camera_now(shared: &Shared) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::seconds(shared.skew_s)
}

/// Whether the UsernameToken's PasswordDigest is Base64(SHA-1(nonce + created + password)) and
/// its Created time is near the camera's clock.
fn authorised(shared: &Shared, body: &str) -> bool {
    let (Some(user), Some(digest), Some(nonce), Some(created)) =
        (text_of(body, "Username"), text_of(body, "Password"), text_of(body, "Nonce"), text_of(body, "Created"))
    else {
        return false;
    };
    let Ok(nonce) = base64::engine::general_purpose::STANDARD.decode(nonce) else { return false };
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(&nonce);
    ctx.update(created.as_bytes());
    ctx.update(shared.password.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(ctx.finish());
    let Ok(created) = time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339) else {
        return false;
    };
    let fresh = (camera_now(shared) - created).unsigned_abs() <= MAX_TOKEN_AGE;
    user == shared.username && digest == expected && fresh
}

async fn handle(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let body = String::from_utf8_lossy(&body).into_owned();
    let path = uri.path().to_string();
    let action = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split("action=\"").nth(1))
        .and_then(|a| a.split('"').next())
        .unwrap_or("")
        .to_string();
    let url = format!("http://{}{}", shared.addr, uri.path_and_query().map_or("/", |p| p.as_str()));
    if action.is_empty() || text_of(&body, "To") != Some(url.as_str()) {
        shared.inner.lock().unwrap().stats.misaddressed += 1;
    }
    if path == "/onvif/device_service" && action.ends_with("/GetSystemDateAndTime") {
        let t = camera_now(&shared);
        return envelope(&format!(
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>Manual</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings><tt:UTCDateTime><tt:Time><tt:Hour>{}</tt:Hour><tt:Minute>{}</tt:Minute><tt:Second>{}</tt:Second></tt:Time><tt:Date><tt:Year>{}</tt:Year><tt:Month>{}</tt:Month><tt:Day>{}</tt:Day></tt:Date></tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>",
            t.hour(),
            t.minute(),
            t.second(),
            t.year(),
            t.month() as u8,
            t.day()
        ));
    }
    if !authorised(&shared, &body) {
        shared.inner.lock().unwrap().stats.auth_failures += 1;
        return fault(StatusCode::BAD_REQUEST, "SOAP-ENV:Sender", "ter:NotAuthorized", "Sender not Authorized");
    }
    let op = action.rsplit('/').next().unwrap_or("");
    match (path.as_str(), op) {
        ("/onvif/device_service", "GetCapabilities") => envelope(&format!(
            "<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Events><tt:XAddr>http://{}/onvif/event_service</tt:XAddr><tt:WSSubscriptionPolicySupport>true</tt:WSSubscriptionPolicySupport><tt:WSPullPointSupport>true</tt:WSPullPointSupport></tt:Events></tds:Capabilities></tds:GetCapabilitiesResponse>",
            shared.addr
        )),
        ("/onvif/event_service", "CreatePullPointSubscriptionRequest") => {
            let term = seconds(text_of(&body, "InitialTerminationTime").unwrap_or("PT60S"));
            let id = {
                let mut inner = shared.inner.lock().unwrap();
                let id = inner.next_id;
                inner.next_id += 1;
                inner.stats.created += 1;
                inner.stats.live.insert(id);
                id
            };
            envelope(&format!(
                "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference><wsa5:Address>http://{}/onvif/subscription/{id}</wsa5:Address></tev:SubscriptionReference><wsnt:CurrentTime>{}</wsnt:CurrentTime><wsnt:TerminationTime>{}</wsnt:TerminationTime></tev:CreatePullPointSubscriptionResponse>",
                shared.addr,
                noon_plus(0),
                noon_plus(term)
            ))
        }
        (p, op) if p.starts_with("/onvif/subscription/") => {
            let id: u64 = p.rsplit('/').next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let (live, boot) = {
                let inner = shared.inner.lock().unwrap();
                (inner.stats.live.contains(&id), inner.boot)
            };
            if !live {
                return fault(StatusCode::BAD_REQUEST, "SOAP-ENV:Sender", "ter:InvalidArgVal", "No such subscription");
            }
            match op {
                "PullMessagesRequest" => pull(&shared, &body, boot).await,
                "RenewRequest" => {
                    let term = seconds(text_of(&body, "TerminationTime").unwrap_or("PT60S"));
                    envelope(&format!(
                        "<wsnt:RenewResponse><wsnt:TerminationTime>{}</wsnt:TerminationTime><wsnt:CurrentTime>{}</wsnt:CurrentTime></wsnt:RenewResponse>",
                        noon_plus(term),
                        noon_plus(0)
                    ))
                }
                "UnsubscribeRequest" => {
                    let mut inner = shared.inner.lock().unwrap();
                    inner.stats.live.remove(&id);
                    inner.stats.unsubscribed.push(id);
                    envelope("<wsnt:UnsubscribeResponse/>")
                }
                _ => fault(StatusCode::BAD_REQUEST, "SOAP-ENV:Sender", "ter:ActionNotSupported", "Unknown action"),
            }
        }
        _ => fault(StatusCode::BAD_REQUEST, "SOAP-ENV:Sender", "ter:ActionNotSupported", "Unknown action"),
    }
}

/// Answer a PullMessages with what is queued, waiting up to its Timeout for something.
async fn pull(shared: &Shared, body: &str, boot: u64) -> Response {
    let timeout = Duration::from_secs(seconds(text_of(body, "Timeout").unwrap_or("PT10S")));
    let limit: usize = text_of(body, "MessageLimit").and_then(|l| l.trim().parse().ok()).unwrap_or(100);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // Register for a wake-up before looking, so an event queued in between is not missed.
        let woken = shared.wake.notified();
        {
            let mut inner = shared.inner.lock().unwrap();
            if inner.boot != boot {
                return (StatusCode::SERVICE_UNAVAILABLE, "rebooting").into_response();
            }
            if !inner.queue.is_empty() || tokio::time::Instant::now() >= deadline {
                let n = inner.queue.len().min(limit);
                let messages: String = inner.queue.drain(..n).collect();
                inner.stats.pulls += 1;
                return envelope(&format!(
                    "<tev:PullMessagesResponse><tev:CurrentTime>{}</tev:CurrentTime><tev:TerminationTime>{}</tev:TerminationTime>{messages}</tev:PullMessagesResponse>",
                    noon_plus(0),
                    noon_plus(60)
                ));
            }
        }
        let _ = tokio::time::timeout_at(deadline, woken).await;
    }
}
