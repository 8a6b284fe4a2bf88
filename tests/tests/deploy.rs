//! deploy/ as an operator uses it: the example topology through `yiwangctl deploy generate
//! --state-dir` into a mesh of real processes (eight nodes, three voters) that starts and
//! converges, seen whole on the city's dashboard; and the systemd units, judged by
//! `systemd-analyze security`.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use yiwang_tests::{bin, get_as, wait_until, NodeProcess};

const LIMIT: Duration = Duration::from_secs(60);
/// Highest `systemd-analyze security` exposure the units may have (0 is best, 10 worst;
/// systemd calls up to 2.9 "OK").
const MAX_EXPOSURE: f64 = 2.0;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The example topology with every `127.0.0.1:PORT` moved to a free port (UDP for mesh and
/// raft, TCP for http), so the test runs beside anything else.
fn example_on_free_ports() -> String {
    let text = std::fs::read_to_string(repo().join("deploy/topology/example.toml")).unwrap();
    text.lines()
        .map(|line| {
            let Some((key, value)) = line.split_once(" = \"127.0.0.1:") else { return line.to_string() };
            let rest = value.split_once('"').map_or("", |(_, r)| r);
            let free = if key.trim() == "http" {
                TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
            } else {
                UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
            };
            format!("{key} = \"{free}\"{rest}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_example_topology_deploys_into_a_mesh_that_converges_on_the_dashboard() {
    let dir = yiwang_tests::test_dir("deploy-example");
    let dir = dir.path();
    std::fs::write(dir.join("topology.toml"), example_on_free_ports()).unwrap();
    let state = dir.join("state");
    let gen = dir.join("sites");
    let out = Command::new(bin("yiwangctl"))
        .args(["deploy", "generate", "--topology"])
        .arg(dir.join("topology.toml"))
        .arg("--out")
        .arg(&gen)
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert!(out.status.success(), "deploy generate: {}", String::from_utf8_lossy(&out.stderr));
    let refused = Command::new(bin("yiwangctl"))
        .args(["deploy", "generate", "--topology", "x.toml", "--out", "y", "--state-dir", "relative"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not an absolute path"));

    let topology = node::mesh::topology::Topology::load(&dir.join("topology.toml")).unwrap();
    let mut nodes = Vec::new();
    let mut controls = Vec::new();
    for site in topology.sites() {
        let id = site.id.as_str();
        // Each site's configs in its folder, what it writes under the state directory.
        let node_state = state.join(id).join("node");
        let config = gen.join(id).join("node.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(text.contains(&format!("data_dir = \"{}\"", state.join("node").display())), "{text}");
        // One box per site here, so each site gets its own state directory.
        std::fs::write(
            &config,
            text.replace(&state.join("node").display().to_string(), &node_state.display().to_string()),
        )
        .unwrap();
        nodes.push((id.to_string(), NodeProcess::start(&config, &node_state)));
        let control = gen.join(id).join("control.toml");
        if site.raft.is_some() {
            let text = std::fs::read_to_string(&control).unwrap();
            let text = text.replace(&state.display().to_string(), &state.join(id).display().to_string());
            std::fs::write(&control, &text).unwrap();
            assert_eq!(text.contains("[dashboard]"), id == "city", "the city's voter serves the dashboard: {text}");
            let data = state.join(id).join("control");
            controls.push((
                id.to_string(),
                NodeProcess::start_bin("yiwang-control", &data, &["--config".as_ref(), control.as_os_str()]),
            ));
        } else {
            assert!(!control.exists(), "{id} votes on nothing");
        }
    }
    assert_eq!((nodes.len(), controls.len()), (8, 3));

    let city = &controls.iter().find(|(id, _)| id == "city").unwrap().1;
    let api: SocketAddr = city.listening["api"].as_str().unwrap().parse().unwrap();
    let token = yiwang_tests::operator_token(&state.join("city/control"));
    wait_until("the city's dashboard shows the whole mesh up, with a raft leader", LIMIT, || {
        let v = get_as(api, &token, "/dashboard/view").map_err(|e| e.to_string())?.json();
        let sites = v["sites"].as_array().cloned().unwrap_or_default();
        let down: Vec<String> = sites
            .iter()
            .filter(|s| s["state"] != "up" && s["state"] != "self")
            .map(|s| format!("{} {}", s["id"], s["state"]))
            .collect();
        if sites.len() == 8 && down.is_empty() && v["raft"]["leader"].is_string() && v["node_error"].is_null() {
            Ok(())
        } else {
            Err(format!(
                "{} sites, not up: {down:?}, leader {}, error {}",
                sites.len(),
                v["raft"]["leader"],
                v["node_error"]
            ))
        }
    });
    let v = get_as(api, &token, "/dashboard/view").unwrap().json();
    let city_site = v["sites"].as_array().unwrap().iter().find(|s| s["id"] == "city").unwrap().clone();
    assert_eq!(city_site["position"]["lat"], 37.5131, "positions come from the topology: {city_site}");
    for (_, p) in controls.into_iter().chain(nodes) {
        p.terminate();
    }
}

#[test]
fn the_systemd_units_are_hardened() {
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    if analyze.is_err() {
        eprintln!("skipped: no systemd-analyze on this machine");
        return;
    }
    for unit in ["yiwang-node.service", "yiwang-control.service"] {
        let path = repo().join("deploy/systemd").join(unit);
        let text = std::fs::read_to_string(&path).unwrap();
        let config = if unit == "yiwang-node.service" { "node.toml" } else { "control.toml" };
        assert!(text.contains(&format!("--config /etc/yiwang/{config}")), "{unit} runs the generated {config}");
        assert!(text.contains("Restart=on-failure"), "{unit} is started again after a failure");
        let out = Command::new("systemd-analyze").args(["security", "--offline=true"]).arg(&path).output().unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        let exposure: f64 = report
            .lines()
            .find_map(|l| {
                l.split_once("Overall exposure level for ")?.1.split_once(": ")?.1.split(' ').next()?.parse().ok()
            })
            .unwrap_or_else(|| {
                panic!("no exposure level for {unit}: {report}{}", String::from_utf8_lossy(&out.stderr))
            });
        assert!(exposure <= MAX_EXPOSURE, "{unit}: exposure {exposure} is above {MAX_EXPOSURE}:\n{report}");
    }
}
