//! The `/VIID/...` routes a node serves as a GA/T 1400 platform. Every answer is the
//! standard's `ResponseStatusObject` (one per request) or `ResponseStatusListObject` (one per
//! object, in the order posted), as `application/VIID+JSON`.
//!
//! Serve the router on a `feeds::connections::BoundedListener` with
//! `into_make_service_with_connect_info::<Peer>()`: a device is known by the address it
//! registered from.

use super::objects::{self, Place, Refusal, Status};
use super::places::PlaceKind;
use super::{lock, ViidFeed};
use crate::feeds::connections::Peer;
use crate::store::StoreError;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::net::SocketAddr;

/// Largest body read: vehicles carry their images inline as base64, a few hundred kilobytes
/// each.
pub const MAX_BODY_BYTES: usize = 32 << 20;
/// Largest body of the system routes (register, keepalive, ...): a few hundred bytes in
/// practice, and Register is open to anyone before authentication.
pub const MAX_SYSTEM_BODY_BYTES: usize = 16 << 10;
const CONTENT_TYPE: &str = "application/VIID+JSON;charset=UTF-8";
const USER_IDENTIFY: &str = "User-Identify";

/// What every handler reads of a request: who sent it (the connection's address, from
/// `ConnectInfo`), its URI, headers and body.
struct Posted {
    from: SocketAddr,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let Some(ConnectInfo(Peer(from))) = req.extensions().get::<ConnectInfo<Peer>>().copied() else {
            // A router served without `into_make_service_with_connect_info`: a bug here, not
            // the device's.
            return Err(
                (StatusCode::INTERNAL_SERVER_ERROR, "the platform does not know the peer address").into_response()
            );
        };
        let (uri, headers) = (req.uri().clone(), req.headers().clone());
        let body = Bytes::from_request(req, state).await.map_err(IntoResponse::into_response)?;
        Ok(Posted { from, uri, headers, body })
    }
}

pub fn router(feed: ViidFeed) -> Router {
    let small = || DefaultBodyLimit::max(MAX_SYSTEM_BODY_BYTES);
    Router::new()
        .route("/VIID/System/Register", post(register).layer(small()))
        .route("/VIID/System/UnRegister", post(unregister).layer(small()))
        .route("/VIID/System/Unregister", post(unregister).layer(small()))
        .route("/VIID/System/Keepalive", post(keepalive).layer(small()))
        .route("/VIID/System/Time", get(system_time))
        .route("/VIID/MotorVehicles", post(|feed: State<ViidFeed>, p: Posted| vehicles(feed, p, true)))
        .route("/VIID/NonMotorVehicles", post(|feed: State<ViidFeed>, p: Posted| vehicles(feed, p, false)))
        .route(
            "/VIID/Tollgates",
            post(|feed: State<ViidFeed>, p: Posted| post_places(feed, p, PlaceKind::Tollgate))
                .get(|feed: State<ViidFeed>, p: Posted| list_places(feed, p, PlaceKind::Tollgate)),
        )
        .route(
            "/VIID/APEs",
            post(|feed: State<ViidFeed>, p: Posted| post_places(feed, p, PlaceKind::Ape))
                .get(|feed: State<ViidFeed>, p: Posted| list_places(feed, p, PlaceKind::Ape)),
        )
        .route("/VIID/Persons", post(people))
        .route("/VIID/Faces", post(people))
        .route("/VIID/Images", post(images))
        .fallback(not_served)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(feed)
}

/// GA/T 1400.4's `ResponseStatusObject`, serialized as it is (no JSON tree in between: a
/// list of a thousand statuses is on the ingest path).
#[derive(serde::Serialize)]
#[allow(non_snake_case)]
struct StatusObject<'a> {
    RequestURL: &'a str,
    StatusCode: u8,
    StatusString: &'a str,
    Id: &'a str,
    LocalTime: &'a str,
}

fn viid(status: StatusCode, body: impl serde::Serialize) -> Response {
    let text = serde_json::to_string(&body).unwrap_or_default();
    let mut r = (status, text).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    r
}

impl ViidFeed {
    /// The platform's local time as answers carry it.
    fn local_time(&self) -> String {
        super::time::format(self.now_ms(), self.0.offset)
    }

    /// One `ResponseStatusObject`.
    fn status<'a>(url: &'a str, id: &'a str, status: Status, text: &'a str, local_time: &'a str) -> StatusObject<'a> {
        StatusObject { RequestURL: url, StatusCode: status as u8, StatusString: text, Id: id, LocalTime: local_time }
    }

