//! The store on disk: sled 0.34, every tree in one sled tree ([`KEYSPACE`]) so one
//! `apply_batch` is atomic across them (sled batches are atomic within one sled tree only).
//!
//! Stores written before that layout kept a sled tree per name; [`SledEngine::open`] moves
//! them into the keyspace once (copy, flush, then drop the old trees: a crash part-way repeats
//! the copy, which writes the same values again).

use super::engine::{full_bounds, full_key, prefix_of_old_tree, tree_prefix, Engine, KvIter, Tree, WriteBatch};
use super::StoreError;
use std::ops::Bound;
use std::path::Path;

/// The one sled tree every store tree lives in.
pub const KEYSPACE: &[u8] = b"yiwang";
/// sled's own default tree, which the store never uses.
const SLED_DEFAULT_TREE: &[u8] = b"__sled__default";
/// Pairs copied per batch when moving an old store into the keyspace.
const MIGRATE_CHUNK: usize = 1024;

pub struct SledEngine {
    db: sled::Db,
    kv: sled::Tree,
}

fn sled_error(e: sled::Error) -> StoreError {
    StoreError::Engine(e.to_string())
}

/// How long an open waits for sled's file lock to be let go of. sled's background jobs (segment
/// cleanup after a migration's dropped trees) can hold it for seconds on a loaded machine: CI
/// found 2 s too short while simulations ran beside it.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether opening failed on the file lock. sled 0.34 reports that as an error of kind `Other`
/// whose text names the lock (`config.rs`, "could not acquire lock on ..."), not as the
/// `WouldBlock` the lock call itself gave: matching the kind alone never waited at all.
fn lock_held(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().starts_with("could not acquire lock")
}

impl SledEngine {
    /// Open (or create) the database in `dir` with a page cache of `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<SledEngine, StoreError> {
        let open_error = |e: sled::Error| StoreError::Open { path: dir.display().to_string(), detail: e.to_string() };
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // The store's flusher is the only one: sled's background flusher would be a second.
            .flush_every_ms(None);
        // sled lets go of its file lock only when the last of its own background jobs drops the
        // database, a moment after the `Db` itself is dropped: a store reopened in the same
        // process (a test, a voter restarted in place) can find it still held. Another process
        // holding it is refused after LOCK_WAIT, with sled's error.
        let waited = std::time::Instant::now();
        let db = loop {
            match config.open() {
                Err(sled::Error::Io(e)) if lock_held(&e) && waited.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other.map_err(open_error)?,
            }
        };
        let kv = db.open_tree(KEYSPACE).map_err(open_error)?;
        let engine = SledEngine { db, kv };
        engine.migrate_old_layout()?;
        Ok(engine)
    }

    /// Make everything applied so far durable. Only the flusher calls it: two concurrent
    /// flushes can deadlock sled 0.34.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(sled_error)
    }

    fn migrate_old_layout(&self) -> Result<(), StoreError> {
        let old: Vec<sled::IVec> =
            self.db.tree_names().into_iter().filter(|n| n != SLED_DEFAULT_TREE && n != KEYSPACE).collect();
        if old.is_empty() {
            return Ok(());
        }
        for name in &old {
            let Some((text, prefix)) = std::str::from_utf8(name).ok().and_then(|t| Some((t, prefix_of_old_tree(t)?)))
            else {
                tracing::warn!(tree = ?name, "a sled tree of no known layout left as it is");
                continue;
            };
            let tree = self.db.open_tree(name).map_err(sled_error)?;
            tracing::info!(
                tree = text,
                entries = tree.len(),
                "moving a tree of the old store layout into the keyspace"
            );
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for kv in tree.iter() {
                let (k, v) = kv.map_err(sled_error)?;
                let mut key = prefix.clone();
                key.extend_from_slice(&k);
                batch.insert(key, v);
                n += 1;
                if n == MIGRATE_CHUNK {
                    self.kv.apply_batch(std::mem::take(&mut batch)).map_err(sled_error)?;
                    n = 0;
                }
            }
            self.kv.apply_batch(batch).map_err(sled_error)?;
        }
        self.flush()?;
        for name in old.iter().filter(|n| std::str::from_utf8(n).ok().and_then(prefix_of_old_tree).is_some()) {
            self.db.drop_tree(name).map_err(sled_error)?;
        }
        self.flush()
    }
}

