//! Unit-sphere vector ("n-vector") geometry for boundary edges taken as great-circle arcs.
//!
//! Why vectors rather than bearings: the closest point on an arc, whether two arcs cross, and
//! whether an arc can be near a point at all are each a few dot and cross products, with no
//! special cases at the poles and no `Indeterminate` outcome.

/// Mean Earth radius (IUGG), metres. Only used to turn metres into angles for prefilters;
/// reported distances are ellipsoidal.
pub(super) const EARTH_RADIUS_M: f64 = 6_371_008.8;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct V3 {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

impl V3 {
    pub const ZERO: V3 = V3 { x: 0.0, y: 0.0, z: 0.0 };

    pub fn from_lat_lon(lat_deg: f64, lon_deg: f64) -> V3 {
        let (sl, cl) = lat_deg.to_radians().sin_cos();
        let (so, co) = lon_deg.to_radians().sin_cos();
        V3 { x: cl * co, y: cl * so, z: sl }
    }

    /// (latitude, longitude) in degrees of a unit vector.
    pub fn lat_lon(self) -> (f64, f64) {
        let lat = self.z.atan2(self.x.hypot(self.y)).to_degrees();
        let lon = self.y.atan2(self.x).to_degrees();
        (lat, lon)
    }

    pub fn dot(self, o: V3) -> f64 {
        self.x * o.x + self.y * o.y + self.z * o.z
    }

    pub fn cross(self, o: V3) -> V3 {
        V3 { x: self.y * o.z - self.z * o.y, y: self.z * o.x - self.x * o.z, z: self.x * o.y - self.y * o.x }
    }

    pub fn add(self, o: V3) -> V3 {
        V3 { x: self.x + o.x, y: self.y + o.y, z: self.z + o.z }
    }

    pub fn scale(self, k: f64) -> V3 {
        V3 { x: self.x * k, y: self.y * k, z: self.z * k }
    }

    pub fn norm(self) -> f64 {
        self.dot(self).sqrt()
    }

    /// The unit vector along `self`, or `None` if it is (numerically) zero.
    pub fn unit(self) -> Option<V3> {
        let n = self.norm();
        (n > 1e-300).then(|| self.scale(1.0 / n))
    }
}

/// Angle between two unit vectors, radians; atan2 keeps full precision for tiny angles.
pub(super) fn angle(a: V3, b: V3) -> f64 {
    a.cross(b).norm().atan2(a.dot(b))
}

/// A boundary edge: the shorter great-circle arc from `a` to `b` (under 90° by construction).
#[derive(Debug, Clone, Copy)]
pub(super) struct Edge {
    pub a: V3,
    pub b: V3,
    /// Unit normal of the arc's great circle, `ZERO` for a degenerate (point) arc.
    pub n: V3,
    /// Midpoint and half-length: the arc lies inside the cap of this radius around `mid`.
    pub mid: V3,
    pub half: f64,
}

impl Edge {
    pub fn new(a: V3, b: V3) -> Edge {
        let n = a.cross(b).unit().unwrap_or(V3::ZERO);
        let mid = a.add(b).unit().unwrap_or(a);
        Edge { a, b, n, mid, half: angle(a, b) / 2.0 }
    }

    /// The point of the arc closest to `p` (on the sphere) and its angular distance.
    pub fn closest(&self, p: V3) -> (V3, f64) {
        if self.n != V3::ZERO {
            // Foot of the perpendicular from p onto the great circle, if it falls on the arc.
            let foot = p.add(self.n.scale(-p.dot(self.n))).unit();
            if let Some(c) = foot {
                if self.a.cross(c).dot(self.n) >= 0.0 && c.cross(self.b).dot(self.n) >= 0.0 {
                    return (c, angle(p, c));
                }
            }
        }
        let (da, db) = (angle(p, self.a), angle(p, self.b));
        if da <= db {
            (self.a, da)
        } else {
            (self.b, db)
        }
    }

    /// Whether the arc from `p` to `q` (a vessel's move, under 180°) meets this arc.
    pub fn crossed_by(&self, p: V3, q: V3) -> bool {
        let m = p.cross(q);
        let Some(x) = self.n.cross(m).unit() else {
            // Same great circle, or a degenerate arc: the distance test covers these.
            return false;
        };
        let on = |a: V3, b: V3, n: V3, x: V3| a.cross(x).dot(n) >= 0.0 && x.cross(b).dot(n) >= 0.0;
        [x, x.scale(-1.0)].into_iter().any(|x| on(self.a, self.b, self.n, x) && on(p, q, m, x))
    }
}

/// A latitude/longitude box, degrees. `lon_min > lon_max` never happens: boxes that would
/// wrap the antimeridian are clamped to the full longitude range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct LatLonBox {
    pub lat_min: f64,
    pub lat_max: f64,
    pub lon_min: f64,
    pub lon_max: f64,
}

impl LatLonBox {
    pub const EMPTY: LatLonBox = LatLonBox {
        lat_min: f64::INFINITY,
        lat_max: f64::NEG_INFINITY,
        lon_min: f64::INFINITY,
        lon_max: f64::NEG_INFINITY,
    };

