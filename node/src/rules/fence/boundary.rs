//! A fence boundary (edges as great-circle arcs, polygons as areas) and the distance from a
//! position to it.
//!
//! Distance: for each edge, the closest point on the arc is found on the sphere (vector
//! algebra, see `sphere`), and the distance to that point is measured on the WGS84 ellipsoid
//! with geo's `Geodesic` (Karney). Finding the foot on a sphere rather than the ellipsoid moves
//! it slightly along the edge, which changes the distance only to second order; the tests
//! compare against a dense-sampling brute force (docs/fences.md has the figures).

use super::geojson::{self, polygon_centre, project_rings, BoundaryError, LatLon, Shapes};
use super::sphere::{angle, inside_rings, Edge, Gnomonic, LatLonBox, EARTH_RADIUS_M, V3};
use super::BoundaryLimits;
use geo::{Distance, Geodesic, Point};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::RTree;
use std::io::Read;
use std::path::Path;

/// Spherical and ellipsoidal distances differ by under 0.7% anywhere on Earth; prefilters
/// widen their reach by this factor so they never drop an edge the ellipsoid would keep.
const SPHERE_SLACK: f64 = 1.01;

/// A polygon's area, for the inside test.
#[derive(Debug, Clone)]
struct Area {
    proj: Gnomonic,
    rings: Vec<Vec<(f64, f64)>>,
    bbox: LatLonBox,
}

/// A validated boundary. Build one from GeoJSON; it is immutable afterwards.
#[derive(Debug, Clone)]
pub struct Boundary {
    edges: Vec<Edge>,
    areas: Vec<Area>,
    vertices: usize,
}

/// Distance and containment of one position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measure {
    /// Geodesic distance to the nearest edge, metres; `None` when it is beyond the reach the
    /// measurement was asked for (the prefilters skipped the exact computation).
    pub distance_m: Option<f64>,
    /// Inside one of the boundary's polygons.
    pub inside: bool,
}

impl Boundary {
    /// Parses and validates a GeoJSON document.
    pub fn from_geojson(bytes: &[u8], limits: &BoundaryLimits) -> Result<Self, BoundaryError> {
        Ok(Self::from_shapes(geojson::parse(bytes, limits)?))
    }

    /// Reads at most `limits.max_file_bytes` from `path`, then parses it.
    pub fn from_geojson_file(path: &Path, limits: &BoundaryLimits) -> Result<Self, BoundaryError> {
        let in_file = |error| BoundaryError::InFile { path: path.display().to_string(), error: Box::new(error) };
        let io = |source| in_file(BoundaryError::Io { path: path.display().to_string(), source });
        let file = std::fs::File::open(path).map_err(io)?;
        let mut bytes = Vec::new();
        // One byte over the cap tells "too large" from "exactly at the cap".
        file.take(limits.max_file_bytes.saturating_add(1)).read_to_end(&mut bytes).map_err(io)?;
        Self::from_geojson(&bytes, limits).map_err(in_file)
    }

    fn from_shapes(shapes: Shapes) -> Self {
        let mut edges = Vec::new();
        let mut vertices = 0;
        let mut add_chain = |pts: &[LatLon], edges: &mut Vec<Edge>| {
            vertices += pts.len();
            for w in pts.windows(2) {
                let a = V3::from_lat_lon(w[0].0, w[0].1);
                let b = V3::from_lat_lon(w[1].0, w[1].1);
                edges.push(Edge::new(a, b));
            }
        };
        for line in &shapes.lines {
            add_chain(line, &mut edges);
        }
        let mut areas = Vec::new();
        for rings in &shapes.polygons {
            let first_edge = edges.len();
            for ring in rings {
                add_chain(ring, &mut edges);
            }
            let Some(centre) = rings.first().and_then(|r| polygon_centre(r)) else {
                continue; // Refused by the parser already; kept total for safety.
            };
            let proj = Gnomonic::new(centre);
            let bbox = edges[first_edge..]
                .iter()
                .fold(LatLonBox::EMPTY, |b, e| b.union(LatLonBox::around_cap(e.mid, e.half * SPHERE_SLACK)));
            areas.push(Area { proj, rings: project_rings(&proj, rings), bbox });
        }
        Boundary { edges, areas, vertices }
    }

    pub fn vertex_count(&self) -> usize {
        self.vertices
    }

    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    pub fn polygon_count(&self) -> usize {
        self.areas.len()
    }

    /// Geodesic distance in metres from a position to the nearest edge, with no prefilter
    /// (every edge is examined). `None` for an invalid position.
    pub fn distance_m(&self, lat: f64, lon: f64) -> Option<f64> {
        if !valid_position(lat, lon) {
            return None;
        }
        let p = V3::from_lat_lon(lat, lon);
        nearest(p, lat, lon, f64::INFINITY, || self.edges.iter())
    }

