//! report.html: a run's checks, its fault log, and SVG timelines of availability, replication
//! lag and lists version per node with the fault windows shaded. One self-contained file (no
//! script, no stylesheet or font from anywhere), so it reads offline.

use crate::run::RunReport;
use std::fmt::Write;

/// Width of the plotting area and height of one node's row, in SVG units.
const PLOT_W: f64 = 900.0;
const ROW_H: f64 = 9.0;
const LABEL_W: f64 = 110.0;
const CHART_H: f64 = 220.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The report as HTML.
pub fn html(r: &RunReport) -> String {
    let mut h = String::new();
    let verdict = if r.passed() { "PASS" } else { "FAIL" };
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>yiwang-sim {name} seed {seed}: {verdict}</title>\
         <style>body{{font:14px sans-serif;margin:24px;color:#222}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}}\
         .PASS{{color:#176f2c;font-weight:bold}}.FAIL{{color:#b00020;font-weight:bold}}\
         svg{{background:#fafafa;border:1px solid #ddd;margin:6px 0}}</style></head><body>\
         <h1>{name}: <span class=\"{verdict}\">{verdict}</span></h1><p>{summary}</p>\
         <p>seed {seed} · commit {commit} · {virt:.0} s virtual in {wall:.1} s wall · trace <code>{trace}</code>{bugs}</p>\
         <p>Replay: <code>yiwang-sim replay report.json</code></p>",
        name = esc(&r.scenario),
        seed = r.seed,
        summary = esc(&r.spec.summary),
        commit = esc(r.commit),
        virt = r.virtual_s,
        wall = r.wall_s,
        trace = esc(&r.trace_hash),
        bugs = if r.bugs.is_empty() { String::new() } else { format!(" · injected bugs: {}", esc(&r.bugs.join(", "))) },
    );
    h.push_str("<h2>Checks</h2><table><tr><th>check</th><th>verdict</th><th>detail</th></tr>");
    for c in &r.checks {
        let v = if c.passed { "PASS" } else { "FAIL" };
        let _ = write!(h, "<tr><td>{}</td><td class=\"{v}\">{v}</td><td>{}</td></tr>", c.name, esc(&c.detail));
    }
    h.push_str("</table><h2>Faults</h2><table><tr><th>#</th><th>kind</th><th>sites</th><th>from</th><th>to</th><th>evidence</th></tr>");
    for f in &r.faults {
        let (v, e) = match &f.evidence {
            Ok(e) => ("PASS", e.as_str()),
            Err(e) => ("FAIL", e.as_str()),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.0} s</td><td>{}</td><td class=\"{v}\">{}</td></tr>",
            f.fault,
            f.kind,
            esc(&f.targets.join(", ")),
            f.began_s,
            f.ended_s.map_or("end".into(), |e| format!("{e:.0} s")),
            esc(e)
        );
    }
    h.push_str("</table>");
    let points = r.timelines.iter().map(|t| t.up.len()).max().unwrap_or(0).max(1);
    let x = |i: usize| LABEL_W + PLOT_W * i as f64 / points as f64;
    let span = PLOT_W / points as f64;
    let shade = |height: f64| -> String {
        let mut s = String::new();
        for f in &r.faults {
            let from = LABEL_W + PLOT_W * (f.began_s / r.virtual_s.max(1.0));
            let to = LABEL_W + PLOT_W * (f.ended_s.unwrap_or(r.spec.duration.as_secs_f64()) / r.virtual_s.max(1.0));
            let _ = write!(
                s,
                "<rect class=\"fault\" x=\"{from:.1}\" y=\"0\" width=\"{:.1}\" height=\"{height:.1}\" fill=\"#f2b134\" fill-opacity=\"0.18\"><title>fault {} {} {}</title></rect>",
                (to - from).max(1.0),
                f.fault,
                f.kind,
                esc(&f.targets.join(", "))
            );
        }
        s
    };

    // Availability: a row per node; green when everything tried was acknowledged, amber when
    // some was refused, grey when down, white when idle.
    let height = ROW_H * r.timelines.len() as f64 + 4.0;
    let _ = write!(
        h,
        "<h2>Availability per node</h2><p>Every {:.0} s: green, all operations acknowledged; amber, some refused; grey, down; shaded, a fault in force.</p>\
         <svg id=\"availability\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0}\" height=\"{height:.0}\">{}",
        r.timeline_every_s,
        LABEL_W + PLOT_W + 10.0,
        shade(height)
    );
    for (row, t) in r.timelines.iter().enumerate() {
        let y = row as f64 * ROW_H;
        let _ = write!(h, "<text x=\"2\" y=\"{:.1}\" font-size=\"8\">{}</text>", y + ROW_H - 1.5, esc(&t.node));
        for i in 0..t.up.len() {
            let colour = if !t.up[i] {
                "#9e9e9e"
            } else if t.acked[i] < t.tried[i] {
                "#e69500"
            } else if t.tried[i] > 0 {
                "#2e9d4a"
            } else {
                continue;
            };
            let _ = write!(
                h,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"/>",
                x(i),
                span.max(0.5),
                ROW_H - 1.0
            );
        }
    }
    h.push_str("</svg>");

    for (id, title, what, values) in [
        (
            "lag",
            "Replication lag",
            "entries of its own each node has that the city does not yet hold",
            r.timelines.iter().map(|t| (t.node.as_str(), &t.lag)).collect::<Vec<_>>(),
        ),
        (
            "versions",
            "Lists version",
            "the sanctions lists version each node enforces (0 while down)",
            r.timelines.iter().map(|t| (t.node.as_str(), &t.list_version)).collect::<Vec<_>>(),
        ),
    ] {
        let max = values.iter().flat_map(|(_, v)| v.iter()).copied().max().unwrap_or(0).max(1) as f64;
        let _ = write!(
            h,
            "<h2>{title}</h2><p>Per node, {what}; highest {max:.0}.</p>\
             <svg id=\"{id}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0}\" height=\"{CHART_H:.0}\">{}",
            LABEL_W + PLOT_W + 10.0,
            shade(CHART_H)
        );
        let _ = write!(h, "<text x=\"2\" y=\"12\" font-size=\"10\">{max:.0}</text><text x=\"2\" y=\"{:.0}\" font-size=\"10\">0</text>", CHART_H - 4.0);
        for (n, (node, v)) in values.iter().enumerate() {
            let hue = (n * 47) % 360;
            let pts: Vec<String> = v
                .iter()
                .enumerate()
                .map(|(i, &y)| format!("{:.1},{:.1}", x(i), CHART_H - 6.0 - (CHART_H - 20.0) * y as f64 / max))
                .collect();
            let _ = write!(
                h,
                "<polyline fill=\"none\" stroke=\"hsl({hue},60%,40%)\" stroke-width=\"1\" points=\"{}\"><title>{}</title></polyline>",
                pts.join(" "),
                esc(node)
            );
        }
        h.push_str("</svg>");
    }
    h.push_str("</body></html>\n");
    h
}
