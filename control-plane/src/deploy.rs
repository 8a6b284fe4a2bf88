//! `yiwangctl deploy generate`: one directory per site of a topology, each holding what that
//! site's `yiwang-node` needs:
//!
//! ```text
//! OUT/ca/{ca.pem,ca.key}          the city CA, when none was given (move ca.key somewhere safe)
//! OUT/<id>/node.toml              the node's config
//! OUT/<id>/control.toml           a voter's `yiwang-control` config (sites with `raft`)
//! OUT/<id>/topology.toml          a copy of the topology
//! OUT/<id>/pki/{ca.pem,node.pem,node.key}
//! ```
//!
//! Paths inside `node.toml` are relative to it, so a site's directory can be copied anywhere.

use crate::CtlError;
use node::mesh::pki::{self as mesh_pki, CityCa, Validity, DEFAULT_CA_DAYS, DEFAULT_CA_NAME};
use node::mesh::topology::{Site, Topology};
use proto::NodeIdentity;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// A site's config file in its directory.
pub const NODE_CONFIG_FILE: &str = "node.toml";
/// A voting site's `yiwang-control` config in its directory.
pub const CONTROL_CONFIG_FILE: &str = "control.toml";
/// The copy of the topology in a site's directory.
pub const TOPOLOGY_FILE: &str = "topology.toml";
/// The certificate directory in a site's directory.
pub const PKI_DIR: &str = "pki";
/// Where a CA made by `generate` goes, under the output directory.
pub const CA_DIR: &str = "ca";
/// HTTP listen address of a site whose topology entry names none: loopback, any free port.
pub const DEFAULT_HTTP: &str = "127.0.0.1:0";

/// Where the generated configs put what the programs write: beside the config by default
/// (`data`, `control-data`), or under one state directory (`--state-dir /var/lib/yiwang`:
/// `node`, `control`), so the configs and keys can live read-only in `/etc/yiwang` as the
/// systemd units in `deploy/systemd` expect.
#[derive(Debug, Clone, Default)]
pub struct StateDirs {
    pub root: Option<PathBuf>,
}

impl StateDirs {
    fn node(&self) -> String {
        self.root.as_ref().map_or_else(|| "data".to_string(), |r| r.join("node").display().to_string())
    }

    fn control(&self) -> String {
        self.root.as_ref().map_or_else(|| "control-data".to_string(), |r| r.join("control").display().to_string())
    }
}

/// What [`generate`] did.
#[derive(Debug)]
pub struct Generated {
    /// The CA that signed the certificates.
    pub ca_dir: PathBuf,
    /// Whether `generate` created that CA (rather than being given or reusing one).
    pub ca_created: bool,
    /// One directory per site, in topology order.
    pub site_dirs: Vec<PathBuf>,
}

/// Writes a directory per site of the topology in `topology_file` under `out`, with
/// certificates valid for `days` from `now`, signed by the CA in `ca_dir` — or, without one,
/// by the CA in `out/ca`, created there if it does not exist. Checks everything before writing
/// anything, and refuses to replace existing site files unless `force`.
pub fn generate(
    topology_file: &Path,
    out: &Path,
    ca_dir: Option<&Path>,
    days: u32,
    now: OffsetDateTime,
    force: bool,
    state: &StateDirs,
) -> Result<Generated, CtlError> {
    let topology = Topology::load(topology_file)?;
    let topology_bytes =
        std::fs::read(topology_file).map_err(|source| CtlError::Read { path: topology_file.to_path_buf(), source })?;
    let validity = Validity::days_from(now, days)?;

    if ca_dir.is_none() && topology.sites().iter().any(|s| s.id.as_str() == CA_DIR) {
        return Err(CtlError::Usage(format!(
            "a site is named {CA_DIR:?}, which is where the CA would go; pass --ca DIR with an existing CA"
        )));
    }
    if !force {
        for site in topology.sites() {
            let dir = out.join(site.id.as_str());
            let files = [
                dir.join(NODE_CONFIG_FILE),
                dir.join(CONTROL_CONFIG_FILE),
                dir.join(TOPOLOGY_FILE),
                dir.join(PKI_DIR).join(mesh_pki::NODE_CERT_FILE),
                dir.join(PKI_DIR).join(mesh_pki::NODE_KEY_FILE),
                dir.join(PKI_DIR).join(mesh_pki::CA_CERT_FILE),
            ];
            if let Some(path) = files.into_iter().find(|p| p.exists()) {
                return Err(mesh_pki::PkiError::Exists { path }.into());
            }
        }
    }

    let (ca, ca_dir, ca_created) = match ca_dir {
        Some(dir) => (CityCa::load(dir)?, dir.to_path_buf(), false),
        None => {
            let dir = out.join(CA_DIR);
            if dir.join(mesh_pki::CA_CERT_FILE).exists() || dir.join(mesh_pki::CA_KEY_FILE).exists() {
                (CityCa::load(&dir)?, dir, false)
            } else {
                let ca = CityCa::generate(DEFAULT_CA_NAME, Validity::days_from(now, DEFAULT_CA_DAYS)?)?;
                ca.write(&dir, false)?;
                (ca, dir, true)
            }
        }
    };

    let mut site_dirs = Vec::new();
    for site in topology.sites() {
        let dir = out.join(site.id.as_str());
        let identity = NodeIdentity { id: site.id.clone(), role: site.role };
        let cert = ca.issue(&identity, validity)?;
        cert.write(&dir.join(PKI_DIR), ca.cert_pem(), force)?;
        write(&dir.join(NODE_CONFIG_FILE), node_toml(site, state).as_bytes())?;
        if let Some(control) = control_toml(site, &topology, state) {
            write(&dir.join(CONTROL_CONFIG_FILE), control.as_bytes())?;
        }
        write(&dir.join(TOPOLOGY_FILE), &topology_bytes)?;
        site_dirs.push(dir);
    }
    Ok(Generated { ca_dir, ca_created, site_dirs })
}

