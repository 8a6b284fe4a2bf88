//! What the store needs of a storage engine: one ordered keyspace of named trees, read at any
//! time, written in atomic batches. Two engines implement it: sled on disk ([`super::sled_engine`])
//! and the simulator's disk in memory ([`super::sim`]). Making writes durable is not part of
//! this interface: each engine's flusher driver does it its own way (a blocking `flush` on the
//! sled thread, virtual time on the simulated disk), see [`super::flusher`].
//!
//! Architecture invariant: no engine type crosses this interface. Keys and values come out as
//! plain bytes, so nothing above the store can depend on which engine runs.

use super::StoreError;
use proto::Kind;
use std::ops::Bound;

/// A tree: the entries of one kind, or a state tree named by its owner (`state/events`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tree {
    Entries(Kind),
    State(&'static str),
}

impl std::fmt::Display for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tree::Entries(kind) => write!(f, "entries/{kind}"),
            Tree::State(name) => f.write_str(name),
        }
    }
}

/// The first byte of an entry tree's keys: this, plus the kind's number. A state tree's keys
/// start with the length of its name, which is below it, so the two never meet.
const ENTRY_TREE_TAG: u8 = 0xE0;
/// Longest state tree name.
const MAX_STATE_NAME: usize = ENTRY_TREE_TAG as usize - 1;

/// One stored pair, the key relative to its tree.
pub type Kv = (Vec<u8>, Vec<u8>);

/// An iterator over one tree's pairs in key order, from either end.
pub type KvIter = Box<dyn DoubleEndedIterator<Item = Result<Kv, StoreError>> + Send>;

/// One write: a value to set, or `None` to remove the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub tree: Tree,
    /// The key in the shared keyspace ([`full_key`]), built once, where the write is made.
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

impl Write {
    /// Set `key` of `tree` to `value`.
    pub fn put(tree: Tree, key: &[u8], value: Vec<u8>) -> Write {
        Write { tree, key: full_key(tree, key), value: Some(value) }
    }

    /// Remove `key` of `tree`.
    pub fn remove(tree: Tree, key: &[u8]) -> Write {
        Write { tree, key: full_key(tree, key), value: None }
    }
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

/// Every tree lives in one keyspace, so one atomic batch can span trees (an alert and its audit
/// record, a received entry and its summary upsert). An entry tree's keys start with one byte
/// (they are most of what a node stores, and sled writes every key whole); a state tree's with
/// `[len(name)][name]`.
pub fn tree_prefix(tree: Tree) -> Vec<u8> {
    match tree {
        Tree::Entries(kind) => vec![ENTRY_TREE_TAG + kind as u8],
        Tree::State(name) => {
            let name = name.as_bytes();
            assert!(
                !name.is_empty() && name.len() <= MAX_STATE_NAME,
                "state tree names are 1 to {MAX_STATE_NAME} bytes"
            );
            let mut p = Vec::with_capacity(1 + name.len());
            p.push(name.len() as u8);
            p.extend_from_slice(name);
            p
        }
    }
}

/// The prefix of the tree a store of the earlier layout kept under sled tree `name`
/// (`entries/<kind>` or a state tree's name), for moving it into the keyspace.
pub fn prefix_of_old_tree(name: &str) -> Option<Vec<u8>> {
    if let Some(kind) = name.strip_prefix("entries/").and_then(Kind::parse) {
        return Some(tree_prefix(Tree::Entries(kind)));
    }
    (!name.is_empty() && name.len() <= MAX_STATE_NAME).then(|| {
        let mut p = vec![name.len() as u8];
        p.extend_from_slice(name.as_bytes());
        p
    })
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
        // The prefix with its last byte raised sorts after every key of the tree and before any
        // other tree's (an entry tree's tag is followed by the next kind's; a state tree's
        // length byte by its name, whose bytes are ASCII).
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
        let (from, to) = full_bounds(Tree::State("state/a"), Bound::Unbounded, Bound::Unbounded);
        let inside = full_key(Tree::State("state/a"), &[0xff; 20]);
        let neighbours = [
            full_key(Tree::State("state/b"), b""),
            full_key(Tree::State("state/a/x"), b""),
            full_key(Tree::State("state/"), b"\xff"),
            full_key(Tree::Entries(Kind::Alert), b""),
        ];
        let contains = |k: &Vec<u8>| RangeBounds::<Vec<u8>>::contains(&(from.as_ref(), to.as_ref()), k);
        assert!(contains(&inside));
        assert!(contains(&full_key(Tree::State("state/a"), b"")));
        for n in &neighbours {
            assert!(!contains(n), "{n:?} is another tree's key");
        }
        for kind in Kind::ALL {
            let (from, to) = full_bounds(Tree::Entries(kind), Bound::Unbounded, Bound::Unbounded);
            let contains = |k: &Vec<u8>| RangeBounds::<Vec<u8>>::contains(&(from.as_ref(), to.as_ref()), k);
            assert!(contains(&full_key(Tree::Entries(kind), &[0xff; 30])));
            for other in Kind::ALL.into_iter().filter(|k| *k != kind) {
                assert!(!contains(&full_key(Tree::Entries(other), b"")), "{kind} and {other} overlap");
            }
            assert!(!contains(&full_key(Tree::State("state/x"), &[0xff; 30])));
        }
        assert_eq!(prefix_of_old_tree("entries/alert"), Some(tree_prefix(Tree::Entries(Kind::Alert))));
        assert_eq!(prefix_of_old_tree("state/events"), Some(tree_prefix(Tree::State("state/events"))));
    }
}
