//! The mesh's sync protocol against raw quinn, in process on loopback, over connections built
//! from the mesh's own TLS configs and certificates.
//!
//! - raw: the town writes `RAW_BYTES` on one unidirectional stream in 64 KiB chunks; the county
//!   reads it all.
//! - ours: as a link's two halves do it (`link.rs`): the county (receiver) opens a
//!   bidirectional stream and sends its `Want`; the town answers with an [`Outbound`] reading
//!   from in-memory [`Holdings`] (the stored bytes of each entry copied into the batch's frame,
//!   as from the store), frames written with `frames::write_frame`, acknowledgements read by
//!   their own task; the county reads each frame with `frames::read_sync`, judges every
//!   entry with a
//!   [`Replica`] and the topology's authorization (no store) and acknowledges the batch.
//!   Measured: frame bytes delivered and acknowledged per second.
//!
//! A fresh connection for every measurement, the handshake not timed; rounds alternate.

use node::mesh::frames;
use node::mesh::pki::{CityCa, Validity};
use node::mesh::sync::{self, Holdings, Origins, Outbound, Replica, Take, Verdict};
use node::mesh::tls::{self, MeshIdentity};
use node::mesh::topology::{Site, Topology};
use proto::authz::{self, Direction};
use proto::wire::SyncMsg;
use proto::{Entry, Hlc, Kind, NodeId, NodeIdentity, Role, VersionVector};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Bytes the raw stream carries per measurement.
const RAW_BYTES: usize = 256 << 20;
const CHUNK: usize = 64 << 10;
/// Entries the sync protocol carries per measurement (about 160 MB of frames).
const ENTRIES: u64 = 1_000_000;
/// The sync protocol's window: the mesh's default unless `YIWANG_BENCH_WINDOW` says otherwise.
fn window() -> usize {
    let default = node::mesh::LinkSettings::default().window;
    std::env::var("YIWANG_BENCH_WINDOW").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A town's holdings in memory: one origin's audit entries, as stored (each an entry's
/// encoding).
struct Mem {
    origin: NodeId,
    entries: Vec<Vec<u8>>,
}

impl Holdings for Mem {
    type Error = String;

    fn heads(&self, kind: Kind) -> Result<Arc<VersionVector>, String> {
        let mut v = VersionVector::new();
        if kind == Kind::Audit {
            v.raise(&self.origin, self.entries.len() as u64);
        }
        Ok(Arc::new(v))
    }

    fn read(&self, kind: Kind, origin: &NodeId, from_seq: u64, max: usize, take: &mut Take<'_>) -> Result<(), String> {
        if kind != Kind::Audit || *origin != self.origin || from_seq == 0 {
            return Ok(());
        }
        for e in self.entries.iter().skip(from_seq as usize - 1).take(max) {
            if !take(e) {
                break;
            }
        }
        Ok(())
    }
}

struct Pair {
    county: MeshIdentity,
    town: MeshIdentity,
    topology: Arc<Topology>,
}

fn pair() -> Pair {
    let now = time::OffsetDateTime::now_utc();
    let ca = CityCa::generate("bench city CA", Validity::days_from(now, 30).unwrap()).unwrap();
    let ident = |id: &str, role| {
        let c = ca.issue(&NodeIdentity { id: NodeId::new(id).unwrap(), role }, Validity::days_from(now, 30).unwrap());
        let c = c.unwrap();
        MeshIdentity::from_pem(ca.cert_pem().as_bytes(), c.cert_pem().as_bytes(), c.key_pem().as_bytes()).unwrap()
    };
    let site = |id: &str, role, port: u16, parents: &[&str]| Site {
        id: NodeId::new(id).unwrap(),
        role,
        mesh: SocketAddr::from(([127, 0, 0, 1], port)),
        http: None,
        raft: None,
        parents: parents.iter().map(|p| NodeId::new(*p).unwrap()).collect(),
        position: None,
    };
    let topology = Topology::from_sites(vec![
        site("city-q", Role::City, 1, &[]),
        site("county-q", Role::County, 2, &["city-q"]),
        site("town-q", Role::Town, 3, &["county-q"]),
    ])
    .unwrap();
    Pair { county: ident("county-q", Role::County), town: ident("town-q", Role::Town), topology: Arc::new(topology) }
}

/// A fresh connection: the county's endpoint serving, the town dialling it, as on a link.
async fn connect(p: &Pair) -> (quinn::Endpoint, quinn::Endpoint, quinn::Connection, quinn::Connection) {
    let server = quinn::Endpoint::server(tls::server_config(&p.county).unwrap(), "127.0.0.1:0".parse().unwrap())
        .expect("county endpoint");
    let client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).expect("town endpoint");
    let addr = server.local_addr().unwrap();
    let accept = tokio::spawn({
        let server = server.clone();
        async move { tls::accept(server.accept().await.expect("incoming")).await.expect("accepted").0 }
    });
    let (town_side, _) =
        tls::connect(&client, tls::client_config(&p.town).unwrap(), addr, p.county.id()).await.expect("connected");
    let county_side = accept.await.unwrap();
    (server, client, town_side, county_side)
}

fn close(server: quinn::Endpoint, client: quinn::Endpoint) {
    server.close(0u32.into(), b"done");
    client.close(0u32.into(), b"done");
}

/// Raw quinn: MiB/s of payload on one uni stream, timed from the first write to the last byte
/// read.
async fn raw(p: &Pair) -> f64 {
    let (server, client, town, county) = connect(p).await;
    let reader = tokio::spawn(async move {
        let mut recv = county.accept_uni().await.expect("uni stream");
        let mut n = 0usize;
        while let Some(chunk) = recv.read_chunk(usize::MAX, true).await.expect("read") {
            n += chunk.bytes.len();
        }
        (n, Instant::now())
    });
    let chunk = vec![0x5au8; CHUNK];
    let started = Instant::now();
    let mut send = town.open_uni().await.unwrap();
    for _ in 0..RAW_BYTES / CHUNK {
        send.write_all(&chunk).await.unwrap();
    }
    send.finish().unwrap();
    let (n, done) = reader.await.unwrap();
    assert_eq!(n, RAW_BYTES);
    close(server, client);
    n as f64 / (1 << 20) as f64 / (done - started).as_secs_f64()
}

/// The sync protocol: MiB/s of frames delivered and acknowledged, and entries/s.
async fn ours(p: &Pair, src: Arc<Mem>) -> (f64, f64) {
    let (server, client, town, county) = connect(p).await;
    let total = src.entries.len() as u64;
    // The county's inbound half: Want, then judge and acknowledge each batch.
    let topology = p.topology.clone();
    let me = p.county.id().clone();
    let peer = p.town.id().clone();
    let receiver = tokio::spawn(async move {
        let (mut send, mut recv) = county.open_bi().await.unwrap();
        let mut replica = Replica::new(me, HashMap::new());
        frames::write_sync(&mut send, &sync::want(Direction::Up, |k| replica.accepted(k))).await.unwrap();
        let below: HashSet<NodeId> = topology.subtree(&peer).into_iter().collect();
        let mut accepted = 0u64;
        while accepted < total {
            let SyncMsg::Batch { id, entries } = frames::read_sync(&mut recv).await.expect("batch") else {
                panic!("something other than a batch");
            };
            let authorize = |origin: &NodeId, kind| {
                authz::check(kind, Direction::Up, topology.site(origin).map(|s| s.role), below.contains(origin))
            };
            for verdict in replica.judge_batch(&entries, authorize) {
                match verdict {
                    Verdict::Accept => accepted += 1,
                    v => panic!("{v:?}"),
                }
            }
            frames::write_sync(&mut send, &SyncMsg::Ack { id, refused: 0 }).await.unwrap();
        }
        // Kept until the sender has read the last acknowledgement: dropping the connection
        // would close it with that still unsent.
        (accepted, county, send, recv)
    });
    // The town's outbound half.
    let (mut send, mut recv) = town.accept_bi().await.unwrap();
    let SyncMsg::Want { heads } = frames::read_sync(&mut recv).await.unwrap() else { panic!("no Want") };
    let started = Instant::now();
    let mut out = Outbound::new(Direction::Up, window(), Origins::All);
    out.on_want(heads);
    let (ack_tx, mut acks) = tokio::sync::mpsc::channel(16);
    let ack_reader = tokio::spawn(async move {
        loop {
            let m = frames::read_sync(&mut recv).await;
            let end = m.is_err();
            if ack_tx.send(m).await.is_err() || end {
                break;
            }
        }
    });
    let mut bytes = 0usize;
    loop {
        while let Some(batch) = out.next_batch(&*src).unwrap() {
            bytes += frames::write_frame(&mut send, batch.frame).await.unwrap();
        }
        if out.in_flight() == 0 {
            break;
        }
        match acks.recv().await {
            Some(Ok(SyncMsg::Ack { id, .. })) => out.on_ack(id).unwrap(),
            other => panic!("expected an Ack, got {other:?}"),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let (accepted, county, _, _) = receiver.await.unwrap();
    assert_eq!(accepted, total);
    ack_reader.abort();
    drop(county);
    close(server, client);
    (bytes as f64 / (1 << 20) as f64 / secs, total as f64 / secs)
}

/// Single-thread CPU time of each step of the sync protocol outside quinn, ns per entry, over
/// the whole holdings once: what one side spends besides QUIC itself.
pub struct Breakdown {
    /// `Outbound::next_batch` on in-memory holdings (heads of every kind, each entry's
    /// sequence read and its stored bytes copied into the frame).
    pub next_batch: f64,
    /// `SyncMsg::decode`, as `frames::read_sync` does after reading.
    pub decode: f64,
    /// The topology lookups, `authz::check` and `Replica::judge`, as a link's inbound does.
    pub judge: f64,
    /// Freeing the received entries.
    pub free: f64,
    /// Frame bytes per entry.
    pub frame_bytes: f64,
}

fn breakdown(p: &Pair, src: &Mem) -> Breakdown {
    let (mut t_next, mut t_dec, mut t_judge, mut t_free) = (0.0, 0.0, 0.0, 0.0);
    let mut out = Outbound::new(Direction::Up, 1, Origins::All);
    let mut replica = Replica::new(p.county.id().clone(), HashMap::new());
    out.on_want(match sync::want(Direction::Up, |k| replica.accepted(k)) {
        SyncMsg::Want { heads } => heads,
        _ => unreachable!(),
    });
    let below: HashSet<NodeId> = p.topology.subtree(p.town.id()).into_iter().collect();
    let (mut entries_seen, mut bytes) = (0u64, 0usize);
    loop {
        let t = Instant::now();
        let Some(batch) = out.next_batch(src).unwrap() else { break };
        t_next += t.elapsed().as_secs_f64();
        bytes += batch.frame.len();
        // What the receiver reads: a buffer of its own.
        let body = bytes::Bytes::from(batch.frame[4..].to_vec());
        let id = batch.id;
        drop(batch);
        let t = Instant::now();
        let got = SyncMsg::decode(body).unwrap();
        t_dec += t.elapsed().as_secs_f64();
        let SyncMsg::Batch { entries, .. } = got else { unreachable!() };
        let t = Instant::now();
        let authorize = |origin: &NodeId, kind| {
            authz::check(kind, Direction::Up, p.topology.site(origin).map(|s| s.role), below.contains(origin))
        };
        let verdicts = replica.judge_batch(&entries, authorize);
        assert!(verdicts.iter().all(|v| *v == Verdict::Accept));
        t_judge += t.elapsed().as_secs_f64();
        entries_seen += entries.len() as u64;
        let t = Instant::now();
        drop((entries, verdicts));
        t_free += t.elapsed().as_secs_f64();
        out.on_ack(id).unwrap();
    }
    let per = |secs: f64| secs * 1e9 / entries_seen as f64;
    Breakdown {
        next_batch: per(t_next),
        decode: per(t_dec),
        judge: per(t_judge),
        free: per(t_free),
        frame_bytes: bytes as f64 / entries_seen as f64,
    }
}

pub struct Figures {
    pub breakdown: Breakdown,
    pub raw_mib_s: Vec<f64>,
    pub ours_mib_s: Vec<f64>,
    pub ours_entries_s: Vec<f64>,
    pub ratios: Vec<f64>,
}

pub fn run(rounds: usize) -> Figures {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let p = pair();
    let origin = p.town.id().clone();
    let src = Arc::new(Mem {
        entries: (1..=ENTRIES)
            .map(|seq| Entry {
                origin: origin.clone(),
                seq,
                hlc: Hlc::new(1_764_146_400_000 + seq, 0),
                kind: Kind::Audit,
                payload: node::records::encode(&node::records::AuditRecord {
                    at_ms: 1_764_146_400_000 + seq * 37,
                    actor: format!("operator:wang.li{:02}", seq % 17),
                    action: "event.transition".into(),
                    subject: format!("event/{origin}/{seq:010}"),
                    why: "closed: field crew confirmed the wall was repaired".into(),
                })
                .unwrap(),
            })
            .map(|e| proto::codec::encode(&e).unwrap())
            .collect(),
        origin,
    });
    eprintln!(
        "quic: raw quinn {} MiB per run, sync protocol {ENTRIES} entries per run, {rounds} rounds",
        RAW_BYTES >> 20
    );
    let b = breakdown(&p, &src);
    eprintln!(
        "  sync protocol CPU per entry, one thread, no I/O: next_batch (read and frame) {:.0} ns, decode {:.0} \
         ns, judge {:.0} ns, free {:.0} ns ({:.0} frame bytes per entry)",
        b.next_batch, b.decode, b.judge, b.free, b.frame_bytes
    );
    let mut f = Figures { breakdown: b, raw_mib_s: vec![], ours_mib_s: vec![], ours_entries_s: vec![], ratios: vec![] };
    rt.block_on(async {
        // One of each to warm up, not counted.
        raw(&p).await;
        ours(&p, src.clone()).await;
        for round in 0..rounds {
            // Alternate which goes first, so neither always follows the other.
            let (r, (o, e)) = if round % 2 == 0 {
                let r = raw(&p).await;
                (r, ours(&p, src.clone()).await)
            } else {
                let o = ours(&p, src.clone()).await;
                (raw(&p).await, o)
            };
            eprintln!("  round {round}: raw quinn {r:.0} MiB/s, sync protocol {o:.0} MiB/s ({e:.0} entries/s)");
            f.raw_mib_s.push(r);
            f.ours_mib_s.push(o);
            f.ours_entries_s.push(e);
            f.ratios.push(o / r);
        }
    });
    f
}
