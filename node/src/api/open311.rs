//! Open311 GeoReport v2 (JSON and XML) at `/open311/v2`: the grid categories are the services, and a
//! service request is an event on this node's desk, created synchronously (the response is
//! sent once the event is durable) and followed through the seven workflow steps.
//!
//! | call                                   | answer                                          |
//! |----------------------------------------|-------------------------------------------------|
//! | `GET services.json`                    | 200 the services                                |
//! | `GET services/{service_code}.json`     | 200 the definition; 404 unknown service         |
//! | `POST requests.json` (form-urlencoded) | 201 `[{service_request_id, service_notice, account_id}]` |
//! | `GET requests.json`                    | 200 the matching requests, newest first         |
//! | `GET requests/{id}.json`               | 200 `[request]`; 404 unknown (also `request/…`, swagger's path) |
//! | `GET tokens/{token}.json`              | 200 `[{service_request_id, token}]`; 404 unknown |
//!
//! Every call answers in XML too, the spec's primary format, at the `.xml` URL (see [`xml`]).
//! Errors are the spec's array
//! `[{"code": <HTTP status>, "description": "..."}]`: 400 for a missing or malformed parameter
//! (including a missing `service_code` and bad coordinates), 403 for a missing or unknown
//! `api_key`, 404 for an unknown service code (POST included, as the spec's error list has it),
//! request or token, 413 for a body over the API's limit, 415 for a POST body that is not
//! form-urlencoded, 405 for a method a path does not take, 503/507 when the store cannot take it.
//!
//! Ids are this node's event ids `origin:seq` as strings; a token is the request id, since
//! every request is created at once. Only requests submitted through Open311 are visible here,
//! and events grid workers reported in a category the config makes public
//! (`api.open311_public_categories`, none by default); events the ingest rules raise (watchlist
//! hits, fences, cameras) are never shown. A request dispatched to a person (a name an API
//! token carries) shows no `agency_responsible`. Contact fields are stored for the centre and
//! never served back. `GET requests.json` looks at the newest [`MAX_SCAN`] events at most, off
//! the async runtime.

pub mod form;
mod views;
pub mod xml;

use super::time::{parse_rfc3339, rfc3339};
use super::ApiState;
use crate::events::{format_id, parse_id, EventError, Filter, Identity, NewEvent, MAX_PAGE};
use crate::store::StoreError;
use crate::workflow::{EventRecord, Location, Role, WorkflowError};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use form::{quote, Params};
use serde_json::{json, Value};
use views::{
    is_service_request, Created, RequestView, ServiceDefinition, ServiceView, ADDRESS_ID_ATTRIBUTE, MEDIA_URL_ATTRIBUTE,
};

/// Most requests one `GET requests.json` returns (the spec's default limit).
pub const MAX_REQUESTS: usize = 1000;
/// Most events one `GET requests.json` looks at, newest first: a date range that matches
/// little cannot make one call read the whole store.
pub const MAX_SCAN: usize = 100_000;
/// Widest `start_date`..`end_date` span, and the default window (the spec's 90 days).
pub const MAX_SPAN_MS: u64 = 90 * 86_400_000;
/// Longest description, in characters (the spec's limit).
pub const MAX_DESCRIPTION_CHARS: usize = 4000;
/// Longest `media_url`.
const MAX_URL: usize = 2000;

/// Parameters every call accepts and ignores: this node is one jurisdiction, and reading
/// needs no key.
pub const ALWAYS: [&str; 2] = ["jurisdiction_id", "api_key"];

/// Contact fields a POST may carry; stored with the event for the centre, never served back.
pub const CONTACT_FIELDS: [&str; 6] = ["email", "device_id", "account_id", "first_name", "last_name", "phone"];

