//! `yiwangctl lists …`, `yiwangctl revoke` and `yiwangctl raft status`: calls to a voter's
//! operator API (see [`crate::api`]).

use crate::client::{ApiClient, ClientError};
use crate::CtlError;
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where the operator API is and how to call it (before or after the subcommand).
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The operator API of any voter (`[api] listen` in its config).
    #[arg(long, value_name = "ADDR", env = "YIWANG_API", default_value = "127.0.0.1:7901", global = true)]
    pub api: SocketAddr,
    /// An operator (to change lists) or auditor (to read) token.
    #[arg(long, value_name = "TOKEN", env = "YIWANG_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// A file holding the token (for instance the voter's `operator.token`).
    #[arg(long, value_name = "FILE", conflicts_with = "token", global = true)]
    pub token_file: Option<PathBuf>,
    /// How long to wait for the call, quorum included. On the minority side of a partition a
    /// write fails when this runs out, saying which version that voter holds.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    pub deadline: Duration,
}

#[derive(Debug, Subcommand)]
pub enum ListsCommand {
    /// Print the lists (linearizable: everything committed before the call), one entry a line.
    Show(ShowListArgs),
    /// Print one entry.
    Get { list: String, subject: String },
    /// Print every change that touched one subject: version, time, command, who, why, outcome.
    History { list: String, subject: String },
    /// Print every change after a version, in order (the lists' audit trail).
    Changes {
        /// Changes after this version.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Put a subject on a list. Every entry names its authority, legal basis and period.
    Add(EntryArgs),
    /// Replace every field of a listed entry.
    Amend(EntryArgs),
    /// Take a subject off a list (credit repair); --why is the reason, kept in the log.
    Remove {
        list: String,
        subject: String,
        #[arg(long)]
        why: String,
    },
    /// Bulk import from CSV (header: list,subject_kind,subject,name,authority,legal_basis,
    /// effective,expires,note). Every row is checked before any is proposed; rows add or
    /// replace.
    Import {
        file: PathBuf,
        #[arg(long)]
        why: String,
    },
}

#[derive(Debug, Args)]
pub struct ShowListArgs {
    /// Only this list: red or black.
    #[arg(long)]
    pub list: Option<String>,
    /// Only subjects of this kind: credit_code, mmsi, hull, registration.
    #[arg(long)]
    pub kind: Option<String>,
    /// Print the API's JSON pages instead of lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EntryArgs {
    /// red or black.
    #[arg(long)]
    pub list: String,
    /// kind:value, e.g. mmsi:412345678, credit_code:91350100M000100Y43, hull:…, registration:….
    #[arg(long)]
    pub subject: String,
    /// Organisation or vessel name.
    #[arg(long, default_value = "")]
    pub name: String,
    /// The issuing authority.
    #[arg(long)]
    pub authority: String,
    /// The law or regulation the listing rests on.
    #[arg(long)]
    pub legal_basis: String,
    /// When the entry takes effect: RFC 3339 or YYYY-MM-DD (midnight UTC).
    #[arg(long)]
    pub effective: String,
    /// When it expires (stops matching), same forms.
    #[arg(long)]
    pub expires: String,
    /// The grounds (never data about people).
    #[arg(long, default_value = "")]
    pub note: String,
    /// Why this change is made; recorded with your token's name.
    #[arg(long)]
    pub why: String,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The node whose certificate is revoked.
    #[arg(long)]
    pub node: String,
    /// SHA-256 of the certificate's DER, 64 lowercase hex digits (`yiwangctl pki show` prints
    /// it as `sha256`).
    #[arg(long)]
    pub fingerprint: String,
    /// Why it is revoked; recorded with your token's name.
    #[arg(long)]
    pub why: String,
}

#[derive(Debug, Subcommand)]
pub enum RaftCommand {
    /// The group as the voter sees it: its state, leader, term, voters, applied version and (on
    /// the leader) each follower's replication lag. Answers on a minority side too.
    Status {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a site to the group. Start its yiwang-control first, with `join = true` in its
    /// [raft] section; the leader brings it up to date, then makes it a voter.
    Add {
        /// The site's node id (its certificate must name the city or a county).
        #[arg(long)]
        name: String,
        /// Where its yiwang-control listens (IP:port).
        #[arg(long)]
        addr: String,
        /// Only as a learner that receives the log, not as a voter.
        #[arg(long)]
        learner: bool,
        #[arg(long)]
        why: String,
    },
    /// Remove a site from the group.
    Remove {
        name: String,
        #[arg(long)]
        why: String,
    },
}

impl ApiArgs {
    fn client(&self) -> Result<ApiClient, CtlError> {
        let token =
            token(self.token.as_deref(), self.token_file.as_deref(), "give --token, --token-file or YIWANG_TOKEN")?;
        Ok(ApiClient { addr: self.api, token, deadline: self.deadline, server_deadline: true })
    }
}

/// A token given on the command line, or read from a file; `missing` says how to give one.
pub(super) fn token(given: Option<&str>, file: Option<&std::path::Path>, missing: &str) -> Result<String, CtlError> {
    match (given, file) {
        (Some(t), _) => Ok(t.to_string()),
        (None, Some(path)) => Ok(std::fs::read_to_string(path)
            .map_err(|source| CtlError::Read { path: path.to_path_buf(), source })?
            .trim()
            .to_string()),
        (None, None) => Err(CtlError::Usage(missing.into())),
    }
}

pub(super) fn block_on<T>(f: impl std::future::Future<Output = Result<T, ClientError>>) -> Result<T, CtlError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CtlError::Usage(format!("cannot start a runtime: {e}")))?;
    rt.block_on(f).map_err(CtlError::Api)
}