    /// One status for the whole request.
    fn single(&self, http: StatusCode, url: &str, id: &str, status: Status, text: &str) -> Response {
        viid(http, json!({ "ResponseStatusObject": Self::status(url, id, status, text, &self.local_time()) }))
    }

    fn refusal(&self, http: StatusCode, url: &str, r: &Refusal) -> Response {
        self.refused(r.reason, 1);
        self.single(http, url, "", r.status, &r.message)
    }

    fn not_registered(&self, url: &str) -> Response {
        self.auth_failure("not_registered");
        self.single(
            StatusCode::UNAUTHORIZED,
            url,
            "",
            Status::InvalidOperation,
            "not registered from this address: register with /VIID/System/Register first",
        )
    }

    fn auth_failure(&self, reason: &'static str) {
        let labels = crate::metrics::ErrorLabels { feed: super::FEED, listener: self.0.name.to_string(), reason };
        self.0.ingest.metrics().viid_auth_failures.get_or_create(&labels).inc();
    }

    /// A 401 asking for Digest.
    fn challenge(&self, url: &str, stale: bool, text: &str) -> Response {
        let mut r = self.single(StatusCode::UNAUTHORIZED, url, "", Status::InvalidOperation, text);
        let value = lock(&self.0.digest).challenge(self.now_ms(), stale);
        if let Ok(v) = HeaderValue::from_str(&value) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        r
    }

    /// The device a data request is from, if it registered from there.
    fn sender(&self, headers: &HeaderMap, from: SocketAddr) -> Option<String> {
        let named = headers.get(USER_IDENTIFY).and_then(|v| v.to_str().ok()).map(str::trim);
        self.identify(named, from.ip())
    }

    /// Check a Digest answer for `device`; the user name must be that device's.
    fn digest(&self, headers: &HeaderMap, path: &str, device: &str) -> Result<(), digest_outcome::Failed> {
        let header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let now = self.now_ms();
        let accounts = &self.0.accounts;
        let user = lock(&self.0.digest)
            .verify(header, "POST", path, now, |user| accounts.get(user).map(|(_, pw)| pw.as_str()))
            .map_err(digest_outcome::Failed::Digest)?;
        match accounts.get(&user) {
            Some((id, _)) if id == device => Ok(()),
            _ => Err(digest_outcome::Failed::OtherDevice(user)),
        }
    }

    /// Answer a list body: `outcomes` in the order posted, `Ok(id)` waiting on `commit`.
    async fn answer_list<F>(&self, url: &str, outcomes: Vec<Result<String, (String, Refusal)>>, commit: F) -> Response
    where
        F: std::future::Future<Output = Result<(), StoreError>>,
    {
        let any = outcomes.iter().any(Result::is_ok);
        let (http, failure) = match if any { commit.await } else { Ok(()) } {
            Ok(()) => (StatusCode::OK, None),
            Err(e) => {
                tracing::error!(feed = %self.0.name, error = %e, "VIID objects not stored");
                let http = match e {
                    StoreError::BudgetExceeded { .. } => StatusCode::INSUFFICIENT_STORAGE,
                    _ => StatusCode::SERVICE_UNAVAILABLE,
                };
                (http, Some(format!("not stored: {e}")))
            }
        };
        let local = self.local_time();
        let statuses: Vec<StatusObject> = outcomes
            .iter()
            .map(|o| match (o, &failure) {
                (Ok(id), None) => Self::status(url, id, Status::Ok, "OK", &local),
                (Ok(id), Some(why)) => Self::status(url, id, Status::OtherError, why, &local),
                (Err((id, r)), _) => Self::status(url, id, r.status, &r.message, &local),
            })
            .collect();
        viid(http, json!({ "ResponseStatusListObject": { "ResponseStatusObject": statuses } }))
    }
}

mod digest_outcome {
    /// Why a Digest answer was not accepted.
    pub enum Failed {
        Digest(super::super::digest::DigestError),
        /// Right password, but for another device's account.
        OtherDevice(String),
    }
}