type Result<T> = std::result::Result<T, Open311Error>;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/services.json", json_only(get(services)))
        .route("/services.xml", json_only(get(services)))
        .route("/services/{file}", json_only(get(service_definition)))
        .route("/requests.json", json_only(get(list_requests).post(create_request)))
        .route("/requests.xml", json_only(get(list_requests).post(create_request)))
        .route("/requests/{file}", json_only(get(show_request)))
        // swagger.json names the single-request path in the singular.
        .route("/request/{file}", json_only(get(show_request)))
        .route("/tokens/{file}", json_only(get(token)))
        .fallback(|| async {
            Open311Error::not_found(
                "no such GeoReport v2 resource; this server has services, services/{service_code}, \
                 requests, requests/{service_request_id} and tokens/{token}, each as .json or .xml",
            )
        })
        .layer(axum::middleware::from_fn(xml::as_xml))
}

/// Methods a route does not take get a 405 in the spec's error shape.
fn json_only(route: MethodRouter<ApiState>) -> MethodRouter<ApiState> {
    route.fallback(|| async {
        Open311Error::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here; see the GeoReport v2 spec")
    })
}

/// An error as GeoReport v2 has it: `[{"code": <HTTP status>, "description": "..."}]`.
#[derive(Debug)]
pub struct Open311Error {
    pub status: StatusCode,
    pub description: String,
}

impl Open311Error {
    pub fn new(status: StatusCode, description: impl Into<String>) -> Open311Error {
        Open311Error { status, description: description.into() }
    }
    pub fn bad_request(description: impl Into<String>) -> Open311Error {
        Open311Error::new(StatusCode::BAD_REQUEST, description)
    }
    pub fn forbidden(description: impl Into<String>) -> Open311Error {
        Open311Error::new(StatusCode::FORBIDDEN, description)
    }
    pub fn not_found(description: impl Into<String>) -> Open311Error {
        Open311Error::new(StatusCode::NOT_FOUND, description)
    }
}

impl IntoResponse for Open311Error {
    fn into_response(self) -> Response {
        (self.status, Json(json!([{ "code": self.status.as_u16(), "description": self.description }]))).into_response()
    }
}

impl From<EventError> for Open311Error {
    fn from(e: EventError) -> Open311Error {
        match e {
            EventError::NotFound(_) => Open311Error::not_found(e.to_string()),
            EventError::Invalid(m) => Open311Error::bad_request(m),
            EventError::Workflow(w @ WorkflowError::Forbidden { .. }) => Open311Error::forbidden(w.to_string()),
            EventError::Workflow(w) => Open311Error::bad_request(w.to_string()),
            EventError::Store(s) => {
                tracing::error!(error = %s, "Open311 call failed in the store");
                let status = match s {
                    StoreError::BudgetExceeded { .. } => StatusCode::INSUFFICIENT_STORAGE,
                    _ => StatusCode::SERVICE_UNAVAILABLE,
                };
                Open311Error::new(status, format!("the node cannot store or read requests now: {s}"))
            }
        }
    }
}

/// The name in `{name}.json` or `{name}.xml` (the format is the `xml` layer's business).
fn json_name(file: &str) -> Result<&str> {
    file.strip_suffix(".json").or_else(|| file.strip_suffix(".xml")).ok_or_else(|| {
        Open311Error::bad_request(format!("{} does not end in .json or .xml, the formats served here", quote(file)))
    })
}

/// The query string's parameters, refusing any not in `known`.
fn query(raw: Option<String>, known: &[&str]) -> Result<Params> {
    let mut p = Params::default();
    if let Some(q) = raw {
        p.extend_from(q.as_bytes(), "query string")?;
    }
    let known: Vec<&str> = known.iter().chain(&ALWAYS).copied().collect();
    p.only(&known, false)?;
    Ok(p)
}

async fn services(State(s): State<ApiState>, RawQuery(q): RawQuery) -> Result<Json<Vec<ServiceView>>> {
    query(q, &[])?;
    Ok(Json(s.events.categories().iter().map(ServiceView::from).collect()))
}

