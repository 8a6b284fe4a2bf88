//! The yiwang edge node as a library: an instance takes its clock, sockets, store and metrics
//! registry from whoever builds it, so the binary and the simulator share every line.

pub mod api;
pub mod audit_chain;
pub mod auth;
pub mod clock;
pub mod config;
pub mod enforcement;
pub mod events;
pub mod feeds;
pub mod health;
pub mod http_client;
pub mod ingest;
pub mod instance;
pub mod lists;
pub mod mesh;
pub mod metrics;
pub mod plate_counts;
pub mod process;
pub mod recency;
pub mod records;
pub mod rng;
pub mod rules;
pub mod sanctions;
pub mod store;
pub mod vessels;
pub mod workflow;

/// The first ```` ```toml ```` block of a module's `//!` docs, for tests that check the
/// documented example still parses (here and in the control plane).
#[doc(hidden)]
pub fn doc_toml_example(source: &str) -> String {
    source
        .lines()
        .skip_while(|l| !l.starts_with("//! ```toml"))
        .skip(1)
        .take_while(|l| !l.starts_with("//! ```"))
        .map(|l| format!("{}\n", l.trim_start_matches("//!").trim_start()))
        .collect()
}