async fn register(State(feed): State<ViidFeed>, Posted { from, uri, headers, body }: Posted) -> Response {
    let url = uri.path();
    let device = match objects::device_id(&body, &["RegisterObject", "Register"]) {
        Ok(d) => d,
        Err(r) => return feed.refusal(StatusCode::BAD_REQUEST, url, &r),
    };
    match feed.digest(&headers, url, &device) {
        Ok(()) => {
            feed.register(&device, from.ip());
            feed.alive(&device).await;
            tracing::info!(feed = %feed.name(), device, %from, "VIID device registered");
            feed.single(StatusCode::OK, url, &device, Status::Ok, "OK")
        }
        Err(digest_outcome::Failed::Digest(e)) => {
            if e != super::digest::DigestError::Missing {
                feed.auth_failure(e.reason());
                tracing::warn!(feed = %feed.name(), device, %from, error = %e, "VIID registration refused");
            }
            let stale = e == super::digest::DigestError::Stale;
            feed.challenge(url, stale, &format!("authentication required: {e}"))
        }
        Err(digest_outcome::Failed::OtherDevice(user)) => {
            feed.auth_failure("other_device");
            tracing::warn!(feed = %feed.name(), device, user, %from, "VIID registration with another device's account");
            feed.challenge(url, false, &format!("user {user:?} may not register device {device:?}"))
        }
    }
}

async fn unregister(State(feed): State<ViidFeed>, Posted { from, uri, headers, body }: Posted) -> Response {
    let url = uri.path();
    let device = match objects::device_id(&body, &["UnRegisterObject", "UnregisterObject", "UnRegister"]) {
        Ok(d) => d,
        Err(r) => return feed.refusal(StatusCode::BAD_REQUEST, url, &r),
    };
    // Devices answer the Digest challenge here too, but some just send it from where they
    // registered: either will do.
    let known = feed.identify(Some(&device), from.ip()).is_some();
    if !known && feed.digest(&headers, url, &device).is_err() {
        return feed.challenge(url, false, "unregister from the registered address, or with Digest");
    }
    feed.unregister(&device);
    tracing::info!(feed = %feed.name(), device, %from, "VIID device unregistered");
    feed.single(StatusCode::OK, url, &device, Status::Ok, "OK")
}

async fn keepalive(State(feed): State<ViidFeed>, Posted { from, uri, headers, body }: Posted) -> Response {
    let url = uri.path();
    let device = match objects::device_id(&body, &["KeepaliveObject", "KeepAliveObject"]) {
        Ok(d) => d,
        Err(r) => return feed.refusal(StatusCode::BAD_REQUEST, url, &r),
    };
    let named = headers.get(USER_IDENTIFY).and_then(|v| v.to_str().ok()).map(str::trim);
    if named.is_some_and(|n| n != device) || feed.identify(Some(&device), from.ip()).is_none() {
        return feed.not_registered(url);
    }
    feed.alive(&device).await;
    feed.single(StatusCode::OK, url, &device, Status::Ok, "OK")
}

async fn system_time(State(feed): State<ViidFeed>) -> Response {
    let offset = feed.0.offset;
    let (h, m, _) = offset.as_hms();
    viid(
        StatusCode::OK,
        json!({ "SystemTimeObject": {
            "VIIDServerID": feed.0.server_id,
            // 1: the platform's clock is kept by network time.
            "TimeMode": "1",
            "LocalTime": super::time::format(feed.now_ms(), offset),
            "TimeZone": format!("{}{:02}:{:02}", if offset.is_negative() { '-' } else { '+' }, h.abs(), m.abs()),
        }}),
    )
}

async fn vehicles(State(feed): State<ViidFeed>, Posted { from, uri, headers, body }: Posted, motor: bool) -> Response {
    let url = uri.path();
    let Some(device) = feed.sender(&headers, from) else { return feed.not_registered(url) };
    feed.alive(&device).await;
    feed.post_vehicles(url, &device, &body, motor).await
}

impl ViidFeed {
    /// Decode, check and store a vehicle list from a registered `device`, and answer it. The
    /// HTTP handler's work after authentication (the ingest benchmark calls it directly).
    pub async fn post_vehicles(&self, url: &str, device: &str, body: &[u8], motor: bool) -> Response {
        let (list, object, id) = if motor {
            ("MotorVehicleListObject", "MotorVehicleObject", "MotorVehicleID")
        } else {
            ("NonMotorVehicleListObject", "NonMotorVehicleObject", "NonMotorVehicleID")
        };
        let raws = match objects::list(body, list, object) {
            Ok(r) => r,
            Err(r) => return self.refusal(StatusCode::BAD_REQUEST, url, &r),
        };
        let mut outcomes = Vec::with_capacity(raws.len());
        let mut vehicles = Vec::with_capacity(raws.len());
        for raw in raws {
            match objects::vehicle(raw, motor, device, self.0.offset) {
                Ok(v) => {
                    outcomes.push(Ok(v.id.clone()));
                    vehicles.push(v);
                }
                Err(r) => {
                    self.refused(r.reason, 1);
                    outcomes.push(Err((objects::object_id(raw, id), r)));
                }
            }
        }
        self.answer_list(url, outcomes, async { self.store_vehicles(vehicles).await.map(|_| ()) }).await
    }
}

