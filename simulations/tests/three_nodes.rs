//! Three real nodes in one process over the fabric: city ← county ← town (the town falls back
//! to the city). An escalation from the town reaches the county and the city; the town↔county
//! link is cut both ways, the town fails over to the city and escalates again; the link heals,
//! the town switches back to the county, and the county catches up on what it missed.
//!
//! Runs on a paused single-threaded runtime, every store on a simulated disk flushing in virtual
//! time: about a minute of virtual time in a fraction of a second.

use node::clock::Clock;
use node::events::{Identity, NewEvent};
use node::mesh::status::{LinkState, LinkStatus};
use node::workflow::{Location, Role as DeskRole, Tier};
use proto::{EntryId, NodeId, Role};
use simulations::topology::site;
use simulations::{eventually, Cluster, ClusterOptions, Fabric, LinkCounters, SimNode};
use std::net::IpAddr;
use std::time::Duration;

/// Each step's bound in virtual time. The slowest step is the fail-over: quinn notices the
/// dead link after the idle timeout (10 s by default, at most 30 s), the dial to the county
/// then gives up after 5 s, and the city answers at once. Switching back waits for the
/// 10-second probe of the preferred parent.
const STEP_LIMIT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(100);

fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

/// How `node` sees its link with `peer`.
fn link(node: &SimNode, peer: &NodeId) -> Option<LinkStatus> {
    node.running.mesh.as_ref().expect("a mesh").links().into_iter().find(|l| &l.peer == peer)
}

/// `Ok` once `node`'s link with `peer` is in `state`; otherwise says what it is.
fn link_is(node: &SimNode, peer: &NodeId, state: LinkState) -> Result<(), String> {
    match link(node, peer) {
        Some(l) if l.state == state => Ok(()),
        Some(l) => Err(format!(
            "{}'s link with {} ({}) is {:?}, not {:?} (last error: {:?})",
            node.id, peer, l.relation, l.state, state, l.last_error
        )),
        None => Err(format!("{} has no link with {} yet", node.id, peer)),
    }
}

/// The escalations `node` has received, as (event, n), oldest first.
fn escalations(node: &SimNode) -> Vec<(EntryId, u32)> {
    let mut out: Vec<(EntryId, u32)> = node
        .running
        .events
        .incoming_escalations(None, 100)
        .expect("incoming escalations")
        .into_iter()
        .map(|e| (e.escalation.event, e.escalation.n))
        .collect();
    out.sort_by_key(|(e, n)| (e.seq, *n));
    out
}

/// `Ok` once `node` holds exactly `want`.
fn holds(node: &SimNode, want: &[(EntryId, u32)]) -> Result<(), String> {
    let got = escalations(node);
    if got == want {
        Ok(())
    } else {
        Err(format!("{} holds escalations {got:?}, expected {want:?}", node.id))
    }
}

/// The value of a converged wait, noting how long it took; or fail with what did not converge.
fn converged<T>(r: Result<(T, Duration), String>, log: &mut Vec<String>, step: &str) -> T {
    match r {
        Ok((v, took)) => {
            log.push(format!("{step}: {took:?}"));
            v
        }
        Err(e) => panic!("{e}\nsteps that did converge (virtual time each):\n  {}", log.join("\n  ")),
    }
}