fn entry_json(a: &EntryArgs) -> Value {
    json!({
        "entry": {
            "list": a.list, "subject": a.subject, "name": a.name, "authority": a.authority,
            "legal_basis": a.legal_basis, "effective": a.effective, "expires": a.expires, "note": a.note,
        },
        "why": a.why,
    })
}

/// Percent-encode a path segment or query value.
pub(super) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn entry_line(e: &Value) -> String {
    let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
    let force = if e["in_force"].as_bool() == Some(true) { "in force" } else { "not in force" };
    format!(
        "{}\t{}\t{}\t{} .. {}\t{force}\t{}\t{}\n",
        s("list"),
        s("subject"),
        s("name"),
        s("effective"),
        s("expires"),
        s("authority"),
        s("legal_basis"),
    )
}

async fn show_all(client: &ApiClient, a: &ShowListArgs) -> Result<String, ClientError> {
    let mut out = String::new();
    let mut after: Option<String> = None;
    let version = loop {
        let mut path = "/api/v1/lists?limit=1000".to_string();
        for (k, v) in [("list", &a.list), ("kind", &a.kind), ("after", &after)] {
            if let Some(v) = v {
                path.push_str(&format!("&{k}={}", encode(v)));
            }
        }
        let page = client.get(&path).await?;
        if a.json {
            out.push_str(&format!("{page}\n"));
        } else {
            for e in page["entries"].as_array().into_iter().flatten() {
                out.push_str(&entry_line(e));
            }
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break page["version"].as_u64().unwrap_or(0),
        }
    };
    if !a.json {
        out.push_str(&format!("# version {version}\n"));
    }
    Ok(out)
}

/// One change, one line: version, time, command, who, why, outcome and what it was about.
fn change_line(c: &Value) -> String {
    let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
    let outcome = if c["applied"].as_bool() == Some(true) {
        format!("applied ({} changed)", c["changed"])
    } else {
        format!("refused: {}", s("refused"))
    };
    let about = match (c["entry"]["subject"].as_str(), c["subject"].as_str(), c["rows"].as_u64(), c["node"].as_str()) {
        (Some(subject), _, Some(rows), _) => format!("{subject} among {rows} rows"),
        (Some(subject), ..) => format!(
            "{} {subject} until {}",
            c["entry"]["list"].as_str().unwrap_or(""),
            c["entry"]["expires"].as_str().unwrap_or("")
        ),
        (None, Some(subject), ..) => format!("{} {subject}", s("list")),
        (None, None, Some(rows), _) => format!("{rows} rows"),
        (None, None, None, Some(node)) => format!("certificate of {node}"),
        _ => String::new(),
    };
    format!("{}\t{}\t{}\t{}\t{}\t{outcome}\t{}\n", c["version"], s("proposed"), s("command"), about, s("who"), s("why"))
}

fn horizon_note(v: &Value) -> String {
    match v["horizon"].as_u64() {
        Some(h) if h > 0 => {
            format!("# this voter caught up from a snapshot: changes up to version {h} are not kept here\n")
        }
        _ => String::new(),
    }
}

