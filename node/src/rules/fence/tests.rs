use super::sphere::{Edge, V3};
use super::*;
use geo::{Bearing, Destination, Distance, Geodesic, Haversine, InterpolatePoint, Point, Rhumb};
use proptest::prelude::*;

const NM: f64 = METRES_PER_NM;

fn boundary(json: &str) -> Boundary {
    Boundary::from_geojson(json.as_bytes(), &BoundaryLimits::default()).expect("valid GeoJSON")
}

fn boundary_err(json: &str) -> String {
    match Boundary::from_geojson(json.as_bytes(), &BoundaryLimits::default()) {
        Ok(_) => panic!("accepted bad GeoJSON: {json}"),
        Err(e) => e.to_string(),
    }
}

/// (lat, lon) reached from (lat, lon) along `bearing` for `m` metres on WGS84.
fn dest(lat: f64, lon: f64, bearing: f64, m: f64) -> (f64, f64) {
    let p = Geodesic.destination(Point::new(lon, lat), bearing, m);
    (p.y(), p.x())
}

/// A LineString along the 37°N parallel from 122°E to 124°E with a vertex every 0.01°, so
/// the great-circle bulge between vertices is about a centimetre.
fn parallel_37() -> Boundary {
    let coords: Vec<String> = (0..=200).map(|i| format!("[{}, 37.0]", 122.0 + f64::from(i) * 0.01)).collect();
    boundary(&format!(r#"{{"type":"LineString","coordinates":[{}]}}"#, coords.join(",")))
}

fn tracker(b: Boundary) -> FenceTracker {
    FenceTracker::new(b, FenceConfig::default()).expect("default config is valid")
}

fn pmz() -> Boundary {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/boundaries/china-rok-pmz.geojson");
    Boundary::from_geojson_file(&path, &BoundaryLimits::default()).expect("shipped PMZ loads")
}

#[test]
fn one_nm_north_of_a_parallel() {
    let b = parallel_37();
    let (lat, lon) = dest(37.0, 123.0, 0.0, NM);
    let d = b.distance_m(lat, lon).expect("valid position");
    assert!((d - NM).abs() < 1.0, "{d}");
    // And south, and 3 nm.
    let (lat, lon) = dest(37.0, 123.005, 180.0, 3.0 * NM);
    let d = b.distance_m(lat, lon).expect("valid position");
    assert!((d - 3.0 * NM).abs() < 1.0, "{d}");
}

#[test]
fn a_single_long_edge_is_a_great_circle_not_a_parallel() {
    // Two vertices on 37°N, 2° apart: the edge bulges north of the parallel by ≈ 466 m at
    // its middle, so a point 1 nm north of the parallel is ≈ 466 m closer than 1 nm.
    let b = boundary(r#"{"type":"LineString","coordinates":[[122,37],[124,37]]}"#);
    let (lat, lon) = dest(37.0, 123.0, 0.0, NM);
    let d = b.distance_m(lat, lon).expect("valid position");
    let bulge = NM - d;
    assert!((440.0..490.0).contains(&bulge), "bulge {bulge}");
}

#[test]
fn zones_approaching_a_line() {
    let mut t = tracker(parallel_37());
    let mmsi = 412_000_001;
    let mut events = Vec::new();
    // From 5 nm north straight south onto the line, one report per 0.05 nm.
    for (i, k) in (0..=100).rev().enumerate() {
        let (lat, lon) = dest(37.0, 123.0, 0.0, f64::from(k) * 0.05 * NM);
        if let Some(c) = t.observe(mmsi, lat, lon, i as u64 * 10_000) {
            events.push((c.kind, c.from, c.to));
        }
    }
    use CrossingKind::*;
    assert_eq!(
        events,
        [
            (Escalated, Zone::Clear, Zone::Warning),
            (Escalated, Zone::Warning, Zone::Alert),
            (Escalated, Zone::Alert, Zone::Recall),
        ]
    );
    assert_eq!(t.zone_of(mmsi), Some(Zone::Recall));
}

#[test]
fn riding_a_ring_alerts_once() {
    let mut t = tracker(parallel_37());
    let mmsi = 412_000_002;
    let mut alerts = 0;
    let mut changes = 0;
    // Sail east along the 1 nm ring, weaving ±60 m across it, for 200 reports.
    for i in 0..200u32 {
        let weave = if i % 2 == 0 { -60.0 } else { 60.0 };
        let lon = 122.2 + f64::from(i) * 0.005;
        let (lat, lon) = dest(37.0, lon, 0.0, NM + weave);
        if let Some(c) = t.observe(mmsi, lat, lon, u64::from(i) * 10_000) {
            changes += 1;
            alerts += usize::from(c.is_alert());
        }
    }
    assert_eq!(alerts, 1, "one escalation, Clear → Alert");
    assert_eq!(changes, 1, "never de-escalated: never beyond 1.1 nm");
    assert_eq!(t.zone_of(mmsi), Some(Zone::Alert));
}

#[test]
fn deescalation_needs_the_margin_and_leaving_then_returning_alerts_again_after_the_cooldown() {
    let mut t = tracker(parallel_37());
    let m = 412_000_003;
    let at = |nm: f64| dest(37.0, 123.0, 0.0, nm * NM);
    let mut clock = 0u64;
    let mut obs = |t: &mut FenceTracker, nm: f64, after_ms: u64| {
        clock += after_ms;
        let (lat, lon) = at(nm);
        t.observe(m, lat, lon, clock)
    };
    assert_eq!(obs(&mut t, 0.9, 10_000).map(|c| c.to), Some(Zone::Alert));
    assert_eq!(obs(&mut t, 1.05, 10_000), None, "inside the margin");
    let c = obs(&mut t, 1.15, 10_000).expect("de-escalation is reported");
    assert_eq!((c.kind, c.from, c.to), (CrossingKind::Deescalated, Zone::Alert, Zone::Warning));
    assert!(!c.is_alert());
    let c = obs(&mut t, 0.95, 10_000).expect("back in within the cooldown: the zone changes");
    assert_eq!((c.kind, c.to), (CrossingKind::Repeated, Zone::Alert));
    assert!(!c.is_alert(), "20 s after the last alert into this zone");
    let c = obs(&mut t, 10.0, 10_000).expect("far away");
    assert_eq!((c.to, c.distance_m), (Zone::Clear, None));
    assert_eq!(t.zone_of(m), Some(Zone::Clear), "held while the cooldown runs");
    let c = obs(&mut t, 2.0, 10_000).expect("returns");
    assert_eq!((c.kind, c.from, c.to), (CrossingKind::Repeated, Zone::Clear, Zone::Warning));

    // Ten minutes after the alert (the default cooldown) it alerts again.
    obs(&mut t, 10.0, 10_000);
    let c = obs(&mut t, 0.9, 600_000).expect("back after the cooldown");
    assert_eq!((c.kind, c.from, c.to), (CrossingKind::Escalated, Zone::Clear, Zone::Alert));
    obs(&mut t, 10.0, 600_000);
    assert_eq!(t.zone_of(m), None, "no state kept for a far, clear vessel once the cooldown is over");
    assert_eq!(t.tracked(), 0);
}

/// The issue's case: a vessel moving 2.9 ↔ 3.15 nm from the boundary, each swing past warn +
/// margin, reporting every 10 s. Hysteresis alone warned on every return; the cooldown warns
/// once, and a move into a deeper zone alerts at once.
#[test]
fn a_vessel_riding_the_margin_warns_once_per_cooldown_and_a_deeper_zone_alerts_at_once() {
    let swings = |config: FenceConfig| {
        let mut t = FenceTracker::new(parallel_37(), config).unwrap();
        (0..20u64)
            .filter_map(|i| {
                let nm = if i % 2 == 0 { 2.9 } else { 3.15 };
                let (lat, lon) = dest(37.0, 123.0, 0.0, nm * NM);
                t.observe(9, lat, lon, i * 10_000)
            })
            .filter(|c| c.is_alert())
            .count()
    };
    assert_eq!(swings(FenceConfig { cooldown_s: 0, ..FenceConfig::default() }), 10, "hysteresis alone");
    assert_eq!(swings(FenceConfig::default()), 1);

    let mut t = tracker(parallel_37());
    let mut at = |nm: f64, ms: u64| {
        let (lat, lon) = dest(37.0, 123.0, 0.0, nm * NM);
        t.observe(9, lat, lon, ms)
    };
    assert!(at(2.9, 0).unwrap().is_alert());
    let c = at(0.9, 10_000).unwrap();
    assert_eq!((c.kind, c.to), (CrossingKind::Escalated, Zone::Alert), "deeper: at once, in the warning's cooldown");
    at(3.15, 20_000);
    let c = at(2.9, 30_000).unwrap();
    assert_eq!((c.kind, c.to), (CrossingKind::Repeated, Zone::Warning), "a deeper zone's alert covers this one");
    let c = at(0.0, 40_000).unwrap();
    assert_eq!((c.kind, c.to), (CrossingKind::Escalated, Zone::Recall));
}

#[test]
fn stepping_over_a_line_between_reports_is_a_recall() {
    let mut t = tracker(parallel_37());
    let m = 412_000_004;
    let (lat, lon) = dest(37.0, 123.0, 0.0, 0.3 * NM);
    assert_eq!(t.observe(m, lat, lon, 0).map(|c| c.to), Some(Zone::Alert));
    // 0.3 nm south of the line at the next report: never within the on-line tolerance.
    let (lat, lon) = dest(37.0, 123.0, 180.0, 0.3 * NM);
    let c = t.observe(m, lat, lon, 30_000).expect("crossed");
    assert_eq!(c.to, Zone::Recall);
    assert!(c.crossed_line);
}

#[test]
fn inside_a_polygon_is_recall() {
    let square = boundary(
        r#"{"type":"Feature","properties":{},"geometry":{"type":"Polygon",
            "coordinates":[[[123,36],[124,36],[124,37],[123,37],[123,36]]]}}"#,
    );
    assert!(square.contains(36.5, 123.5));
    assert!(!square.contains(36.5, 124.5));
    let mut t = tracker(square);
    let c = t.observe(1, 36.5, 123.5, 0).expect("inside");
    assert_eq!((c.to, c.inside), (Zone::Recall, true));
    // The middle of the square is ≈ 30 nm from every edge, beyond the prefilter's reach.
    assert_eq!(c.distance_m, None);
    assert_eq!(t.observe(2, 36.5, 125.5, 0), None);
}

#[test]
fn polygon_holes_are_outside() {
    let b = boundary(
        r#"{"type":"Polygon","coordinates":[
            [[120,30],[126,30],[126,36],[120,36],[120,30]],
            [[122,32],[124,32],[124,34],[122,34],[122,32]]]}"#,
    );
    assert!(b.contains(31.0, 121.0));
    assert!(!b.contains(33.0, 123.0));
}

