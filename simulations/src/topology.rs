//! Generated topologies: a city of any size in the reference city's proportions.

use node::mesh::topology::{Position, Site};
use proto::{NodeId, Role};
use std::net::SocketAddr;

/// The reference city (SEED.md): one city, five county-level sites, seventy towns and a
/// hundred harbours: 176 nodes.
pub const REFERENCE_COUNTIES: usize = 5;
pub const REFERENCE_TOWNS: usize = 70;
pub const REFERENCE_HARBOURS: usize = 100;
pub const REFERENCE_NODES: usize = 1 + REFERENCE_COUNTIES + REFERENCE_TOWNS + REFERENCE_HARBOURS;
/// Largest generated topology (addresses run out past it; the topology format allows 4096).
pub const MAX_NODES: usize = 4096;
/// The port every generated site's mesh endpoint listens on.
pub const MESH_PORT: u16 = 7900;
/// The port a generated voting site's `yiwang-control` voter listens on, at the site's host.
pub const RAFT_PORT: u16 = 7901;

/// How many of each role a generated city of `n` nodes has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CityShape {
    pub counties: usize,
    pub towns: usize,
    pub harbours: usize,
}

impl CityShape {
    pub fn nodes(&self) -> usize {
        1 + self.counties + self.towns + self.harbours
    }

    /// `n` nodes (at least one, the city) in the reference proportions: at least one county
    /// once there are three nodes, the rest split between towns and harbours 70 to 100.
    pub fn of(n: usize) -> CityShape {
        let below = n.saturating_sub(1);
        let counties = if n < 3 {
            0
        } else {
            ((below * REFERENCE_COUNTIES + (REFERENCE_NODES - 1) / 2) / (REFERENCE_NODES - 1)).max(1)
        };
        let rest = below - counties;
        let sites = REFERENCE_TOWNS + REFERENCE_HARBOURS;
        let towns = (rest * REFERENCE_TOWNS + sites / 2) / sites;
        CityShape { counties, towns, harbours: rest - towns }
    }
}

/// A site at `10.0.0.<host>:7900` with `parents` (preferred first), for hand-made topologies.
pub fn site(name: &str, role: Role, host: u8, parents: &[&str]) -> Site {
    let id = |s: &str| NodeId::new(s).unwrap_or_else(|e| panic!("site name {s:?}: {e}"));
    Site {
        id: id(name),
        role,
        mesh: SocketAddr::from(([10, 0, 0, host], MESH_PORT)),
        http: None,
        raft: None,
        parents: parents.iter().map(|p| id(p)).collect(),
        position: None,
    }
}

/// The mesh address of the `i`th generated site: `10.0.x.y:7900`, `i` from 0.
pub fn address(i: usize) -> SocketAddr {
    SocketAddr::from(([10, (i / 62_500) as u8, (i / 250 % 250) as u8, (i % 250 + 1) as u8], MESH_PORT))
}

fn id(s: String) -> NodeId {
    NodeId::new(s).expect("generated ids are valid")
}

/// A city of `n` nodes: `city`, `county-1`…, `town-1`…, `harbour-1`…; towns and harbours take
/// the counties in turn as their preferred parent and the city as their fallback.
pub fn reference_city(n: usize) -> Vec<Site> {
    assert!((1..=MAX_NODES).contains(&n), "a generated city has 1 to {MAX_NODES} nodes, not {n}");
    city(CityShape::of(n))
}

