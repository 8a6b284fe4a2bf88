//! The subset of GeoJSON (RFC 7946) a fence boundary is given in, parsed by hand over
//! `serde_json::Value` so every limit is ours: file size, vertex count, coordinate ranges, and
//! the shape of edges our geometry can take. Every error names where in the document it is,
//! as a path such as `$.features[2].geometry.coordinates[0][5]`.

use super::sphere::{angle, inside_rings, Gnomonic, V3};
use super::BoundaryLimits;
use serde_json::Value;
use std::fmt;
use thiserror::Error;

/// Longest edge accepted, degrees of arc. Longer edges are ill-conditioned as arcs and are
/// almost certainly a mistake in a boundary file; add intermediate vertices instead.
const MAX_EDGE_DEG: f64 = 90.0;
/// Largest polygon accepted: every vertex within this many degrees of the ring's centre, which
/// keeps the gnomonic projection used for the inside test well conditioned.
const MAX_POLYGON_RADIUS_DEG: f64 = 60.0;

/// Why a boundary was refused.
#[derive(Debug, Error)]
pub enum BoundaryError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("GeoJSON is larger than the {cap}-byte limit")]
    TooLarge { cap: u64 },
    #[error("not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{at}: {what}")]
    Invalid { at: String, what: String },
    #[error("more than {cap} vertices")]
    TooManyVertices { cap: usize },
    #[error("no LineString, MultiLineString, Polygon or MultiPolygon in the document")]
    Empty,
    #[error("{path}: {error}")]
    InFile { path: String, error: Box<BoundaryError> },
}

/// (latitude, longitude) in degrees.
pub(super) type LatLon = (f64, f64);

/// What a document describes: open lines, and polygons (outer ring first, then holes; each
/// ring closed, its last position equal to its first).
#[derive(Debug, Default)]
pub(super) struct Shapes {
    pub lines: Vec<Vec<LatLon>>,
    pub polygons: Vec<Vec<Vec<LatLon>>>,
    vertices: usize,
}

/// Where in the document we are; rendered only when there is an error to report.
#[derive(Clone, Copy)]
enum Step<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

#[derive(Clone, Copy)]
struct Loc<'a> {
    parent: Option<&'a Loc<'a>>,
    step: Step<'a>,
}

impl<'a> Loc<'a> {
    fn key(&'a self, k: &'a str) -> Loc<'a> {
        Loc { parent: Some(self), step: Step::Key(k) }
    }
    fn index(&'a self, i: usize) -> Loc<'a> {
        Loc { parent: Some(self), step: Step::Index(i) }
    }
    fn err(&self, what: impl Into<String>) -> BoundaryError {
        BoundaryError::Invalid { at: self.to_string(), what: what.into() }
    }
}

impl fmt::Display for Loc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.parent {
            p.fmt(f)?;
        }
        match self.step {
            Step::Root => f.write_str("$"),
            Step::Key(k) => write!(f, ".{k}"),
            Step::Index(i) => write!(f, "[{i}]"),
        }
    }
}

pub(super) fn parse(bytes: &[u8], limits: &BoundaryLimits) -> Result<Shapes, BoundaryError> {
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(BoundaryError::TooLarge { cap: limits.max_file_bytes });
    }
    // serde_json bounds nesting depth (128) itself; size is bounded above.
    let doc: Value = serde_json::from_slice(bytes)?;
    let mut p = Parser { shapes: Shapes::default(), max_vertices: limits.max_vertices };
    let root = Loc { parent: None, step: Step::Root };
    p.object(&doc, &root)?;
    if p.shapes.lines.is_empty() && p.shapes.polygons.is_empty() {
        return Err(BoundaryError::Empty);
    }
    Ok(p.shapes)
}

struct Parser {
    shapes: Shapes,
    max_vertices: usize,
}

fn type_of<'v>(v: &'v Value, at: &Loc<'_>) -> Result<&'v str, BoundaryError> {
    if !v.is_object() {
        return Err(at.err("expected a GeoJSON object"));
    }
    v.get("type").and_then(Value::as_str).ok_or_else(|| at.err("missing or non-string \"type\""))
}