async fn post_places(
    State(feed): State<ViidFeed>,
    Posted { from, uri, headers, body }: Posted,
    kind: PlaceKind,
) -> Response {
    let url = uri.path();
    if feed.sender(&headers, from).is_none() {
        return feed.not_registered(url);
    }
    let (list, object, id) = match kind {
        PlaceKind::Tollgate => ("TollgateListObject", "TollgateObject", "TollgateID"),
        PlaceKind::Ape => ("APEListObject", "APEObject", "ApeID"),
    };
    let raws = match objects::list(&body, list, object) {
        Ok(r) => r,
        Err(r) => return feed.refusal(StatusCode::BAD_REQUEST, url, &r),
    };
    let mut outcomes = Vec::with_capacity(raws.len());
    let mut places: Vec<Place> = Vec::new();
    for raw in raws {
        match objects::place(raw, kind == PlaceKind::Tollgate) {
            Ok(p) => {
                outcomes.push(Ok(p.id.clone()));
                places.push(p);
            }
            Err(r) => {
                feed.refused(r.reason, 1);
                outcomes.push(Err((objects::object_id(raw, id), r)));
            }
        }
    }
    let ids: Vec<&str> = places.iter().map(|p| p.id.as_str()).collect();
    if !feed.places().room_for(kind, &ids) {
        let r = Refusal {
            status: Status::DeviceBusy,
            reason: "too_many_places",
            message: format!("this platform keeps at most {} places", super::places::MAX_PLACES),
        };
        return feed.refusal(StatusCode::INSUFFICIENT_STORAGE, url, &r);
    }
    feed.answer_list(url, outcomes, feed.places().upsert(kind, places)).await
}

async fn list_places(
    State(feed): State<ViidFeed>,
    Posted { from, uri, headers, .. }: Posted,
    kind: PlaceKind,
) -> Response {
    if feed.sender(&headers, from).is_none() {
        return feed.not_registered(uri.path());
    }
    let (list, object, id) = match kind {
        PlaceKind::Tollgate => ("TollgateListObject", "TollgateObject", "TollgateID"),
        PlaceKind::Ape => ("APEListObject", "APEObject", "ApeID"),
    };
    let objects: Vec<Value> = feed
        .places()
        .list(kind)
        .into_iter()
        .map(|p| json!({ id: p.id, "Name": p.name, "Longitude": p.lon, "Latitude": p.lat, "PlaceCode": p.place_code }))
        .collect();
    viid(StatusCode::OK, json!({ list: { object: objects, "Count": objects.len() } }))
}

/// `PersonObject` and `FaceObject` lists: refused whole, each object counted, nothing kept.
async fn people(State(feed): State<ViidFeed>, uri: Uri, body: Bytes) -> Response {
    let url = uri.path();
    let (list, object, id) = if url.ends_with("Faces") {
        ("FaceListObject", "FaceObject", "FaceID")
    } else {
        ("PersonListObject", "PersonObject", "PersonID")
    };
    let refusal = Refusal::people("person_object", "objects describing people are not accepted by this platform");
    let ids: Vec<String> = match objects::list(&body, list, object) {
        Ok(raws) => raws.into_iter().map(|raw| objects::object_id(raw, id)).collect(),
        Err(_) => vec![String::new()],
    };
    feed.refused(refusal.reason, ids.len() as u64);
    tracing::warn!(feed = %feed.name(), url, objects = ids.len(), "objects describing people refused");
    let local = feed.local_time();
    let statuses: Vec<StatusObject> =
        ids.iter().map(|id| ViidFeed::status(url, id, refusal.status, &refusal.message, &local)).collect();
    viid(StatusCode::FORBIDDEN, json!({ "ResponseStatusListObject": { "ResponseStatusObject": statuses } }))
}

/// Free-standing images may show anyone: vehicles come with their images to
/// `/VIID/MotorVehicles`, where each image's declared type is checked and counted.
async fn images(State(feed): State<ViidFeed>, uri: Uri) -> Response {
    let r = Refusal::people(
        "images_endpoint",
        "images are not accepted here: post vehicles, with their images, to /VIID/MotorVehicles",
    );
    feed.refusal(StatusCode::FORBIDDEN, uri.path(), &r)
}

async fn not_served(State(feed): State<ViidFeed>, uri: Uri) -> Response {
    let text = format!("{} is not served by this platform", uri.path().chars().take(128).collect::<String>());
    feed.single(StatusCode::NOT_FOUND, uri.path(), "", Status::InvalidOperation, &text)
}
