//! The operator API's client, as `yiwangctl` uses it: one HTTP/1.1 request per call on its own
//! connection, with a deadline over the whole exchange (connect, send, answer).

use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

/// Largest answer read.
const MAX_ANSWER_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {addr}: {source}")]
    Connect { addr: SocketAddr, source: std::io::Error },
    #[error("no answer from {addr} within {deadline:?}")]
    Timeout { addr: SocketAddr, deadline: Duration },
    #[error(transparent)]
    Exchange(#[from] node::http_client::ExchangeError),
    #[error("bad request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("the answer could not be read: {0}")]
    Body(String),
    /// The API answered with an error: its status, code and message.
    #[error("{message} (HTTP {status}, {code})")]
    Api { status: u16, code: String, message: String },
}

/// Where the API is and who is calling.
#[derive(Debug, Clone)]
pub struct ApiClient {
    pub addr: SocketAddr,
    pub token: String,
    /// The whole exchange; the server's raft deadline is set a little below it, so a call that
    /// finds no quorum is answered as such rather than cut off.
    pub deadline: Duration,
    /// Whether the server takes `deadline_ms` (the control plane does; a node's API does not).
    pub server_deadline: bool,
}

impl ApiClient {
    /// `path` may carry a query; `deadline_ms` is added for a server that takes it.
    pub async fn call(
        &self,
        method: hyper::Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Value, ClientError> {
        let path = if self.server_deadline {
            let server_ms = self.deadline.saturating_sub(Duration::from_millis(500)).max(Duration::from_millis(100));
            let sep = if path.contains('?') { '&' } else { '?' };
            format!("{path}{sep}deadline_ms={}", server_ms.as_millis())
        } else {
            path.to_string()
        };
        tokio::time::timeout(self.deadline, self.exchange(method, &path, content_type, body))
            .await
            .map_err(|_| ClientError::Timeout { addr: self.addr, deadline: self.deadline })?
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call(hyper::Method::GET, path, "application/json", Vec::new()).await
    }

    pub async fn send_json(&self, method: hyper::Method, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.call(method, path, "application/json", body.to_string().into_bytes()).await
    }

    async fn exchange(
        &self,
        method: hyper::Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Value, ClientError> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|source| ClientError::Connect { addr: self.addr, source })?;
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.addr.to_string())
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .header(CONTENT_TYPE, content_type)
            .body(Full::new(bytes::Bytes::from(body)))?;
        let (status, body) = node::http_client::exchange(stream, request, MAX_ANSWER_BYTES).await?;
        let value: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            // An error the framework answered before any handler (a malformed query): text.
            Err(_) if !status.is_success() => {
                return Err(ClientError::Api {
                    status: status.as_u16(),
                    code: "error".into(),
                    message: String::from_utf8_lossy(&body).trim().to_string(),
                })
            }
            Err(e) => return Err(ClientError::Body(format!("not JSON ({e}): {}", String::from_utf8_lossy(&body)))),
        };
        if status.is_success() {
            return Ok(value);
        }
        Err(ClientError::Api {
            status: status.as_u16(),
            code: value["code"].as_str().unwrap_or("error").to_string(),
            message: value["message"].as_str().unwrap_or("").to_string(),
        })
    }
}
