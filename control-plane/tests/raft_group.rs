//! Three voters in one process, each with its own sled store, certificate and QUIC endpoint on
//! loopback: they elect a leader, take writes at any voter, answer linearizable reads at any
//! voter, keep what they applied across a restart (and find each other on new addresses), and refuse raft traffic from a site whose
//! certificate is not a voter's.

use control_plane::raft::voter::{CallError, MemberChange, RaftSettings, VoterNode, VoterParts};
use node::clock::{SharedClock, SystemClock};
use node::mesh::pki::{CityCa, Validity};
use node::mesh::tls::MeshIdentity;
use node::metrics::Metrics;
use node::rng::Seed;
use node::sanctions::{Actor, Command, ListEntry, ListKind, Proposal, SubjectId};
use node::store::{Store, StoreConfig};
use proto::{NodeId, NodeIdentity, Role};
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const VOTERS: [&str; 3] = ["city", "county-a", "county-b"];
const DAY_MS: u64 = 86_400_000;

struct Site {
    name: NodeId,
    identity: MeshIdentity,
    addr: SocketAddr,
    /// Its certificate's fingerprint, as a revocation names it.
    fingerprint: String,
}

fn sites(ca: &CityCa, extra: &[(&str, Role)]) -> Vec<Site> {
    let validity = Validity::days_from(time::OffsetDateTime::now_utc(), 30).unwrap();
    let mut out = Vec::new();
    for (name, role) in
        VOTERS.iter().map(|n| (*n, if *n == "city" { Role::City } else { Role::County })).chain(extra.iter().copied())
    {
        let id = NodeId::new(name).unwrap();
        let cert = ca.issue(&NodeIdentity { id: id.clone(), role }, validity).unwrap();
        let identity =
            MeshIdentity::from_der(vec![ca.cert_der().clone()], vec![cert.cert_der().clone()], cert.key_der()).unwrap();
        let fingerprint = node::mesh::pki::fingerprint(cert.cert_der());
        out.push(Site { name: id, identity, addr: free_addr(), fingerprint });
    }
    out
}

/// Start `site`'s voter. `moved`: where each voter listens now, when that differs from the
/// address the group was formed with (local routes, as after a move).
fn free_addr() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

async fn start(
    site: &Site,
    all: &[Site],
    dir: &Path,
    seed: u64,
    moved: &BTreeMap<NodeId, SocketAddr>,
) -> (VoterNode, Store) {
    start_with(site, all, dir, seed, moved, RaftSettings::default()).await
}

async fn start_with(
    site: &Site,
    all: &[Site],
    dir: &Path,
    seed: u64,
    moved: &BTreeMap<NodeId, SocketAddr>,
    settings: RaftSettings,
) -> (VoterNode, Store) {
    let clock: SharedClock = Arc::new(SystemClock);
    let store = Store::open(dir, site.name.clone(), clock.clone(), StoreConfig::default(), Metrics::unregistered())
        .expect("open the store");
    let addr = moved.get(&site.name).copied().unwrap_or(site.addr);
    let (socket, runtime) = node::process::quic_socket(addr, "raft endpoint").unwrap();
    let voter = VoterNode::start(VoterParts {
        identity: site.identity.clone(),
        clock,
        store: store.clone(),
        seed: Seed(seed),
        socket,
        runtime,
        settings,
        voters: all.iter().take(VOTERS.len()).map(|s| (s.name.clone(), s.addr.to_string())).collect(),
        routes: moved.clone(),
        join: false,
    })
    .await
    .expect("start the voter");
    (voter, store)
}

