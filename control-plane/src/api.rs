//! The operator API of `yiwang-control` (HTTP, JSON; documented at `/openapi.json`): the
//! sanctions lists (show, add, amend, remove, CSV import), certificate revocation and the raft
//! group's status. Any voter serves it: writes go to the leader, reads are linearizable.
//!
//! Every call has a deadline (`?deadline_ms=`, default `raft.call_deadline`, at most
//! [`MAX_DEADLINE`]): on the minority side of a partition a write fails within it with 503
//! `no_quorum`, saying which version this voter still holds. Writes need an operator token,
//! reads an operator or auditor token; the token's name is recorded as who, and every write
//! must say why.

use crate::raft::changes::Change;
use crate::raft::voter::{CallError, MemberChange, VoterNode, Written};
use crate::raft::{Voter, VoterId};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use node::api::time::rfc3339;
use node::api::{ApiError, Caller};
use node::auth::Credentials;
use node::clock::SharedClock;
use node::sanctions::{
    parse_import_csv, parse_import_time, Actor, Command, ListEntry, ListKind, Lists, Proposal, SubjectId,
    MAX_IMPORT_BYTES,
};
use node::workflow::Role;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Longest deadline a caller may ask for.
pub const MAX_DEADLINE: Duration = Duration::from_secs(60);
/// Largest JSON body.
pub const MAX_JSON_BYTES: usize = 64 * 1024;
/// Largest page of entries.
pub const MAX_PAGE: usize = 1_000;
/// Import log entries proposed at once (see `import`).
pub const IMPORT_IN_FLIGHT: usize = 4;
/// An import is proposed in log entries of at most this many encoded bytes each: small enough
/// that a follower receives, stores and acknowledges one within a heartbeat interval (see
/// `raft::network::MAX_APPEND_BYTES`), large enough that 100,000 rows are some 400 entries.
pub const IMPORT_CHUNK_BYTES: usize = 32 * 1024;

#[derive(Clone)]
pub struct ControlState {
    pub voter: Arc<VoterNode>,
    pub credentials: Arc<Credentials>,
    pub clock: SharedClock,
    /// The operators' dashboard, if this voter serves one.
    pub dashboard: Option<crate::dashboard::Dashboard>,
}

impl FromRef<ControlState> for Arc<Credentials> {
    fn from_ref(state: &ControlState) -> Arc<Credentials> {
        state.credentials.clone()
    }
}

pub fn router(state: ControlState) -> Router {
    Router::new()
        .route("/api/v1/lists", get(list).post(add))
        .route("/api/v1/lists/import", post(import).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)))
        .route("/api/v1/lists/changes", get(changes))
        .route("/api/v1/lists/{list}/{subject}", put(amend).get(show).delete(remove))
        .route("/api/v1/lists/{list}/{subject}/history", get(history))
        .route("/api/v1/revocations", post(revoke).get(revocations))
        .route("/api/v1/raft", get(status))
        .route("/api/v1/raft/members", post(add_member))
        .route("/api/v1/raft/members/{name}", delete(remove_member))
        .route("/openapi.json", get(openapi))
        .merge(crate::dashboard::routes())
        .fallback(|| async { ApiError::not_found("no such endpoint; see /openapi.json") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
        .with_state(state)
}

type Result<T> = std::result::Result<T, ApiError>;

/// The OpenAPI 3.0 document of this API.
pub const OPENAPI: &str = include_str!("api/openapi.json");

async fn openapi() -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI)
}

pub(crate) fn may_write(caller: &Caller) -> Result<Actor> {
    match caller.0.role {
        Role::Operator => Ok(Actor { who: caller.0.name.clone(), why: String::new() }),
        _ => Err(ApiError::forbidden("changing the lists needs an operator token")),
    }
}

