//! Key layout of the entry trees (within their tree; see `engine` for how trees share one
//! keyspace).
//!
//! An entry lives in the tree of its kind under `[len(origin)][origin][seq as u64 BE]`, so one
//! origin's entries sort by sequence and a prefix scan reads them in order. Keys that start with
//! byte 0 (no origin has an empty id) hold the tree's own metadata, written in the same atomic
//! batch as the entries they describe.

use proto::{Hlc, NodeId};

/// `[0, 'h', 'w']`: the highest sequence and timestamp this node ever issued in the tree. Kept
/// separately from the entries so that sequence numbers are never reused even after retention
/// has deleted every entry.
pub const HIGH_WATER: &[u8] = &[0, b'h', b'w'];

/// `[0, 'c', 'h']`, in the audit tree: the link this node's next audit record carries (see
/// `audit_chain`): the hash of its last one, written with it.
pub const CHAIN_HEAD: &[u8] = &[0, b'c', b'h'];

pub fn origin_prefix(origin: &NodeId) -> Vec<u8> {
    let id = origin.as_str().as_bytes();
    let mut k = Vec::with_capacity(1 + id.len() + 8);
    k.push(id.len() as u8);
    k.extend_from_slice(id);
    k
}

pub fn entry_key(origin: &NodeId, seq: u64) -> Vec<u8> {
    let mut k = origin_prefix(origin);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The origin of an entry key, or `None` for a metadata or foreign-shaped key.
pub fn origin_of(key: &[u8]) -> Option<NodeId> {
    let len = *key.first()? as usize;
    let id = key.get(1..1 + len)?;
    NodeId::new(std::str::from_utf8(id).ok()?).ok()
}

/// The sequence number in an entry key, or `None` for a metadata or foreign-shaped key.
pub fn seq_of(key: &[u8]) -> Option<u64> {
    let len = *key.first()? as usize;
    if len == 0 || key.len() != 1 + len + 8 {
        return None;
    }
    Some(u64::from_be_bytes(key[1 + len..].try_into().ok()?))
}

pub fn encode_high_water(seq: u64, hlc: Hlc) -> [u8; 20] {
    let mut v = [0u8; 20];
    v[..8].copy_from_slice(&seq.to_be_bytes());
    v[8..].copy_from_slice(&hlc.to_sortable_bytes());
    v
}

pub fn decode_high_water(v: &[u8]) -> Option<(u64, Hlc)> {
    if v.len() != 20 {
        return None;
    }
    let seq = u64::from_be_bytes(v[..8].try_into().ok()?);
    let wall = u64::from_be_bytes(v[8..16].try_into().ok()?);
    let logical = u32::from_be_bytes(v[16..20].try_into().ok()?);
    Some((seq, Hlc::new(wall, logical)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_sequence_within_an_origin() {
        let o = NodeId::new("town-a").unwrap();
        assert!(entry_key(&o, 2) < entry_key(&o, 10));
        assert!(entry_key(&o, 255) < entry_key(&o, 256));
        assert_eq!(seq_of(&entry_key(&o, 77)), Some(77));
        assert_eq!(seq_of(HIGH_WATER), None);
        assert_eq!(origin_of(&entry_key(&o, 5)), Some(o.clone()));
        assert_eq!(origin_of(HIGH_WATER), None);
        assert!(entry_key(&o, 1).starts_with(&origin_prefix(&o)));
    }

    #[test]
    fn high_water_roundtrips() {
        let v = encode_high_water(42, Hlc::new(1_700_000_000_000, 3));
        assert_eq!(decode_high_water(&v), Some((42, Hlc::new(1_700_000_000_000, 3))));
        assert_eq!(decode_high_water(&v[..19]), None);
    }
}