/// A city of `shape`, named and linked as [`reference_city`] does.
pub fn city(shape: CityShape) -> Vec<Site> {
    assert!(shape.nodes() <= MAX_NODES, "a generated city has at most {MAX_NODES} nodes");
    let city = id("city".into());
    let mut sites = vec![Site {
        id: city.clone(),
        role: Role::City,
        mesh: address(0),
        http: None,
        raft: None,
        parents: vec![],
        position: Some(CITY_POSITION),
    }];
    let counties: Vec<NodeId> = (1..=shape.counties).map(|i| id(format!("county-{i}"))).collect();
    for (i, c) in counties.iter().enumerate() {
        let mesh = address(sites.len());
        sites.push(Site {
            id: c.clone(),
            role: Role::County,
            mesh,
            http: None,
            raft: None,
            parents: vec![city.clone()],
            position: Some(CITY_POSITION.on_ring(COUNTY_RING, i, shape.counties, 0.0)),
        });
    }
    let county_at =
        |i: usize| sites.get(1 + i % shape.counties.max(1)).and_then(|s| s.position).unwrap_or(CITY_POSITION);
    let county_positions: Vec<Position> = (0..shape.counties.max(1)).map(county_at).collect();
    let per_county = |n: usize| n.div_ceil(shape.counties.max(1));
    let parents = |i: usize| match counties.get(i % counties.len().max(1)) {
        Some(c) => vec![c.clone(), city.clone()],
        None => vec![city.clone()],
    };
    for i in 0..shape.towns {
        let mesh = address(sites.len());
        sites.push(Site {
            id: id(format!("town-{}", i + 1)),
            role: Role::Town,
            mesh,
            http: None,
            raft: None,
            parents: parents(i),
            position: Some(county_positions[i % county_positions.len()].on_ring(
                TOWN_RING,
                i / county_positions.len(),
                per_county(shape.towns),
                0.5,
            )),
        });
    }
    for i in 0..shape.harbours {
        let mesh = address(sites.len());
        let id = id(format!("harbour-{}", i + 1));
        let county = county_positions[(i + 1) % county_positions.len()];
        let position = Some(county.on_ring(HARBOUR_RING, i / county_positions.len(), per_county(shape.harbours), 0.25));
        sites.push(Site { id, role: Role::Harbour, mesh, http: None, raft: None, parents: parents(i + 1), position });
    }
    sites
}

/// Where generated cities are drawn: the reference city's centre (Weihai).
pub const CITY_POSITION: Position = Position { lat: 37.5131, lon: 122.1204 };
/// Radius in degrees of the ring of counties around the city, of towns around their county and
/// of harbours around theirs (wider, so the two do not overlap).
const COUNTY_RING: f64 = 0.32;
const TOWN_RING: f64 = 0.09;
const HARBOUR_RING: f64 = 0.16;

/// `sites` with a voter of the sanctions lists at every city and county site, at the site's
/// host and [`RAFT_PORT`] (cutting a site's host off cuts its node and its voter, as on a box).
pub fn with_voters(mut sites: Vec<Site>) -> Vec<Site> {
    for s in &mut sites {
        if matches!(s.role, Role::City | Role::County) {
            s.raft = Some(SocketAddr::new(s.mesh.ip(), RAFT_PORT));
        }
    }
    sites
}

#[cfg(test)]
mod tests {
    use super::*;
    use node::mesh::topology::Topology;

    #[test]
    fn the_reference_size_is_the_reference_city() {
        assert_eq!(
            CityShape::of(REFERENCE_NODES),
            CityShape { counties: REFERENCE_COUNTIES, towns: REFERENCE_TOWNS, harbours: REFERENCE_HARBOURS }
        );
        assert_eq!(CityShape::of(20), CityShape { counties: 1, towns: 7, harbours: 11 });
        assert_eq!(CityShape::of(2), CityShape { counties: 0, towns: 0, harbours: 1 });
        assert_eq!(CityShape::of(1), CityShape { counties: 0, towns: 0, harbours: 0 });
    }

    #[test]
    fn generated_cities_are_valid_topologies() {
        for n in [1, 2, 3, 20, REFERENCE_NODES, 1760] {
            let sites = reference_city(n);
            assert_eq!(sites.len(), n);
            assert!(sites.iter().all(|s| s.position.is_some()), "every generated site is placed on the map");
            let t = Topology::from_sites(sites).unwrap_or_else(|e| panic!("{n} nodes: {e}"));
            assert_eq!(t.city().id.as_str(), "city");
        }
    }
}
