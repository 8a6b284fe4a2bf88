//! The command line of `yiwangctl`. The binary only calls [`main`]; everything it does is in
//! [`crate::pki`] and [`crate::deploy`].

mod node_api;
mod operator;

pub use node_api::{AuditArgs, EscalationsCommand, MeshCommand, NodeApiArgs};
pub use operator::{ApiArgs, ListsCommand, RaftCommand, RevokeArgs};

use crate::CtlError;
use clap::{Args, Parser, Subcommand};
use node::mesh::pki::{self as mesh_pki, DEFAULT_CA_DAYS, DEFAULT_CA_NAME, DEFAULT_NODE_DAYS};
use proto::{NodeId, NodeIdentity, Role};
use std::path::PathBuf;
use time::OffsetDateTime;

/// yiwangctl: operator commands for a yiwang mesh.
///
/// Certificates: every node proves who it is with a certificate signed by the city CA. The
/// certificate names the node id (as its DNS name) and its role (city, county, town or
/// harbour); peers believe only that, never what a node says about itself. See docs/pki.md.
///
/// Deployment: one topology file lists every site, its role, its QUIC address and its parents;
/// `deploy generate` turns it into one ready directory per site. See docs/topology.md.
///
/// Sanctions lists: `lists`, `revoke` and `raft` call the operator API of any `yiwang-control`
/// voter (--api, --token or YIWANG_API, YIWANG_TOKEN). Every call has a deadline (--deadline).
#[derive(Debug, Parser)]
#[command(name = "yiwangctl", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the city CA, issue node certificates, show what a certificate says.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Generate per-site configs and certificates from a topology file.
    #[command(subcommand)]
    Deploy(DeployCommand),
    /// Read and change the city's red and black lists (through the raft group).
    Lists {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: ListsCommand,
    },
    /// Revoke a node's certificate: every node the revocation reaches refuses it.
    Revoke {
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        revoke: RevokeArgs,
    },
    /// The sanctions lists' raft group.
    Raft {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: RaftCommand,
    },
    /// The mesh as a node sees it (ask the city's node to see every node).
    Mesh {
        #[command(flatten)]
        api: NodeApiArgs,
        #[command(subcommand)]
        command: MeshCommand,
    },
    /// Escalations sent up to a node (the city's, a county's) and their answers.
    Escalations {
        #[command(flatten)]
        api: NodeApiArgs,
        #[command(subcommand)]
        command: EscalationsCommand,
    },
    /// A node's audit log, or that of a site below it: who did what, and why.
    Audit {
        #[command(flatten)]
        api: NodeApiArgs,
        #[command(flatten)]
        audit: AuditArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create a new city CA: DIR/ca.pem (the certificate, given to every node) and DIR/ca.key
    /// (the signing key, mode 0600: keep it offline, it can mint any node).
    Init(InitArgs),
    /// Issue a node certificate signed by the city CA: writes DIR/node.pem, DIR/node.key
    /// (mode 0600) and a copy of the CA's DIR/ca.pem, everything a node needs for the mesh.
    Issue(IssueArgs),
    /// Print what each certificate in a PEM file says: node id and role (or that it is a CA),
    /// subject, issuer, serial number, validity and whether it is valid now.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to write ca.pem and ca.key into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// How many days the CA is valid. Node certificates cannot outlive it.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CA_DAYS, value_parser = clap::value_parser!(u32).range(1..=i64::from(mesh_pki::MAX_DAYS)))]
    pub days: u32,
    /// Common name of the CA, shown as the issuer of every node certificate.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_CA_NAME)]
    pub name: String,
    /// Replace an existing ca.pem and ca.key. Every certificate the old CA signed stops being
    /// trusted once nodes get the new ca.pem.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Directory holding the CA's ca.pem and ca.key (as written by `pki init`).
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
    /// The node id: 1 to 64 of a-z, 0-9, '-', '_', '.', usable as a DNS name (for instance
    /// town-zhangjiachan). Peers dial the node by this name.
    #[arg(long, value_name = "ID", value_parser = parse_node_id)]
    pub node: NodeId,
    /// The node's role: city, county, town or harbour. It is signed into the certificate and
    /// decides what the node may do on the mesh.
    #[arg(long, value_name = "ROLE", value_parser = parse_role)]
    pub role: Role,
    /// Directory to write node.pem, node.key and ca.pem into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// How many days the certificate is valid (it starts an hour in the past, for clock skew).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_NODE_DAYS, value_parser = clap::value_parser!(u32).range(1..=i64::from(mesh_pki::MAX_DAYS)))]
    pub days: u32,
    /// Replace an existing node.pem and node.key (and a different ca.pem) in DIR.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A PEM file holding one or more certificates (node.pem, ca.pem).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// For every site of a topology, write OUT/<id>/node.toml (the node's config),
    /// OUT/<id>/topology.toml (a copy of the topology) and OUT/<id>/pki/{ca.pem,node.pem,node.key}.
    /// Without --ca, uses the CA in OUT/ca, creating it there if missing.
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The topology file (format in docs/topology.md; example in deploy/topology/example.toml).
    #[arg(long, value_name = "FILE")]
    pub topology: PathBuf,
    /// Output directory, one subdirectory per site (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Directory with an existing city CA (ca.pem, ca.key) to sign the node certificates.
    /// Without it the CA in OUT/ca is used, or created there: move its ca.key somewhere safe.
    #[arg(long, value_name = "DIR")]
    pub ca: Option<PathBuf>,
    /// How many days the node certificates are valid.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_NODE_DAYS, value_parser = clap::value_parser!(u32).range(1..=i64::from(mesh_pki::MAX_DAYS)))]
    pub days: u32,
    /// Replace existing site files (configs, topology copies, node certificates and keys).
    #[arg(long)]
    pub force: bool,
    /// Put what the programs write under this absolute directory (DIR/node, DIR/control)
    /// rather than beside each config: for site boxes whose configs live read-only in
    /// /etc/yiwang, as deploy/systemd expects (`--state-dir /var/lib/yiwang`).
    #[arg(long, value_name = "DIR", value_parser = absolute)]
    pub state_dir: Option<PathBuf>,
}

