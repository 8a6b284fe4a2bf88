#![no_main]
//! `node::mesh::topology::Topology::parse` on a TOML string (a topology file), then the walks a
//! node makes over a parsed topology: parents, children, neighbours and subtrees of every site.

use libfuzzer_sys::fuzz_target;
use node::mesh::topology::Topology;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(topology) = Topology::parse(text) else { return };
    let _ = topology.city();
    for site in topology.sites() {
        let id = &site.id;
        let _ = topology.site(id);
        let _ = topology.parents(id);
        let _ = topology.children(id);
        let _ = topology.neighbours(id);
        for origin in &topology.subtree(id) {
            let _ = topology.in_subtree(id, origin);
        }
    }
});
