//! Feed decoders and listeners: vessel AIS, road checkpoints, cameras.

pub mod ais;
pub mod ais_io;
pub mod camera;
pub mod checkpoint;
pub mod http_ingest;
pub mod lines;
pub mod sinks;
pub mod tcp_json;

/// Wait for one item, then take whatever else is already queued, up to `max`: the batching
/// every feed committer does, so a quiet feed commits single records at once and a busy one
/// shares each flush among many. `None` once the channel is closed and drained.
pub async fn recv_batch<T>(rx: &mut tokio::sync::mpsc::Receiver<T>, max: usize) -> Option<Vec<T>> {
    let first = rx.recv().await?;
    let mut batch = vec![first];
    while batch.len() < max {
        match rx.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
    Some(batch)
}
