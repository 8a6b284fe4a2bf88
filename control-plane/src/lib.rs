//! City-level services of yiwang. For now: the operator's command line `yiwangctl` and what it
//! does, all of it a library so tests and other tools can call the same code:
//!
//! - [`pki`]: create the city CA, issue node certificates, show what a certificate says (the
//!   certificate conventions themselves live in `node::mesh::pki`);
//! - [`deploy`]: turn a topology file into one directory per site with its `node.toml`, a copy
//!   of the topology and its certificates;
//! - [`cli`]: the `clap` definition of `yiwangctl` and the dispatch to the above;
//! - [`raft`], [`api`], [`service`]: `yiwang-control`, a voter of the sanctions lists and its
//!   operator API;
//! - [`dashboard`]: the operators' dashboard that API serves.

pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod dashboard;
pub mod deploy;
pub mod pki;
pub mod raft;
pub mod service;

use node::mesh::pki::PkiError;
use node::mesh::topology::TopologyError;
use std::path::PathBuf;

/// Everything `yiwangctl` can fail with; each message names the file, site or flag involved.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("{}", pki_message(.0))]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error(transparent)]
    Tls(#[from] node::mesh::tls::TlsError),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Api(#[from] client::ClientError),
}

fn pki_message(e: &PkiError) -> String {
    match e {
        PkiError::Exists { .. } => format!("{e} (pass --force to replace it)"),
        e => e.to_string(),
    }
}