    /// The box around a spherical cap of angular radius `r` (radians) centred on `c`.
    pub fn around_cap(c: V3, r: f64) -> LatLonBox {
        let (lat, lon) = c.lat_lon();
        let r_deg = r.to_degrees();
        let lat_min = lat - r_deg;
        let lat_max = lat + r_deg;
        let cos_lat = lat.to_radians().cos();
        if lat_max >= 90.0 || lat_min <= -90.0 || r.sin() >= cos_lat {
            // The cap reaches a pole: every longitude is within reach.
            return LatLonBox {
                lat_min: lat_min.max(-90.0),
                lat_max: lat_max.min(90.0),
                lon_min: -180.0,
                lon_max: 180.0,
            };
        }
        let dlon = (r.sin() / cos_lat).asin().to_degrees();
        let (lon_min, lon_max) =
            if lon - dlon < -180.0 || lon + dlon > 180.0 { (-180.0, 180.0) } else { (lon - dlon, lon + dlon) };
        LatLonBox { lat_min, lat_max, lon_min, lon_max }
    }

    pub fn union(self, o: LatLonBox) -> LatLonBox {
        LatLonBox {
            lat_min: self.lat_min.min(o.lat_min),
            lat_max: self.lat_max.max(o.lat_max),
            lon_min: self.lon_min.min(o.lon_min),
            lon_max: self.lon_max.max(o.lon_max),
        }
    }

    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        lat >= self.lat_min && lat <= self.lat_max && lon >= self.lon_min && lon <= self.lon_max
    }
}

/// A gnomonic projection about `centre`: great circles become straight lines, so a planar
/// point-in-polygon test on projected vertices is exact for great-circle edges. Valid for
/// points less than 90° from the centre; polygons are limited well inside that.
#[derive(Debug, Clone, Copy)]
pub(super) struct Gnomonic {
    pub centre: V3,
    east: V3,
    north: V3,
}

impl Gnomonic {
    pub fn new(centre: V3) -> Gnomonic {
        let z = V3 { x: 0.0, y: 0.0, z: 1.0 };
        let east = z.cross(centre).unit().unwrap_or(V3 { x: 0.0, y: 1.0, z: 0.0 });
        let north = centre.cross(east);
        Gnomonic { centre, east, north }
    }

    /// Planar coordinates of `p`, or `None` if `p` is too far from the centre to project.
    pub fn project(&self, p: V3) -> Option<(f64, f64)> {
        let d = p.dot(self.centre);
        // cos 84°: beyond this the projection blows up, and no accepted polygon reaches there.
        (d > 0.1).then(|| (p.dot(self.east) / d, p.dot(self.north) / d))
    }
}

/// Even-odd rule over all rings (outer and holes), projected coordinates.
pub(super) fn inside_rings(rings: &[Vec<(f64, f64)>], x: f64, y: f64) -> bool {
    let mut inside = false;
    for ring in rings {
        let mut prev = match ring.last() {
            Some(p) => *p,
            None => continue,
        };
        for &(xi, yi) in ring {
            let (xj, yj) = prev;
            if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
                inside = !inside;
            }
            prev = (xi, yi);
        }
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Closest, HaversineClosestPoint, Line, Point};

    #[test]
    fn closest_point_agrees_with_geo() {
        // Our vector form against geo's bearing-based HaversineClosestPoint.
        let cases = [
            ((37.0, 122.0), (37.0, 124.0), (37.5, 123.0)),
            ((35.5, 122.2), (34.0, 122.03), (34.9, 121.5)),
            ((32.18, 123.8), (32.18, 125.4), (31.0, 126.0)),
            ((10.0, -5.0), (12.0, 5.0), (11.9, 0.3)),
        ];
        for ((la, oa), (lb, ob), (lp, op)) in cases {
            let arc = Edge::new(V3::from_lat_lon(la, oa), V3::from_lat_lon(lb, ob));
            let (c, _) = arc.closest(V3::from_lat_lon(lp, op));
            let (lc, oc) = c.lat_lon();
            let line = Line::new(Point::new(oa, la), Point::new(ob, lb));
            let Closest::SinglePoint(g) = line.haversine_closest_point(&Point::new(op, lp)) else {
                panic!("geo gave no single point");
            };
            assert!((g.y() - lc).abs() < 1e-7, "lat {} vs {}", g.y(), lc);
            assert!((g.x() - oc).abs() < 1e-7, "lon {} vs {}", g.x(), oc);
        }
    }

    #[test]
    fn arcs_cross() {
        let edge = Edge::new(V3::from_lat_lon(37.0, 122.0), V3::from_lat_lon(37.0, 124.0));
        let south = V3::from_lat_lon(36.99, 123.0);
        let north = V3::from_lat_lon(37.02, 123.0);
        assert!(edge.crossed_by(south, north));
        assert!(edge.crossed_by(north, south));
        let east_s = V3::from_lat_lon(36.99, 124.5);
        let east_n = V3::from_lat_lon(37.02, 124.5);
        assert!(!edge.crossed_by(east_s, east_n));
        assert!(!edge.crossed_by(south, south));
    }

    #[test]
    fn cap_box_contains_the_cap() {
        let c = V3::from_lat_lon(60.0, 10.0);
        let b = LatLonBox::around_cap(c, 1f64.to_radians());
        assert!(b.contains(60.99, 10.0) && b.contains(59.01, 10.0));
        // At 60°N one degree of arc spans two degrees of longitude.
        assert!(b.contains(60.0, 11.99) && !b.contains(60.0, 12.1));
    }
}