async fn service_definition(
    State(s): State<ApiState>,
    Path(file): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<ServiceDefinition>> {
    let code = json_name(&file)?;
    query(q, &[])?;
    let c = s.events.category(code).ok_or_else(|| unknown_service(code))?;
    Ok(Json(ServiceDefinition { service_code: c.code.clone(), attributes: vec![] }))
}

fn unknown_service(code: &str) -> Open311Error {
    Open311Error::not_found(format!("no service with service_code {}; see services.json", quote(code)))
}

/// POST requests.json: a new service request, durable when answered.
async fn create_request(
    State(s): State<ApiState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Vec<Created>>)> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Open311Error::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over the {}-byte limit", super::MAX_BODY_BYTES),
            )
        } else {
            Open311Error::bad_request(format!("cannot read the request body: {}", r.body_text()))
        }
    })?;
    // Parameters come in the body, as the spec says; the query string (swagger.json's "in":
    // "query", and a common place for api_key) is read too.
    let mut p = Params::default();
    if let Some(q) = q {
        p.extend_from(q.as_bytes(), "query string")?;
    }
    if !body.is_empty() {
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = content_type.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(Open311Error::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "send the parameters as application/x-www-form-urlencoded, not {}",
                    if mime.is_empty() { "a body without Content-Type".to_string() } else { quote(mime) }
                ),
            ));
        }
        p.extend_from(&body, "body")?;
    }

    // The key first: nothing about the request is looked at for a caller without one.
    let key = p.one("api_key")?.ok_or_else(|| Open311Error::forbidden("api_key is required to post a request"))?;
    let key_name = s.credentials.open311_key(key).ok_or_else(|| Open311Error::forbidden("api_key is not valid"))?;
    let who = Identity { name: format!("open311:{key_name}"), role: Role::GridWorker };

    let mut known = vec!["service_code", "lat", "long", "address_string", "address_id", "description", "media_url"];
    known.extend(CONTACT_FIELDS);
    known.extend(ALWAYS);
    p.only(&known, true)?;

    let code = p.one("service_code")?.ok_or_else(|| Open311Error::bad_request("service_code is required"))?;
    if s.events.category(code).is_none() {
        return Err(unknown_service(code));
    }
    let location = location(&p)?;
    let description = p.one("description")?.ok_or_else(|| {
        Open311Error::bad_request("description is required: say what the problem is (up to 4000 characters)")
    })?;
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Open311Error::bad_request(format!(
            "description is {} characters long; at most {MAX_DESCRIPTION_CHARS} are accepted",
            description.chars().count()
        )));
    }

    let mut attributes = p.attributes();
    if let Some((code, _)) = attributes.iter().find(|(c, _)| c == MEDIA_URL_ATTRIBUTE || c == ADDRESS_ID_ATTRIBUTE) {
        return Err(Open311Error::bad_request(format!(
            "attribute[{code}] is not an attribute of any service; send {code} as a parameter of its own"
        )));
    }
    if let Some(url) = p.one("media_url")? {
        check_url(url)?;
        attributes.push((MEDIA_URL_ATTRIBUTE.into(), url.to_string()));
    }
    if let Some(id) = p.one("address_id")? {
        attributes.push((ADDRESS_ID_ATTRIBUTE.into(), id.to_string()));
    }
    let mut contact = Vec::new();
    for field in CONTACT_FIELDS {
        if let Some(v) = p.one(field)? {
            contact.push((field.to_string(), v.trim().to_string()));
        }
    }

    let new = NewEvent {
        category: code.to_string(),
        location,
        description: description.to_string(),
        contact,
        attributes,
        open311_key: Some(key_name.to_string()),
    };
    let e = s.events.report(new, &who).await?;
    let id = format_id(&e.id);
    tracing::info!(request = %id, service = %e.category, key = %key_name, "Open311 service request");
    let notice = match e.deadline_ms {
        Some(d) => format!("Received as {id}; the centre is due to dispatch it by {}.", rfc3339(d)),
        None => format!("Received as {id}."),
    };
    Ok((StatusCode::CREATED, Json(vec![Created { service_request_id: id, service_notice: notice, account_id: None }])))
}

