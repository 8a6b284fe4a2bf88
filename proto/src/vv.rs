//! Version vectors: for each origin, the highest sequence number held with nothing missing
//! below it. Sequences start at 1; 0 means nothing held from that origin.

use crate::ids::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What happened when an entry was offered to a vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// The entry is the next one from its origin: apply it (the vector advanced).
    Next,
    /// Already held: drop it, whichever path it came by.
    Duplicate,
    /// Entries between the held prefix and this one are missing: hold or re-request.
    Gap { have: u64 },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionVector {
    heads: BTreeMap<NodeId, u64>,
}

impl VersionVector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Highest contiguous sequence held from `origin` (0 for none).
    pub fn get(&self, origin: &NodeId) -> u64 {
        self.heads.get(origin).copied().unwrap_or(0)
    }

    pub fn contains(&self, origin: &NodeId, seq: u64) -> bool {
        seq != 0 && seq <= self.get(origin)
    }

    /// Offer entry `(origin, seq)`; advances the vector only when it is the next one.
    pub fn offer(&mut self, origin: &NodeId, seq: u64) -> Offer {
        let have = self.get(origin);
        if seq == 0 || seq <= have {
            Offer::Duplicate
        } else if seq == have + 1 {
            self.heads.insert(origin.clone(), seq);
            Offer::Next
        } else {
            Offer::Gap { have }
        }
    }

    /// Raise `origin`'s head to at least `seq` (for state rebuilt from a store or a snapshot).
    pub fn raise(&mut self, origin: &NodeId, seq: u64) {
        if seq > self.get(origin) {
            self.heads.insert(origin.clone(), seq);
        }
    }

    /// Pointwise maximum.
    pub fn merge(&mut self, other: &VersionVector) {
        for (origin, &seq) in &other.heads {
            self.raise(origin, seq);
        }
    }

    /// True when this vector holds everything `other` holds.
    pub fn dominates(&self, other: &VersionVector) -> bool {
        other.heads.iter().all(|(o, &s)| self.get(o) >= s)
    }

    /// The ranges `(origin, first, last)` (inclusive) that `self` holds and `peer` lacks: what
    /// to send a peer after exchanging vectors.
    pub fn ahead_of<'a>(&'a self, peer: &'a VersionVector) -> impl Iterator<Item = (&'a NodeId, u64, u64)> + 'a {
        // Both maps are sorted by origin: walk them together, one comparison per step, rather
        // than look every origin up in the peer's map (a sender does this on every wake-up, for
        // every origin of the city).
        let mut theirs = peer.heads.iter().peekable();
        self.heads.iter().filter_map(move |(o, &s)| {
            while theirs.next_if(|(p, _)| *p < o).is_some() {}
            let have = theirs.next_if(|(p, _)| *p == o).map_or(0, |(_, &h)| h);
            (s > have).then_some((o, have + 1, s))
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, u64)> {
        self.heads.iter().map(|(o, &s)| (o, s))
    }

    pub fn len(&self) -> usize {
        self.heads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heads.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    /// A vector of origins `n0`, `n1`, ... raised to the given sequences.
    fn build(pairs: &[(u8, u64)]) -> VersionVector {
        let mut v = VersionVector::new();
        for &(o, s) in pairs {
            v.raise(&id(&format!("n{o}")), s);
        }
        v
    }

    #[test]
    fn applies_in_order_once() {
        let a = id("town-a");
        let mut v = VersionVector::new();
        assert_eq!(v.offer(&a, 1), Offer::Next);
        assert_eq!(v.offer(&a, 1), Offer::Duplicate);
        assert_eq!(v.offer(&a, 3), Offer::Gap { have: 1 });
        assert_eq!(v.offer(&a, 2), Offer::Next);
        assert_eq!(v.offer(&a, 3), Offer::Next);
        assert_eq!(v.get(&a), 3);
        assert_eq!(v.offer(&a, 0), Offer::Duplicate);
    }

    #[test]
    fn ahead_of_lists_the_gaps() {
        let (a, b) = (id("a"), id("b"));
        let mut mine = VersionVector::new();
        mine.raise(&a, 10);
        mine.raise(&b, 2);
        let mut theirs = VersionVector::new();
        theirs.raise(&a, 4);
        theirs.raise(&b, 5);
        let gaps: Vec<_> = mine.ahead_of(&theirs).map(|(o, f, l)| (o.clone(), f, l)).collect();
        assert_eq!(gaps, vec![(a, 5, 10)]);
    }

    proptest! {
        /// Whatever order and however often entries arrive, each is applied exactly once and the
        /// vector ends at the highest contiguous sequence.
        #[test]
        fn any_delivery_order_applies_each_once(order in Just((1u64..=40).collect::<Vec<_>>()).prop_shuffle(), dups in proptest::collection::vec(1u64..=40, 0..40)) {
            let a = id("a");
            let mut v = VersionVector::new();
            let mut pending: Vec<u64> = Vec::new();
            let mut applied = Vec::new();
            for seq in order.into_iter().chain(dups) {
                match v.offer(&a, seq) {
                    Offer::Next => {
                        applied.push(seq);
                        pending.sort_unstable();
                        while let Some(pos) = pending.iter().position(|&p| p == v.get(&a) + 1) {
                            let p = pending.remove(pos);
                            prop_assert_eq!(v.offer(&a, p), Offer::Next);
                            applied.push(p);
                        }
                    }
                    Offer::Gap { .. } => pending.push(seq),
                    Offer::Duplicate => {}
                }
            }
            prop_assert_eq!(applied, (1..=40).collect::<Vec<_>>());
        }

        #[test]
        fn ahead_of_is_what_each_origin_lacks(x in proptest::collection::vec((0u8..6, 0u64..9), 0..10), y in proptest::collection::vec((0u8..6, 0u64..9), 0..10)) {
            let (mine, theirs) = (build(&x), build(&y));
            let got: Vec<_> = mine.ahead_of(&theirs).map(|(o, f, l)| (o.clone(), f, l)).collect();
            let want: Vec<_> = mine
                .iter()
                .filter(|(o, s)| *s > theirs.get(o))
                .map(|(o, s)| (o.clone(), theirs.get(o) + 1, s))
                .collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn merge_is_a_join(x in proptest::collection::vec((0u8..4, 0u64..20), 0..8), y in proptest::collection::vec((0u8..4, 0u64..20), 0..8)) {
            let (a, b) = (build(&x), build(&y));
            let mut ab = a.clone(); ab.merge(&b);
            let mut ba = b.clone(); ba.merge(&a);
            prop_assert_eq!(&ab, &ba);
            prop_assert!(ab.dominates(&a) && ab.dominates(&b));
            let mut again = ab.clone(); again.merge(&b);
            prop_assert_eq!(again, ab);
        }
    }
}