#[test]
fn stale_out_of_order_and_invalid_reports() {
    let mut t = tracker(parallel_37());
    let m = 412_000_005;
    let (lat, lon) = dest(37.0, 123.0, 0.0, 0.5 * NM);
    assert!(t.observe(m, lat, lon, 1_000_000).is_some());
    assert_eq!(t.observe(m, lat, lon, 999_999), None, "older report ignored");
    assert_eq!(t.observe(m, 91.0, 181.0, 2_000_000), None, "AIS 'not available'");
    assert_eq!(t.observe(m, f64::NAN, lon, 2_000_000), None);
    // Silent for 31 minutes, still in the Alert zone: judged afresh, alerts again.
    let c = t.observe(m, lat, lon, 1_000_000 + 31 * 60_000).expect("re-alert after silence");
    assert!(c.resumed_after_silence && c.is_alert());
    assert_eq!((c.from, c.to), (Zone::Clear, Zone::Alert));
}

#[test]
fn vessel_state_is_bounded_least_recently_seen_goes() {
    let config = FenceConfig { max_vessels: 3, ..FenceConfig::default() };
    let mut t = FenceTracker::new(parallel_37(), config).expect("valid");
    let (lat, lon) = dest(37.0, 123.0, 0.0, 0.5 * NM);
    for m in 1..=3 {
        t.observe(m, lat, lon, 0);
    }
    t.observe(1, lat, lon, 10); // 1 is now the most recently seen
    t.observe(4, lat, lon, 20); // evicts 2
    t.observe(5, lat, lon, 30); // evicts 3
    assert_eq!(t.tracked(), 3);
    assert_eq!(t.evictions(), 2);
    assert_eq!(t.zone_of(2), None);
    assert_eq!(t.zone_of(3), None);
    assert_eq!(t.zone_of(1), Some(Zone::Alert));
}