    /// Whether a position is inside one of the boundary's polygons.
    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        valid_position(lat, lon) && self.inside(V3::from_lat_lon(lat, lon), lat, lon)
    }

    fn inside(&self, p: V3, lat: f64, lon: f64) -> bool {
        self.areas
            .iter()
            .any(|a| a.bbox.contains(lat, lon) && a.proj.project(p).is_some_and(|(x, y)| inside_rings(&a.rings, x, y)))
    }
}

pub(super) fn valid_position(lat: f64, lon: f64) -> bool {
    lat.is_finite() && lon.is_finite() && (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)
}

/// The smallest geodesic distance from `p` to the candidate edges whose spherical distance is
/// within `reach` radians; `None` if none is. Ellipsoid and sphere can order two nearly
/// equidistant edges differently, so every edge within 1% of the spherical minimum is
/// measured on the ellipsoid, not just the first.
fn nearest<'e, I>(p: V3, lat: f64, lon: f64, reach: f64, edges: impl Fn() -> I) -> Option<f64>
where
    I: Iterator<Item = &'e Edge>,
{
    let min = edges().map(|e| e.closest(p).1).fold(f64::INFINITY, f64::min);
    if min.is_nan() || min > reach {
        return None;
    }
    // 2e-7 rad ≈ 1.3 m: keeps both edges at a shared vertex.
    let window = min * SPHERE_SLACK + 2e-7;
    let here = Point::new(lon, lat);
    edges()
        .filter_map(|e| {
            let (c, a) = e.closest(p);
            (a <= window).then(|| {
                let (clat, clon) = c.lat_lon();
                Geodesic.distance(here, Point::new(clon, clat))
            })
        })
        .reduce(f64::min)
}

type Indexed = GeomWithData<Rectangle<[f64; 2]>, u32>;

/// A boundary prepared for measuring within a fixed reach: each edge's lat/lon box widened by
/// the reach goes into an R-tree, and the union of those boxes is the first, cheapest test.
pub(super) struct Prepared {
    reach: f64,
    bbox: LatLonBox,
    tree: RTree<Indexed>,
    /// cos(half-length + reach) per edge: an edge can be within reach of `p` only if
    /// `p · mid >= cos_reach` (one dot product rules most candidates out).
    cos_reach: Vec<f64>,
}

impl Prepared {
    pub fn new(b: &Boundary, reach_m: f64) -> Prepared {
        let reach = reach_m / EARTH_RADIUS_M * SPHERE_SLACK;
        let mut bbox = LatLonBox::EMPTY;
        let mut items = Vec::with_capacity(b.edges.len());
        let mut cos_reach = Vec::with_capacity(b.edges.len());
        for (i, e) in b.edges.iter().enumerate() {
            let r = (e.half + reach) * SPHERE_SLACK;
            let bx = LatLonBox::around_cap(e.mid, r);
            bbox = bbox.union(bx);
            let rect = Rectangle::from_corners([bx.lon_min, bx.lat_min], [bx.lon_max, bx.lat_max]);
            // Edge counts are bounded by the vertex limit, far below u32::MAX.
            items.push(GeomWithData::new(rect, i as u32));
            cos_reach.push(r.min(std::f64::consts::PI).cos());
        }
        Prepared { reach, bbox, tree: RTree::bulk_load(items), cos_reach }
    }

    fn candidates<'a>(&'a self, b: &'a Boundary, p: V3, lat: f64, lon: f64) -> impl Iterator<Item = &'a Edge> + 'a {
        self.tree
            .locate_all_at_point(&[lon, lat])
            .map(|g| g.data as usize)
            .filter(move |&i| self.cos_reach.get(i).is_some_and(|&c| p.dot(b.edges[i].mid) >= c))
            .filter_map(|i| b.edges.get(i))
    }

    /// Distance (if within reach) and containment of `p`.
    pub fn measure(&self, b: &Boundary, p: V3, lat: f64, lon: f64) -> Measure {
        if !self.bbox.contains(lat, lon) {
            // Far from every edge; polygons lie inside the edges' boxes, so not inside either.
            return Measure { distance_m: None, inside: false };
        }
        Measure {
            distance_m: nearest(p, lat, lon, self.reach, || self.candidates(b, p, lat, lon)),
            inside: b.inside(p, lat, lon),
        }
    }

    /// Whether the move from `prev` to `p` crosses an edge. Only moves shorter than the reach
    /// are examined: any edge such a move crosses is within reach of `p`, so it is among the
    /// candidates. A longer jump between two reports is left to the distance test.
    pub fn crossed(&self, b: &Boundary, prev: V3, p: V3, lat: f64, lon: f64) -> bool {
        if angle(prev, p) > self.reach || !self.bbox.contains(lat, lon) {
            return false;
        }
        self.candidates(b, p, lat, lon).any(|e| e.crossed_by(prev, p))
    }
}
