//! The node's Prometheus metrics. A node instance registers its families in a registry handed
//! in by whoever builds it (the binary serves it at `/metrics`; the simulator keeps one per
//! instance), so many instances can live in one process.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FeedLabels {
    /// `ais`, `checkpoint` or `camera`.
    pub feed: &'static str,
    /// The listener's name from the config.
    pub listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub feed: &'static str,
    pub listener: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ImageLabels {
    pub listener: String,
    /// The image type code the device declared (GA/T 1400: `01` vehicle, `02` plate, ...).
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OnvifLabels {
    /// The camera feed's name from the config.
    pub listener: String,
    pub camera: String,
    /// What failed: `connect`, `timeout`, `auth`, `fault`, `http_status`, `parse`, ...
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HitLabels {
    /// `plate` or `mmsi` (watchlist), `registration` or `mmsi` (sanctions lists).
    pub subject: &'static str,
    /// The watchlist's name, or `sanctions:red` / `sanctions:black`.
    pub list: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub alert: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    pub peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OriginLabels {
    pub origin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OriginKindLabels {
    pub origin: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    pub peer: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

/// Every metric the node exports. Cheap to clone: each field is a handle to shared counters.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub ingested: Family<FeedLabels, Counter>,
    pub decode_errors: Family<ErrorLabels, Counter>,
    pub skipped_lines: Family<FeedLabels, Counter>,
    pub unsupported_messages: Family<FeedLabels, Counter>,
    pub feed_connections_refused: Family<FeedLabels, Counter>,
    pub hits: Family<HitLabels, Counter>,
    pub alerts: Family<AlertLabels, Counter>,
    pub entries_written: Family<KindLabels, Counter>,
    pub flush_seconds: Histogram,
    pub flush_batch_ops: Histogram,
    pub store_size_bytes: Gauge<u64, AtomicU64>,
    pub store_budget_bytes: Gauge<u64, AtomicU64>,
    /// 0 within budget, 1 past the warning threshold, 2 refusing raw detections, 3 refusing all.
    pub store_budget_state: Gauge,
    pub store_refused: Family<KindLabels, Counter>,
    /// 1 once the store has failed and refuses every write (see `health`).
    pub store_failed: Gauge,
    pub retention_deleted: Counter,
    pub cameras_offline: Gauge,
    pub checkpoints_offline: Gauge,
    pub viid_images: Family<ImageLabels, Counter>,
    pub viid_image_bytes: Family<ImageLabels, Counter>,
    pub viid_auth_failures: Family<ErrorLabels, Counter>,
    pub onvif_failures: Family<OnvifLabels, Counter>,
    pub vessels_tracked: Gauge,
    pub watchlist_entries: Gauge,
    /// Version of the sanctions lists this node enforces.
    pub sanctions_version: Gauge,
    pub sanctions_entries: Gauge,
    pub sanctions_malformed: Counter,
    /// Per peer: 0 up, 1 catching up, 2 degraded, 3 partitioned.
    pub link_state: Family<PeerLabels, Gauge>,
    pub mesh_entries_sent: Family<PeerLabels, Counter>,
    pub mesh_bytes_sent: Family<PeerLabels, Counter>,
    pub mesh_entries_received: Family<PeerLabels, Counter>,
    pub mesh_refused: Family<RefusalLabels, Counter>,
    /// Incoming connections refused before the peer proved who it is. No peer label: the
    /// addresses are anyone's, and one series each would let a flood grow the registry.
    pub mesh_handshake_failures: Family<ReasonLabels, Counter>,
    pub mesh_clock_ahead: Family<PeerLabels, Counter>,
    /// Per child: its clock minus ours, from its reports (half the round trip allowed for).
    pub peer_clock_offset_seconds: Family<PeerLabels, Gauge<f64, AtomicU64>>,
    /// Wall-clock readings held back because the clock jumped ahead (see `clock::JumpGuard`).
    pub clock_held_back: Counter,
    /// How far the wall clock is ahead of the time in use; 0 while it is in line.
    pub clock_wall_ahead_seconds: Gauge<f64, AtomicU64>,
    /// Stamps found on disk at start further ahead of the clock than a jump may be.
    pub clock_future_stamps: Counter,
    /// Audit records received whose hash chain does not hold, per origin (see `audit_chain`).
    pub audit_chain_breaks: Family<OriginLabels, Counter>,
    /// Batches after which a link waited because an origin was past its receive quota.
    pub mesh_quota_holds: Family<OriginKindLabels, Counter>,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            ingested: Family::default(),
            decode_errors: Family::default(),
            skipped_lines: Family::default(),
            unsupported_messages: Family::default(),
            feed_connections_refused: Family::default(),
            hits: Family::default(),
            alerts: Family::default(),
            entries_written: Family::default(),
            flush_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            flush_batch_ops: Histogram::new(exponential_buckets(1.0, 2.0, 16)),
            store_size_bytes: Gauge::default(),
            store_budget_bytes: Gauge::default(),
            store_budget_state: Gauge::default(),
            store_refused: Family::default(),
            store_failed: Gauge::default(),
            retention_deleted: Counter::default(),
            cameras_offline: Gauge::default(),
            checkpoints_offline: Gauge::default(),
            viid_images: Family::default(),
            viid_image_bytes: Family::default(),
            viid_auth_failures: Family::default(),
            onvif_failures: Family::default(),
            vessels_tracked: Gauge::default(),
            watchlist_entries: Gauge::default(),
            sanctions_version: Gauge::default(),
            sanctions_entries: Gauge::default(),
            sanctions_malformed: Counter::default(),
            link_state: Family::default(),
            mesh_entries_sent: Family::default(),
            mesh_bytes_sent: Family::default(),
            mesh_entries_received: Family::default(),
            mesh_refused: Family::default(),
            mesh_handshake_failures: Family::default(),
            mesh_clock_ahead: Family::default(),
            peer_clock_offset_seconds: Family::default(),
            clock_held_back: Counter::default(),
            clock_wall_ahead_seconds: Gauge::default(),
            clock_future_stamps: Counter::default(),
            audit_chain_breaks: Family::default(),
            mesh_quota_holds: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("yiwang");
        r.register("ingested", "Records accepted from feeds", m.ingested.clone());
        r.register("decode_errors", "Feed input refused, by reason", m.decode_errors.clone());
        r.register(
            "skipped_lines",
            "Feed lines that are not for this decoder (e.g. GPS sentences on an AIS feed)",
            m.skipped_lines.clone(),
        );
        r.register(
            "unsupported_messages",
            "Well-formed messages of a type the node does not decode",
            m.unsupported_messages.clone(),
        );
        r.register(
            "feed_connections_refused",
            "Feed connections closed at once because the listener served its maximum",
            m.feed_connections_refused.clone(),
        );
        r.register("watchlist_hits", "Watchlist hits", m.hits.clone());
        r.register("alerts", "Alerts raised by the ingest rules", m.alerts.clone());
        r.register("entries_written", "Entries made durable, by kind", m.entries_written.clone());
        r.register("store_flush_seconds", "Time to make one group commit durable", m.flush_seconds.clone());
        r.register("store_flush_batch_ops", "Writes made durable by one flush", m.flush_batch_ops.clone());
        r.register("store_size_bytes", "Size of the store on disk", m.store_size_bytes.clone());
        r.register("store_budget_bytes", "Configured disk budget of the store", m.store_budget_bytes.clone());
        r.register(
            "store_budget_state",
            "0 ok, 1 warning, 2 refusing raw detections, 3 refusing all writes",
            m.store_budget_state.clone(),
        );
        r.register("store_refused", "Writes refused because the disk budget is spent", m.store_refused.clone());
        r.register(
            "store_failed",
            "1 once a flush or write failed and the store refuses every write (the node stops to restart)",
            m.store_failed.clone(),
        );
        r.register("retention_deleted", "Raw detections removed by retention", m.retention_deleted.clone());
        r.register(
            "cameras_offline",
            "Cameras currently silent past their heartbeat interval",
            m.cameras_offline.clone(),
        );
        r.register(
            "checkpoints_offline",
            "GA/T 1400 devices currently silent past their keepalive timeout",
            m.checkpoints_offline.clone(),
        );
        r.register("viid_images", "Images GA/T 1400 devices declared (never stored), by type", m.viid_images.clone());
        r.register(
            "viid_image_bytes",
            "Bytes of images GA/T 1400 devices declared (never stored), by type",
            m.viid_image_bytes.clone(),
        );
        r.register(
            "viid_auth_failures",
            "GA/T 1400 requests refused for their authentication, by reason",
            m.viid_auth_failures.clone(),
        );
        r.register(
            "onvif_failures",
            "ONVIF requests to cameras that failed, by feed, camera and reason",
            m.onvif_failures.clone(),
        );
        r.register("vessels_tracked", "Vessels the fence tracker holds state for", m.vessels_tracked.clone());
        r.register("watchlist_entries", "Entries in the loaded watchlist", m.watchlist_entries.clone());
        r.register(
            "sanctions_version",
            "Version (raft log index) of the sanctions lists this node enforces",
            m.sanctions_version.clone(),
        );
        r.register("sanctions_entries", "Entries of the sanctions lists, in force or not", m.sanctions_entries.clone());
        r.register(
            "sanctions_malformed",
            "Sanctions entries skipped as unreadable or inconsistent",
            m.sanctions_malformed.clone(),
        );
        r.register(
            "link_state",
            "Mesh link state: 0 up, 1 catching up, 2 degraded, 3 partitioned",
            m.link_state.clone(),
        );
        r.register("mesh_entries_sent", "Entries sent to a peer", m.mesh_entries_sent.clone());
        r.register("mesh_bytes_sent", "Bytes of sync frames sent to a peer", m.mesh_bytes_sent.clone());
        r.register("mesh_entries_received", "Entries received from a peer", m.mesh_entries_received.clone());
        r.register(
            "mesh_refused",
            "Mesh members' connections, streams and entries refused, by peer and reason",
            m.mesh_refused.clone(),
        );
        r.register(
            "mesh_handshake_failures",
            "Incoming connections refused before the peer proved who it is, by reason",
            m.mesh_handshake_failures.clone(),
        );
        r.register(
            "mesh_clock_ahead",
            "Entries received stamped more than a minute ahead of this node's clock",
            m.mesh_clock_ahead.clone(),
        );
        r.register(
            "peer_clock_offset_seconds",
            "A child's clock minus this node's, from its latest report",
            m.peer_clock_offset_seconds.clone(),
        );
        r.register(
            "mesh_quota_holds",
            "Received batches after which the link waited, an origin being past its receive quota for the kind",
            m.mesh_quota_holds.clone(),
        );
        r.register(
            "audit_chain_breaks",
            "Audit records received from another origin whose link does not match the record before it",
            m.audit_chain_breaks.clone(),
        );
        r.register(
            "clock_held_back",
            "Wall-clock readings held back because the clock jumped more than a minute ahead of the time elapsed",
            m.clock_held_back.clone(),
        );
        r.register(
            "clock_wall_ahead_seconds",
            "How far the wall clock is ahead of the time this node uses (0 while in line)",
            m.clock_wall_ahead_seconds.clone(),
        );
        r.register(
            "clock_future_stamps",
            "Own entries found at start or in a retention sweep stamped more than a minute ahead of the clock",
            m.clock_future_stamps.clone(),
        );
        m
    }

    /// A set registered in a throwaway registry, for tests and benchmarks.
    pub fn unregistered() -> Metrics {
        Metrics::register(&mut Registry::default())
    }

    pub fn decode_error(&self, feed: &'static str, listener: &str, reason: &'static str) {
        self.decode_errors.get_or_create(&ErrorLabels { feed, listener: listener.to_string(), reason }).inc();
    }

    pub fn onvif_failure(&self, listener: &str, camera: &str, reason: &'static str) {
        self.onvif_failures
            .get_or_create(&OnvifLabels { listener: listener.to_string(), camera: camera.to_string(), reason })
            .inc();
    }

    pub fn link_state(&self, peer: &proto::NodeId, code: i64) {
        self.link_state.get_or_create(&PeerLabels { peer: peer.to_string() }).set(code);
    }

    pub fn mesh_refused(&self, peer: &str, reason: &'static str) {
        self.mesh_refused.get_or_create(&RefusalLabels { peer: peer.to_string(), reason }).inc();
    }

    pub fn handshake_failure(&self, reason: &'static str) {
        self.mesh_handshake_failures.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub fn quota_hold(&self, origin: &proto::NodeId, kind: proto::Kind) {
        self.mesh_quota_holds
            .get_or_create(&OriginKindLabels { origin: origin.to_string(), kind: kind.as_str() })
            .inc();
    }

    pub fn audit_chain_break(&self, origin: &proto::NodeId) {
        self.audit_chain_breaks.get_or_create(&OriginLabels { origin: origin.to_string() }).inc();
    }

    pub fn clock_ahead(&self, peer: &proto::NodeId, entries: u64) {
        self.mesh_clock_ahead.get_or_create(&PeerLabels { peer: peer.to_string() }).inc_by(entries);
    }

    pub fn mesh_sent(&self, peer: &proto::NodeId, entries: u64, bytes: u64) {
        let l = PeerLabels { peer: peer.to_string() };
        self.mesh_entries_sent.get_or_create(&l).inc_by(entries);
        self.mesh_bytes_sent.get_or_create(&l).inc_by(bytes);
    }

    pub fn mesh_received(&self, peer: &proto::NodeId, entries: u64) {
        self.mesh_entries_received.get_or_create(&PeerLabels { peer: peer.to_string() }).inc_by(entries);
    }

    pub fn ingested(&self, feed: &'static str, listener: &str, n: u64) {
        self.ingested.get_or_create(&FeedLabels { feed, listener: listener.to_string() }).inc_by(n);
    }
}

/// The text formats `/metrics` speaks. Prometheus asks for OpenMetrics in its `Accept` header
/// and gets it; anything else (curl, `promtool check metrics`, older scrapers) gets the classic
/// text format 0.0.4, in which a counter's `HELP` and `TYPE` name its `_total` sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposition {
    OpenMetrics,
    Text,
}

impl Exposition {
    pub fn for_accept(accept: &str) -> Exposition {
        if accept.contains("application/openmetrics-text") {
            Exposition::OpenMetrics
        } else {
            Exposition::Text
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Exposition::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    pub fn encode(self, registry: &Registry) -> Result<String, std::fmt::Error> {
        let mut open_metrics = String::new();
        prometheus_client::encoding::text::encode(&mut open_metrics, registry)?;
        Ok(match self {
            Exposition::OpenMetrics => open_metrics,
            Exposition::Text => open_metrics_to_text(&open_metrics),
        })
    }
}

/// Rewrite OpenMetrics text as the classic format: counters' metadata named for their `_total`
/// samples, no `# UNIT` lines and no `# EOF`.
fn open_metrics_to_text(open_metrics: &str) -> String {
    let counters: std::collections::BTreeSet<&str> =
        open_metrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "].into_iter().find_map(|p| Some((p, line.strip_prefix(p)?)));
        match meta {
            Some((prefix, rest)) => {
                let name = rest.split(' ').next().unwrap_or("");
                if counters.contains(name) {
                    out.push_str(prefix);
                    out.push_str(name);
                    out.push_str("_total");
                    out.push_str(&rest[name.len()..]);
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classic_format_names_counters_by_their_samples() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        m.retention_deleted.inc();
        m.store_size_bytes.set(7);
        let text = Exposition::Text.encode(&registry).unwrap();
        assert!(text.contains("# HELP yiwang_retention_deleted_total Raw detections removed by retention"), "{text}");
        assert!(text.contains("# TYPE yiwang_retention_deleted_total counter\nyiwang_retention_deleted_total 1\n"));
        assert!(text.contains("# TYPE yiwang_store_size_bytes gauge\nyiwang_store_size_bytes 7\n"));
        assert!(!text.contains("# EOF"));
        let open = Exposition::OpenMetrics.encode(&registry).unwrap();
        assert!(open.contains("# TYPE yiwang_retention_deleted counter\n") && open.ends_with("# EOF\n"));
    }

    #[test]
    fn prometheus_gets_open_metrics_and_everyone_else_text() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Exposition::for_accept(prometheus), Exposition::OpenMetrics);
        assert_eq!(Exposition::for_accept("*/*"), Exposition::Text);
        assert_eq!(Exposition::for_accept(""), Exposition::Text);
    }
}