pub(crate) fn may_read(caller: &Caller) -> Result<()> {
    match caller.0.role {
        Role::Operator | Role::Auditor => Ok(()),
        Role::GridWorker => Err(ApiError::forbidden("reading the lists needs an operator or auditor token")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadlineQuery {
    deadline_ms: Option<u64>,
}

fn deadline(state: &ControlState, deadline_ms: Option<u64>) -> Result<Duration> {
    match deadline_ms {
        None => Ok(state.voter.default_deadline()),
        Some(0) => Err(ApiError::bad_request("deadline_ms must be above 0")),
        Some(ms) if Duration::from_millis(ms) > MAX_DEADLINE => {
            Err(ApiError::bad_request(format!("deadline_ms is at most {}", MAX_DEADLINE.as_millis())))
        }
        Some(ms) => Ok(Duration::from_millis(ms)),
    }
}

fn call_error(e: CallError) -> ApiError {
    let message = e.to_string();
    match e {
        CallError::NoQuorum { .. } => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_quorum", message),
        CallError::Refused { .. } => ApiError::new(StatusCode::CONFLICT, "refused", message),
        CallError::Invalid(_) => ApiError::bad_request(message),
        CallError::Raft(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "raft_unavailable", message),
    }
}

/// A list entry as the API shows and takes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryJson {
    /// `red` or `black`.
    pub list: String,
    /// `kind:value`: `credit_code:91350100M000100Y43`, `mmsi:412345678`, `hull:…`,
    /// `registration:…`.
    pub subject: String,
    #[serde(default)]
    pub name: String,
    pub authority: String,
    pub legal_basis: String,
    /// RFC 3339 or `YYYY-MM-DD` (midnight UTC).
    pub effective: String,
    pub expires: String,
    #[serde(default)]
    pub note: String,
    /// Shown, never taken: whether the entry matches now.
    #[serde(default, skip_deserializing)]
    pub in_force: bool,
}

impl EntryJson {
    fn show(e: &ListEntry, now_ms: u64) -> EntryJson {
        EntryJson {
            list: e.list.to_string(),
            subject: e.subject.to_string(),
            name: e.name.clone(),
            authority: e.authority.clone(),
            legal_basis: e.legal_basis.clone(),
            effective: rfc3339(e.effective_ms),
            expires: rfc3339(e.expires_ms),
            note: e.note.clone(),
            in_force: e.in_force(now_ms),
        }
    }

    fn entry(&self) -> Result<ListEntry> {
        let bad = |e: node::sanctions::SanctionsError| ApiError::bad_request(e.to_string());
        Ok(ListEntry {
            list: self.list.parse().map_err(bad)?,
            subject: self.subject.parse().map_err(bad)?,
            name: self.name.clone(),
            authority: self.authority.clone(),
            legal_basis: self.legal_basis.clone(),
            effective_ms: parse_import_time(&self.effective).map_err(bad)?,
            expires_ms: parse_import_time(&self.expires).map_err(bad)?,
            note: self.note.clone(),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryBody {
    entry: EntryJson,
    why: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WhyBody {
    why: String,
}

fn key(list: &str, subject: &str) -> Result<(ListKind, SubjectId)> {
    let bad = |e: node::sanctions::SanctionsError| ApiError::bad_request(e.to_string());
    Ok((list.parse().map_err(bad)?, subject.parse().map_err(bad)?))
}

async fn propose(state: &ControlState, command: Command, actor: Actor, limit: Duration) -> Result<Written> {
    let proposal = Proposal { command, actor, proposed_ms: state.clock.now_ms() };
    state.voter.write(proposal, limit).await.map_err(call_error)
}

fn written(w: Written) -> (StatusCode, Json<Value>) {
    (StatusCode::OK, Json(json!({ "version": w.version, "changed": w.changed })))
}

async fn add(
    State(state): State<ControlState>,
    caller: Caller,
    Query(q): Query<DeadlineQuery>,
    Json(body): Json<EntryBody>,
) -> Result<(StatusCode, Json<Value>)> {
    let mut actor = may_write(&caller)?;
    actor.why = body.why;
    let limit = deadline(&state, q.deadline_ms)?;
    let entry = body.entry.entry()?;
    let w = propose(&state, Command::Add { entry }, actor, limit).await?;
    let (_, body) = written(w);
    Ok((StatusCode::CREATED, body))
}

async fn amend(
    State(state): State<ControlState>,
    caller: Caller,
    Path((list, subject)): Path<(String, String)>,
    Query(q): Query<DeadlineQuery>,
    Json(body): Json<EntryBody>,
) -> Result<(StatusCode, Json<Value>)> {
    let mut actor = may_write(&caller)?;
    actor.why = body.why;
    let limit = deadline(&state, q.deadline_ms)?;
    let entry = body.entry.entry()?;
    if key(&list, &subject)? != (entry.list, entry.subject.clone()) {
        return Err(ApiError::bad_request("the entry's list and subject must be the ones in the path"));
    }
    Ok(written(propose(&state, Command::Amend { entry }, actor, limit).await?))
}

async fn remove(
    State(state): State<ControlState>,
    caller: Caller,
    Path((list, subject)): Path<(String, String)>,
    Query(q): Query<DeadlineQuery>,
    Json(body): Json<WhyBody>,
) -> Result<(StatusCode, Json<Value>)> {
    let mut actor = may_write(&caller)?;
    actor.why = body.why;
    let limit = deadline(&state, q.deadline_ms)?;
    let (list, subject) = key(&list, &subject)?;
    Ok(written(propose(&state, Command::Remove { list, subject }, actor, limit).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportQuery {
    why: String,
    deadline_ms: Option<u64>,
}

/// Split an import into proposals of at most [`IMPORT_CHUNK_BYTES`] each, in row order.
fn import_chunks(entries: Vec<ListEntry>, actor: &Actor, now_ms: u64) -> Result<Vec<Proposal>> {
    let mut proposals = Vec::new();
    let mut chunk = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        let size = proto::codec::encode(&entry).map_err(|e| ApiError::bad_request(e.to_string()))?.len();
        if !chunk.is_empty() && bytes + size > IMPORT_CHUNK_BYTES {
            proposals.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
        bytes += size;
        chunk.push(entry);
    }
    if !chunk.is_empty() {
        proposals.push(chunk);
    }
    Ok(proposals
        .into_iter()
        .map(|entries| Proposal { command: Command::Import { entries }, actor: actor.clone(), proposed_ms: now_ms })
        .collect())
}

/// `POST /api/v1/lists/import?why=…`, a CSV body. Every row is checked before anything is
/// proposed; then the rows go in log entries of at most [`IMPORT_CHUNK_BYTES`],
/// [`IMPORT_IN_FLIGHT`] at a time. If the deadline runs out part way, the answer says how many
/// rows were committed (each committed chunk stays committed; running the same import again is
/// harmless: rows replace).
async fn import(
    State(state): State<ControlState>,
    caller: Caller,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> Result<Json<Value>> {
    let mut actor = may_write(&caller)?;
    actor.why = q.why;
    let limit = deadline(&state, q.deadline_ms)?;
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("the CSV is not UTF-8"))?;
    let entries = parse_import_csv(text).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let rows = entries.len();
    let now_ms = state.clock.now_ms();
    let proposals = import_chunks(entries, &actor, now_ms)?;
    for p in &proposals {
        Lists::validate(p).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let until = tokio::time::Instant::now() + limit;
    let (mut committed, mut changed, mut version) = (0usize, 0u64, 0u64);
    let mut failed: Option<CallError> = None;
    // Several chunks in flight, so the leader appends and applies them in batches. A CSV names
    // each subject once (parse_import_csv refuses repeats), so the order in which chunks
    // commit changes nothing.
    let mut in_flight = tokio::task::JoinSet::new();
    let mut pending = proposals.into_iter();
    loop {
        while failed.is_none() && in_flight.len() < IMPORT_IN_FLIGHT {
            let Some(p) = pending.next() else { break };
            let n = match &p.command {
                Command::Import { entries } => entries.len(),
                _ => 0,
            };
            let voter = state.voter.clone();
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            in_flight.spawn(async move { (n, voter.write(p, left).await) });
        }
        let Some(done) = in_flight.join_next().await else { break };
        match done {
            Ok((n, Ok(w))) => {
                committed += n;
                changed += u64::from(w.changed);
                version = version.max(w.version);
            }
            Ok((_, Err(e))) => {
                failed.get_or_insert(e);
            }
            Err(e) => {
                failed.get_or_insert(CallError::Raft(format!("an import task failed: {e}")));
            }
        }
    }
    if let Some(e) = failed {
        let mut err = call_error(e);
        err.message = format!(
            "{} ({committed} of {rows} rows committed; importing again is harmless: rows replace)",
            err.message
        );
        return Err(err);
    }
    Ok(Json(json!({ "rows": rows, "committed": committed, "changed": changed, "version": version })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    list: Option<String>,
    /// Only subjects of this kind (`credit_code`, `mmsi`, `hull`, `registration`).
    kind: Option<String>,
    /// The `next` of the previous page.
    after: Option<String>,
    limit: Option<usize>,
    deadline_ms: Option<u64>,
}

/// `GET /api/v1/lists`: entries in (list, subject) order, a page at a time, as of a
/// linearizable read.
async fn list(State(state): State<ControlState>, caller: Caller, Query(q): Query<ListQuery>) -> Result<Json<Value>> {
    may_read(&caller)?;
    let limit = deadline(&state, q.deadline_ms)?;
    let only: Option<ListKind> = q
        .list
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: node::sanctions::SanctionsError| ApiError::bad_request(e.to_string()))?;
    let after = match q.after.as_deref() {
        None => None,
        Some(a) => {
            let (l, s) = a.split_once('/').ok_or_else(|| ApiError::bad_request("after is list/subject"))?;
            Some(key(l, s)?)
        }
    };
    let page = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let now_ms = state.clock.now_ms();
    let kind = q.kind.clone();
    let (version, entries, more) = state
        .voter
        .read(limit, |lists| {
            let mut it = lists
                .entries()
                .filter(|e| only.is_none_or(|l| e.list == l))
                .filter(|e| kind.as_deref().is_none_or(|k| e.subject.kind_name() == k))
                .filter(|e| after.as_ref().is_none_or(|(l, s)| (e.list, &e.subject) > (*l, s)));
            let entries: Vec<EntryJson> = it.by_ref().take(page).map(|e| EntryJson::show(e, now_ms)).collect();
            (lists.version(), entries, it.next().is_some())
        })
        .await
        .map_err(call_error)?;
    let next = if more { entries.last().map(|e| format!("{}/{}", e.list, e.subject)) } else { None };
    Ok(Json(json!({ "version": version, "entries": entries, "next": next })))
}

async fn show(
    State(state): State<ControlState>,
    caller: Caller,
    Path((list, subject)): Path<(String, String)>,
    Query(q): Query<DeadlineQuery>,
) -> Result<Json<Value>> {
    may_read(&caller)?;
    let limit = deadline(&state, q.deadline_ms)?;
    let (list, subject) = key(&list, &subject)?;
    let now_ms = state.clock.now_ms();
    let (version, entry) = state
        .voter
        .read(limit, |lists| (lists.version(), lists.get(list, &subject).map(|e| EntryJson::show(e, now_ms))))
        .await
        .map_err(call_error)?;
    match entry {
        Some(entry) => Ok(Json(json!({ "version": version, "entry": entry }))),
        None => Err(ApiError::not_found(format!("{subject} is not on the {list} list (version {version})"))),
    }
}

/// A change as the API shows it: who did what, when, why, and what came of it.
fn change_json(c: &Change, only: Option<(ListKind, &SubjectId)>, now_ms: u64) -> Value {
    let p = &c.proposal;
    let mut v = json!({
        "version": c.version,
        "command": p.command.name(),
        "who": p.actor.who,
        "why": p.actor.why,
        "proposed": rfc3339(p.proposed_ms),
    });
    match &c.outcome {
        node::sanctions::Outcome::Applied { changed, .. } => {
            v["applied"] = json!(true);
            v["changed"] = json!(changed);
        }
        node::sanctions::Outcome::Refused { reason, .. } => {
            v["applied"] = json!(false);
            v["refused"] = json!(reason);
        }
    }
    match &p.command {
        Command::Add { entry } | Command::Amend { entry } => v["entry"] = json!(EntryJson::show(entry, now_ms)),
        Command::Remove { list, subject } => {
            v["list"] = json!(list.as_str());
            v["subject"] = json!(subject.to_string());
        }
        Command::Import { entries } => {
            v["rows"] = json!(entries.len());
            if let Some((list, subject)) = only {
                if let Some(e) = entries.iter().find(|e| e.list == list && &e.subject == subject) {
                    v["entry"] = json!(EntryJson::show(e, now_ms));
                }
            }
        }
        Command::RevokeCertificate { node, fingerprint } => {
            v["node"] = json!(node);
            v["fingerprint"] = json!(fingerprint);
        }
    }
    v
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangesQuery {
    /// Changes after this version (0: from the start).
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
    deadline_ms: Option<u64>,
}

/// `GET /api/v1/lists/changes`: every applied command after a version, in order; the lists'
/// audit trail (who, why, when, outcome) and what the mesh distributes.
async fn changes(
    State(state): State<ControlState>,
    caller: Caller,
    Query(q): Query<ChangesQuery>,
) -> Result<Json<Value>> {
    may_read(&caller)?;
    let limit = deadline(&state, q.deadline_ms)?;
    let page = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let (version, horizon, changes) = state.voter.changes(limit, q.after, page).await.map_err(call_error)?;
    let now_ms = state.clock.now_ms();
    let next = (changes.len() == page).then(|| changes.last().map(|c| c.version)).flatten();
    let changes: Vec<Value> = changes.iter().map(|c| change_json(c, None, now_ms)).collect();
    Ok(Json(json!({ "version": version, "horizon": horizon, "changes": changes, "next": next })))
}

/// `GET /api/v1/lists/{list}/{subject}/history`: every change that touched one subject.
async fn history(
    State(state): State<ControlState>,
    caller: Caller,
    Path((list, subject)): Path<(String, String)>,
    Query(q): Query<DeadlineQuery>,
) -> Result<Json<Value>> {
    may_read(&caller)?;
    let limit = deadline(&state, q.deadline_ms)?;
    let (list, subject) = key(&list, &subject)?;
    let (version, horizon, changes) = state.voter.history(limit, list, &subject, MAX_PAGE).await.map_err(call_error)?;
    let now_ms = state.clock.now_ms();
    let history: Vec<Value> = changes.iter().map(|c| change_json(c, Some((list, &subject)), now_ms)).collect();
    Ok(Json(json!({ "version": version, "horizon": horizon, "history": history })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    node: String,
    /// Lowercase hex SHA-256 of the certificate's DER (`yiwangctl pki show` prints it).
    fingerprint: String,
    why: String,
}

async fn revoke(
    State(state): State<ControlState>,
    caller: Caller,
    Query(q): Query<DeadlineQuery>,
    Json(body): Json<RevokeBody>,
) -> Result<(StatusCode, Json<Value>)> {
    let mut actor = may_write(&caller)?;
    actor.why = body.why;
    let limit = deadline(&state, q.deadline_ms)?;
    let command = Command::RevokeCertificate { node: body.node, fingerprint: body.fingerprint };
    let (_, body) = written(propose(&state, command, actor, limit).await?);
    Ok((StatusCode::CREATED, body))
}

async fn revocations(
    State(state): State<ControlState>,
    caller: Caller,
    Query(q): Query<DeadlineQuery>,
) -> Result<Json<Value>> {
    may_read(&caller)?;
    let limit = deadline(&state, q.deadline_ms)?;
    let (version, revoked) = state
        .voter
        .read(limit, |lists| {
            let revoked: Vec<Value> =
                lists.revoked().map(|(fp, node)| json!({ "node": node, "fingerprint": fp })).collect();
            (lists.version(), revoked)
        })
        .await
        .map_err(call_error)?;
    Ok(Json(json!({ "version": version, "revoked": revoked })))
}

/// The raft group as this voter sees it, without asking anyone (so it answers on a minority
/// side too): its state, the leader, the term, the voters, and (on the leader) how far each
/// follower has replicated. With `digest`, also a SHA-256 of the applied lists (it reads
/// every entry, under the state machine's read lock: ask for it to compare replicas, not on
/// every poll).
pub fn raft_status(voter: &VoterNode, digest: bool) -> Value {
    let m: openraft::RaftMetrics<VoterId, Voter> = voter.metrics();
    let membership = m.membership_config.membership();
    let name_of = |id: &VoterId| membership.get_node(id).map(|v| v.name.clone()).unwrap_or_else(|| id.to_string());
    let last_log = m.last_log_index.unwrap_or(0);
    // Under one read lock, so version, digest and count agree.
    let (version, digest, entries) = {
        let applied = voter.view().read();
        let digest: Option<String> =
            digest.then(|| applied.lists.digest().iter().map(|b| format!("{b:02x}")).collect());
        (applied.lists.version(), digest, applied.lists.len())
    };
    let replication: Vec<Value> = m
        .replication
        .as_ref()
        .map(|r| {
            r.iter()
                .map(|(id, matched)| {
                    let matched = matched.map(|l| l.index).unwrap_or(0);
                    json!({ "voter": name_of(id), "matched": matched, "lag": last_log.saturating_sub(matched) })
                })
                .collect()
        })
        .unwrap_or_default();
    let voters: Vec<Value> = membership
        .nodes()
        .map(|(id, v)| json!({ "name": v.name, "addr": v.addr, "voter": membership.voter_ids().any(|x| x == *id) }))
        .collect();
    json!({
        "name": voter.name().as_str(),
        "state": format!("{:?}", m.state).to_lowercase(),
        "leader": m.current_leader.map(|l| name_of(&l)),
        "term": m.current_term,
        "last_log_index": last_log,
        "applied_version": version,
        "lists_digest": digest,
        "entries": entries,
        "voters": voters,
        "replication": replication,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberBody {
    /// The site's node id (its certificate must name a voting role: city or county).
    name: String,
    /// Where its `yiwang-control` (started with `join = true`) listens.
    addr: String,
    /// Add as a voter (default) or only as a learner that receives the log.
    #[serde(default = "yes")]
    voter: bool,
    why: String,
}

fn yes() -> bool {
    true
}

fn why_given(why: &str) -> Result<()> {
    if why.trim().is_empty() {
        return Err(ApiError::bad_request("why is required: say why the group changes"));
    }
    Ok(())
}

/// `POST /api/v1/raft/members`: add a site to the group (the leader waits until it has caught
/// up before making it a voter).
async fn add_member(
    State(state): State<ControlState>,
    caller: Caller,
    Query(q): Query<DeadlineQuery>,
    Json(body): Json<MemberBody>,
) -> Result<(StatusCode, Json<Value>)> {
    let actor = may_write(&caller)?;
    why_given(&body.why)?;
    let limit = deadline(&state, q.deadline_ms)?;
    let change = MemberChange::Add { name: body.name.clone(), addr: body.addr.clone(), voter: body.voter };
    let index = state.voter.change_members(change, limit).await.map_err(call_error)?;
    tracing::info!(who = %actor.who, why = %body.why, site = %body.name, addr = %body.addr, voter = body.voter, index, "raft member added");
    Ok((StatusCode::CREATED, Json(json!({ "index": index, "status": raft_status(&state.voter, false) }))))
}

/// `DELETE /api/v1/raft/members/{name}`: remove a site from the group.
async fn remove_member(
    State(state): State<ControlState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<DeadlineQuery>,
    Json(body): Json<WhyBody>,
) -> Result<Json<Value>> {
    let actor = may_write(&caller)?;
    why_given(&body.why)?;
    let limit = deadline(&state, q.deadline_ms)?;
    let index =
        state.voter.change_members(MemberChange::Remove { name: name.clone() }, limit).await.map_err(call_error)?;
    tracing::info!(who = %actor.who, why = %body.why, site = %name, index, "raft member removed");
    Ok(Json(json!({ "index": index, "status": raft_status(&state.voter, false) })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusQuery {
    #[serde(default)]
    digest: bool,
    /// Accepted like every call's, and unused: the status asks no other voter.
    #[allow(dead_code)]
    deadline_ms: Option<u64>,
}

async fn status(
    State(state): State<ControlState>,
    caller: Caller,
    Query(q): Query<StatusQuery>,
) -> Result<Json<Value>> {
    may_read(&caller)?;
    Ok(Json(raft_status(&state.voter, q.digest)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// `(METHOD, path)` of every route in [`router`], read from this file's source.
    fn served() -> BTreeSet<(String, String)> {
        let source = include_str!("api.rs");
        let router = &source[source.find("pub fn router").unwrap()..source.find("type Result<T>").unwrap()];
        let mut out = BTreeSet::new();
        for line in router.lines().filter(|l| l.trim_start().starts_with(".route(")) {
            let path = line.split('"').nth(1).unwrap().to_string();
            let handlers = line.split_once(',').unwrap().1;
            for method in ["get", "post", "put", "delete"] {
                if handlers.contains(&format!("{method}(")) {
                    out.insert((method.to_string(), path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn the_openapi_document_is_openapi_3_0_and_covers_every_route() {
        let parsed: openapiv3::OpenAPI = serde_json::from_str(OPENAPI).expect("OpenAPI 3.0");
        assert!(parsed.openapi.starts_with("3.0."));
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in ["get", "post", "put", "delete"] {
                if let Some(op) = item.get(method) {
                    documented.insert((method.to_string(), path.clone()));
                    if path.starts_with("/api/") {
                        let codes = op["responses"].as_object().unwrap();
                        assert!(codes.contains_key("401") && codes.contains_key("403"), "{method} {path}: 401 and 403");
                        if method != "get" || path != "/api/v1/raft" {
                            assert!(
                                codes.contains_key("503"),
                                "{method} {path}: a call with a deadline can find no quorum"
                            );
                        }
                    }
                }
            }
        }
        assert_eq!(served(), documented, "served routes and documented operations differ");
        let mut refs = Vec::new();
        fn walk<'a>(v: &'a Value, refs: &mut Vec<&'a str>) {
            match v {
                Value::Object(m) => {
                    if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                        refs.push(r);
                    }
                    m.values().for_each(|w| walk(w, refs));
                }
                Value::Array(a) => a.iter().for_each(|w| walk(w, refs)),
                _ => {}
            }
        }
        walk(&doc, &mut refs);
        for r in refs {
            assert!(doc.pointer(&r[1..]).is_some(), "dangling $ref {r}");
        }
    }

    #[test]
    fn entries_round_trip_through_their_json_form() {
        let body = EntryJson {
            list: "black".into(),
            subject: "mmsi:412345678".into(),
            name: "Lu Yu 1234".into(),
            authority: "Municipal Ocean and Fisheries Bureau".into(),
            legal_basis: "Fisheries Law art. 38".into(),
            effective: "2026-12-01".into(),
            expires: "2027-12-01T00:00:00Z".into(),
            note: String::new(),
            in_force: false,
        };
        let entry = body.entry().unwrap();
        assert_eq!(entry.subject, SubjectId::Mmsi(412_345_678));
        let shown = EntryJson::show(&entry, entry.effective_ms);
        assert!(shown.in_force);
        assert_eq!(shown.effective, "2026-12-01T00:00:00Z");
        assert_eq!(shown.entry().unwrap(), entry);
        let bad = EntryJson { subject: "person:123".into(), ..body };
        assert_eq!(bad.entry().unwrap_err().status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn imports_are_cut_into_chunks_that_keep_row_order() {
        let actor = Actor { who: "op".into(), why: "test".into() };
        let entry = |mmsi: u32| ListEntry {
            list: ListKind::Red,
            subject: SubjectId::Mmsi(mmsi),
            name: "x".repeat(150),
            authority: "a".into(),
            legal_basis: "b".into(),
            effective_ms: 0,
            expires_ms: 1,
            note: String::new(),
        };
        let rows: Vec<ListEntry> = (0..2_000).map(|i| entry(412_000_000 + i)).collect();
        let chunks = import_chunks(rows.clone(), &actor, 0).unwrap();
        assert!(chunks.len() > 1);
        let mut again = Vec::new();
        for p in &chunks {
            assert!(proto::codec::encode(p).unwrap().len() <= IMPORT_CHUNK_BYTES + 1024);
            let Command::Import { entries } = &p.command else { panic!("an import") };
            again.extend(entries.iter().cloned());
        }
        assert_eq!(again, rows);
    }
}