fn array<'v>(v: Option<&'v Value>, at: &Loc<'_>) -> Result<&'v Vec<Value>, BoundaryError> {
    v.and_then(Value::as_array).ok_or_else(|| at.err("expected an array"))
}

impl Parser {
    fn object(&mut self, v: &Value, at: &Loc<'_>) -> Result<(), BoundaryError> {
        match type_of(v, at)? {
            "FeatureCollection" => {
                let at_features = at.key("features");
                for (i, f) in array(v.get("features"), &at_features)?.iter().enumerate() {
                    let at_f = at_features.index(i);
                    if type_of(f, &at_f)? != "Feature" {
                        return Err(at_f.key("type").err("expected \"Feature\""));
                    }
                    self.feature(f, &at_f)?;
                }
                Ok(())
            }
            "Feature" => self.feature(v, at),
            _ => self.geometry(v, at),
        }
    }

    fn feature(&mut self, v: &Value, at: &Loc<'_>) -> Result<(), BoundaryError> {
        let at_g = at.key("geometry");
        match v.get("geometry") {
            None | Some(Value::Null) => Err(at_g.err("feature has no geometry")),
            Some(g) => self.geometry(g, &at_g),
        }
    }

    fn geometry(&mut self, v: &Value, at: &Loc<'_>) -> Result<(), BoundaryError> {
        let at_c = at.key("coordinates");
        let coords = v.get("coordinates");
        match type_of(v, at)? {
            "LineString" => {
                let line = self.line(coords, &at_c)?;
                self.shapes.lines.push(line);
            }
            "MultiLineString" => {
                for (i, l) in array(coords, &at_c)?.iter().enumerate() {
                    let line = self.line(Some(l), &at_c.index(i))?;
                    self.shapes.lines.push(line);
                }
            }
            "Polygon" => {
                let poly = self.polygon(coords, &at_c)?;
                self.shapes.polygons.push(poly);
            }
            "MultiPolygon" => {
                for (i, p) in array(coords, &at_c)?.iter().enumerate() {
                    let poly = self.polygon(Some(p), &at_c.index(i))?;
                    self.shapes.polygons.push(poly);
                }
            }
            t @ ("Point" | "MultiPoint" | "GeometryCollection") => {
                return Err(at.key("type").err(format!(
                    "a {t} cannot be a fence boundary: use LineString, MultiLineString, \
                     Polygon or MultiPolygon"
                )))
            }
            t => {
                let t: String = t.chars().take(40).collect();
                return Err(at.key("type").err(format!("unknown GeoJSON type {t:?}")));
            }
        }
        Ok(())
    }

    fn line(&mut self, v: Option<&Value>, at: &Loc<'_>) -> Result<Vec<LatLon>, BoundaryError> {
        let pts = self.positions(v, at)?;
        if pts.len() < 2 {
            return Err(at.err("a LineString needs at least 2 positions"));
        }
        Ok(pts)
    }

    fn polygon(&mut self, v: Option<&Value>, at: &Loc<'_>) -> Result<Vec<Vec<LatLon>>, BoundaryError> {
        let mut rings = Vec::new();
        for (i, r) in array(v, at)?.iter().enumerate() {
            let at_r = at.index(i);
            let ring = self.positions(Some(r), &at_r)?;
            if ring.len() < 4 {
                return Err(at_r.err("a polygon ring needs at least 4 positions"));
            }
            if ring.first() != ring.last() {
                return Err(at_r.err("polygon ring is not closed: last position must equal the first"));
            }
            rings.push(ring);
        }
        if rings.is_empty() {
            return Err(at.err("a Polygon needs at least one ring"));
        }
        check_polygon_extent(&rings, at)?;
        Ok(rings)
    }