/// Both directions between two hosts, summed.
fn both_ways(fabric: &Fabric, a: IpAddr, b: IpAddr) -> LinkCounters {
    fabric.counters(a, b) + fabric.counters(b, a)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn cut_fail_over_heal_and_catch_up() {
    let wall = std::time::Instant::now();
    let virtual_start = tokio::time::Instant::now();
    let (city, county, town) = (id("city"), id("county-wendeng"), id("town-zhangjiachan"));
    let sites = vec![
        site("city", Role::City, 1, &[]),
        site("county-wendeng", Role::County, 2, &["city"]),
        site("town-zhangjiachan", Role::Town, 3, &["county-wendeng", "city"]),
    ];
    let (town_ip, county_ip) = (sites[2].mesh.ip(), sites[1].mesh.ip());
    let fabric = Fabric::with_seed(1);
    let mut cluster = Cluster::new(fabric.clone(), sites, ClusterOptions::default()).unwrap();
    cluster.start_all().await.unwrap();
    let mut log = Vec::new();

    let r = eventually("the mesh comes up", STEP_LIMIT, POLL, || {
        let (c, k, t) = (cluster.node(&city), cluster.node(&county), cluster.node(&town));
        link_is(t, &county, LinkState::Up)?;
        link_is(k, &town, LinkState::Up)?;
        link_is(k, &city, LinkState::Up)?;
        link_is(c, &county, LinkState::Up)
    })
    .await;
    converged(r, &mut log, "mesh up");

    // The town reports an event and escalates it.
    let operator = Identity { name: "operator-li".into(), role: DeskRole::Operator };
    let desk = &cluster.node(&town).running.events;
    let event = desk
        .report(
            NewEvent {
                category: "hazard".into(),
                location: Location { lat: Some(37.2), lon: Some(122.4), address: Some("Harbour road 1".into()) },
                description: "Fallen tree across the harbour road".into(),
                ..NewEvent::default()
            },
            &operator,
        )
        .await
        .unwrap();
    desk.escalate(&event.id, "roads department".into(), Tier::County, "blocks the road".into(), &operator)
        .await
        .unwrap();
    let first = vec![(event.id.clone(), 1)];
    let r = eventually("the first escalation reaches the county and the city", STEP_LIMIT, POLL, || {
        holds(cluster.node(&county), &first)?;
        holds(cluster.node(&city), &first)
    })
    .await;
    converged(r, &mut log, "escalation 1 at the county and the city");

    // Cut the town↔county link both ways: the town notices, and fails over to the city.
    let before_cut = both_ways(&fabric, town_ip, county_ip);
    fabric.cut(town_ip, county_ip);
    let r = eventually("the town fails over to the city", STEP_LIMIT, POLL, || {
        let (t, k) = (cluster.node(&town), cluster.node(&county));
        link_is(t, &county, LinkState::Partitioned)?;
        link_is(t, &city, LinkState::Up)?;
        link_is(k, &town, LinkState::Partitioned)
    })
    .await;
    converged(r, &mut log, "town on the city");

    // A second escalation, while cut, reaches the city only.
    let desk = &cluster.node(&town).running.events;
    let stamped_from = cluster.clock(&town).now_ms();
    desk.escalate(&event.id, "city emergency office".into(), Tier::City, "still blocked".into(), &operator)
        .await
        .unwrap();
    let stamped_to = cluster.clock(&town).now_ms();
    let both = vec![(event.id.clone(), 1), (event.id.clone(), 2)];
    let r = eventually("the second escalation reaches the city over the fallback link", STEP_LIMIT, POLL, || {
        holds(cluster.node(&city), &both)
    })
    .await;
    converged(r, &mut log, "escalation 2 at the city");
    holds(cluster.node(&county), &first).expect("the county, cut off, has only the first escalation");
    // The store's flusher stamped it in the same (virtual) time as the node reads.
    let at = cluster.node(&city).running.events.incoming_escalations(None, 1).unwrap()[0].at;
    assert!(
        (stamped_from..=stamped_to).contains(&at.wall_ms),
        "escalation stamped at {} ms, outside the node clock's {stamped_from}..={stamped_to}",
        at.wall_ms
    );

    let during_cut = both_ways(&fabric, town_ip, county_ip).since(&before_cut);
    assert!(during_cut.cut > 0, "the cut dropped nothing between the town and the county: {during_cut:?}");
    assert_eq!(during_cut.delivered, 0, "datagrams crossed the cut link: {during_cut:?}");
    log.push(format!("while cut: {} datagrams dropped between the town and the county", during_cut.cut));

    // Heal: the town switches back to its preferred parent, and the county catches up.
    fabric.heal(town_ip, county_ip);
    let before_heal = both_ways(&fabric, town_ip, county_ip);
    let r = eventually("the town switches back to the county, which catches up", STEP_LIMIT, POLL, || {
        let (t, k) = (cluster.node(&town), cluster.node(&county));
        link_is(t, &county, LinkState::Up)?;
        link_is(k, &town, LinkState::Up)?;
        holds(k, &both)?;
        // The city saw the town's fallback connection close.
        link_is(cluster.node(&city), &town, LinkState::Partitioned)
    })
    .await;
    converged(r, &mut log, "town back on the county, the county caught up");
    // The town says why it left the city.
    let city_link = link(cluster.node(&town), &city).unwrap();
    assert_eq!(city_link.state, LinkState::Partitioned, "{city_link:?}");
    assert_eq!(city_link.last_error.as_deref(), Some(node::mesh::uplink::LEFT_FOR_PREFERRED), "{city_link:?}");
    let after_heal = both_ways(&fabric, town_ip, county_ip).since(&before_heal);
    assert!(after_heal.delivered > 0 && after_heal.dropped() == 0, "after the heal: {after_heal:?}");
    holds(cluster.node(&city), &both).expect("the city keeps both escalations, once each");
    let county_link = link(cluster.node(&town), &county).unwrap();
    assert!(county_link.entries_sent > 0, "the town sent nothing to the county after the heal: {county_link:?}");

    cluster.stop_all().await;
    eprintln!(
        "cut, fail-over, heal and catch-up: {:?} of wall-clock time, {:?} of virtual time\n  {}",
        wall.elapsed(),
        virtual_start.elapsed(),
        log.join("\n  "),
    );
}