/// lat and long (both, WGS84 decimal degrees), or address_string; address_id alone cannot be
/// located, since this node has no address repository to look it up in.
pub fn location(p: &Params) -> Result<Location> {
    let coordinate = |name: &str, limit: f64| -> Result<Option<f64>> {
        let Some(raw) = p.one(name)? else { return Ok(None) };
        let v: f64 = raw.trim().parse().map_err(|_| {
            Open311Error::bad_request(format!("{name} {} is not a number (WGS84 decimal degrees)", quote(raw)))
        })?;
        if !v.is_finite() || v.abs() > limit {
            return Err(Open311Error::bad_request(format!("{name} {} is outside -{limit}..{limit}", quote(raw))));
        }
        Ok(Some(v))
    };
    let lat = coordinate("lat", 90.0)?;
    let lon = coordinate("long", 180.0)?;
    match (lat, lon) {
        (Some(_), None) => return Err(Open311Error::bad_request("lat is given without long; send both or neither")),
        (None, Some(_)) => return Err(Open311Error::bad_request("long is given without lat; send both or neither")),
        _ => {}
    }
    let address = p.one("address_string")?.map(|a| a.trim().to_string());
    if let Some(a) = &address {
        if a.len() > 1000 {
            return Err(Open311Error::bad_request("address_string is longer than 1000 bytes"));
        }
    }
    if lat.is_none() && address.is_none() {
        return Err(Open311Error::bad_request(if p.one("address_id")?.is_some() {
            "address_id alone cannot be located here (no address repository); send lat and long, or address_string"
        } else {
            "a location is required: lat and long, or address_string"
        }));
    }
    Ok(Location { lat, lon, address })
}

/// An absolute http(s) URL.
pub fn check_url(url: &str) -> Result<()> {
    let bad = || Open311Error::bad_request(format!("media_url {} is not an absolute http or https URL", quote(url)));
    if url.len() > MAX_URL {
        return Err(Open311Error::bad_request(format!("media_url is longer than {MAX_URL} bytes")));
    }
    let uri: axum::http::Uri = url.parse().map_err(|_| bad())?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(host)) if !host.is_empty() => Ok(()),
        _ => Err(bad()),
    }
}

