//! JSON lines over TCP for the checkpoint and camera feeds. Each connection has a reader that
//! decodes lines and a committer that batches whatever has arrived into one durable commit;
//! with `tcp_acks` on, each batch is answered with one JSON line once it is on disk.

use super::connections::Bounded;
use super::lines::{Line, LineReader};
use super::sinks::JsonFeed;
use serde::Serialize;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Most records in one commit from one connection.
const MAX_BATCH: usize = 4_096;
/// Decoded records that may wait for the committer; the reader stops reading past this, which
/// pushes back on the sender through TCP.
const QUEUE: usize = 8_192;

#[derive(Debug, Serialize)]
struct Rejected {
    line: u64,
    reason: &'static str,
    error: String,
}

#[derive(Debug, Serialize)]
struct Ack {
    accepted: usize,
    alerts: usize,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    /// Plate reads that hit nothing have their own sequence (absent for other feeds).
    #[serde(skip_serializing_if = "Option::is_none")]
    plate_read_first_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plate_read_last_seq: Option<u64>,
    rejected: Vec<Rejected>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub async fn serve<F: JsonFeed>(listener: TcpListener, feed: F, acks: bool) {
    let name = feed.name().to_string();
    let limits = super::connections::ConnLimits::counted(feed.ingest().metrics(), F::FEED, &name);
    super::serve_connections(listener, &name, limits, |stream, _| connection(stream, feed.clone(), acks)).await
}

async fn connection<F: JsonFeed>(stream: Bounded<TcpStream>, feed: F, acks: bool) {
    let (read, mut write) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<(u64, Result<F::Item, (&'static str, String)>)>(QUEUE);
    let reader_feed = feed.clone();
    // The reader belongs to this connection: dropping the connection drops the set and with it
    // the reader.
    let mut reader = tokio::task::JoinSet::new();
    reader.spawn(async move {
        let mut lines = LineReader::new(BufReader::with_capacity(64 * 1024, read), F::MAX_LINE_BYTES);
        let mut number = 0u64;
        loop {
            let item = match lines.next_line().await {
                Ok(Some(Line::Text(t))) if t.trim().is_empty() => {
                    number += 1;
                    continue;
                }
                Ok(Some(Line::Text(t))) => reader_feed.decode(&t),
                Ok(Some(Line::TooLong(n))) => {
                    Err(("too_long", format!("line of {n} bytes is over the {}-byte limit", F::MAX_LINE_BYTES)))
                }
                Ok(Some(Line::NotUtf8)) => Err(("not_utf8", "line is not UTF-8".to_string())),
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(feed = reader_feed.name(), error = %e, "read failed");
                    break;
                }
            };
            number += 1;
            if tx.send((number, item)).await.is_err() {
                break;
            }
        }
    });

    while let Some(received) = super::recv_batch(&mut rx, MAX_BATCH).await {
        let mut items = Vec::with_capacity(received.len());
        let mut rejected = Vec::new();
        for (line, item) in received {
            match item {
                Ok(i) => items.push(i),
                Err((reason, error)) => {
                    feed.count_error(reason);
                    rejected.push(Rejected { line, reason, error });
                }
            }
        }
        let mut ack = Ack {
            accepted: 0,
            alerts: 0,
            first_seq: None,
            last_seq: None,
            plate_read_first_seq: None,
            plate_read_last_seq: None,
            rejected,
            error: None,
        };
        if !items.is_empty() {
            match feed.commit(items).await {
                Ok(r) => {
                    ack.accepted = r.accepted;
                    ack.alerts = r.alerts;
                    ack.first_seq = r.first_seq;
                    ack.last_seq = r.last_seq;
                    ack.plate_read_first_seq = r.plate_read_first_seq;
                    ack.plate_read_last_seq = r.plate_read_last_seq;
                }
                Err(e) => {
                    tracing::error!(feed = feed.name(), error = %e, "batch not stored");
                    ack.error = Some(e.to_string());
                }
            }
        }
        if acks {
            let mut line = serde_json::to_vec(&ack).unwrap_or_default();
            line.push(b'\n');
            if write.write_all(&line).await.is_err() {
                break;
            }
        }
        if ack.error.is_some() {
            // Nothing after a refused batch may be acknowledged out of order: close, and the
            // device resends from its last acknowledgement.
            break;
        }
    }
    reader.abort_all();
}
