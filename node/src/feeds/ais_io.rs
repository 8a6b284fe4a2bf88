//! AIS listeners: NMEA by UDP datagram, by receivers connecting to us over TCP, or by us
//! connecting to a receiver's TCP server. Each source gets its own decoder (multi-part messages
//! only assemble within one source); decoded messages from every source of a feed go to one
//! committer that batches them into durable commits.

use super::ais::{AisDecoder, AisMessage, DecoderConfig};
use super::lines::{Line, LineReader};
use crate::ingest::Ingest;
use crate::recency::RecentMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

const QUEUE: usize = 16_384;
const MAX_BATCH: usize = 2_048;
const MAX_DATAGRAM: usize = 65_536;
/// Decoders per UDP listener (one per sending address); bounded so spoofed senders cannot
/// grow it without limit. Past it the least recently heard sender's decoder goes (losing
/// only its half-assembled fragments), so a flood of new addresses never resets the receivers
/// that are really talking.
pub const MAX_UDP_SOURCES: usize = 1_024;

/// One decoder per UDP sender, at most [`MAX_UDP_SOURCES`], the least recently heard dropped
/// first.
struct UdpDecoders {
    config: DecoderConfig,
    decoders: RecentMap<SocketAddr, AisDecoder>,
}

impl UdpDecoders {
    fn new(config: DecoderConfig) -> Self {
        UdpDecoders { config, decoders: RecentMap::new(MAX_UDP_SOURCES) }
    }

    fn for_sender(&mut self, peer: SocketAddr) -> &mut AisDecoder {
        let config = &self.config;
        self.decoders.get_or_insert_with(peer, || AisDecoder::new(config.clone())).0
    }

    fn expire(&mut self, now_ms: u64) {
        for d in self.decoders.values_mut() {
            d.expire(now_ms);
        }
    }
}

/// A feed's shared parts: where messages go and how sources decode.
#[derive(Clone)]
pub struct AisFeed {
    pub ingest: Ingest,
    pub name: Arc<str>,
    pub decoder: DecoderConfig,
    tx: mpsc::Sender<AisMessage>,
}

impl AisFeed {
    /// Start the feed's committer among `tasks` (the node's) and return the handle listeners
    /// send to.
    pub fn start(ingest: Ingest, name: &str, decoder: DecoderConfig, tasks: &mut JoinSet<()>) -> AisFeed {
        let (tx, rx) = mpsc::channel(QUEUE);
        let feed = AisFeed { ingest, name: name.into(), decoder, tx };
        tasks.spawn(feed.clone().commit_loop(rx));
        feed
    }

    async fn commit_loop(self, mut rx: mpsc::Receiver<AisMessage>) {
        while let Some(batch) = super::recv_batch(&mut rx, MAX_BATCH).await {
            if let Err(e) = self.ingest.ais_messages(&self.name, batch).await {
                // AIS has no acknowledgement to withhold: the loss is logged and counted.
                tracing::error!(feed = %self.name, error = %e, "AIS batch not stored");
                self.ingest.metrics().decode_error("ais", &self.name, "store_refused");
            }
        }
    }

    /// Push one line from `source` through `decoder`, counting what happened.
    async fn line(&self, decoder: &mut AisDecoder, source: &str, line: &str) {
        let now = self.ingest.clock().now_ms();
        let before = decoder.counters().non_ais;
        match decoder.push_line(source, line, now) {
            Ok(Some(msg)) => {
                if matches!(msg.report, super::ais::Report::Other(_)) {
                    self.ingest
                        .metrics()
                        .unsupported_messages
                        .get_or_create(&crate::metrics::FeedLabels { feed: "ais", listener: self.name.to_string() })
                        .inc();
                }
                let _ = self.tx.send(msg).await;
            }
            Ok(None) => {
                if decoder.counters().non_ais > before {
                    self.ingest
                        .metrics()
                        .skipped_lines
                        .get_or_create(&crate::metrics::FeedLabels { feed: "ais", listener: self.name.to_string() })
                        .inc();
                }
            }
            Err(e) => self.ingest.metrics().decode_error("ais", &self.name, e.reason()),
        }
    }