/// GET requests.json.
async fn list_requests(State(s): State<ApiState>, RawQuery(q): RawQuery) -> Result<Json<Vec<RequestView>>> {
    let p = query(q, &["service_request_id", "service_code", "start_date", "end_date", "status"])?;
    let events = &s.events;

    // A list of ids overrides every other parameter (the spec).
    if p.has("service_request_id") {
        let mut ids = Vec::new();
        for raw in p.list("service_request_id") {
            let id = parse_id(raw).ok_or_else(|| {
                Open311Error::bad_request(format!(
                    "service_request_id {} is not a request id (origin:seq, e.g. town-a:12)",
                    quote(raw)
                ))
            })?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        if ids.len() > MAX_REQUESTS {
            return Err(Open311Error::bad_request(format!("at most {MAX_REQUESTS} service_request_ids at once")));
        }
        let mut found = Vec::new();
        for id in &ids {
            if let Some(e) = events.get(id)?.filter(|e| is_service_request(events, &s.open311_public, e)) {
                found.push(e);
            }
        }
        return Ok(Json(newest_first(found).iter().map(|e| RequestView::new(e, events, &s.credentials)).collect()));
    }

    let codes = p.list("service_code");
    if let Some(c) = codes.iter().find(|c| events.category(c).is_none()) {
        return Err(unknown_service(c));
    }
    let (mut open, mut shut) = (false, false);
    for st in p.list("status") {
        match st {
            "open" => open = true,
            "closed" => shut = true,
            other => {
                return Err(Open311Error::bad_request(format!(
                    "status {} is not open or closed (comma-separate to give both)",
                    quote(other)
                )))
            }
        }
    }
    let closed = (open != shut).then_some(shut);
    let date = |name: &str| -> Result<Option<u64>> {
        p.one(name)?
            .map(|t| {
                parse_rfc3339(t).ok_or_else(|| {
                    Open311Error::bad_request(format!(
                        "{name} {} is not a W3C date-time with a time zone, e.g. 2026-11-05T08:15:30Z",
                        quote(t)
                    ))
                })
            })
            .transpose()
    };
    let (from, to) = match (date("start_date")?, date("end_date")?) {
        (Some(f), Some(t)) if f > t => return Err(Open311Error::bad_request("start_date is after end_date")),
        (Some(f), Some(t)) if t - f > MAX_SPAN_MS => {
            return Err(Open311Error::bad_request("start_date to end_date spans more than 90 days, the spec's limit"))
        }
        (Some(f), Some(t)) => (f, Some(t)),
        (Some(f), None) => (f, Some(f.saturating_add(MAX_SPAN_MS))),
        (None, Some(t)) => (t.saturating_sub(MAX_SPAN_MS), Some(t)),
        (None, None) => (s.ingest.clock().now_ms().saturating_sub(MAX_SPAN_MS), None),
    };

    let filter = Filter {
        category: (codes.len() == 1).then(|| codes[0].to_string()),
        closed,
        created_from_ms: Some(from),
        created_to_ms: to,
        ..Filter::default()
    };
    let codes: Vec<String> = codes.into_iter().map(str::to_string).collect();
    let credentials = s.credentials.clone();
    let public = s.open311_public.clone();
    let events = s.events.clone();
    // The scan reads the store: off the async runtime, and bounded.
    let found = tokio::task::spawn_blocking(move || -> Result<Vec<RequestView>> {
        let mut found = Vec::new();
        let (mut cursor, mut scanned) = (None, 0);
        loop {
            let (page, next, looked) = events.list_scanning(&filter, cursor.as_ref(), MAX_PAGE, MAX_SCAN - scanned)?;
            scanned += looked;
            for e in page {
                if is_service_request(&events, &public, &e) && (codes.is_empty() || codes.contains(&e.category)) {
                    found.push(e);
                }
            }
            match next {
                Some(n) if found.len() < MAX_REQUESTS && scanned < MAX_SCAN => cursor = Some(n),
                _ => break,
            }
        }
        let mut found = newest_first(found);
        found.truncate(MAX_REQUESTS);
        Ok(found.iter().map(|e| RequestView::new(e, &events, &credentials)).collect())
    })
    .await
    .map_err(|e| Open311Error::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the request list failed: {e}")))??;
    Ok(Json(found))
}

fn newest_first(mut events: Vec<EventRecord>) -> Vec<EventRecord> {
    events.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));
    events
}

/// The request `id` names, if it is one this API shows.
fn find_request(s: &ApiState, raw: &str, what: &str) -> Result<EventRecord> {
    let missing = || Open311Error::not_found(format!("no service request with {what} {}", quote(raw)));
    let id = parse_id(raw).ok_or_else(missing)?;
    s.events.get(&id)?.filter(|e| is_service_request(&s.events, &s.open311_public, e)).ok_or_else(missing)
}

/// GET requests/{id}.json: a one-element array, as the spec has it.
async fn show_request(
    State(s): State<ApiState>,
    Path(file): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Vec<RequestView>>> {
    let raw = json_name(&file)?;
    query(q, &[])?;
    let e = find_request(&s, raw, "service_request_id")?;
    Ok(Json(vec![RequestView::new(&e, &s.events, &s.credentials)]))
}

/// GET tokens/{token}.json: requests are created at once, so a token is the request's id.
async fn token(State(s): State<ApiState>, Path(file): Path<String>, RawQuery(q): RawQuery) -> Result<Json<Value>> {
    let raw = json_name(&file)?;
    query(q, &[])?;
    let e = find_request(&s, raw, "token")?;
    Ok(Json(json!([{ "service_request_id": format_id(&e.id), "token": raw }])))
}
