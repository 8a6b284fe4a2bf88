//! What the store needs of a storage engine: one ordered keyspace of named trees, read at any
//! time, written in atomic batches. Two engines implement it: sled on disk ([`super::sled_engine`])
//! and the simulator's disk in memory ([`super::sim`]). Making writes durable is not part of
//! this interface: each engine's flusher driver does it its own way (a blocking `flush` on the
//! sled thread, virtual time on the simulated disk), see [`super::flusher`].
//!
//! Architecture invariant: no engine type crosses this interface. Keys and values come out as
//! plain bytes, so nothing above the store can depend on which engine runs.

use super::StoreError;
use std::ops::Bound;

/// A tree's name, as the store's callers give it (`entries/alert`, `state/events`, ...).
pub type Tree = &'static str;

/// One stored pair, the key relative to its tree.
pub type Kv = (Vec<u8>, Vec<u8>);

/// An iterator over one tree's pairs in key order, from either end.
pub type KvIter = Box<dyn DoubleEndedIterator<Item = Result<Kv, StoreError>> + Send>;

/// One write: a value to set, or `None` to remove the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub tree: Tree,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// Writes applied together: after a crash, all of them are there or none.
#[derive(Debug, Default)]
pub struct WriteBatch {
    pub writes: Vec<Write>,
}

impl WriteBatch {
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

pub trait Engine: Send + Sync + 'static {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// The pairs of `tree` with keys within the bounds (keys relative to the tree).
    fn range(&self, tree: Tree, from: Bound<Vec<u8>>, to: Bound<Vec<u8>>) -> KvIter;

    /// Apply `batch` atomically. Readers see it at once; it is durable only after the driver's
    /// next flush.
    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError>;

    /// Bytes the store takes on its disk.
    fn size_on_disk(&self) -> Result<u64, StoreError>;
}

/// Every tree lives in one keyspace under `[len(name)][name]`, so one atomic batch can span
/// trees (an alert and its audit record, a received entry and its summary upsert).
pub fn tree_prefix(tree: Tree) -> Vec<u8> {
    let name = tree.as_bytes();
    assert!(!name.is_empty() && name.len() < 255, "tree names are 1 to 254 bytes: {tree:?}");
    let mut p = Vec::with_capacity(1 + name.len());
    p.push(name.len() as u8);
    p.extend_from_slice(name);
    p
}

/// `key` of `tree` in the shared keyspace.
pub fn full_key(tree: Tree, key: &[u8]) -> Vec<u8> {
    let mut k = tree_prefix(tree);
    k.extend_from_slice(key);
    k
}

/// The keyspace bounds of a range of `tree` (given relative to the tree). An unbounded end
/// stops at the tree's last key: the first key after every key with the tree's prefix.
pub fn full_bounds(tree: Tree, from: Bound<Vec<u8>>, to: Bound<Vec<u8>>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let prefix = tree_prefix(tree);
    let map = |b: Bound<Vec<u8>>| match b {
        Bound::Included(k) => Bound::Included(full_key(tree, &k)),
        Bound::Excluded(k) => Bound::Excluded(full_key(tree, &k)),
        Bound::Unbounded => Bound::Unbounded,
    };
    let from = match map(from) {
        Bound::Unbounded => Bound::Included(prefix.clone()),
        b => b,
    };
    let to = match map(to) {
        // The prefix is a length byte then the name, so the same length byte followed by the
        // name with its last byte raised sorts after every key of the tree and before any
        // other tree's.
        Bound::Unbounded => {
            let mut end = prefix;
            *end.last_mut().expect("a name of at least one byte") += 1;
            Bound::Excluded(end)
        }
        b => b,
    };
    (from, to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::RangeBounds;

    #[test]
    fn trees_do_not_overlap_in_the_keyspace() {
        let (from, to) = full_bounds("state/a", Bound::Unbounded, Bound::Unbounded);
        let inside = full_key("state/a", &[0xff; 20]);
        let neighbours = [full_key("state/b", b""), full_key("state/a/x", b""), full_key("state/", b"\xff")];
        let contains = |k: &Vec<u8>| RangeBounds::<Vec<u8>>::contains(&(from.as_ref(), to.as_ref()), k);
        assert!(contains(&inside));
        assert!(contains(&full_key("state/a", b"")));
        for n in &neighbours {
            assert!(!contains(n), "{n:?} is another tree's key");
        }
    }
}
