//! The audit log's hash chain (ARCHITECTURE section 3): each audit record of an origin carries
//! the hash of that origin's record before it, so a record changed, removed or put in after the
//! fact breaks the chain at the next one.
//!
//! - A record's payload is the [`AuditRecord`]'s encoding followed by its [`Link`]: the SHA-256
//!   of the previous record's stored bytes (the whole entry: origin, sequence, stamp, payload,
//!   its own link included), or [`GENESIS`] for an origin's first record. Records written
//!   before the chain have no link and are read as before ([`split`]).
//! - The store's writer, which numbers every record, makes the links (`store::flusher`); it
//!   keeps the last one beside the records, written in the same commit.
//! - Receivers check each record of another origin as it arrives, and
//!   `yiwang-node verify-audit` checks a stopped store or an export ([`ChainCheck`]).
//!
//! A record whose predecessor is not held (deleted by retention, or never received) cannot be
//! checked against it: the chain is checked from there on.

use crate::records::AuditRecord;
use proto::{codec, CodecError, NodeId};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The hash one record carries of the record before it.
pub type Link = [u8; 32];

/// The link of an origin's first record.
pub const GENESIS: Link = [0; 32];

/// The link to a record: the SHA-256 of its stored bytes (see [`proto::EntryBytes`]).
pub fn link_to(stored: &[u8]) -> Link {
    Sha256::digest(stored).into()
}

/// A record's payload: the record, then its link.
pub fn payload(record: &AuditRecord, link: &Link) -> Result<Vec<u8>, CodecError> {
    let mut p = codec::encode(record)?;
    p.extend_from_slice(link);
    Ok(p)
}

/// The record in an audit payload and its link (`None` for a record written before the chain).
pub fn split(payload: &[u8]) -> Result<(AuditRecord, Option<Link>), CodecError> {
    let (record, used) = codec::decode_prefix::<AuditRecord>(payload)?;
    Ok((record, link_after(&payload[used..])?))
}

/// What follows a record's encoding: nothing (a record from before the chain) or its link.
fn link_after(rest: &[u8]) -> Result<Option<Link>, CodecError> {
    match rest {
        [] => Ok(None),
        rest => Link::try_from(rest).map(Some).map_err(|_| CodecError::TrailingBytes(rest.len())),
    }
}

/// An [`AuditRecord`]'s fields as they lie in a payload: the same encoding, read without
/// copying them out.
#[derive(serde::Deserialize)]
#[allow(dead_code)] // read to check the record's shape and find where it ends, never used
struct RecordShape<'a> {
    at_ms: u64,
    actor: &'a str,
    action: &'a str,
    subject: &'a str,
    why: &'a str,
}

/// The link in an audit payload (`None` for a record written before the chain), the record
/// checked for shape but not copied out: what a receiver reads of every record it takes in.
pub fn link_of(payload: &[u8]) -> Result<Option<Link>, CodecError> {
    let (_, used) = codec::decode_prefix_borrowed::<RecordShape>(payload)?;
    link_after(&payload[used..])
}

/// The record in an audit payload, its link set aside.
pub fn record(payload: &[u8]) -> Result<AuditRecord, CodecError> {
    split(payload).map(|(record, _)| record)
}

/// The first record at which an origin's chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the audit chain of {origin} is broken at record {seq}: {why}")]
pub struct Break {
    pub origin: NodeId,
    pub seq: u64,
    pub why: BreakKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BreakKind {
    /// Its link is not the hash of the record before it as held here: that record (or this
    /// one's link) was changed after it was written.
    #[error("its link does not match record {0} as held here")]
    Mismatch(u64),
    /// The origin's first record does not link to the start of a chain.
    #[error("it is its origin's first record but links to an earlier one")]
    NotGenesis,
    /// A record without a link after records with one: put in or rewritten without the chain.
    #[error("it carries no link, after records that do")]
    Unlinked,
    #[error("it cannot be read: {0}")]
    Unreadable(String),
}

/// What is known of one origin's chain: its last record checked and that record's hash.
#[derive(Debug, Clone, Copy)]
struct Tip {
    seq: u64,
    link: Link,
    /// Whether records with links have been seen (after which an unlinked one is a break).
    linked: bool,
}

/// Checks chains record by record, each origin's in sequence order; no I/O. Records may skip
/// ahead (a predecessor not held): the chain is then taken up from the record after the gap.
#[derive(Debug, Default)]
pub struct ChainCheck {
    tips: BTreeMap<NodeId, Tip>,
    checked: u64,
    unlinked: u64,
}

impl ChainCheck {
    pub fn new() -> ChainCheck {
        ChainCheck::default()
    }

