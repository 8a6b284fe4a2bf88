//! A node checks certificate dates against its own clock, not the machine's: a cluster whose
//! certificates expired years before the machine's date still links up, and a node whose clock
//! is set past their expiry refuses its parent until its clock is put right.

use node::mesh::status::LinkState;
use proto::{NodeId, Role};
use simulations::topology::site;
use simulations::{eventually, Cluster, ClusterOptions, Fabric, SimNode};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(200);
/// 2020-01-01T00:00:00Z: the certificates the cluster makes are valid for a year from about
/// then, long before the date of any machine running this test.
const EPOCH_2020_MS: u64 = 1_577_836_800_000;

fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn town_link(node: &SimNode, peer: &NodeId) -> Result<(LinkState, Option<String>), String> {
    let links = node.running.mesh.as_ref().expect("a mesh").links();
    let l = links.into_iter().find(|l| &l.peer == peer).ok_or("no link yet")?;
    Ok((l.state, l.last_error))
}

/// Wait until `node`'s link with `peer` is up.
async fn linked_up(cluster: &Cluster, node: &NodeId, peer: &NodeId, what: &str) {
    eventually(what, LIMIT, POLL, || match town_link(cluster.node(node), peer)? {
        (LinkState::Up, _) => Ok(()),
        other => Err(format!("{other:?}")),
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn certificate_dates_are_read_on_the_nodes_clock() {
    let (city, town) = (id("city"), id("town-a"));
    let sites = vec![site("city", Role::City, 1, &[]), site("town-a", Role::Town, 2, &["city"])];
    let options = ClusterOptions { epoch_ms: EPOCH_2020_MS, ..ClusterOptions::default() };
    let mut cluster = Cluster::new(Fabric::with_seed(3), sites, options).unwrap();
    cluster.start_all().await.unwrap();
    linked_up(&cluster, &town, &city, "the town links up with certificates valid only in 2020").await;

    // The town's clock jumps two years ahead: the city's certificate has expired, for the town.
    cluster.stop(&town).await;
    cluster.clock(&town).set_skew_ms(2 * 365 * 86_400_000);
    cluster.start(&town).await.unwrap();
    let (_, waited) = eventually("the town refuses the city's expired certificate", LIMIT, POLL, || {
        match town_link(cluster.node(&town), &city)? {
            (LinkState::Partitioned, Some(e)) if e.contains("expired") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .unwrap();
    // And it stays refused: nothing else about the link is wrong.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (state, _) = town_link(cluster.node(&town), &city).unwrap();
    assert_eq!(state, LinkState::Partitioned, "refused after {waited:?}, then linked with an expired certificate");

    // The clock is put right: the link comes back without a restart.
    cluster.clock(&town).set_skew_ms(0);
    linked_up(&cluster, &town, &city, "the town links up again once its clock is right").await;
    cluster.stop_all().await;
}
