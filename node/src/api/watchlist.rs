//! `/api/v1/watchlist`: the watchlist entries in force (the file's and the mesh's), and adding
//! and removing entries through the mesh's converging lists ([`crate::lists`]).
//!
//! - `GET /api/v1/watchlist?subject_kind=plate|mmsi&list=…&limit=…&cursor=…`: live entries in
//!   key order (plates, then MMSIs, then list), operators and auditors only. `next_cursor` is
//!   opaque; pass it back as `cursor`.
//! - `POST /api/v1/watchlist` `{kind, subject, list, reason, authority, legal_basis, expires}`
//!   → 201: operators only. Every entry names the authority that ordered it, its legal basis
//!   and an expiry at most `watchlist.max_expiry_days` away; an entry without them is refused.
//!   Adding again what this node listed before replaces it (new reason, new expiry).
//! - `POST /api/v1/watchlist/remove` `{kind, subject, list, reason}` → 200, or 404 if the mesh
//!   does not list it live, or 409 if only the watchlist file does (edit the file for that).
//!
//! `kind` is `plate` or `mmsi` (nine digits); `expires` is RFC 3339. Every change is audited
//! with the token's identity and the reason, which is required.
//!
//! The handlers reach the node's [`Lists`] through [`WithLists`], from [`ApiState::lists`].

use super::time::{parse_rfc3339, rfc3339};
use super::{ApiError, ApiState, Caller};
use crate::events::format_id;
use crate::lists::{ElementKey, ListError, Listing, Lists, NewEntry, PageFilter, Source, SubjectKind, MAX_PAGE};
use crate::rules::watchlist::Subject;
use crate::workflow::Role;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

type Result<T> = std::result::Result<T, ApiError>;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/api/v1/watchlist", get(list).post(add)).route("/api/v1/watchlist/remove", post(remove))
}

/// The node's lists, from the request extensions (see the module docs).
pub struct WithLists(pub Lists);

impl FromRequestParts<ApiState> for WithLists {
    type Rejection = ApiError;

    async fn from_request_parts(_parts: &mut Parts, state: &ApiState) -> Result<Self> {
        Ok(WithLists(state.lists.clone()))
    }
}

impl From<ListError> for ApiError {
    fn from(e: ListError) -> ApiError {
        match e {
            ListError::Forbidden { .. } => ApiError::forbidden(e.to_string()),
            ListError::Invalid(m) => ApiError::bad_request(m),
            ListError::NotListed(_) => ApiError::not_found(e.to_string()),
            ListError::FileOnly(_) => ApiError::new(StatusCode::CONFLICT, "invalid_transition", e.to_string()),
            ListError::Store(s) => s.into(),
            ListError::WrongNode { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", e.to_string())
            }
        }
    }
}

fn subject_kind(kind: &str) -> Result<SubjectKind> {
    match kind {
        "plate" => Ok(SubjectKind::Plate),
        "mmsi" => Ok(SubjectKind::Mmsi),
        other => Err(ApiError::bad_request(format!("kind {other:?} is not plate or mmsi"))),
    }
}

fn subject(kind: &str, subject: &str) -> Result<Subject> {
    match subject_kind(kind)? {
        SubjectKind::Plate => Ok(Subject::Plate(subject.to_owned())),
        SubjectKind::Mmsi => {
            let digits = subject.trim();
            if digits.len() != 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::bad_request(format!("MMSI {subject:?} is not nine digits")));
            }
            digits.parse().map(Subject::Mmsi).map_err(|_| ApiError::bad_request("bad MMSI"))
        }
    }
}

#[derive(Serialize)]
struct EntryView {
    kind: &'static str,
    /// The normalised plate, or the MMSI as nine digits.
    subject: String,
    list: String,
    reason: String,
    added_by: String,
    expires: Option<String>,
    /// `file` (the node's watchlist file) or `mesh` (added through the API on some node).
    source: &'static str,
    /// Who ordered the listing and under what law (absent only for mesh entries added before
    /// entries named them).
    authority: Option<String>,
    legal_basis: Option<String>,
    /// For mesh entries: the add's entry, `origin:seq`, and when it was made.
    tag: Option<String>,
    added_at: Option<String>,
}

