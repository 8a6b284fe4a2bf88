#![no_main]
//! `node::config::NodeConfig::parse` on a TOML string (a node's config file, defaults and
//! validation included).

use libfuzzer_sys::fuzz_target;
use node::config::NodeConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = NodeConfig::parse(text);
});
