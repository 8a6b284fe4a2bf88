//! Feed decoders and listeners: vessel AIS, road checkpoints, cameras.

pub mod ais;
pub mod ais_io;
pub mod camera;
pub mod checkpoint;
pub mod connections;
pub mod http_ingest;
pub mod lines;
pub mod onvif;
pub mod sinks;
pub mod tcp_json;
pub mod viid;

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

/// Accept connections on `listener` and serve each with `serve`, within `limits` (see
/// [`connections`]), until this future is dropped: every connection's task belongs to it, so
/// stopping the listener stops its connections too (nothing outlives the node). Accept errors
/// (out of file descriptors, say) wait a moment instead of spinning.
pub async fn serve_connections<F, Fut>(
    listener: tokio::net::TcpListener,
    feed: &str,
    limits: connections::ConnLimits,
    mut serve: F,
) where
    F: FnMut(connections::Bounded<tokio::net::TcpStream>, std::net::SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let admission = connections::Admission::new(limits);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            biased;
            // Reap finished connections so the set holds only live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tracing::debug!(feed, %peer, "connection");
                    // Past the maximum the stream is dropped here, which closes it.
                    if let Some(bounded) = admission.admit(stream, feed, peer) {
                        connections.spawn(serve(bounded, peer));
                    }
                }
                Err(e) => {
                    tracing::warn!(feed, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
        }
    }
}
