//! `yiwangctl mesh status`: the mesh as a node sees it (the city's node sees every node), from
//! that node's HTTP API (`GET /api/v1/mesh`, see the node's `/openapi.json`).

use crate::client::{ApiClient, ClientError};
use crate::CtlError;
use clap::{Args, Subcommand};
use serde_json::Value;
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

impl NodeApiArgs {
    fn client(&self) -> Result<ApiClient, CtlError> {
        let token = super::operator::token(
            self.node_token.as_deref(),
            self.node_token_file.as_deref(),
            "give --node-token, --node-token-file or YIWANG_NODE_TOKEN",
        )?;
        Ok(ApiClient { addr: self.node_api, token, deadline: self.deadline })
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