    /// Whether the record before `seq` of `origin` is known here (else the caller may look it
    /// up and [`ChainCheck::seed`] with it).
    pub fn knows(&self, origin: &NodeId, seq: u64) -> bool {
        self.tips.get(origin).is_some_and(|t| t.seq + 1 == seq)
    }

    /// Take `stored`, the stored bytes of `origin`'s record `seq`, as known good: the chain
    /// is checked from the record after it.
    pub fn seed(&mut self, origin: &NodeId, seq: u64, stored: &[u8]) {
        let linked = proto::EntryBytes::decode(bytes::Bytes::copy_from_slice(stored))
            .is_ok_and(|e| matches!(link_of(e.payload()), Ok(Some(_))));
        self.tips.insert(origin.clone(), Tip { seq, link: link_to(stored), linked });
    }

    /// Check `origin`'s record `seq`, whose stored bytes are `stored` and payload `payload`.
    /// Whatever the verdict, the chain goes on from this record: one change breaks the chain
    /// once, not at every record after it.
    pub fn check(&mut self, origin: &NodeId, seq: u64, stored: &[u8], payload: &[u8]) -> Result<(), Break> {
        let before = self.tips.get(origin).copied().filter(|t| t.seq + 1 == seq);
        let was_linked = self.tips.get(origin).is_some_and(|t| t.linked);
        let broken = |why| Break { origin: origin.clone(), seq, why };
        let read = link_of(payload);
        let verdict = match &read {
            Err(e) => Err(broken(BreakKind::Unreadable(e.to_string()))),
            Ok(None) => {
                self.unlinked += 1;
                if was_linked {
                    Err(broken(BreakKind::Unlinked))
                } else {
                    Ok(())
                }
            }
            Ok(Some(link)) => match before {
                Some(b) if b.link != *link => Err(broken(BreakKind::Mismatch(b.seq))),
                None if seq == 1 && *link != GENESIS => Err(broken(BreakKind::NotGenesis)),
                _ => Ok(()),
            },
        };
        let tip = Tip { seq, link: link_to(stored), linked: was_linked || matches!(read, Ok(Some(_))) };
        match self.tips.get_mut(origin) {
            Some(t) => *t = tip,
            None => {
                self.tips.insert(origin.clone(), tip);
            }
        }
        self.checked += 1;
        verdict
    }

    /// Records checked so far.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// Records without a link (written before the chain) checked so far.
    pub fn unlinked(&self) -> u64 {
        self.unlinked
    }