    pub async fn serve_udp(self, socket: UdpSocket) {
        let mut decoders = UdpDecoders::new(self.decoder.clone());
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut expiry = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                got = socket.recv_from(&mut buf) => {
                    let (n, peer) = match got {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!(feed = %self.name, error = %e, "UDP receive failed");
                            continue;
                        }
                    };
                    let decoder = decoders.for_sender(peer);
                    let Ok(text) = std::str::from_utf8(&buf[..n]) else {
                        self.ingest.metrics().decode_error("ais", &self.name, "not_utf8");
                        continue;
                    };
                    let source = peer.to_string();
                    for line in text.lines() {
                        self.line(decoder, &source, line).await;
                    }
                }
                _ = expiry.tick() => {
                    let now = self.ingest.clock().now_ms();
                    decoders.expire(now);
                }
            }
        }
    }

    pub async fn serve_tcp(self, listener: TcpListener) {
        let name = self.name.clone();
        let limits = super::connections::ConnLimits::counted(self.ingest.metrics(), "ais", &name);
        super::serve_connections(listener, &name, limits, |stream, peer| {
            self.clone().read_stream(stream, peer.to_string())
        })
        .await
    }

    /// Keep a connection to a receiver's TCP server, reconnecting with jittered exponential
    /// backoff (1 s doubling to 60 s, the jitter drawn from `rng`) whenever it drops.
    pub async fn connect_tcp(self, address: String, mut rng: crate::rng::Rng) {
        let mut backoff = Duration::from_secs(1);
        loop {
            match TcpStream::connect(&address).await {
                Ok(stream) => {
                    tracing::info!(feed = %self.name, %address, "connected to AIS receiver");
                    backoff = Duration::from_secs(1);
                    self.clone().read_stream(stream, address.clone()).await;
                    tracing::warn!(feed = %self.name, %address, "AIS receiver connection closed");
                }
                Err(e) => {
                    tracing::warn!(feed = %self.name, %address, error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot reach AIS receiver")
                }
            }
            let jitter = rng.below(backoff.as_millis() as u64 / 2 + 1);
            tokio::time::sleep(backoff / 2 + Duration::from_millis(jitter)).await;
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }

    async fn read_stream(self, stream: impl tokio::io::AsyncRead + Unpin, source: String) {
        let mut decoder = AisDecoder::new(self.decoder.clone());
        let mut lines = LineReader::new(BufReader::new(stream), self.decoder.max_line_len);
        loop {
            match lines.next_line().await {
                Ok(Some(Line::Text(t))) => self.line(&mut decoder, &source, &t).await,
                Ok(Some(Line::TooLong(_))) => self.ingest.metrics().decode_error("ais", &self.name, "too_long"),
                Ok(Some(Line::NotUtf8)) => self.ingest.metrics().decode_error("ais", &self.name, "not_utf8"),
                Ok(None) | Err(_) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-fragment message from gpsd's test captures (receiver suffix dropped).
    const FIRST: &str = "!AIVDM,2,1,3,B,55NBjP01mtGIL@CW;SM<D60P5Ld000000000000P0`<3557l0<50@kk@,0*66";
    const SECOND: &str = "!AIVDM,2,2,3,B,K5h@00000000000,2*72";

    /// A receiver that is talking keeps its half-assembled message through a flood of new
    /// sender addresses: only the senders heard least recently are dropped, never everyone.
    #[test]
    fn a_flood_of_new_senders_does_not_reset_a_receiver_that_is_talking() {
        let mut decoders = UdpDecoders::new(DecoderConfig::default());
        let spoofed = |i: u32| SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 9));
        for i in 0..MAX_UDP_SOURCES as u32 - 1 {
            decoders.for_sender(spoofed(i));
        }
        let receiver: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        assert!(decoders.for_sender(receiver).push_line("rx", FIRST, 0).unwrap().is_none());
        for i in 0..5_000 {
            decoders.for_sender(spoofed(100_000 + i));
            if i % 500 == 0 {
                // The receiver keeps talking through the flood (here, a datagram of noise).
                decoders.for_sender(receiver);
            }
        }
        let msg = decoders.for_sender(receiver).push_line("rx", SECOND, 1).unwrap();
        assert!(msg.is_some(), "the receiver's first fragment was forgotten");
        assert_eq!(decoders.decoders.len(), MAX_UDP_SOURCES);
    }
}