    fn positions(&mut self, v: Option<&Value>, at: &Loc<'_>) -> Result<Vec<LatLon>, BoundaryError> {
        let arr = array(v, at)?;
        let mut out: Vec<LatLon> = Vec::with_capacity(arr.len().min(self.max_vertices));
        for (i, p) in arr.iter().enumerate() {
            let at_p = at.index(i);
            self.shapes.vertices += 1;
            if self.shapes.vertices > self.max_vertices {
                return Err(BoundaryError::TooManyVertices { cap: self.max_vertices });
            }
            let pos = position(p, &at_p)?;
            if let Some(prev) = out.last() {
                check_edge(*prev, pos, &at_p)?;
            }
            out.push(pos);
        }
        Ok(out)
    }
}

fn position(v: &Value, at: &Loc<'_>) -> Result<LatLon, BoundaryError> {
    let arr = v
        .as_array()
        .filter(|a| (2..=3).contains(&a.len()))
        .ok_or_else(|| at.err("a position is [longitude, latitude] or [longitude, latitude, altitude]"))?;
    let num = |i: usize| arr[i].as_f64().filter(|x| x.is_finite());
    let (Some(lon), Some(lat)) = (num(0), num(1)) else {
        return Err(at.err("coordinates must be finite numbers"));
    };
    if !(-180.0..=180.0).contains(&lon) {
        return Err(at.err(format!("longitude {lon} is outside [-180, 180]")));
    }
    if !(-90.0..=90.0).contains(&lat) {
        return Err(at.err(format!("latitude {lat} is outside [-90, 90]")));
    }
    Ok((lat, lon))
}

fn check_edge(a: LatLon, b: LatLon, at: &Loc<'_>) -> Result<(), BoundaryError> {
    if (a.1 - b.1).abs() > 180.0 {
        return Err(at.err(
            "edge crosses the antimeridian (longitudes differ by more than 180°): \
             split the geometry at ±180° as RFC 7946 asks",
        ));
    }
    let len = angle(V3::from_lat_lon(a.0, a.1), V3::from_lat_lon(b.0, b.1)).to_degrees();
    if len > MAX_EDGE_DEG {
        return Err(at.err(format!("edge is {len:.1}° of arc, longer than {MAX_EDGE_DEG}°: add intermediate vertices")));
    }
    Ok(())
}

/// The projection centre of a polygon: the normalised sum of its outer ring's vertices.
pub(super) fn polygon_centre(outer: &[LatLon]) -> Option<V3> {
    // The closing position repeats the first; skip it so it is not counted twice.
    let open = &outer[..outer.len().saturating_sub(1)];
    open.iter().fold(V3::ZERO, |acc, &(lat, lon)| acc.add(V3::from_lat_lon(lat, lon))).unit()
}

fn check_polygon_extent(rings: &[Vec<LatLon>], at: &Loc<'_>) -> Result<(), BoundaryError> {
    let Some(centre) = rings.first().and_then(|r| polygon_centre(r)) else {
        return Err(at.err("polygon has no well-defined centre (its vertices cancel out)"));
    };
    let max = MAX_POLYGON_RADIUS_DEG.to_radians();
    let far = rings.iter().flatten().any(|&(lat, lon)| angle(centre, V3::from_lat_lon(lat, lon)) > max);
    if far {
        return Err(at.err(format!("polygon reaches more than {MAX_POLYGON_RADIUS_DEG}° from its centre: split it")));
    }
    // A ring around a pole has no sensible lat/lon bounding box; refuse it plainly. (The
    // antimeridian rule already makes such rings all but impossible; this is the backstop.)
    let g = Gnomonic::new(centre);
    let projected = project_rings(&g, rings);
    for pole_z in [1.0, -1.0] {
        let pole = V3 { x: 0.0, y: 0.0, z: pole_z };
        if let Some((x, y)) = g.project(pole) {
            if inside_rings(&projected, x, y) {
                return Err(at.err("polygon contains a pole; split it"));
            }
        }
    }
    Ok(())
}

/// Rings in gnomonic coordinates; vertices that cannot be projected are dropped (the extent
/// check above keeps every vertex projectable).
pub(super) fn project_rings(g: &Gnomonic, rings: &[Vec<LatLon>]) -> Vec<Vec<(f64, f64)>> {
    rings.iter().map(|r| r.iter().filter_map(|&(lat, lon)| g.project(V3::from_lat_lon(lat, lon))).collect()).collect()
}
