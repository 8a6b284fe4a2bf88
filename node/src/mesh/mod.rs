//! The mesh (being assembled).

pub mod frames;
mod holdings;
pub mod pki;
mod rate;
pub mod status;
pub mod sync;
pub mod tls;
pub mod topology;
