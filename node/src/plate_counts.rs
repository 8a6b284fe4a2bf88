//! Hourly counts of plate reads per checkpoint: what is kept of plate reads that matched no
//! list once their own retention (`store.plate_read_retention_hours`) has removed them, or
//! instead of them when it is 0.
//!
//! Every plate read is counted, hit or not, in the hour the node took it in (its clock, not
//! the device's: a device's clock is not trusted to name an hour, and counting by arrival
//! keeps the keys to one per checkpoint and hour that really passed). The count is made
//! durable in the same commit as the read and its alerts, so an acknowledged read is counted
//! exactly once. Counts are not swept: a checkpoint adds at most 8,760 small keys a year.

use crate::clock::HOUR_MS;
use crate::store::{decode_count, Op, Store, StoreError};
use std::collections::BTreeMap;
use std::ops::Bound;

/// The state tree: key = checkpoint length (1 byte), checkpoint, hour start (ms, big-endian).
pub const TREE: &str = "state/plate-read-counts";

/// The longest checkpoint id counted as itself; longer ones (no decoder lets one through) are
/// cut, so the key stays well formed.
const MAX_CHECKPOINT_BYTES: usize = u8::MAX as usize;

/// The start of the hour holding `ms`.
pub fn hour_of(ms: u64) -> u64 {
    ms - ms % HOUR_MS
}

fn checkpoint_prefix(checkpoint: &str) -> Vec<u8> {
    let mut cut = checkpoint.len().min(MAX_CHECKPOINT_BYTES);
    while !checkpoint.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut key = Vec::with_capacity(1 + cut + 8);
    key.push(cut as u8);
    key.extend_from_slice(&checkpoint.as_bytes()[..cut]);
    key
}

fn key(checkpoint: &str, hour_ms: u64) -> Vec<u8> {
    let mut key = checkpoint_prefix(checkpoint);
    key.extend_from_slice(&hour_ms.to_be_bytes());
    key
}

/// `(checkpoint, hour start)` of a key, if it is one.
fn decode_key(key: &[u8]) -> Option<(String, u64)> {
    let (&len, rest) = key.split_first()?;
    let (name, hour) = rest.split_at_checked(usize::from(len))?;
    Some((String::from_utf8(name.to_vec()).ok()?, u64::from_be_bytes(hour.try_into().ok()?)))
}

/// One batch's reads, gathered per checkpoint and hour, to be added in its commit.
#[derive(Debug, Default)]
pub struct Tally(BTreeMap<String, BTreeMap<u64, u64>>);

impl Tally {
    /// A read at `checkpoint` taken in at `now_ms`. Allocates only for a checkpoint new to
    /// the batch.
    pub fn read(&mut self, checkpoint: &str, now_ms: u64) {
        let hours = match self.0.get_mut(checkpoint) {
            Some(hours) => hours,
            None => self.0.entry(checkpoint.to_owned()).or_default(),
        };
        *hours.entry(hour_of(now_ms)).or_default() += 1;
    }

    /// The ops that add the tally to the stored counts.
    pub fn into_ops(self) -> impl Iterator<Item = Op> {
        self.0.into_iter().flat_map(|(checkpoint, hours)| {
            hours.into_iter().map(move |(hour, add)| Op::Count { tree: TREE, key: key(&checkpoint, hour), add })
        })
    }
}

/// One checkpoint's reads in one hour.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HourCount {
    pub checkpoint: String,
    pub hour_ms: u64,
    pub reads: u64,
}

/// The counts of `checkpoint` (every checkpoint: `None`) for hours starting in
/// `[from_ms, to_ms)`, by checkpoint then hour, at most `limit`. Reads only what it returns,
/// plus one seek per checkpoint passed over.
pub fn counts(
    store: &Store,
    checkpoint: Option<&str>,
    from_ms: u64,
    to_ms: u64,
    limit: usize,
) -> Result<Vec<HourCount>, StoreError> {
    let mut out = Vec::new();
    let mut next = match checkpoint {
        Some(c) => Some(c.to_owned()),
        None => first_checkpoint(store, Bound::Unbounded)?,
    };
    while let Some(c) = next {
        if out.len() >= limit || to_ms <= from_ms {
            break;
        }
        for row in store.range(TREE, Bound::Included(key(&c, from_ms)), Bound::Excluded(key(&c, to_ms))) {
            let (k, v) = row?;
            let (_, hour_ms) = decode_key(&k).ok_or_else(|| corrupt(&k))?;
            let reads = decode_count(&v).ok_or_else(|| corrupt(&k))?;
            out.push(HourCount { checkpoint: c.clone(), hour_ms, reads });
            if out.len() == limit {
                break;
            }
        }
        next = match checkpoint {
            Some(_) => None,
            None => first_checkpoint(store, Bound::Excluded(key(&c, u64::MAX)))?,
        };
    }
    Ok(out)
}

/// The checkpoint of the first key after `from`.
fn first_checkpoint(store: &Store, from: Bound<Vec<u8>>) -> Result<Option<String>, StoreError> {
    match store.range(TREE, from, Bound::Unbounded).next().transpose()? {
        None => Ok(None),
        Some((k, _)) => Ok(Some(decode_key(&k).ok_or_else(|| corrupt(&k))?.0)),
    }
}

fn corrupt(key: &[u8]) -> StoreError {
    StoreError::Corrupt { tree: TREE.to_string(), detail: format!("bad count key {key:?}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_checkpoint_then_hour_and_read_back() {
        let a = key("cp-7", hour_of(7_200_001));
        assert_eq!(decode_key(&a), Some(("cp-7".to_string(), 7_200_000)));
        assert!(key("cp-7", 0) < key("cp-7", 3_600_000));
        assert!(key("cp-7", 3_600_000) < key("cp-8", 0));
        // A cut id keeps whole characters.
        let long = "鲁".repeat(100);
        let (cut, hour) = decode_key(&key(&long, 0)).unwrap();
        assert_eq!((cut.len(), hour), (255, 0));
    }

    #[test]
    fn a_tally_adds_per_checkpoint_and_hour() {
        let mut t = Tally::default();
        t.read("cp-1", 10);
        t.read("cp-1", 20);
        t.read("cp-1", HOUR_MS + 5);
        t.read("cp-2", 30);
        let ops: Vec<(Vec<u8>, u64)> = t
            .into_ops()
            .map(|op| match op {
                Op::Count { key, add, .. } => (key, add),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ops, [(key("cp-1", 0), 2), (key("cp-1", HOUR_MS), 1), (key("cp-2", 0), 1)]);
    }
}