fn write(path: &Path, contents: &[u8]) -> Result<(), CtlError> {
    std::fs::write(path, contents).map_err(|source| CtlError::Write { path: path.to_path_buf(), source })
}

/// A voting site's `control.toml` (`None` for a site without a `raft` address): its voter
/// listening on the topology's address, every voter of the topology, the operator API on
/// loopback (any free port; `control-data/listening.json` says which), paths relative to the
/// file. See `control_plane::config` for every key.
pub fn control_toml(site: &Site, topology: &Topology, state: &StateDirs) -> Option<String> {
    let raft = site.raft?;
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let mut out = format!(
        "# yiwang-control voter at {id}: generated by `yiwangctl deploy generate`. Paths are relative to this file.\n\
         data_dir = {data_dir}\n\
         \n\
         [pki]\n\
         ca = {ca}\n\
         cert = {cert}\n\
         key = {key}\n\
         \n\
         [raft]\n\
         listen = {raft}\n",
        id = site.id,
        data_dir = q(&state.control()),
        ca = q(&format!("{PKI_DIR}/{}", mesh_pki::CA_CERT_FILE)),
        cert = q(&format!("{PKI_DIR}/{}", mesh_pki::NODE_CERT_FILE)),
        key = q(&format!("{PKI_DIR}/{}", mesh_pki::NODE_KEY_FILE)),
        raft = q(&raft.to_string()),
    );
    for voter in topology.sites().iter().filter(|s| s.raft.is_some()) {
        let addr = voter.raft.map(|a| a.to_string()).unwrap_or_default();
        out.push_str(&format!("\n[[raft.voters]]\nname = {}\naddr = {}\n", q(voter.id.as_str()), q(&addr)));
    }
    out.push_str(&format!("\n[api]\nlisten = {}\n", q(DEFAULT_HTTP)));
    // The city's voter serves the dashboard of the whole mesh, read from the city node's API on
    // the same box (which needs a fixed port to be found).
    if let Some(http) = site.http.filter(|a| site.role == proto::Role::City && a.port() != 0) {
        let local = if http.ip().is_unspecified() {
            std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), http.port())
        } else {
            http
        };
        out.push_str(&format!(
            "\n[dashboard]\nnode_api = {}\nnode_token_file = {}\ntopology = {}\n",
            q(&local.to_string()),
            q(&format!("{}/operator.token", state.node())),
            q(TOPOLOGY_FILE)
        ));
    }
    Some(out)
}

/// A site's `node.toml`: its identity, HTTP address and mesh section, with paths relative to
/// the file.
pub fn node_toml(site: &Site, state: &StateDirs) -> String {
    let http = site.http.map(|a| a.to_string()).unwrap_or_else(|| DEFAULT_HTTP.to_string());
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    format!(
        "# yiwang node {id}: generated by `yiwangctl deploy generate`. Paths are relative to this file.\n\
         data_dir = {data_dir}\n\
         \n\
         [node]\n\
         id = {id_q}\n\
         role = {role}\n\
         \n\
         [http]\n\
         listen = {http}\n\
         \n\
         [mesh]\n\
         listen = {mesh}\n\
         topology = {topology}\n\
         ca = {ca}\n\
         cert = {cert}\n\
         key = {key}\n",
        id = site.id,
        id_q = q(site.id.as_str()),
        data_dir = q(&state.node()),
        role = q(site.role.as_str()),
        http = q(&http),
        mesh = q(&site.mesh.to_string()),
        topology = q(TOPOLOGY_FILE),
        ca = q(&format!("{PKI_DIR}/{}", mesh_pki::CA_CERT_FILE)),
        cert = q(&format!("{PKI_DIR}/{}", mesh_pki::NODE_CERT_FILE)),
        key = q(&format!("{PKI_DIR}/{}", mesh_pki::NODE_KEY_FILE)),
    )
}
