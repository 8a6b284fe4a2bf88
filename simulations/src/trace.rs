//! The trace of a run: one hash over every datagram the fabric delivered and every write a
//! disk made durable, in the order they happened. Two runs with the same hash did the same
//! thing at the same virtual instants; a run is replayable exactly when its hash repeats.
//!
//! A datagram counts by when it was delivered, from where, to where and how long it was, not
//! by its bytes: TLS encrypts them under keys rustls draws from the operating system (see
//! `node::mesh::quic_config`), so the bytes differ on every run even when nothing else does.
//! A durable write counts whole (node, key, value): what a node stores is all its own.

use crate::fabric::Fabric;
use node::store::SimDisk;
use proto::NodeId;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// A summary of a finished trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSummary {
    /// SHA-256 of the whole trace, in hex.
    pub hash: String,
    pub datagrams: u64,
    pub durable_writes: u64,
}

struct State {
    hasher: Sha256,
    start: Instant,
    datagrams: u64,
    durable_writes: u64,
}

/// The hash being built. Cheap to clone; clones feed the same hash.
#[derive(Clone)]
pub struct Trace {
    state: Arc<Mutex<State>>,
}

fn put_addr(h: &mut Sha256, a: SocketAddr) {
    match a.ip() {
        std::net::IpAddr::V4(v4) => h.update(v4.octets()),
        std::net::IpAddr::V6(v6) => h.update(v6.octets()),
    }
    h.update(a.port().to_be_bytes());
}

fn put_bytes(h: &mut Sha256, b: &[u8]) {
    h.update((b.len() as u64).to_be_bytes());
    h.update(b);
}

impl Trace {
    /// A trace whose times count from `start` (tokio time).
    pub fn new(start: Instant) -> Trace {
        Trace { state: Arc::new(Mutex::new(State { hasher: Sha256::new(), start, datagrams: 0, durable_writes: 0 })) }
    }

    fn with(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Record every datagram `fabric` delivers from now on.
    pub fn follow_fabric(&self, fabric: &Fabric) {
        let trace = self.clone();
        fabric.set_observer(Box::new(move |at, from, to, len| {
            trace.with(|st| {
                let h = &mut st.hasher;
                h.update(b"D");
                h.update((at.saturating_duration_since(st.start).as_nanos() as u64).to_be_bytes());
                put_addr(h, from);
                put_addr(h, to);
                h.update((len as u64).to_be_bytes());
                st.datagrams += 1;
            })
        }));
    }

    /// Record every write `node`'s disk makes durable from now on.
    pub fn follow_disk(&self, node: &NodeId, disk: &SimDisk) {
        let trace = self.clone();
        let node = node.clone();
        disk.set_observer(Box::new(move |key, value| {
            let at = Instant::now();
            trace.with(|st| {
                let h = &mut st.hasher;
                h.update(b"W");
                h.update((at.saturating_duration_since(st.start).as_nanos() as u64).to_be_bytes());
                put_bytes(h, node.as_str().as_bytes());
                put_bytes(h, key);
                match value {
                    Some(v) => {
                        h.update([1]);
                        put_bytes(h, v);
                    }
                    None => h.update([0]),
                }
                st.durable_writes += 1;
            })
        }));
    }

    /// The hash so far, and what went into it.
    pub fn summary(&self) -> TraceSummary {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let hash = st.hasher.clone().finalize().iter().map(|b| format!("{b:02x}")).collect();
        TraceSummary { hash, datagrams: st.datagrams, durable_writes: st.durable_writes }
    }
}