pub fn lists(api: &ApiArgs, command: ListsCommand) -> Result<String, CtlError> {
    let client = api.client()?;
    let entry_path = |list: &str, subject: &str| format!("/api/v1/lists/{}/{}", encode(list), encode(subject));
    match command {
        ListsCommand::Show(a) => block_on(show_all(&client, &a)),
        ListsCommand::Get { list, subject } => block_on(async {
            let v = client.get(&entry_path(&list, &subject)).await?;
            Ok(format!("{}# version {}\n", entry_line(&v["entry"]), v["version"]))
        }),
        ListsCommand::History { list, subject } => block_on(async {
            let v = client.get(&format!("{}/history", entry_path(&list, &subject))).await?;
            let mut out = horizon_note(&v);
            for c in v["history"].as_array().into_iter().flatten() {
                out.push_str(&change_line(c));
            }
            out.push_str(&format!("# version {}\n", v["version"]));
            Ok(out)
        }),
        ListsCommand::Changes { after, limit } => block_on(async {
            let v = client.get(&format!("/api/v1/lists/changes?after={after}&limit={limit}")).await?;
            let mut out = horizon_note(&v);
            for c in v["changes"].as_array().into_iter().flatten() {
                out.push_str(&change_line(c));
            }
            match v["next"].as_u64() {
                Some(next) => out.push_str(&format!("# more: --after {next}\n")),
                None => out.push_str(&format!("# version {}\n", v["version"])),
            }
            Ok(out)
        }),
        ListsCommand::Add(a) => block_on(async {
            let v = client.send_json(Method::POST, "/api/v1/lists", &entry_json(&a)).await?;
            Ok(format!("added {} to the {} list at version {}\n", a.subject, a.list, v["version"]))
        }),
        ListsCommand::Amend(a) => block_on(async {
            let v = client.send_json(Method::PUT, &entry_path(&a.list, &a.subject), &entry_json(&a)).await?;
            Ok(format!("amended {} on the {} list at version {}\n", a.subject, a.list, v["version"]))
        }),
        ListsCommand::Remove { list, subject, why } => block_on(async {
            let v = client.send_json(Method::DELETE, &entry_path(&list, &subject), &json!({ "why": why })).await?;
            Ok(format!("removed {subject} from the {list} list at version {}\n", v["version"]))
        }),
        ListsCommand::Import { file, why } => {
            let csv = std::fs::read(&file).map_err(|source| CtlError::Read { path: file.clone(), source })?;
            block_on(async {
                let path = format!("/api/v1/lists/import?why={}", encode(&why));
                let v = client.call(Method::POST, &path, "text/csv", csv).await?;
                Ok(format!("imported {} rows ({} changed) at version {}\n", v["committed"], v["changed"], v["version"]))
            })
        }
    }
}

pub fn revoke(api: &ApiArgs, a: RevokeArgs) -> Result<String, CtlError> {
    let client = api.client()?;
    block_on(async {
        let body = json!({ "node": a.node, "fingerprint": a.fingerprint, "why": a.why });
        let v = client.send_json(Method::POST, "/api/v1/revocations", &body).await?;
        Ok(format!("revoked the certificate of {} at version {}\n", a.node, v["version"]))
    })
}

pub fn raft(api: &ApiArgs, command: RaftCommand) -> Result<String, CtlError> {
    let client = api.client()?;
    let json = match command {
        RaftCommand::Status { json } => json,
        RaftCommand::Add { name, addr, learner, why } => {
            return block_on(async {
                let body = json!({ "name": name, "addr": addr, "voter": !learner, "why": why });
                let v = client.send_json(Method::POST, "/api/v1/raft/members", &body).await?;
                let kind = if learner { "learner" } else { "voter" };
                Ok(format!("added {name} as a {kind} at log index {}\n", v["index"]))
            })
        }
        RaftCommand::Remove { name, why } => {
            return block_on(async {
                let path = format!("/api/v1/raft/members/{}", encode(&name));
                let v = client.send_json(Method::DELETE, &path, &json!({ "why": why })).await?;
                Ok(format!("removed {name} at log index {}\n", v["index"]))
            })
        }
    };
    block_on(async {
        let v = client.get("/api/v1/raft").await?;
        if json {
            return Ok(format!("{v:#}\n"));
        }
        let text = |k: &str| v[k].as_str().unwrap_or("?").to_string();
        let mut out = format!(
            "{} is {} in term {}; leader {}; applied version {}; last log index {}\n",
            text("name"),
            text("state"),
            v["term"],
            v["leader"].as_str().unwrap_or("none known"),
            v["applied_version"],
            v["last_log_index"],
        );
        for voter in v["voters"].as_array().into_iter().flatten() {
            let kind = if voter["voter"].as_bool() == Some(true) { "voter" } else { "learner" };
            out.push_str(&format!(
                "  {kind} {} at {}\n",
                voter["name"].as_str().unwrap_or("?"),
                voter["addr"].as_str().unwrap_or("?")
            ));
        }
        for r in v["replication"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  replication to {}: matched {}, lag {}\n",
                r["voter"].as_str().unwrap_or("?"),
                r["matched"],
                r["lag"]
            ));
        }
        Ok(out)
    })
}
