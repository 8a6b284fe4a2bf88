//! The dashboard's refresh: every `poll`, read the node API's mesh view, escalations and
//! fence alerts (concurrently, each under a deadline) and the local voter's raft status, and
//! publish the next [`CityView`] to every browser watching.

use super::view::{Answers, CityView};
use crate::client::ApiClient;
use crate::raft::voter::VoterNode;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Deadline of each call to the node API.
pub const CALL_DEADLINE: Duration = Duration::from_secs(3);
/// Escalations and fence alerts read per refresh.
const PAGE: usize = 200;

/// Where the node API's token comes from.
#[derive(Debug, Clone)]
pub enum Token {
    /// Read from this file at each refresh (the node writes it on its first start, maybe after
    /// this voter started; an operator may replace it).
    File(PathBuf),
    Value(String),
}

impl Token {
    fn read(&self) -> Result<String, String> {
        match self {
            Token::Value(t) => Ok(t.clone()),
            Token::File(path) => std::fs::read_to_string(path)
                .map(|t| t.trim().to_string())
                .map_err(|e| format!("cannot read the node token {}: {e}", path.display())),
        }
    }
}

/// What a refresh reads.
pub struct Source {
    pub node_api: SocketAddr,
    pub token: Token,
    pub voter: Arc<VoterNode>,
    pub every: Duration,
}

/// Refresh until the task is dropped (the service aborts it when it stops).
pub async fn refresh(source: Source, views: watch::Sender<Arc<CityView>>) {
    let mut tick = tokio::time::interval(source.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let answers = match source.token.read() {
            Ok(token) => {
                let client =
                    ApiClient { addr: source.node_api, token, deadline: CALL_DEADLINE, server_deadline: false };
                let (escalations, fences) =
                    (format!("/api/v1/escalations?limit={PAGE}"), format!("/api/v1/fences?limit={PAGE}"));
                let (mesh, escalations, fences) =
                    tokio::join!(get(&client, "/api/v1/mesh"), get(&client, &escalations), get(&client, &fences),);
                Answers { mesh, escalations, fences }
            }
            Err(e) => Answers { mesh: Err(e.clone()), escalations: Err(e.clone()), fences: Err(e) },
        };
        let raft = crate::api::raft_status(&source.voter, false);
        let next = views.borrow().next(answers, raft);
        views.send_replace(Arc::new(next));
    }
}

async fn get(client: &ApiClient, path: &str) -> Result<Value, String> {
    client.get(path).await.map_err(|e| e.to_string())
}