fn proposal(mmsi: u32, now_ms: u64) -> Proposal {
    Proposal {
        command: Command::Add {
            entry: ListEntry {
                list: ListKind::Black,
                subject: SubjectId::Mmsi(mmsi),
                name: format!("vessel {mmsi}"),
                authority: "Municipal Ocean and Fisheries Bureau".into(),
                legal_basis: "Fisheries Law art. 38".into(),
                effective_ms: now_ms - DAY_MS,
                expires_ms: now_ms + 365 * DAY_MS,
                note: String::new(),
            },
        },
        actor: Actor { who: "operator-li".into(), why: "illegal fishing in the PMZ".into() },
        proposed_ms: now_ms,
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

async fn leader_of(voters: &[&VoterNode]) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(i) = voters.iter().position(|v| control_plane::raft::voter::is_leader(&v.metrics())) {
            return i;
        }
        assert!(tokio::time::Instant::now() < deadline, "no leader elected within 20 s");
        let mut m = voters[0].view().version();
        let _ = tokio::time::timeout(Duration::from_millis(50), m.changed()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_decide_once_for_everyone() {
    let dirs: Vec<tempfile::TempDir> = (0..VOTERS.len()).map(|_| tempfile::tempdir().unwrap()).collect();
    let ca = CityCa::generate("test CA", Validity::days_from(time::OffsetDateTime::now_utc(), 30).unwrap()).unwrap();
    let all = sites(&ca, &[("town-1", Role::Town)]);
    let mut voters = Vec::new();
    let mut stores = Vec::new();
    for (i, site) in all.iter().take(VOTERS.len()).enumerate() {
        let (v, s) = start(site, &all, dirs[i].path(), i as u64 + 1, &BTreeMap::new()).await;
        voters.push(v);
        stores.push(s);
    }
    let refs: Vec<&VoterNode> = voters.iter().collect();
    let leader = leader_of(&refs).await;
    let follower = (leader + 1) % VOTERS.len();

    // Writes at a follower reach the leader; every voter reads them linearizably.
    let now = now_ms();
    let mut versions = Vec::new();
    for mmsi in 412_000_001..412_000_011 {
        let w = voters[follower].write(proposal(mmsi, now), Duration::from_secs(5)).await.expect("write");
        versions.push(w.version);
    }
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "versions rise with every write: {versions:?}");
    for v in &voters {
        let (version, len) = v.read(Duration::from_secs(5), |l| (l.version(), l.len())).await.expect("read");
        assert_eq!(len, 10, "{} sees every entry", v.name());
        assert!(version >= *versions.last().unwrap());
    }
    // The same add again is committed and refused by the state machine: nothing listed twice.
    match voters[leader].write(proposal(412_000_001, now), Duration::from_secs(5)).await {
        Err(CallError::Refused { reason, .. }) => assert!(reason.contains("already"), "{reason}"),
        other => panic!("a second add of a listed subject must be refused, got {other:?}"),
    }
    // Invalid commands never reach the log.
    let mut bad = proposal(412_000_099, now);
    bad.actor.why.clear();
    assert!(matches!(voters[follower].write(bad, Duration::from_secs(5)).await, Err(CallError::Invalid(_))));

    // A town's certificate is refused raft traffic (the stream is reset as unauthorized).
    let town = &all[VOTERS.len()];
    let (socket, runtime) = node::process::quic_socket(town.addr, "town").unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let client =
        node::mesh::quic_config::client_config(&town.identity, &clock, node::mesh::tls::transport_config()).unwrap();
    let endpoint = quinn::Endpoint::new_with_abstract_socket(
        node::mesh::quic_config::endpoint_config(Seed(9)),
        None,
        socket,
        runtime,
    )
    .unwrap();
    let (conn, _) = node::mesh::tls::connect(&endpoint, client, all[leader].addr, &all[leader].name).await.unwrap();
    let (mut send, mut recv) = node::mesh::streams::open(&conn, proto::wire::StreamKind::Raft).await.unwrap();
    let _ = node::mesh::frames::write(&mut send, &control_plane::raft::network::RaftRequest::ReadIndex).await;
    let refused = node::mesh::frames::read::<control_plane::raft::network::RaftReply>(&mut recv).await;
    assert!(refused.is_err(), "a town must not be answered on a raft stream");
    conn.close(0u32.into(), b"done");

    // Credit repair: the removal and its reason are in the subject's history, after the add,
    // on every voter; the changes feed holds every applied command in version order.
    let mut removal = proposal(412_000_003, now);
    removal.command = Command::Remove { list: ListKind::Black, subject: SubjectId::Mmsi(412_000_003) };
    removal.actor.why = "fine paid; decision 2026-131".into();
    let removed = voters[follower].write(removal, Duration::from_secs(5)).await.expect("remove");
    for v in &voters {
        let (_, horizon, history) = v
            .history(Duration::from_secs(5), ListKind::Black, &SubjectId::Mmsi(412_000_003), 100)
            .await
            .expect("history");
        assert_eq!(horizon, 0);
        let what: Vec<(&str, &str)> =
            history.iter().map(|c| (c.proposal.command.name(), c.proposal.actor.why.as_str())).collect();
        assert_eq!(what, [("add", "illegal fishing in the PMZ"), ("remove", "fine paid; decision 2026-131")]);
        assert_eq!(history[1].version, removed.version);
        let (_, _, changes) = v.changes(Duration::from_secs(5), 0, 1_000).await.expect("changes");
        let versions: Vec<u64> = changes.iter().map(|c| c.version).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]));
        // Ten adds, the refused second add (recorded: it was decided too) and the removal.
        assert_eq!(changes.len(), 12, "{versions:?}");
        assert!(!changes[10].outcome.is_applied());
    }

    // Restart every voter on its store: the lists come back whole. (The version moves on: a new
    // leader commits a blank entry for its term.)
    let before: Vec<ListEntry> =
        voters[0].read(Duration::from_secs(5), |l| l.entries().cloned().collect()).await.unwrap();
    for v in voters.drain(..) {
        v.shutdown().await;
    }
    for s in stores.drain(..) {
        s.close().await;
    }
    // The old endpoints may hold their ports while connections drain, so the voters come back
    // on new ports, each told where the others are now.
    let moved: BTreeMap<NodeId, SocketAddr> =
        all.iter().take(VOTERS.len()).map(|s| (s.name.clone(), free_addr())).collect();
    for (i, site) in all.iter().take(VOTERS.len()).enumerate() {
        let (v, s) = start(site, &all, dirs[i].path(), i as u64 + 11, &moved).await;
        voters.push(v);
        stores.push(s);
    }
    let refs: Vec<&VoterNode> = voters.iter().collect();
    leader_of(&refs).await;
    for v in &voters {
        let after: Vec<ListEntry> =
            v.read(Duration::from_secs(10), |l| l.entries().cloned().collect()).await.expect("read after restart");
        assert_eq!(after, before, "{} holds the same lists after the restart", v.name());
        let (_, _, changes) = v.changes(Duration::from_secs(5), 0, 1_000).await.expect("changes after restart");
        assert_eq!(changes.len(), 12, "{} keeps its record of changes", v.name());
    }
    for v in voters {
        v.shutdown().await;
    }
    for s in stores {
        s.close().await;
    }
}

