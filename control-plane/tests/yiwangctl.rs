//! Runs the built `yiwangctl` binary: pki init, issue and show, deploy generate on the example
//! topology, and the errors bad input gets.

use node::mesh::pki::{self, CertInfo};
use node::mesh::tls::MeshIdentity;
use node::mesh::topology::Topology;
use proto::{NodeId, NodeIdentity, Role};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::Output;

fn yiwangctl(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_yiwangctl")).args(args).output().expect("yiwangctl runs")
}

fn ok(args: &[&str]) -> String {
    let out = yiwangctl(args);
    assert!(
        out.status.success(),
        "yiwangctl {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail; returns its stderr.
fn fails(args: &[&str]) -> String {
    let out = yiwangctl(args);
    assert!(!out.status.success(), "yiwangctl {args:?} should have failed: {}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!err.trim().is_empty(), "yiwangctl {args:?} failed without a message");
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn example_topology() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/topology/example.toml")
}

fn load_identity(dir: &Path) -> MeshIdentity {
    MeshIdentity::load(&dir.join("ca.pem"), &dir.join("node.pem"), &dir.join("node.key")).unwrap()
}

#[test]
fn help_explains_every_command() {
    let top = ok(&["--help"]);
    for word in ["pki", "deploy", "certificate", "topology"] {
        assert!(top.contains(word), "{top}");
    }
    let pki = ok(&["pki", "--help"]);
    for word in ["init", "issue", "show"] {
        assert!(pki.contains(word), "{pki}");
    }
    let issue = ok(&["pki", "issue", "--help"]);
    for word in ["--ca", "--node", "--role", "--out", "--days", "--force", "harbour"] {
        assert!(issue.contains(word), "{issue}");
    }
    let generate = ok(&["deploy", "generate", "--help"]);
    for word in ["--topology", "--out", "--ca", "node.toml", "topology.toml"] {
        assert!(generate.contains(word), "{generate}");
    }
}

#[test]
fn init_issue_show() {
    let tmp = tempfile::tempdir().unwrap();
    let ca_dir = tmp.path().join("ca");
    let town_dir = tmp.path().join("town");

    let said = ok(&["pki", "init", "--out", s(&ca_dir), "--days", "30"]);
    assert!(said.contains("ca.key"), "{said}");
    assert_eq!(mode(&ca_dir.join("ca.key")), 0o600);
    let err = fails(&["pki", "init", "--out", s(&ca_dir)]);
    assert!(err.contains("already exists") && err.contains("--force"), "{err}");
    let old_ca = std::fs::read(ca_dir.join("ca.pem")).unwrap();
    ok(&["pki", "init", "--out", s(&ca_dir), "--days", "365", "--name", "Test city CA", "--force"]);
    assert_ne!(std::fs::read(ca_dir.join("ca.pem")).unwrap(), old_ca);

    ok(&[
        "pki",
        "issue",
        "--ca",
        s(&ca_dir),
        "--node",
        "town-zhangjiachan",
        "--role",
        "town",
        "--out",
        s(&town_dir),
        "--days",
        "10",
    ]);
    assert_eq!(mode(&town_dir.join("node.key")), 0o600);
    let identity = load_identity(&town_dir);
    let town = NodeIdentity { id: NodeId::new("town-zhangjiachan").unwrap(), role: Role::Town };
    assert_eq!(identity.identity(), &town);
    let info = CertInfo::parse(&pki::load_certs(&town_dir.join("node.pem")).unwrap()[0]).unwrap();
    let days = (info.validity.not_after - info.validity.not_before).whole_hours();
    assert_eq!(days, 10 * 24 + 1, "ten days plus the hour of backdating");

    let shown = ok(&["pki", "show", s(&town_dir.join("node.pem"))]);
    for line in ["node:       town-zhangjiachan", "role:       town", "Test city CA", "not after:", "valid, expires in"]
    {
        assert!(shown.contains(line), "{line:?} missing from:\n{shown}");
    }
    // The fingerprint a revocation names: SHA-256 of the certificate's DER.
    let der = node::mesh::pki::load_certs(&town_dir.join("node.pem")).unwrap().remove(0);
    let expected: String = sha2::Sha256::digest(der.as_ref()).iter().map(|b| format!("{b:02x}")).collect();
    assert!(shown.contains(&format!("sha256:     {expected}")), "{shown}");
    let shown = ok(&["pki", "show", s(&ca_dir.join("ca.pem"))]);
    assert!(shown.contains("CA certificate") && !shown.contains("node:"), "{shown}");

    // Existing keys are not replaced without --force.
    let err = fails(&[
        "pki",
        "issue",
        "--ca",
        s(&ca_dir),
        "--node",
        "town-zhangjiachan",
        "--role",
        "town",
        "--out",
        s(&town_dir),
        "--days",
        "10",
    ]);
    assert!(err.contains("node.pem") && err.contains("--force"), "{err}");
    ok(&[
        "pki",
        "issue",
        "--ca",
        s(&ca_dir),
        "--node",
        "town-zhangjiachan",
        "--role",
        "harbour",
        "--out",
        s(&town_dir),
        "--force",
        "--days",
        "10",
    ]);
    assert_eq!(load_identity(&town_dir).role(), Role::Harbour);
    // Issuing into the CA's own directory leaves its ca.pem alone.
    ok(&["pki", "issue", "--ca", s(&ca_dir), "--node", "city", "--role", "city", "--out", s(&ca_dir), "--days", "10"]);
    assert_eq!(load_identity(&ca_dir).role(), Role::City);
}

#[test]
fn bad_input_gets_a_clear_error_and_a_failing_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let ca_dir = tmp.path().join("ca");
    ok(&["pki", "init", "--out", s(&ca_dir), "--days", "30"]);
    let out = s(tmp.path()).to_string();
    let issue = |node: &str, role: &str| {
        let dir = format!("{out}/x");
        fails(&["pki", "issue", "--ca", s(&ca_dir), "--node", node, "--role", role, "--out", &dir])
    };
    let err = issue("Town A", "town");
    assert!(err.contains("Town A") && err.contains("lower-case"), "{err}");
    let err = issue("123", "town");
    assert!(err.contains("DNS name"), "{err}");
    let err = issue("town-a", "mayor");
    assert!(err.contains("mayor") && err.contains("city, county, town or harbour"), "{err}");
    assert!(!tmp.path().join("x").exists(), "nothing is written for refused input");

    let err = fails(&[
        "pki",
        "issue",
        "--ca",
        &format!("{out}/nowhere"),
        "--node",
        "town-a",
        "--role",
        "town",
        "--out",
        &format!("{out}/y"),
    ]);
    assert!(err.contains("nowhere") && err.contains("ca.pem"), "{err}");
    let err = fails(&[
        "pki",
        "issue",
        "--ca",
        s(&ca_dir),
        "--node",
        "town-a",
        "--role",
        "town",
        "--out",
        &format!("{out}/y"),
        "--days",
        "400",
    ]);
    assert!(err.contains("expires") && err.contains("--days"), "{err}");
    let err = fails(&["pki", "init", "--out", &format!("{out}/z"), "--days", "0"]);
    assert!(err.contains("--days"), "{err}");

    let err = fails(&["pki", "show", &format!("{out}/missing.pem")]);
    assert!(err.contains("missing.pem"), "{err}");
    let err = fails(&["pki", "show", s(&ca_dir.join("ca.key"))]);
    assert!(err.contains("no CERTIFICATE"), "{err}");

    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[[site]]\nid = \"city\"\nrole = \"city\"\nmesh = \"127.0.0.1:7900\"\n\n[[site]]\nid = \"town-a\"\nrole = \"town\"\nmesh = \"127.0.0.1:7910\"\nparents = [\"county-x\"]\n").unwrap();
    let err = fails(&["deploy", "generate", "--topology", s(&bad), "--out", &format!("{out}/mesh")]);
    assert!(err.contains("bad.toml") && err.contains("town-a") && err.contains("county-x"), "{err}");
    assert!(!tmp.path().join("mesh").exists(), "nothing is written for a bad topology");
    let err =
        fails(&["deploy", "generate", "--topology", &format!("{out}/none.toml"), "--out", &format!("{out}/mesh")]);
    assert!(err.contains("none.toml"), "{err}");
    let err = fails(&["frobnicate"]);
    assert!(err.contains("frobnicate"), "{err}");
}

#[test]
fn generate_makes_a_ready_directory_per_site() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mesh");
    let topology_path = example_topology();
    let topology = Topology::load(&topology_path).unwrap();
    assert_eq!(topology.sites().len(), 8);
    let count = |r: Role| topology.sites().iter().filter(|s| s.role == r).count();
    assert_eq!((count(Role::City), count(Role::County), count(Role::Town), count(Role::Harbour)), (1, 2, 4, 1));

    let said = ok(&["deploy", "generate", "--topology", s(&topology_path), "--out", s(&out)]);
    assert!(said.contains("created city CA"), "{said}");
    let ca_pem = std::fs::read(out.join("ca/ca.pem")).unwrap();
    assert_eq!(mode(&out.join("ca/ca.key")), 0o600);
    let topology_bytes = std::fs::read(&topology_path).unwrap();

    for site in topology.sites() {
        let dir = out.join(site.id.as_str());
        let text = std::fs::read_to_string(dir.join("node.toml")).unwrap();
        let config: toml::Table = toml::from_str(&text).unwrap();
        let expected: toml::Table = toml::from_str(&format!(
            "data_dir = \"data\"\n\
             [node]\nid = \"{}\"\nrole = \"{}\"\n\
             [http]\nlisten = \"{}\"\n\
             [mesh]\nlisten = \"{}\"\ntopology = \"topology.toml\"\nca = \"pki/ca.pem\"\ncert = \"pki/node.pem\"\nkey = \"pki/node.key\"\n",
            site.id,
            site.role,
            site.http.unwrap(),
            site.mesh
        ))
        .unwrap();
        assert_eq!(config, expected, "{}", site.id);
        // The paths in node.toml, taken relative to it, lead to the files.
        let mesh = config["mesh"].as_table().unwrap();
        let rel = |k: &str| dir.join(mesh[k].as_str().unwrap());
        assert_eq!(std::fs::read(rel("topology")).unwrap(), topology_bytes);
        assert_eq!(Topology::load(&rel("topology")).unwrap(), topology);
        assert_eq!(std::fs::read(rel("ca")).unwrap(), ca_pem);
        assert_eq!(mode(&rel("key")), 0o600);
        let identity = MeshIdentity::load(&rel("ca"), &rel("cert"), &rel("key")).unwrap();
        assert_eq!(identity.identity(), &NodeIdentity { id: site.id.clone(), role: site.role });
        // Every key the node config knows today is right; [mesh] is accepted once the node
        // config has that section, and until then it is the only thing refused.
        match node::config::NodeConfig::load(&dir.join("node.toml")) {
            Ok(c) => {
                assert_eq!((c.node.id.clone(), c.node.role), (site.id.clone(), site.role));
                assert_eq!(c.data_dir, dir.join("data"));
            }
            Err(e) => assert!(e.to_string().contains("mesh"), "{e}"),
        }
        let without_mesh = text.split("[mesh]").next().unwrap();
        let c = node::config::NodeConfig::parse(without_mesh).unwrap();
        assert_eq!((c.node.id, c.node.role), (site.id.clone(), site.role));
        assert_eq!(Some(c.http.listen), site.http);

        // The voters (city and counties in the example) get a yiwang-control config naming
        // every voter; the others none.
        let control = dir.join("control.toml");
        match site.raft {
            Some(raft) => {
                let c = control_plane::config::ControlConfig::load(&control).unwrap();
                assert_eq!(c.raft.listen, raft);
                let voters: Vec<(String, String)> =
                    c.raft.voters.iter().map(|v| (v.name.to_string(), v.addr.clone())).collect();
                assert_eq!(
                    voters,
                    [
                        ("city", "127.0.0.1:7950"),
                        ("county-wendeng", "127.0.0.1:7951"),
                        ("county-rongcheng", "127.0.0.1:7952")
                    ]
                    .map(|(n, a)| (n.to_string(), a.to_string()))
                );
                assert_eq!(c.pki.cert, dir.join("pki/node.pem"));
                assert_eq!(c.data_dir, dir.join("control-data"));
            }
            None => assert!(!control.exists(), "{} is not a voter", site.id),
        }
    }

    // Again: refused without --force; with it, the same CA signs new certificates.
    let err = fails(&["deploy", "generate", "--topology", s(&topology_path), "--out", s(&out)]);
    assert!(err.contains("already exists") && err.contains("--force"), "{err}");
    let old_cert = std::fs::read(out.join("city/pki/node.pem")).unwrap();
    let said = ok(&["deploy", "generate", "--topology", s(&topology_path), "--out", s(&out), "--force"]);
    assert!(said.contains("signed with the CA in"), "{said}");
    assert_eq!(std::fs::read(out.join("ca/ca.pem")).unwrap(), ca_pem);
    assert_ne!(std::fs::read(out.join("city/pki/node.pem")).unwrap(), old_cert);
    load_identity(&out.join("city/pki"));
}

