//! Rules that run at ingest and raise alerts.

pub mod fence;
pub mod watchlist;
