//! `yiwangctl mesh status`, `escalations list|answer` and `audit`: calls to a node's HTTP API
//! (see the node's `/openapi.json`). Asked of the city's node, the mesh status covers every
//! node, and the escalations are those sent up to the city.

use crate::client::{ApiClient, ClientError};
use crate::CtlError;
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Which node's API to ask, and how.
#[derive(Debug, Args)]
pub struct NodeApiArgs {
    /// A node's HTTP API (`[http] listen` in its config): the city's for the whole mesh.
    #[arg(long, value_name = "ADDR", env = "YIWANG_NODE_API", default_value = "127.0.0.1:7800", global = true)]
    pub node_api: SocketAddr,
    /// An operator or auditor token of that node.
    #[arg(long, value_name = "TOKEN", env = "YIWANG_NODE_TOKEN", hide_env_values = true, global = true)]
    pub node_token: Option<String>,
    /// A file holding the token (for instance the node's `operator.token`).
    #[arg(long, value_name = "FILE", conflicts_with = "node_token", global = true)]
    pub node_token_file: Option<PathBuf>,
    /// How long to wait for the answer.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    pub deadline: Duration,
}

#[derive(Debug, Subcommand)]
pub enum MeshCommand {
    /// Every node below the asked one: state, last seen, link up, backlog, lists version (and
    /// how far behind), clock offset, open and overdue events. A node not heard from for 15 s
    /// is `stale`.
    Status {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum EscalationsCommand {
    /// Escalations the sites below sent up to the node, newest first, with the answers sent.
    List {
        /// Only those of this site.
        #[arg(long)]
        origin: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Answer an escalation: acknowledge it, or report its result. The answer goes down the
    /// mesh to the event's owner.
    Answer {
        /// The event (`origin/seq`, as `escalations list` prints it).
        event: String,
        /// The escalation's number.
        n: u32,
        /// `acknowledge` or `result`.
        #[arg(long, value_parser = ["acknowledge", "result"])]
        answer: String,
        /// The department answering.
        #[arg(long)]
        by: String,
        /// What was done (required for a result).
        #[arg(long)]
        outcome: Option<String>,
        #[arg(long, default_value = "")]
        note: String,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Whose records (default: the node's own).
    #[arg(long)]
    pub origin: Option<String>,
    /// Only this action (e.g. sanctions_hit, watchlist_hit, refused).
    #[arg(long)]
    pub action: Option<String>,
    /// Only records whose subject contains this.
    #[arg(long)]
    pub subject: Option<String>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

impl NodeApiArgs {
    fn client(&self) -> Result<ApiClient, CtlError> {
        let token = super::operator::token(
            self.node_token.as_deref(),
            self.node_token_file.as_deref(),
            "give --node-token, --node-token-file or YIWANG_NODE_TOKEN",
        )?;
        Ok(ApiClient { addr: self.node_api, token, deadline: self.deadline, server_deadline: false })
    }
}

pub fn mesh(api: &NodeApiArgs, command: MeshCommand) -> Result<String, CtlError> {
    let client = api.client()?;
    let MeshCommand::Status { json } = command;
    super::operator::block_on(async {
        let v = client.get("/api/v1/mesh").await?;
        if json {
            return Ok::<_, ClientError>(format!("{v:#}\n"));
        }
        Ok(status_table(&v))
    })
}

pub fn escalations(api: &NodeApiArgs, command: EscalationsCommand) -> Result<String, CtlError> {
    let client = api.client()?;
    super::operator::block_on(async {
        match command {
            EscalationsCommand::List { origin, limit, json } => {
                let mut path = format!("/api/v1/escalations?limit={limit}");
                if let Some(o) = origin {
                    path.push_str(&format!("&origin={}", super::operator::encode(&o)));
                }
                let v = client.get(&path).await?;
                if json {
                    return Ok(format!("{v:#}\n"));
                }
                let mut out = String::new();
                for e in v["escalations"].as_array().into_iter().flatten() {
                    let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
                    out.push_str(&format!(
                        "{} #{}\t{}\tto {} ({})\tby {}\t{}: {}\t{} answers sent\n",
                        s("event"),
                        e["n"],
                        s("at"),
                        s("department"),
                        s("tier"),
                        s("by"),
                        s("category"),
                        s("reason"),
                        e["answers_sent"],
                    ));
                }
                Ok(out)
            }
            EscalationsCommand::Answer { event, n, answer, by, outcome, note } => {
                let path = format!("/api/v1/escalations/{}/{n}/answers", super::operator::encode(&event));
                let body = json!({ "answer": answer, "by": by, "outcome": outcome, "note": note });
                let v = client.send_json(Method::POST, &path, &body).await?;
                Ok(format!("answered {event} #{n}: command {}\n", v["command"].as_str().unwrap_or("?")))
            }
        }
    })
}

pub fn audit(api: &NodeApiArgs, a: AuditArgs) -> Result<String, CtlError> {
    let client = api.client()?;
    super::operator::block_on(async {
        let mut path = format!("/api/v1/audit?limit={}", a.limit);
        for (k, v) in [("origin", &a.origin), ("action", &a.action), ("subject", &a.subject)] {
            if let Some(v) = v {
                path.push_str(&format!("&{k}={}", super::operator::encode(v)));
            }
        }
        let v = client.get(&path).await?;
        if a.json {
            return Ok(format!("{v:#}\n"));
        }
        let mut out = String::new();
        for r in v["records"].as_array().into_iter().flatten() {
            let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
            out.push_str(&format!("{}\t{}\t{}\t{}\t{}\n", s("at"), s("actor"), s("action"), s("subject"), s("why")));
        }
        Ok(out)
    })
}

/// One line per node, columns aligned.
fn status_table(v: &Value) -> String {
    let mut rows =
        vec![["NODE", "ROLE", "STATE", "AGE", "UPLINK", "BACKLOG", "LISTS", "BEHIND", "CLOCK", "OPEN", "OVERDUE"]
            .map(String::from)
            .to_vec()];
    for n in v["nodes"].as_array().into_iter().flatten() {
        let s = |k: &str| n[k].as_str().unwrap_or("-").to_string();
        let num = |k: &str| n[k].as_i64().map_or("-".to_string(), |x| x.to_string());
        let age = n["age_ms"].as_u64().map_or("-".to_string(), |ms| format!("{:.1}s", ms as f64 / 1000.0));
        let uplink = n["uplink"]["peer"]
            .as_str()
            .map_or("-".to_string(), |p| format!("{p} ({})", n["uplink"]["state"].as_str().unwrap_or("?")));
        let clock = n["clock_offset_ms"].as_i64().map_or("-".to_string(), |ms| format!("{ms:+}ms"));
        rows.push(vec![
            s("node"),
            s("role"),
            s("state"),
            age,
            uplink,
            num("backlog"),
            num("lists_version"),
            num("lists_behind"),
            clock,
            num("open_events"),
            num("overdue_events"),
        ]);
    }
    let widths: Vec<usize> =
        (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = format!(
        "{} enforces lists version {}, at {}\n",
        v["node"].as_str().unwrap_or("?"),
        v["lists_version"],
        v["at"].as_str().unwrap_or("?")
    );
    for r in rows {
        let cells: Vec<String> = r.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