#[test]
fn generate_with_a_given_ca_and_a_site_without_http() {
    let tmp = tempfile::tempdir().unwrap();
    let ca_dir = tmp.path().join("my-ca");
    ok(&["pki", "init", "--out", s(&ca_dir)]);
    let topology = tmp.path().join("small.toml");
    std::fs::write(
        &topology,
        "[[site]]\nid = \"city\"\nrole = \"city\"\nmesh = \"10.1.0.1:7900\"\n\n\
         [[site]]\nid = \"harbour-shidao\"\nrole = \"harbour\"\nmesh = \"10.1.2.3:7900\"\nparents = [\"city\"]\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    ok(&["deploy", "generate", "--topology", s(&topology), "--out", s(&out), "--ca", s(&ca_dir), "--days", "30"]);
    assert!(!out.join("ca").exists(), "no CA is made when one is given");
    assert_eq!(std::fs::read(out.join("city/pki/ca.pem")).unwrap(), std::fs::read(ca_dir.join("ca.pem")).unwrap());
    let config: toml::Table =
        toml::from_str(&std::fs::read_to_string(out.join("harbour-shidao/node.toml")).unwrap()).unwrap();
    assert_eq!(config["http"]["listen"].as_str(), Some("127.0.0.1:0"));
    assert_eq!(config["mesh"]["listen"].as_str(), Some("10.1.2.3:7900"));
    assert_eq!(load_identity(&out.join("harbour-shidao/pki")).role(), Role::Harbour);
}
