//! Feed decoders and listeners: vessel AIS, road checkpoints, cameras.

pub mod ais;
pub mod ais_io;
pub mod camera;
pub mod checkpoint;
pub mod http_ingest;
pub mod lines;
pub mod sinks;
pub mod tcp_json;