fn absolute(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    if p.is_absolute() {
        Ok(p)
    } else {
        Err(format!("{s:?} is not an absolute path: each site's configs are read from their own folder"))
    }
}

fn parse_node_id(s: &str) -> Result<NodeId, String> {
    let id = NodeId::new(s).map_err(|e| e.to_string())?;
    mesh_pki::check_cert_name(&id).map_err(|e| e.to_string())?;
    Ok(id)
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse().map_err(|e: proto::IdError| e.to_string())
}

/// Runs one command at `now`; returns what to print.
pub fn run(cli: Cli, now: OffsetDateTime) -> Result<String, CtlError> {
    match cli.command {
        Command::Pki(PkiCommand::Init(a)) => {
            crate::pki::init(&a.out, &a.name, a.days, now, a.force)?;
            Ok(format!(
                "created city CA {:?} valid for {} days: {} and {} (keep ca.key offline)\n",
                a.name,
                a.days,
                a.out.join(mesh_pki::CA_CERT_FILE).display(),
                a.out.join(mesh_pki::CA_KEY_FILE).display()
            ))
        }
        Command::Pki(PkiCommand::Issue(a)) => {
            let identity = NodeIdentity { id: a.node, role: a.role };
            crate::pki::issue(&a.ca, &identity, &a.out, a.days, now, a.force)?;
            Ok(format!(
                "issued a {}-day certificate for {} ({}): {}, {}, {}\n",
                a.days,
                identity.id,
                identity.role,
                a.out.join(mesh_pki::NODE_CERT_FILE).display(),
                a.out.join(mesh_pki::NODE_KEY_FILE).display(),
                a.out.join(mesh_pki::CA_CERT_FILE).display()
            ))
        }
        Command::Pki(PkiCommand::Show(a)) => crate::pki::show(&a.file, now),
        Command::Deploy(DeployCommand::Generate(a)) => {
            let state = crate::deploy::StateDirs { root: a.state_dir.clone() };
            let g = crate::deploy::generate(&a.topology, &a.out, a.ca.as_deref(), a.days, now, a.force, &state)?;
            let mut out = String::new();
            if g.ca_created {
                out.push_str(&format!(
                    "created city CA in {} (move {} somewhere safe)\n",
                    g.ca_dir.display(),
                    mesh_pki::CA_KEY_FILE
                ));
            } else {
                out.push_str(&format!("signed with the CA in {}\n", g.ca_dir.display()));
            }
            for d in &g.site_dirs {
                out.push_str(&format!("wrote {}\n", d.display()));
            }
            Ok(out)
        }
        Command::Lists { api, command } => operator::lists(&api, command),
        Command::Revoke { api, revoke } => operator::revoke(&api, revoke),
        Command::Raft { api, command } => operator::raft(&api, command),
        Command::Mesh { api, command } => node_api::mesh(&api, command),
        Command::Escalations { api, command } => node_api::escalations(&api, command),
        Command::Audit { api, audit } => node_api::audit(&api, audit),
    }
}

/// The whole of `yiwangctl`: parse the arguments, run, print; exit 1 on an error (clap exits
/// 2 on bad usage).
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli, OffsetDateTime::now_utc()) {
        Ok(text) => {
            print!("{text}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_ids_and_roles_are_refused_by_the_parser() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map_err(|e| e.to_string());
        let base = ["yiwangctl", "pki", "issue", "--ca", "c", "--out", "o"];
        let with = |node: &str, role: &str| {
            let mut v = base.to_vec();
            v.extend(["--node", node, "--role", role]);
            parse(&v)
        };
        assert!(with("town-a", "town").is_ok());
        let err = with("Town A", "town").unwrap_err();
        assert!(err.contains("lower-case"), "{err}");
        let err = with("123", "town").unwrap_err();
        assert!(err.contains("DNS name"), "{err}");
        let err = with("town-a", "mayor").unwrap_err();
        assert!(err.contains("mayor") && err.contains("city, county, town or harbour"), "{err}");
        let err = parse(&["yiwangctl", "pki", "init", "--out", "x", "--days", "0"]).unwrap_err();
        assert!(err.contains("--days"), "{err}");
    }
}