    /// Origins seen so far.
    pub fn origins(&self) -> usize {
        self.tips.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::{Entry, Hlc, Kind};

    fn record(i: u64) -> AuditRecord {
        AuditRecord {
            at_ms: 1_764_000_000_000 + i,
            actor: "operator:li".into(),
            action: "event.transition".into(),
            subject: format!("event/town-a/{i}"),
            why: "closed".into(),
        }
    }

    /// `n` records of `origin`, chained as the store's writer chains them: stored bytes each.
    fn chain(origin: &str, n: u64) -> Vec<Vec<u8>> {
        let mut link = GENESIS;
        (1..=n)
            .map(|seq| {
                let e = Entry {
                    origin: NodeId::new(origin).unwrap(),
                    seq,
                    hlc: Hlc::new(seq, 0),
                    kind: Kind::Audit,
                    payload: payload(&record(seq), &link).unwrap(),
                };
                let stored = codec::encode(&e).unwrap();
                link = link_to(&stored);
                stored
            })
            .collect()
    }

    #[test]
    fn the_link_read_alone_is_the_link_split_off() {
        for payload in [payload(&record(1), &[9; 32]).unwrap(), codec::encode(&record(2)).unwrap()] {
            assert_eq!(link_of(&payload).unwrap(), split(&payload).unwrap().1);
        }
        let mut odd = codec::encode(&record(3)).unwrap();
        odd.extend_from_slice(&[1, 2, 3]);
        assert!(link_of(&odd).is_err() && split(&odd).is_err());
    }

    fn check_all(check: &mut ChainCheck, stored: &[Vec<u8>]) -> Result<(), Break> {
        for s in stored {
            let e: Entry = codec::decode(s).unwrap();
            check.check(&e.origin, e.seq, s, &e.payload)?;
        }
        Ok(())
    }

    #[test]
    fn an_intact_chain_passes_and_one_changed_record_breaks_it_at_the_next() {
        let good = chain("town-a", 5);
        let mut c = ChainCheck::new();
        check_all(&mut c, &good).unwrap();
        assert_eq!((c.checked(), c.unlinked(), c.origins()), (5, 0, 1));

        // Record 3's reason rewritten, its own link left as it was.
        let mut altered = good.clone();
        let mut e: Entry = codec::decode(&altered[2]).unwrap();
        let (mut r, link) = split(&e.payload).unwrap();
        r.why = "nothing happened".into();
        e.payload = payload(&r, &link.unwrap()).unwrap();
        altered[2] = codec::encode(&e).unwrap();
        let err = check_all(&mut ChainCheck::new(), &altered).unwrap_err();
        assert_eq!((err.origin.as_str(), err.seq, err.why), ("town-a", 4, BreakKind::Mismatch(3)));
    }

    #[test]
    fn a_record_removed_or_unlinked_or_a_false_start_is_found() {
        let good = chain("town-a", 4);
        // Record 2 taken out and 3 renumbered as 2.
        let mut e: Entry = codec::decode(&good[2]).unwrap();
        e.seq = 2;
        let moved = vec![good[0].clone(), codec::encode(&e).unwrap()];
        assert_eq!(check_all(&mut ChainCheck::new(), &moved).unwrap_err().why, BreakKind::Mismatch(1));

        // Record 2 rewritten without a link.
        let mut e: Entry = codec::decode(&good[1]).unwrap();
        e.payload = codec::encode(&record(2)).unwrap();
        let mut c = ChainCheck::new();
        let unlinked = vec![good[0].clone(), codec::encode(&e).unwrap()];
        assert_eq!(check_all(&mut c, &unlinked).unwrap_err().why, BreakKind::Unlinked);

        // A first record that claims a predecessor.
        let err = check_all(
            &mut ChainCheck::new(),
            &good[1..2]
                .iter()
                .map(|s| {
                    let mut e: Entry = codec::decode(s).unwrap();
                    e.seq = 1;
                    codec::encode(&e).unwrap()
                })
                .collect::<Vec<_>>(),
        )
        .unwrap_err();
        assert_eq!(err.why, BreakKind::NotGenesis);
    }

    #[test]
    fn records_before_the_chain_and_gaps_are_taken_as_they_come() {
        // Two records from before the chain, then the chain taken up from the second.
        let old: Vec<Vec<u8>> = (1..=2)
            .map(|seq| {
                let e = Entry {
                    origin: NodeId::new("town-b").unwrap(),
                    seq,
                    hlc: Hlc::new(seq, 0),
                    kind: Kind::Audit,
                    payload: codec::encode(&record(seq)).unwrap(),
                };
                codec::encode(&e).unwrap()
            })
            .collect();
        let third = Entry {
            origin: NodeId::new("town-b").unwrap(),
            seq: 3,
            hlc: Hlc::new(3, 0),
            kind: Kind::Audit,
            payload: payload(&record(3), &link_to(&old[1])).unwrap(),
        };
        let mut all = old.clone();
        all.push(codec::encode(&third).unwrap());
        let mut c = ChainCheck::new();
        check_all(&mut c, &all).unwrap();
        assert_eq!(c.unlinked(), 2);

        // Retention took records 1 and 2: the chain is checked from 3 on.
        let good = chain("town-a", 5);
        check_all(&mut ChainCheck::new(), &good[2..]).unwrap();
        // A receiver that restarted seeds the chain from the record it holds.
        let mut c = ChainCheck::new();
        c.seed(&NodeId::new("town-a").unwrap(), 2, &good[1]);
        assert!(c.knows(&NodeId::new("town-a").unwrap(), 3));
        check_all(&mut c, &good[2..]).unwrap();
        let mut c = ChainCheck::new();
        c.seed(&NodeId::new("town-a").unwrap(), 2, &good[0]);
        assert_eq!(check_all(&mut c, &good[2..]).unwrap_err().why, BreakKind::Mismatch(2));
    }
}
