//! The yiwang edge node as a library: an instance takes its clock, sockets, store and metrics
//! registry from whoever builds it, so the binary and the simulator share every line.

pub mod api;
pub mod auth;
pub mod clock;
pub mod config;
pub mod events;
pub mod feeds;
pub mod ingest;
pub mod instance;
pub mod lists;
pub mod mesh;
pub mod metrics;
pub mod records;
pub mod rules;
pub mod store;
pub mod vessels;
pub mod workflow;
