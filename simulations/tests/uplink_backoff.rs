//! A parent that completes every handshake and drops the session at once (here a bare QUIC
//! endpoint holding the city's certificate, as a misconfigured or overloaded parent would
//! behave) is redialled ever more slowly, not in a loop: a session shorter than the stable
//! duration does not reset the town's backoff. Before the uplink state machine, every
//! successful handshake reset it, and such a parent was redialled as fast as handshakes went.
//!
//! Runs on a paused single-threaded runtime: one virtual minute, a fraction of a second of
//! wall-clock time.

use node::clock::SharedClock;
use node::mesh::pki::Validity;
use node::mesh::quic_config;
use node::mesh::status::LinkState;
use node::mesh::tls::{self, MeshIdentity};
use node::mesh::uplink::{BACKOFF_FIRST, BACKOFF_MAX};
use node::rng::Seed;
use proto::{NodeId, NodeIdentity, Role};
use simulations::topology::site;
use simulations::{Cluster, ClusterOptions, Fabric, SimClock};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long the town is left dialling.
const WATCH: Duration = Duration::from_secs(60);

fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

/// How many dials fit in `watch` when every one is followed by a wait of at least (`longest`
/// false) or at most (`longest` true) the backoff, doubling from the first to the max.
fn dials_within(watch: Duration, longest: bool) -> usize {
    let (mut t, mut b, mut dials) = (Duration::ZERO, BACKOFF_FIRST, 0);
    while t <= watch {
        dials += 1;
        t += if longest { b } else { b / 2 };
        b = (b * 2).min(BACKOFF_MAX);
    }
    dials
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_parent_that_drops_every_session_is_redialled_with_backoff() {
    let (city, town) = (id("city"), id("town-a"));
    let sites = vec![site("city", Role::City, 1, &[]), site("town-a", Role::Town, 2, &["city"])];
    let city_addr = sites[0].mesh;
    let fabric = Fabric::with_seed(3);
    let options = ClusterOptions::default();
    let epoch_ms = options.epoch_ms;
    let mut cluster = Cluster::new(fabric.clone(), sites, options).unwrap();

    // The city is not a node: an endpoint with its certificate, on the cluster's clock, that
    // closes what it accepts.
    let epoch = time::OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(epoch_ms as i64);
    let validity = Validity::between(epoch - time::Duration::hours(1), epoch + time::Duration::days(1)).unwrap();
    let cert = cluster.ca().issue(&NodeIdentity { id: city.clone(), role: Role::City }, validity).unwrap();
    let identity =
        MeshIdentity::from_der(vec![cluster.ca().cert_der().clone()], vec![cert.cert_der().clone()], cert.key_der())
            .unwrap();
    let clock: SharedClock = Arc::new(SimClock::new(epoch_ms, tokio::time::Instant::now()));
    let server = quic_config::server_config(&identity, &clock, Seed(3), tls::transport_config()).unwrap();
    let endpoint = quinn::Endpoint::new_with_abstract_socket(
        quic_config::endpoint_config(Seed(3)),
        Some(server),
        fabric.bind(city_addr).unwrap(),
        fabric.runtime(),
    )
    .unwrap();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counted = handshakes.clone();
    let acceptor = tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            if let Ok(conn) = incoming.await {
                counted.fetch_add(1, Ordering::Relaxed);
                conn.close(0u32.into(), b"go away");
            }
        }
    });

    cluster.start(&town).await.unwrap();
    tokio::time::sleep(WATCH).await;
    let dials = handshakes.load(Ordering::Relaxed);
    let link = cluster.node(&town).running.mesh.as_ref().unwrap().links().into_iter().find(|l| l.peer == city);
    cluster.stop_all().await;
    acceptor.abort();

    // Each dial takes a little virtual time too, so the lower bound is the one to keep to
    // loosely.
    let (fewest, most) = (dials_within(WATCH, true) - 1, dials_within(WATCH, false));
    assert!(
        (fewest..=most).contains(&dials),
        "{dials} handshakes in {WATCH:?}; with backoff there would be {fewest} to {most}"
    );
    let link = link.expect("the town reports its link with the city");
    assert_eq!(link.state, LinkState::Partitioned, "{link:?}");
    assert!(link.last_error.is_some(), "{link:?}");
}
