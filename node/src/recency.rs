//! A map bounded by recency: past its capacity, making room drops the entry used least
//! recently. For state kept per source that a sender can multiply at will (AIS decoders per
//! UDP sender, cameras nobody configured, vessels near a fence): a flood evicts the oldest
//! sources one by one instead of growing without limit or forgetting everyone at once.
//!
//! Recency is a counter, not a clock, and both maps are ordered, so nothing observable depends
//! on hashing: a simulation replays.

use std::collections::BTreeMap;

pub struct RecentMap<K, V> {
    entries: BTreeMap<K, (u64, V)>,
    by_use: BTreeMap<u64, K>,
    next_use: u64,
    capacity: usize,
}

impl<K: Ord + Clone, V> RecentMap<K, V> {
    /// A map holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        RecentMap { entries: BTreeMap::new(), by_use: BTreeMap::new(), next_use: 0, capacity: capacity.max(1) }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// The entry for `key`, marked as just used.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let (used, value) = self.entries.get_mut(key)?;
        self.by_use.remove(used);
        *used = self.next_use;
        self.by_use.insert(self.next_use, key.clone());
        self.next_use += 1;
        Some(value)
    }

    /// The entry for `key`, made with `make` if there is none (dropping the least recently
    /// used entry when full, returned with it), marked as just used.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> (&mut V, Option<(K, V)>) {
        let mut evicted = None;
        if !self.entries.contains_key(&key) {
            if self.entries.len() >= self.capacity {
                evicted = self.pop_least_recent();
            }
            self.entries.insert(key.clone(), (self.next_use, make()));
            self.by_use.insert(self.next_use, key.clone());
            self.next_use += 1;
            let value = &mut self.entries.get_mut(&key).expect("just inserted").1;
            return (value, evicted);
        }
        (self.get_mut(&key).expect("present"), evicted)
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (used, value) = self.entries.remove(key)?;
        self.by_use.remove(&used);
        Some(value)
    }

    /// Drop and return the entry used least recently.
    pub fn pop_least_recent(&mut self) -> Option<(K, V)> {
        let (_, key) = self.by_use.pop_first()?;
        let (_, value) = self.entries.remove(&key)?;
        Some((key, value))
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(_, v)| v)
    }

    /// Every entry, in key order; iterating does not count as use.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, (_, v))| (k, v))
    }

    /// Every entry, in key order; changing them does not count as use.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.entries.iter_mut().map(|(k, (_, v))| (k, v))
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.values_mut().map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_capacity_the_least_recently_used_goes_first() {
        let mut m = RecentMap::new(3);
        for k in ["a", "b", "c"] {
            assert!(m.get_or_insert_with(k, || 0).1.is_none());
        }
        *m.get_mut(&"a").unwrap() += 1; // a is now the most recent; b the least.
        let (_, evicted) = m.get_or_insert_with("d", || 0);
        assert_eq!(evicted, Some(("b", 0)));
        let (_, evicted) = m.get_or_insert_with("e", || 0);
        assert_eq!(evicted, Some(("c", 0)));
        assert_eq!(m.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(), vec![("a", 1), ("d", 0), ("e", 0)]);
        assert_eq!(m.remove(&"d"), Some(0));
        assert_eq!(m.pop_least_recent(), Some(("a", 1)));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn a_flood_of_new_keys_keeps_the_newest_and_stays_bounded() {
        let mut m = RecentMap::new(1024);
        for k in 0..100_000u32 {
            m.get_or_insert_with(k, || ());
        }
        assert_eq!(m.len(), 1024);
        assert!(m.contains_key(&99_999) && !m.contains_key(&(100_000 - 1025)));
    }
}
