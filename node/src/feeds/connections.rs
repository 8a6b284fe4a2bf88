//! Bounds on the connections a feed listener serves: at most [`ConnLimits::max`] at once (past
//! it a new connection is closed at once, so a flood of sockets cannot take every file
//! descriptor the node has), and each closed once silent for [`ConnLimits::idle`] (a device
//! that vanished without a FIN, or a client that connects and says nothing, must not hold its
//! place forever). Used by the TCP line listeners (`serve_connections`) and, as an axum
//! [`Listener`], by the HTTP ingest listeners.

use axum::serve::Listener;
use prometheus_client::metrics::counter::Counter;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Connections one listener serves at once by default: far more devices than a site has.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// How long a connection may stay silent by default: ten times the longest heartbeat a feed
/// is configured with by default.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct ConnLimits {
    pub max: usize,
    pub idle: Duration,
    /// Counts connections closed because `max` were already served.
    pub refused: Counter,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits { max: DEFAULT_MAX_CONNECTIONS, idle: DEFAULT_IDLE, refused: Counter::default() }
    }
}

impl ConnLimits {
    /// The default limits, counting refusals in `yiwang_feed_connections_refused` for this
    /// feed and listener.
    pub fn counted(metrics: &crate::metrics::Metrics, feed: &'static str, listener: &str) -> Self {
        let labels = crate::metrics::FeedLabels { feed, listener: listener.to_string() };
        ConnLimits { refused: metrics.feed_connections_refused.get_or_create(&labels).clone(), ..Self::default() }
    }
}

/// Admits connections within the limits: `None` (the connection is to be closed) when `max`
/// are already served.
#[derive(Clone)]
pub struct Admission {
    limits: ConnLimits,
    permits: Arc<Semaphore>,
}

impl Admission {
    pub fn new(limits: ConnLimits) -> Self {
        let permits = Arc::new(Semaphore::new(limits.max));
        Admission { limits, permits }
    }

    pub fn admit<S>(&self, io: S, feed: &str, peer: std::net::SocketAddr) -> Option<Bounded<S>> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Some(Bounded::new(io, self.limits.idle, permit)),
            Err(_) => {
                self.limits.refused.inc();
                tracing::debug!(feed, %peer, max = self.limits.max, "connection closed: the listener serves its maximum");
                None
            }
        }
    }
}

/// A connection within the limits: its place is given back when it is dropped, and reads
/// and writes fail with `TimedOut` once nothing has been read for the idle time.
pub struct Bounded<S> {
    io: S,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    _place: OwnedSemaphorePermit,
}

impl<S> Bounded<S> {
    fn new(io: S, idle: Duration, place: OwnedSemaphorePermit) -> Self {
        Bounded { io, idle, deadline: Box::pin(tokio::time::sleep(idle)), _place: place }
    }

    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn idle_error(idle: Duration) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("nothing received for {idle:?}"))
}

impl<S: AsyncRead + Unpin> AsyncRead for Bounded<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let next = Instant::now() + self.idle;
                    self.deadline.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // Waiting for the peer: the idle timer wakes this task if it stays silent.
            Poll::Pending if self.timed_out(cx) => Poll::Ready(Err(idle_error(self.idle))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Bounded<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The peer's address, as axum's `ConnectInfo` for a [`BoundedListener`] (serve a router with
/// `into_make_service_with_connect_info::<Peer>()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub std::net::SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, BoundedListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, BoundedListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// A TCP listener for axum that serves connections within the limits.
pub struct BoundedListener {
    listener: TcpListener,
    feed: String,
    admission: Admission,
}

impl BoundedListener {
    pub fn new(listener: TcpListener, feed: &str, limits: ConnLimits) -> Self {
        BoundedListener { listener, feed: feed.to_string(), admission: Admission::new(limits) }
    }
}

impl Listener for BoundedListener {
    type Io = Bounded<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = Listener::accept(&mut self.listener).await;
            if let Some(bounded) = self.admission.admit(stream, &self.feed, peer) {
                return (bounded, peer);
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn listener() -> (TcpListener, std::net::SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        (l, addr)
    }

    /// Past the maximum a new connection is closed at once; a place freed is taken again.
    #[tokio::test]
    async fn past_the_maximum_a_connection_is_closed_at_once() {
        let (l, addr) = listener().await;
        let limits = ConnLimits { max: 2, ..ConnLimits::default() };
        let refused = limits.refused.clone();
        let server = tokio::spawn(super::super::serve_connections(l, "test", limits, |mut stream, _| async move {
            // Echo one line's worth of bytes per read, until the peer closes.
            let mut buf = [0u8; 64];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }));
        let mut served = Vec::new();
        for _ in 0..2 {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(b"hi").await.unwrap();
            let mut got = [0u8; 2];
            c.read_exact(&mut got).await.unwrap();
            served.push(c);
        }
        let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 8];
        let n = third.read(&mut buf).await.unwrap_or(0);
        assert_eq!(n, 0, "the third connection is closed without being served");
        assert_eq!(refused.get(), 1);
        drop(served.pop());
        // The freed place is taken by the next connection (once the server has seen the close).
        let mut attempts = 0;
        let mut next = loop {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            let _ = c.write_all(b"ok").await;
            let mut got = [0u8; 2];
            if c.read_exact(&mut got).await.is_ok() {
                break c;
            }
            attempts += 1;
            assert!(attempts < 1_000, "the freed place was never taken again");
            tokio::task::yield_now().await;
        };
        next.shutdown().await.unwrap();
        server.abort();
    }

    /// A connection that says nothing for the idle time is closed; one that keeps talking is not.
    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_closed_after_the_idle_time() {
        let (l, addr) = listener().await;
        let limits = ConnLimits { max: 4, idle: Duration::from_secs(60), ..ConnLimits::default() };
        let server = tokio::spawn(super::super::serve_connections(l, "test", limits, |mut stream, _| async move {
            let mut buf = [0u8; 64];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        }));
        let started = Instant::now();
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut talking = tokio::net::TcpStream::connect(addr).await.unwrap();
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(40)).await;
            talking.write_all(b"line\n").await.unwrap();
        }
        let mut buf = [0u8; 8];
        assert_eq!(silent.read(&mut buf).await.unwrap_or(0), 0, "closed");
        assert!(started.elapsed() >= Duration::from_secs(60));
        talking.write_all(b"still here\n").await.unwrap();
        server.abort();
    }
}