#[test]
fn config_defaults_toml_and_validation() {
    let c: FenceConfig = toml::from_str("warn_nm = 2.5\nmargin_nm = 0.2").expect("parses");
    assert_eq!(c.warn_nm, 2.5);
    assert_eq!(c.margin_nm, 0.2);
    assert_eq!(c.alert_nm, 1.0);
    assert_eq!(c.max_vessels, 100_000);
    assert!(toml::from_str::<FenceConfig>("warn = 2").is_err(), "unknown keys refused");
    let bad = FenceConfig { alert_nm: 4.0, ..FenceConfig::default() };
    assert_eq!(bad.validate(), Err(ConfigError::Order));
    let bad = FenceConfig { margin_nm: f64::NAN, ..FenceConfig::default() };
    assert_eq!(bad.validate(), Err(ConfigError::NotFiniteNonNegative("margin_nm")));
    assert!(FenceTracker::new(parallel_37(), bad).is_err());
}

#[test]
fn bad_geojson_gives_clear_errors() {
    let cases: &[(&str, &str)] = &[
        ("{", "not valid JSON"),
        ("[]", "$: expected a GeoJSON object"),
        (r#"{"coordinates":[]}"#, "$: missing or non-string \"type\""),
        (r#"{"type":"Point","coordinates":[1,2]}"#, "$.type: a Point cannot be a fence boundary"),
        (r#"{"type":"Circle"}"#, "$.type: unknown GeoJSON type \"Circle\""),
        (r#"{"type":"LineString","coordinates":[[1,2]]}"#, "$.coordinates: a LineString needs at least 2 positions"),
        (r#"{"type":"LineString","coordinates":[[1,2],[3]]}"#, "$.coordinates[1]: a position is [longitude, latitude]"),
        (r#"{"type":"LineString","coordinates":[[1,2],[3,91]]}"#, "$.coordinates[1]: latitude 91 is outside [-90, 90]"),
        (
            r#"{"type":"LineString","coordinates":[[1,2],[181,3]]}"#,
            "$.coordinates[1]: longitude 181 is outside [-180, 180]",
        ),
        (
            r#"{"type":"LineString","coordinates":[[1,2],["3",4]]}"#,
            "$.coordinates[1]: coordinates must be finite numbers",
        ),
        (
            r#"{"type":"LineString","coordinates":[[179,2],[-179,2]]}"#,
            "$.coordinates[1]: edge crosses the antimeridian",
        ),
        (r#"{"type":"LineString","coordinates":[[0,0],[100,0]]}"#, "longer than 90°"),
        (
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1]]]}"#,
            "$.coordinates[0]: polygon ring is not closed",
        ),
        (
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[0,0]]]}"#,
            "$.coordinates[0]: a polygon ring needs at least 4 positions",
        ),
        (r#"{"type":"Polygon","coordinates":[]}"#, "$.coordinates: a Polygon needs at least one ring"),
        (
            r#"{"type":"Polygon","coordinates":[[[-60,-40],[60,-40],[60,40],[-60,40],[-60,-40]]]}"#,
            "reaches more than 60° from its centre",
        ),
        (r#"{"type":"FeatureCollection","features":[]}"#, "no LineString, MultiLineString, Polygon or MultiPolygon"),
        (
            r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":null}]}"#,
            "$.features[0].geometry: feature has no geometry",
        ),
        (r#"{"type":"FeatureCollection","features":[{"type":"Point"}]}"#, "$.features[0].type: expected \"Feature\""),
        (
            r#"{"type":"MultiLineString","coordinates":[[[1,2],[3,4]],[[5,6],[7,"x"]]]}"#,
            "$.coordinates[1][1]: coordinates must be finite numbers",
        ),
    ];
    for (json, want) in cases {
        let got = boundary_err(json);
        assert!(got.contains(want), "{json}\n  got:  {got}\n  want: {want}");
    }
}

#[test]
fn geojson_limits() {
    let limits = BoundaryLimits { max_file_bytes: 1 << 20, max_vertices: 3 };
    let json = r#"{"type":"LineString","coordinates":[[1,2],[1,3],[1,4],[1,5]]}"#;
    let err = Boundary::from_geojson(json.as_bytes(), &limits).expect_err("too many vertices");
    assert!(err.to_string().contains("more than 3 vertices"), "{err}");
    let limits = BoundaryLimits { max_file_bytes: 10, max_vertices: 100 };
    let err = Boundary::from_geojson(json.as_bytes(), &limits).expect_err("too large");
    assert!(err.to_string().contains("larger than the 10-byte limit"), "{err}");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.geojson");
    std::fs::write(&path, json).expect("write");
    let err = Boundary::from_geojson_file(&path, &limits).expect_err("too large");
    let msg = err.to_string();
    assert!(msg.starts_with(&path.display().to_string()), "{msg}");
    assert!(msg.contains("larger than the 10-byte limit"), "{msg}");
    let missing = dir.path().join("missing.geojson");
    let err = Boundary::from_geojson_file(&missing, &limits).expect_err("missing");
    assert!(err.to_string().starts_with(&missing.display().to_string()), "{err}");
}

#[test]
fn shipped_pmz_inside_and_ten_nm_outside() {
    let b = pmz();
    assert_eq!(b.vertex_count(), 17);
    assert_eq!(b.polygon_count(), 1);
    // The middle of the zone, between the west edge (122°02'E) and the east (124°04'E).
    assert!(b.contains(34.5, 123.0));
    // 10 nm east of the A14-A15 edge, which runs along the 124°30'E meridian (a great
    // circle, so every reading of "straight line" agrees on it).
    let (lat, lon) = dest(36.0, 124.5, 90.0, 10.0 * NM);
    assert!(!b.contains(lat, lon));
    let d = b.distance_m(lat, lon).expect("valid");
    assert!((d - 10.0 * NM).abs() < 30.0, "{d}");

    let mut t = tracker(b);
    let c = t.observe(412_000_010, 34.5, 123.0, 0).expect("inside");
    assert_eq!((c.to, c.inside), (Zone::Recall, true));
    assert_eq!(t.observe(412_000_011, lat, lon, 0), None, "10 nm out: clear");
    let (lat, lon) = dest(36.0, 124.5, 90.0, 2.0 * NM);
    assert_eq!(t.observe(412_000_012, lat, lon, 0).map(|c| c.to), Some(Zone::Warning));
    let (lat, lon) = dest(36.0, 124.5, 90.0, 0.5 * NM);
    assert_eq!(t.observe(412_000_013, lat, lon, 0).map(|c| c.to), Some(Zone::Alert));
}

#[test]
fn prefiltered_measure_agrees_with_exhaustive_distance() {
    let b = pmz();
    let t = tracker(b.clone());
    let reach = 3.1 * NM;
    let mut checked = 0;
    for i in 0..60 {
        for j in 0..60 {
            let lat = 31.5 + f64::from(i) * 0.1;
            let lon = 121.0 + f64::from(j) * 0.085;
            let exact = b.distance_m(lat, lon).expect("valid");
            let m = t.measure(lat, lon);
            assert_eq!(m.inside, b.contains(lat, lon));
            match m.distance_m {
                Some(d) => {
                    assert!((d - exact).abs() < 1e-6, "{lat},{lon}: {d} vs {exact}");
                    checked += 1;
                }
                None => assert!(exact > reach, "{lat},{lon}: dropped at {exact} m"),
            }
        }
    }
    assert!(checked > 20, "{checked}");
}

// ---- accuracy against brute force, and what other readings of "straight line" give ----

/// Minimum geodesic distance from `p` to an edge given as a parametric curve `at(t)`, t in
/// [0, 1]: sampling every ≈ 200 m, then golden-section refinement between the neighbours of
/// the best sample (distance along one edge is unimodal, so the minimum lies there).
fn brute_min(p: Point, len_m: f64, at: impl Fn(f64) -> Point) -> f64 {
    let n = ((len_m / 200.0).ceil() as usize).max(2);
    let f = |t: f64| Geodesic.distance(p, at(t.clamp(0.0, 1.0)));
    let (mut best_t, mut best) = (0.0, f64::INFINITY);
    for k in 0..=n {
        let t = k as f64 / n as f64;
        let d = f(t);
        if d < best {
            (best_t, best) = (t, d);
        }
    }
    let (mut lo, mut hi) = (best_t - 1.0 / n as f64, best_t + 1.0 / n as f64);
    let g = 0.618_033_988_75;
    for _ in 0..80 {
        let (a, b) = (hi - g * (hi - lo), lo + g * (hi - lo));
        if f(a) < f(b) {
            hi = b;
        } else {
            lo = a;
        }
    }
    best.min(f((lo + hi) / 2.0))
}

fn slerp(a: V3, b: V3, t: f64) -> Point {
    let theta = sphere::angle(a, b);
    let s = theta.sin();
    let v = a.scale(((1.0 - t) * theta).sin() / s).add(b.scale((t * theta).sin() / s));
    let (lat, lon) = v.lat_lon();
    Point::new(lon, lat)
}

fn pmz_vertices() -> Vec<Point> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/boundaries/china-rok-pmz.geojson"),
    )
    .expect("read");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    v["features"][0]["geometry"]["coordinates"][0]
        .as_array()
        .expect("ring")
        .iter()
        .map(|p| Point::new(p[0].as_f64().unwrap_or(0.0), p[1].as_f64().unwrap_or(0.0)))
        .collect()
}

/// Brute force against the three readings of an edge; also prints the figures quoted in
/// docs/fences.md (run with `--nocapture`).
#[test]
fn accuracy_against_brute_force_on_pmz() {
    let b = pmz();
    let verts = pmz_vertices();
    let (mut err_ours, mut err_sphere_rel) = (0.0f64, 0.0f64);
    let (mut d_geodesic_edges, mut d_rhumb_edges) = (0.0f64, 0.0f64);
    let mut n = 0;
    for w in verts.windows(2) {
        let (a, c) = (w[0], w[1]);
        let bearing = Geodesic.bearing(a, c);
        for t in [0.2, 0.5, 0.8] {
            let on = Geodesic.point_at_ratio_between(a, c, t);
            for off_nm in [0.2, 1.0, 2.0, 3.0] {
                for side in [-90.0, 90.0] {
                    let p = Geodesic.destination(on, bearing + side, off_nm * NM);
                    let ours = b.distance_m(p.y(), p.x()).expect("valid");
                    let pv = V3::from_lat_lon(p.y(), p.x());
                    let (mut gc, mut geod, mut rhumb, mut hav) =
                        (f64::INFINITY, f64::INFINITY, f64::INFINITY, f64::INFINITY);
                    for e in verts.windows(2) {
                        let (ea, eb) = (e[0], e[1]);
                        let len = Geodesic.distance(ea, eb);
                        let (va, vb) = (V3::from_lat_lon(ea.y(), ea.x()), V3::from_lat_lon(eb.y(), eb.x()));
                        if Edge::new(va, vb).closest(pv).1 * sphere::EARTH_RADIUS_M > 30_000.0 {
                            continue; // Far edges cannot be the nearest at ≤ 3 nm.
                        }
                        gc = gc.min(brute_min(p, len, |t| slerp(va, vb, t)));
                        geod = geod.min(brute_min(p, len, |t| Geodesic.point_at_ratio_between(ea, eb, t)));
                        rhumb = rhumb.min(brute_min(p, len, |t| Rhumb.point_at_ratio_between(ea, eb, t)));
                        let (cl, _) = Edge::new(va, vb).closest(pv);
                        let (clat, clon) = cl.lat_lon();
                        hav = hav.min(Haversine.distance(p, Point::new(clon, clat)));
                    }
                    err_ours = err_ours.max((ours - gc).abs());
                    err_sphere_rel = err_sphere_rel.max(((hav - gc) / gc).abs());
                    d_geodesic_edges = d_geodesic_edges.max((geod - gc).abs());
                    d_rhumb_edges = d_rhumb_edges.max((rhumb - gc).abs());
                    n += 1;
                }
            }
        }
    }
    eprintln!("PMZ accuracy over {n} points 0.2-3 nm from the edges:");
    eprintln!("  ours vs brute force (great-circle edges):     max {err_ours:.4} m");
    eprintln!("  spherical distance vs ellipsoidal (relative):  max {:.3} %", err_sphere_rel * 100.0);
    eprintln!("  ellipsoidal-geodesic edges vs great-circle:    max {d_geodesic_edges:.2} m");
    eprintln!("  rhumb-line edges vs great-circle:              max {d_rhumb_edges:.2} m");
    assert!(err_ours < 0.5, "{err_ours}");
    assert!(err_sphere_rel < 0.007, "{err_sphere_rel}");
    assert!(d_geodesic_edges < 30.0, "{d_geodesic_edges}");
    assert!(d_rhumb_edges < 400.0, "{d_rhumb_edges}");
}

/// Per PMZ edge: its length and how far a rhumb line between the same vertices lies from the
/// great-circle arc at worst (printed for docs/fences.md).
#[test]
fn pmz_rhumb_versus_great_circle_per_edge() {
    let verts = pmz_vertices();
    let mut worst = 0.0f64;
    for (i, w) in verts.windows(2).enumerate() {
        let (a, c) = (w[0], w[1]);
        let edge = Edge::new(V3::from_lat_lon(a.y(), a.x()), V3::from_lat_lon(c.y(), c.x()));
        let mut sep = 0.0f64;
        for k in 0..=200 {
            let r = Rhumb.point_at_ratio_between(a, c, f64::from(k) / 200.0);
            let (cl, _) = edge.closest(V3::from_lat_lon(r.y(), r.x()));
            let (clat, clon) = cl.lat_lon();
            sep = sep.max(Geodesic.distance(r, Point::new(clon, clat)));
        }
        eprintln!(
            "  A{}-A{}: {:6.1} km, rhumb vs great circle up to {:5.1} m",
            i + 1,
            i + 2,
            Geodesic.distance(a, c) / 1000.0,
            sep
        );
        worst = worst.max(sep);
    }
    assert!(worst > 200.0 && worst < 400.0, "{worst}");
}

// ---- property: no repeated alert without leaving by the margin ----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_repeat_alert_without_leaving_by_the_margin(
        start_nm in 0.0f64..5.0,
        steps in proptest::collection::vec((-0.25f64..0.25, -0.002f64..0.002), 1..300),
    ) {
        let b = parallel_37();
        // Hysteresis alone: the cooldown only takes alerts away, and has its own property.
        let cfg = FenceConfig { cooldown_s: 0, ..FenceConfig::default() };
        let mut t = FenceTracker::new(b.clone(), cfg.clone()).unwrap();
        let thr = |z: Zone| match z {
            Zone::Recall => cfg.recall_nm * NM + cfg.on_line_m,
            Zone::Alert => cfg.alert_nm * NM,
            Zone::Warning => cfg.warn_nm * NM,
            Zone::Clear => f64::INFINITY,
        };
        let margin = cfg.margin_nm * NM;
        let (mut off_nm, mut lon) = (start_nm, 123.0);
        // Distances seen since the last escalation into each zone.
        let mut max_since: Vec<(Zone, f64)> = Vec::new();
        for (i, (d_off, d_lon)) in steps.into_iter().enumerate() {
            // Stay north of the line: crossings are covered by their own test.
            off_nm = (off_nm + d_off).abs();
            lon = (lon + d_lon).clamp(122.3, 123.7);
            let (lat, lo) = dest(37.0, lon, 0.0, off_nm * NM);
            let d = b.distance_m(lat, lo).expect("valid");
            for (_, m) in max_since.iter_mut() {
                *m = m.max(d);
            }
            if let Some(c) = t.observe(7, lat, lo, i as u64 * 10_000) {
                if c.is_alert() {
                    // Any earlier escalation into a zone at least this severe must have been
                    // followed by a report beyond this zone's threshold plus the margin.
                    for (z, m) in &max_since {
                        if *z >= c.to {
                            prop_assert!(
                                *m > thr(c.to) + margin,
                                "re-alert into {:?} at step {} without leaving: max {} m",
                                c.to, i, m
                            );
                        }
                    }
                    max_since.retain(|(z, _)| *z != c.to);
                    max_since.push((c.to, f64::NEG_INFINITY));
                }
                prop_assert_eq!(Some(c.to), t.zone_of(7).or(Some(Zone::Clear)));
            }
        }
    }

    #[test]
    fn no_alert_into_a_zone_within_the_cooldown_of_one_as_severe(
        steps in proptest::collection::vec((0.0f64..4.0, 1_000u64..120_000), 1..200),
    ) {
        let mut t = tracker(parallel_37());
        let cooldown_ms = FenceConfig::default().cooldown_s * 1000;
        let mut alerts: Vec<(Zone, u64)> = Vec::new();
        let mut now = 0;
        for (nm, gap) in steps {
            now += gap;
            let (lat, lon) = dest(37.0, 123.0, 0.0, nm * NM);
            if let Some(c) = t.observe(7, lat, lon, now) {
                if c.is_alert() {
                    for (z, at) in &alerts {
                        prop_assert!(
                            *z < c.to || now - at >= cooldown_ms,
                            "alert into {:?} {} ms after one into {:?}", c.to, now - at, z
                        );
                    }
                    alerts.push((c.to, now));
                }
                prop_assert_eq!(Some(c.to), t.zone_of(7).or(Some(Zone::Clear)));
            }
        }
    }
}