impl Engine for SledEngine {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.kv.get(full_key(tree, key)).map_err(sled_error)?.map(|v| v.to_vec()))
    }

    fn range(&self, tree: Tree, from: Bound<Vec<u8>>, to: Bound<Vec<u8>>) -> KvIter {
        let skip = tree_prefix(tree).len();
        let bounds = full_bounds(tree, from, to);
        Box::new(self.kv.range::<Vec<u8>, _>(bounds).map(move |kv| {
            let (k, v) = kv.map_err(sled_error)?;
            Ok((k[skip..].to_vec(), v.to_vec()))
        }))
    }

    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut b = sled::Batch::default();
        for w in batch.writes {
            match w.value {
                Some(v) => b.insert(w.key, v),
                None => b.remove(w.key),
            }
        }
        self.kv.apply_batch(b).map_err(sled_error)
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(sled_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::Kind;

    #[test]
    fn a_store_of_the_old_layout_moves_into_the_keyspace() {
        let dir = tempfile::tempdir().unwrap();
        {
            // Without sled's background flusher, whose thread keeps the file lock a while
            // after the `Db` is dropped (the reopen below failed now and then).
            let db = sled::Config::new().path(dir.path()).flush_every_ms(None).open().unwrap();
            let alerts = db.open_tree("entries/alert").unwrap();
            for i in 0..2500u32 {
                alerts.insert(i.to_be_bytes(), vec![1u8; 10]).unwrap();
            }
            db.open_tree("state/events").unwrap().insert(b"e1", b"open").unwrap();
            db.flush().unwrap();
        }
        let engine = SledEngine::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(engine.range(Tree::Entries(Kind::Alert), Bound::Unbounded, Bound::Unbounded).count(), 2500);
        assert_eq!(engine.get(Tree::Entries(Kind::Alert), &7u32.to_be_bytes()).unwrap(), Some(vec![1u8; 10]));
        assert_eq!(engine.get(Tree::State("state/events"), b"e1").unwrap(), Some(b"open".to_vec()));
        let names: Vec<_> = engine.db.tree_names();
        assert!(!names.iter().any(|n| n.as_ref() == b"entries/alert"), "old trees are dropped: {names:?}");
        drop(engine);
        // Opening again finds nothing left to move, and the data stays.
        let engine = SledEngine::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(engine.range(Tree::Entries(Kind::Alert), Bound::Unbounded, Bound::Unbounded).rev().count(), 2500);
    }

    /// What sled says when another handle holds the lock is what the open waits out.
    #[test]
    fn a_held_lock_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let held = sled::Config::new().path(dir.path()).flush_every_ms(None).open().unwrap();
        match sled::Config::new().path(dir.path()).flush_every_ms(None).open() {
            Err(sled::Error::Io(e)) => assert!(lock_held(&e), "{e}"),
            other => panic!("a second open while the lock is held: {:?}", other.map(|_| ())),
        }
        drop(held);
    }

    #[test]
    fn a_batch_spans_trees_and_ranges_stay_inside_their_tree() {
        let dir = tempfile::tempdir().unwrap();
        let engine = SledEngine::open(dir.path(), 1 << 20).unwrap();
        let write = |tree, key: &[u8], value: Option<&[u8]>| match value {
            Some(v) => super::super::engine::Write::put(tree, key, v.to_vec()),
            None => super::super::engine::Write::remove(tree, key),
        };
        engine
            .apply(WriteBatch {
                writes: vec![
                    write(Tree::Entries(Kind::Alert), b"a", Some(b"1")),
                    write(Tree::Entries(Kind::Audit), b"a", Some(b"2")),
                ],
            })
            .unwrap();
        engine.apply(WriteBatch { writes: vec![write(Tree::Entries(Kind::Alert), b"a", None)] }).unwrap();
        assert_eq!(engine.get(Tree::Entries(Kind::Alert), b"a").unwrap(), None);
        let audit: Vec<_> = engine.range(Tree::Entries(Kind::Audit), Bound::Unbounded, Bound::Unbounded).collect();
        assert_eq!(audit.into_iter().map(Result::unwrap).collect::<Vec<_>>(), vec![(b"a".to_vec(), b"2".to_vec())]);
    }
}