/// Bind `addr` for a voter restarting in this process: the endpoint it had may hold the port
/// for a moment while its connections drain.
fn rebind(addr: SocketAddr) -> SocketAddr {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while UdpSocket::bind(addr).is_err() {
        assert!(std::time::Instant::now() < deadline, "{addr} still taken 10 s after its voter stopped");
        std::thread::sleep(Duration::from_millis(20));
    }
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_left_behind_catches_up_from_a_snapshot() {
    let dirs: Vec<tempfile::TempDir> = (0..VOTERS.len()).map(|_| tempfile::tempdir().unwrap()).collect();
    let ca = CityCa::generate("test CA", Validity::days_from(time::OffsetDateTime::now_utc(), 30).unwrap()).unwrap();
    let all = sites(&ca, &[]);
    // A snapshot every 10 entries and no log kept behind it: a voter that misses more than
    // that can only catch up from a snapshot.
    let settings = RaftSettings { snapshot_every: 10, logs_kept: 0, ..RaftSettings::default() };
    let none = BTreeMap::new();
    let mut voters = Vec::new();
    let mut stores = Vec::new();
    for (i, site) in all.iter().enumerate() {
        let (v, s) = start_with(site, &all, dirs[i].path(), i as u64 + 21, &none, settings.clone()).await;
        voters.push(Some(v));
        stores.push(Some(s));
    }
    let refs: Vec<&VoterNode> = voters.iter().flatten().collect();
    let leader = leader_of(&refs).await;
    let behind = (leader + 1) % VOTERS.len();
    voters[behind].take().unwrap().shutdown().await;
    stores[behind].take().unwrap().close().await;

    let now = now_ms();
    for mmsi in 412_100_000..412_100_040 {
        voters[leader].as_ref().unwrap().write(proposal(mmsi, now), Duration::from_secs(5)).await.expect("write");
    }
    let expected: Vec<ListEntry> = voters[leader]
        .as_ref()
        .unwrap()
        .read(Duration::from_secs(5), |l| l.entries().cloned().collect())
        .await
        .unwrap();
    assert_eq!(expected.len(), 40);

    rebind(all[behind].addr);
    let (v, s) = start_with(&all[behind], &all, dirs[behind].path(), 99, &none, settings.clone()).await;
    let held: Vec<ListEntry> = v.read(Duration::from_secs(20), |l| l.entries().cloned().collect()).await.expect("read");
    assert_eq!(held, expected, "the voter left behind holds the lists after catching up");
    // It installed a snapshot, so its record of changes may lack what the snapshot covers
    // (its horizon), and holds everything after it, as the leader does.
    let (_, horizon, changes) = v.changes(Duration::from_secs(5), 0, 1_000).await.unwrap();
    assert!(horizon > 0, "caught up from a snapshot, not from the log");
    let (_, _, leaders) = voters[leader].as_ref().unwrap().changes(Duration::from_secs(5), 0, 1_000).await.unwrap();
    let after = |c: &[control_plane::raft::changes::Change]| -> Vec<u64> {
        c.iter().map(|c| c.version).filter(|v| *v > horizon).collect()
    };
    assert_eq!(after(&changes), after(&leaders), "every change after the horizon is recorded");
    assert_eq!(leaders.len(), 40);
    publish_through_a_snapshot(&v, &s, horizon).await;
    voters[behind] = Some(v);
    stores[behind] = Some(s);
    for v in voters.into_iter().flatten() {
        v.shutdown().await;
    }
    for s in stores.into_iter().flatten() {
        s.close().await;
    }
}

/// What the site's node does with a voter whose record starts after `horizon`: ask for the
/// changes from the start, be told to take a snapshot, take it in pieces, then the changes
/// after it; a node following that stream holds the voter's lists.
async fn publish_through_a_snapshot(voter: &VoterNode, store: &Store, horizon: u64) {
    use node::sanctions::feed::{snapshot_entries, Applier, FeedEntry, FeedReply, FeedRequest};
    let feed = control_plane::raft::feed::FeedServer::new(store.clone(), voter.view().clone());
    let changes = |after| FeedRequest::Changes { after, max_bytes: 1 << 20, wait_ms: 0 };
    match feed.answer(changes(0)).await {
        FeedReply::Changes { horizon: h, changes, through, .. } => {
            assert_eq!((h, through), (horizon, 0), "a gap is reported, not bridged");
            assert!(changes.is_empty());
        }
        other => panic!("{other:?}"),
    }
    let (mut bytes, mut at, mut piece) = (Vec::new(), None, 0);
    let version = loop {
        match feed.answer(FeedRequest::Snapshot { version: at, piece }).await {
            FeedReply::Snapshot(p) => {
                assert_eq!(p.piece, piece);
                bytes.extend_from_slice(&p.bytes);
                at = Some(p.version);
                piece += 1;
                if piece == p.pieces {
                    break p.version;
                }
            }
            other => panic!("{other:?}"),
        }
    };
    assert!(version >= horizon);
    let mut stream: Vec<FeedEntry> = snapshot_entries(version, &bytes);
    match feed.answer(changes(version)).await {
        FeedReply::Changes { through, changes, .. } if through > version => {
            stream.push(FeedEntry::Changes { prev: version, through, changes });
        }
        FeedReply::Changes { .. } => {}
        other => panic!("{other:?}"),
    }
    let mut node = Applier::new();
    let city = NodeId::new("city").unwrap();
    for (i, e) in stream.iter().enumerate() {
        node.offer(&city, i as u64 + 1, &proto::codec::encode(e).unwrap());
    }
    let held = voter.view().read().lists.digest();
    assert_eq!(node.lists().digest(), held, "a node following the stream holds the voter's lists");
    // Nothing new: the long poll ends at its wait with nothing to publish.
    match feed.answer(FeedRequest::Changes { after: node.version(), max_bytes: 1 << 20, wait_ms: 50 }).await {
        FeedReply::Changes { through, changes, .. } => assert!(through == node.version() && changes.is_empty()),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        feed.answer(FeedRequest::Snapshot { version: Some(version + 1000), piece: 1 }).await,
        FeedReply::SnapshotGone
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_add_and_remove_voters() {
    let dirs: Vec<tempfile::TempDir> = (0..VOTERS.len() + 1).map(|_| tempfile::tempdir().unwrap()).collect();
    let ca = CityCa::generate("test CA", Validity::days_from(time::OffsetDateTime::now_utc(), 30).unwrap()).unwrap();
    let all = sites(&ca, &[("county-c", Role::County)]);
    let none = BTreeMap::new();
    let mut voters = Vec::new();
    let mut stores = Vec::new();
    for (i, site) in all.iter().take(VOTERS.len()).enumerate() {
        let (v, s) = start(site, &all, dirs[i].path(), i as u64 + 31, &none).await;
        voters.push(v);
        stores.push(s);
    }
    let refs: Vec<&VoterNode> = voters.iter().collect();
    let leader = leader_of(&refs).await;
    let now = now_ms();
    voters[leader].write(proposal(412_200_001, now), Duration::from_secs(5)).await.unwrap();

    // County C starts with `join`: it forms no group of its own and waits.
    let joiner = &all[VOTERS.len()];
    let clock: SharedClock = Arc::new(SystemClock);
    let store = Store::open(
        dirs[VOTERS.len()].path(),
        joiner.name.clone(),
        clock.clone(),
        StoreConfig::default(),
        Metrics::unregistered(),
    )
    .unwrap();
    let (socket, runtime) = node::process::quic_socket(joiner.addr, "raft endpoint").unwrap();
    let new = VoterNode::start(VoterParts {
        identity: joiner.identity.clone(),
        clock,
        store: store.clone(),
        seed: Seed(41),
        socket,
        runtime,
        settings: RaftSettings::default(),
        voters: all.iter().map(|s| (s.name.clone(), s.addr.to_string())).collect(),
        routes: BTreeMap::new(),
        join: true,
    })
    .await
    .unwrap();
    assert_eq!(new.metrics().membership_config.membership().voter_ids().count(), 0, "a joiner forms no group");

    // Added at a follower (forwarded to the leader): it catches up and votes.
    let follower = (leader + 1) % VOTERS.len();
    let add = MemberChange::Add { name: "county-c".into(), addr: joiner.addr.to_string(), voter: true };
    voters[follower].change_members(add, Duration::from_secs(10)).await.expect("add county-c");
    let voter_names = |v: &VoterNode| -> Vec<String> {
        let m = v.metrics();
        let membership = m.membership_config.membership();
        let mut names: Vec<String> =
            membership.voter_ids().filter_map(|id| membership.get_node(&id).map(|n| n.name.clone())).collect();
        names.sort();
        names
    };
    assert_eq!(voter_names(&voters[leader]), ["city", "county-a", "county-b", "county-c"]);
    let held = new.read(Duration::from_secs(5), |l| l.len()).await.expect("the new voter reads");
    assert_eq!(held, 1, "the new voter holds what was decided before it joined");

    // A voter removed, then it and one more stopped: two of the three voters left are a
    // quorum, where two of four would not have been.
    let gone = (leader + 2) % VOTERS.len();
    let removed_name = VOTERS[gone].to_string();
    let remove = MemberChange::Remove { name: removed_name.clone() };
    voters[leader].change_members(remove, Duration::from_secs(10)).await.expect("remove");
    assert!(!voter_names(&voters[leader]).contains(&removed_name));
    let mut voters: Vec<Option<VoterNode>> = voters.into_iter().map(Some).collect();
    voters[gone].take().unwrap().shutdown().await;
    voters[follower].take().unwrap().shutdown().await;
    let w =
        new.write(proposal(412_200_002, now), Duration::from_secs(10)).await.expect("write without the removed voter");
    assert!(w.version > 0);
    // Bad changes are refused before they reach the group.
    let bad = MemberChange::Add { name: "county-d".into(), addr: "county-d:7950".into(), voter: true };
    let leading = voters[leader].as_ref().unwrap();
    assert!(matches!(leading.change_members(bad, Duration::from_secs(5)).await, Err(CallError::Invalid(_))));
    for v in voters.into_iter().flatten() {
        v.shutdown().await;
    }
    new.shutdown().await;
    for s in stores {
        s.close().await;
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_voter_is_cut_off() {
    let dirs: Vec<tempfile::TempDir> = (0..VOTERS.len()).map(|_| tempfile::tempdir().unwrap()).collect();
    let ca = CityCa::generate("test CA", Validity::days_from(time::OffsetDateTime::now_utc(), 30).unwrap()).unwrap();
    let all = sites(&ca, &[]);
    let none = BTreeMap::new();
    let mut voters = Vec::new();
    let mut stores = Vec::new();
    for (i, site) in all.iter().enumerate() {
        let (v, s) = start(site, &all, dirs[i].path(), i as u64 + 51, &none).await;
        voters.push(v);
        stores.push(s);
    }
    let refs: Vec<&VoterNode> = voters.iter().collect();
    let leader = leader_of(&refs).await;
    let revoked = (leader + 1) % VOTERS.len();
    let kept = (leader + 2) % VOTERS.len();
    let now = now_ms();
    let revoke = Proposal {
        command: Command::RevokeCertificate {
            node: VOTERS[revoked].into(),
            fingerprint: all[revoked].fingerprint.clone(),
        },
        actor: Actor { who: "operator-li".into(), why: "the county's box was stolen".into() },
        proposed_ms: now,
    };
    voters[leader].write(revoke, Duration::from_secs(5)).await.expect("revoke");
    // The other two go on deciding; the revoked voter can no longer reach any of them.
    voters[kept].write(proposal(412_300_001, now), Duration::from_secs(5)).await.expect("a write without it");
    match voters[revoked].write(proposal(412_300_002, now), Duration::from_secs(2)).await {
        Err(CallError::NoQuorum { .. }) => {}
        other => panic!("a voter whose certificate is revoked must not get a write through: {other:?}"),
    }
    let listed = voters[kept].read(Duration::from_secs(5), |l| l.len()).await.unwrap();
    assert_eq!(listed, 1, "only the write made by the voters in good standing");
    for v in voters {
        v.shutdown().await;
    }
    for s in stores {
        s.close().await;
    }
}