fn subject_text(s: &Subject) -> String {
    match s {
        Subject::Plate(p) => p.clone(),
        Subject::Mmsi(m) => format!("{m:09}"),
    }
}

impl From<Listing> for EntryView {
    fn from(l: Listing) -> EntryView {
        let (source, tag, added_at) = match l.source {
            Source::File => ("file", None, None),
            Source::Mesh { tag, at_ms } => ("mesh", Some(format_id(&tag)), Some(rfc3339(at_ms))),
        };
        let named = |s: String| (!s.is_empty()).then_some(s);
        let (authority, legal_basis) = (named(l.authority), named(l.legal_basis));
        EntryView {
            kind: l.key.subject.kind(),
            subject: subject_text(&l.key.subject),
            list: l.key.list,
            reason: l.reason,
            added_by: l.added_by,
            expires: l.expires_ms.map(rfc3339),
            source,
            authority,
            legal_basis,
            tag,
            added_at,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    subject_kind: Option<String>,
    list: Option<String>,
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

async fn list(
    Caller(who): Caller,
    WithLists(lists): WithLists,
    q: std::result::Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>> {
    let Query(q) = q?;
    if who.role == Role::GridWorker {
        return Err(ApiError::forbidden("watchlists are for operators and auditors"));
    }
    let kind = q.subject_kind.as_deref().map(subject_kind).transpose()?;
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!("limit must be 1 to {MAX_PAGE}")));
    }
    let after = match q.cursor.as_deref() {
        Some(c) => Some(ElementKey::from_cursor(c).ok_or_else(|| ApiError::bad_request("cursor is not one we gave"))?),
        None => None,
    };
    let filter = PageFilter { kind, list: q.list };
    let (page, next) = lists.page(&filter, after.as_ref(), limit);
    let entries: Vec<EntryView> = page.into_iter().map(Into::into).collect();
    Ok(Json(json!({ "entries": entries, "next_cursor": next.map(|k| k.cursor()) })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    /// plate or mmsi.
    kind: String,
    subject: String,
    list: String,
    reason: String,
    /// Who ordered the listing, and the law, order or notice it rests on.
    authority: String,
    legal_basis: String,
    /// RFC 3339, within `watchlist.max_expiry_days`.
    expires: String,
}

async fn add(
    Caller(who): Caller,
    WithLists(lists): WithLists,
    b: std::result::Result<Json<AddBody>, JsonRejection>,
) -> Result<(StatusCode, Json<EntryView>)> {
    let b = b?.0;
    let subject = subject(&b.kind, &b.subject)?;
    let t = b.expires.as_str();
    let expires_ms =
        parse_rfc3339(t).ok_or_else(|| ApiError::bad_request(format!("expires: {t:?} is not an RFC 3339 time")))?;
    let (list, reason, authority, legal_basis) =
        (b.list.trim(), b.reason.trim(), b.authority.trim(), b.legal_basis.trim());
    let entry = NewEntry { subject: &subject, list, reason, authority, legal_basis, expires_ms };
    let added = lists.add(entry, &who).await?;
    let view = EntryView {
        kind: added.key.subject.kind(),
        subject: subject_text(&added.key.subject),
        list: added.key.list,
        reason: reason.to_owned(),
        added_by: who.name,
        expires: Some(rfc3339(expires_ms)),
        source: "mesh",
        authority: Some(authority.to_owned()),
        legal_basis: Some(legal_basis.to_owned()),
        tag: Some(format_id(&added.tag)),
        added_at: Some(rfc3339(added.at_ms)),
    };
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveBody {
    kind: String,
    subject: String,
    list: String,
    reason: String,
}

async fn remove(
    Caller(who): Caller,
    WithLists(lists): WithLists,
    b: std::result::Result<Json<RemoveBody>, JsonRejection>,
) -> Result<Json<Value>> {
    let b = b?.0;
    let subject = subject(&b.kind, &b.subject)?;
    let removed = lists.remove(&subject, b.list.trim(), b.reason.trim(), &who).await?;
    Ok(Json(json!({
        "kind": removed.key.subject.kind(),
        "subject": subject_text(&removed.key.subject),
        "list": removed.key.list,
        "removed": true,
        "tag": format_id(&removed.tag),
        "at": rfc3339(removed.at_ms),
        // Still listed by the watchlist file, or by an add made elsewhere that this remove had
        // not seen.
        "still_listed": removed.still_listed,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Credentials;
    use crate::clock::ManualClock;
    use crate::events::{default_categories, Events, Identity};
    use crate::ingest::{Ingest, WatchlistHandle};
    use crate::metrics::Metrics;
    use crate::records::AuditRecord;
    use crate::rules::watchlist::{EntryFields, Watchlist};
    use crate::store::{Store, StoreConfig};
    use crate::vessels::VesselDesk;
    use crate::workflow::deadlines::DeadlineConfig;
    use proto::{Kind, NodeId};
    use std::net::SocketAddr;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const T0: u64 = 1_800_000_000_000;
    const OP: &str = "operator-token-0000";
    const AUD: &str = "auditor-token-00000";
    const WORKER: &str = "worker-token-000000";

    struct Served {
        addr: SocketAddr,
        store: Store,
        handle: WatchlistHandle,
        _dir: tempfile::TempDir,
    }

    async fn serve() -> Served {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let node = NodeId::new("town-a").unwrap();
        let store =
            Store::open(dir.path(), node.clone(), clock.clone(), StoreConfig::default(), Metrics::unregistered())
                .unwrap();
        let mut base = Watchlist::new();
        let fields = EntryFields {
            list: "stolen",
            reason: "from the file",
            added_by: "file",
            authority: "City Public Security Bureau",
            legal_basis: "Road Traffic Safety Law art. 96",
            expires_ms: Some(T0 + 86_400_000),
        };
        base.insert(&Subject::Plate("FILE1".into()), fields).unwrap();
        let handle = WatchlistHandle::default();
        let max_expiry = crate::lists::DEFAULT_MAX_EXPIRY_DAYS;
        let lists = Lists::open(store.clone(), base, handle.clone(), node, clock.clone(), max_expiry).unwrap();
        let events = Events::open(
            store.clone(),
            clock.clone(),
            DeadlineConfig::default(),
            default_categories(),
            3_600_000,
            Default::default(),
        )
        .await
        .unwrap();
        let ingest = Ingest::new(store.clone(), clock, Metrics::unregistered(), handle.clone(), VesselDesk::new(None));
        let mut credentials = Credentials::default();
        credentials.add_token(OP, Identity { name: "op-li".into(), role: Role::Operator });
        credentials.add_token(AUD, Identity { name: "aud-wu".into(), role: Role::Auditor });
        credentials.add_token(WORKER, Identity { name: "worker-7".into(), role: Role::GridWorker });
        let router = super::super::router(ApiState {
            events,
            ingest,
            credentials: Arc::new(credentials),
            mesh: None,
            lists,
            sanctions: Default::default(),
            open311_public: Default::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Served { addr, store, handle, _dir: dir }
    }

    /// One HTTP/1.1 exchange over a fresh connection: `(status, JSON body)`.
    async fn call(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n");
        if let Some(t) = token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        let body = body.unwrap_or("");
        if !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let value = if body.is_empty() { Value::Null } else { serde_json::from_str(body).unwrap() };
        (status, value)
    }

    #[tokio::test]
    async fn operators_add_list_and_remove_with_audit() {
        let s = serve().await;
        let add = r#"{"kind":"plate","subject":"ab-123","list":"stolen","reason":"reported stolen","authority":"Weihai PSB","legal_basis":"notice 2026-118","expires":"2027-06-01T08:00:00Z"}"#;
        let (status, v) = call(s.addr, "POST", "/api/v1/watchlist", Some(OP), Some(add)).await;
        assert_eq!(status, 201, "{v}");
        assert_eq!((v["subject"].as_str(), v["source"].as_str()), (Some("AB123"), Some("mesh")));
        assert_eq!(v["tag"], "town-a:1");
        assert_eq!(v["expires"], "2027-06-01T08:00:00Z");
        assert_eq!((v["authority"].as_str(), v["legal_basis"].as_str()), (Some("Weihai PSB"), Some("notice 2026-118")));
        assert!(s.handle.current().check_plate("AB 123", T0).is_some(), "published to ingest");
        let vessel = r#"{"kind":"mmsi","subject":"012345678","list":"sanctioned","reason":"port state order","authority":"Weihai MSA","legal_basis":"PSC detention 7","expires":"2027-03-01T00:00:00Z"}"#;
        assert_eq!(call(s.addr, "POST", "/api/v1/watchlist", Some(OP), Some(vessel)).await.0, 201);

        // Operators and auditors read; grid workers may not.
        let (status, v) = call(s.addr, "GET", "/api/v1/watchlist", Some(AUD), None).await;
        assert_eq!(status, 200, "{v}");
        let subjects: Vec<&str> =
            v["entries"].as_array().unwrap().iter().map(|e| e["subject"].as_str().unwrap()).collect();
        assert_eq!(subjects, ["AB123", "FILE1", "012345678"]);
        assert_eq!(v["entries"][1]["source"], "file");
        assert_eq!(v["entries"][1]["authority"], "City Public Security Bureau", "the file's entries name theirs");
        assert_eq!(v["entries"][1]["legal_basis"], "Road Traffic Safety Law art. 96");
        assert_eq!(v["entries"][2]["authority"], "Weihai MSA");
        assert_eq!(v["entries"][2]["legal_basis"], "PSC detention 7");
        assert_eq!(v["next_cursor"], Value::Null);
        let (status, v) = call(s.addr, "GET", "/api/v1/watchlist?subject_kind=plate&limit=1", Some(OP), None).await;
        assert_eq!((status, v["entries"].as_array().unwrap().len()), (200, 1));
        let cursor = v["next_cursor"].as_str().unwrap().to_owned();
        let (_, v) =
            call(s.addr, "GET", &format!("/api/v1/watchlist?subject_kind=plate&cursor={cursor}"), Some(OP), None).await;
        assert_eq!(v["entries"][0]["subject"], "FILE1");
        assert_eq!(v["entries"].as_array().unwrap().len(), 1);
        assert_eq!(call(s.addr, "GET", "/api/v1/watchlist", Some(WORKER), None).await.0, 403);
        assert_eq!(call(s.addr, "GET", "/api/v1/watchlist", None, None).await.0, 401);
        assert_eq!(call(s.addr, "GET", "/api/v1/watchlist?subject_kind=person", Some(OP), None).await.0, 400);
        assert_eq!(call(s.addr, "GET", "/api/v1/watchlist?cursor=zz", Some(OP), None).await.0, 400);

        // Removing: 200, then 404 once not live; a file entry is 409.
        let rm = r#"{"kind":"plate","subject":"AB123","list":"stolen","reason":"recovered"}"#;
        let (status, v) = call(s.addr, "POST", "/api/v1/watchlist/remove", Some(OP), Some(rm)).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!((v["removed"].as_bool(), v["still_listed"].as_bool()), (Some(true), Some(false)));
        assert!(s.handle.current().check_plate("AB123", T0).is_none());
        let (status, v) = call(s.addr, "POST", "/api/v1/watchlist/remove", Some(OP), Some(rm)).await;
        assert_eq!((status, v["code"].as_str()), (404, Some("not_found")));
        let rm_file = r#"{"kind":"plate","subject":"FILE1","list":"stolen","reason":"x"}"#;
        assert_eq!(call(s.addr, "POST", "/api/v1/watchlist/remove", Some(OP), Some(rm_file)).await.0, 409);

        let audits: Vec<AuditRecord> = s
            .store
            .all_entries(Kind::Audit)
            .map(|e| crate::audit_chain::record(&e.unwrap().payload).unwrap())
            .collect();
        let summary: Vec<(&str, &str, &str)> =
            audits.iter().map(|a| (a.actor.as_str(), a.action.as_str(), a.why.as_str())).collect();
        assert_eq!(
            summary,
            [
                ("op-li (operator)", "watchlist_add", "reported stolen; ordered by Weihai PSB under notice 2026-118"),
                ("op-li (operator)", "watchlist_add", "port state order; ordered by Weihai MSA under PSC detention 7"),
                ("op-li (operator)", "watchlist_remove", "recovered"),
            ]
        );
    }

    #[tokio::test]
    async fn changes_need_an_operator_a_reason_and_a_valid_body() {
        let s = serve().await;
        let add = r#"{"kind":"plate","subject":"AB123","list":"stolen","reason":"r","authority":"a","legal_basis":"b","expires":"2027-06-01T08:00:00Z"}"#;
        for token in [AUD, WORKER] {
            let (status, v) = call(s.addr, "POST", "/api/v1/watchlist", Some(token), Some(add)).await;
            assert_eq!((status, v["code"].as_str()), (403, Some("forbidden")));
        }
        // Each body is good but for one thing.
        let basis = r#""authority":"Weihai PSB","legal_basis":"notice 2026-118""#;
        let until = r#""expires":"2027-06-01T08:00:00Z""#;
        for bad in [
            format!(r#"{{"kind":"plate","subject":"AB123","list":"stolen","reason":"  ",{basis},{until}}}"#),
            format!(r#"{{"kind":"plate","subject":"AB123","list":"stolen",{basis},{until}}}"#),
            format!(r#"{{"kind":"person","subject":"Li Wei","list":"stolen","reason":"r",{basis},{until}}}"#),
            format!(r#"{{"kind":"mmsi","subject":"12345","list":"l","reason":"r",{basis},{until}}}"#),
            format!(r#"{{"kind":"plate","subject":"AB123","list":"stolen","reason":"r",{basis},"expires":"soon"}}"#),
            format!(
                r#"{{"kind":"plate","subject":"AB123","list":"stolen","reason":"r",{basis},"expires":"2020-01-01T00:00:00Z"}}"#
            ),
            // More than a year away (the default longest listing).
            format!(
                r#"{{"kind":"plate","subject":"AB123","list":"stolen","reason":"r",{basis},"expires":"2028-06-01T00:00:00Z"}}"#
            ),
            format!(r#"{{"kind":"plate","subject":"AB123","list":"stolen","reason":"r",{basis}}}"#),
            format!(r#"{{"kind":"plate","subject":"AB123","list":"stolen","reason":"r","legal_basis":"n",{until}}}"#),
            format!(r#"{{"kind":"plate","subject":"AB123","list":"stolen","reason":"r","authority":"a",{until}}}"#),
            format!(
                r#"{{"kind":"plate","subject":"AB123","list":"stolen","reason":"r","authority":"a","legal_basis":" ",{until}}}"#
            ),
            format!(
                r#"{{"kind":"plate","subject":"AB123","list":"stolen","reason":"r",{basis},{until},"face":"..."}}"#
            ),
        ] {
            let (status, v) = call(s.addr, "POST", "/api/v1/watchlist", Some(OP), Some(&bad)).await;
            assert_eq!(status, 400, "{bad}: {v}");
        }
        assert_eq!(s.store.all_entries(Kind::Watchlist).count(), 0);
        assert_eq!(s.store.all_entries(Kind::Audit).count(), 0);
    }
}
