//! [`Lists`]: the replicated state, and the one function that changes it, [`Lists::apply`].
//!
//! Raft commits proposals in one order; every node applies them through here and so holds the
//! same lists at the same version. Everything below is a function of the committed proposals
//! alone: no clock (expiry is judged against `proposed_ms`), no randomness, only ordered maps.

use super::entry::{Command, ListEntry, Outcome, Proposal};
use super::error::SanctionsError;
use super::ids::{ListKind, SubjectId};
use serde::de::Error as _;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The sanctions lists as of one raft log index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lists {
    /// Log index of the last committed entry applied or skipped; 0 before the first.
    version: u64,
    entries: BTreeMap<(ListKind, SubjectId), ListEntry>,
    /// Revoked certificate fingerprint → (node, version that revoked it).
    revoked: BTreeMap<String, (String, u64)>,
}

impl Lists {
    pub fn new() -> Lists {
        Lists::default()
    }

    /// Log index of the last applied (or skipped) command; 0 = none.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Apply the committed proposal at log index `version`.
    ///
    /// `version` must be above [`Lists::version`]; if it is not, nothing changes and the outcome
    /// is `Refused` at the current version (raft never goes backwards, so this only guards
    /// against a caller's bug, without a panic). Otherwise the version becomes `version` whether
    /// the command is applied or refused: a refused command was still committed, and every
    /// replica must agree on the version it has reached. A refused command changes nothing else;
    /// an applied one changes all it names (an import is all or nothing).
    pub fn apply(&mut self, version: u64, proposal: &Proposal) -> Outcome {
        if version <= self.version {
            let refusal = SanctionsError::StaleVersion { version, current: self.version };
            return Outcome::Refused { version: self.version, reason: refusal.to_string() };
        }
        self.version = version;
        match self.execute(version, proposal) {
            Ok(changed) => Outcome::Applied { version, changed },
            Err(e) => Outcome::Refused { version, reason: e.to_string() },
        }
    }

    /// Check, then change. Every check comes before the first change, so an error leaves the
    /// lists as they were.
    fn execute(&mut self, version: u64, proposal: &Proposal) -> Result<u32, SanctionsError> {
        proposal.validate()?;
        match &proposal.command {
            Command::Add { entry } => {
                let key = (entry.list, entry.subject.clone());
                if self.entries.contains_key(&key) {
                    return Err(SanctionsError::AlreadyListed { list: entry.list, subject: entry.subject.clone() });
                }
                self.entries.insert(key, entry.clone());
                Ok(1)
            }
            Command::Amend { entry } => {
                let key = (entry.list, entry.subject.clone());
                let Some(slot) = self.entries.get_mut(&key) else {
                    return Err(SanctionsError::NotListed { list: entry.list, subject: entry.subject.clone() });
                };
                Ok(u32::from(replace(slot, entry)))
            }
            Command::Remove { list, subject } => match self.entries.remove(&(*list, subject.clone())) {
                Some(_) => Ok(1),
                None => Err(SanctionsError::NotListed { list: *list, subject: subject.clone() }),
            },
            Command::Import { entries } => {
                let mut changed = 0u32;
                for entry in entries {
                    match self.entries.get_mut(&(entry.list, entry.subject.clone())) {
                        Some(slot) => changed += u32::from(replace(slot, entry)),
                        None => {
                            self.entries.insert((entry.list, entry.subject.clone()), entry.clone());
                            changed += 1;
                        }
                    }
                }
                Ok(changed)
            }
            Command::RevokeCertificate { node, fingerprint } => {
                if let Some((_, at)) = self.revoked.get(fingerprint) {
                    return Err(SanctionsError::AlreadyRevoked { fingerprint: fingerprint.clone(), version: *at });
                }
                self.revoked.insert(fingerprint.clone(), (node.clone(), version));
                Ok(1)
            }
        }
    }

    /// Advance the version past a committed log entry that carries no list command (raft's
    /// blank and membership entries), so the version keeps matching the log index. Never moves
    /// backwards: a `version` at or below the current one is ignored.
    pub fn skip_to(&mut self, version: u64) {
        self.version = self.version.max(version);
    }

    /// The static checks [`Lists::apply`] makes, for the operator API to run before proposing.
    /// `apply` can still refuse what passes here, for reasons that depend on the lists (already
    /// listed, not listed, already revoked).
    pub fn validate(proposal: &Proposal) -> Result<(), SanctionsError> {
        proposal.validate()
    }

    /// The entry for `subject` on `list`, in force or not.
    pub fn get(&self, list: ListKind, subject: &SubjectId) -> Option<&ListEntry> {
        self.entries.get(&(list, subject.clone()))
    }

    /// Entries in force for `subject` at `now_ms` (`effective_ms <= now_ms < expires_ms`), red
    /// list first. `subject` must be in canonical form ([`SubjectId::parse`]) to be found.
    pub fn matches(&self, subject: &SubjectId, now_ms: u64) -> Vec<&ListEntry> {
        ListKind::ALL.into_iter().filter_map(|list| self.get(list, subject)).filter(|e| e.in_force(now_ms)).collect()
    }

    pub fn is_revoked(&self, fingerprint: &str) -> bool {
        self.revoked.contains_key(fingerprint)
    }

    /// Revoked certificates as `(fingerprint, node)`, by fingerprint.
    pub fn revoked(&self) -> impl Iterator<Item = (&str, &str)> {
        self.revoked.iter().map(|(fp, (node, _))| (fp.as_str(), node.as_str()))
    }

    /// The node and the version that revoked `fingerprint`, if it is revoked.
    pub fn revocation(&self, fingerprint: &str) -> Option<(&str, u64)> {
        self.revoked.get(fingerprint).map(|(node, at)| (node.as_str(), *at))
    }

    /// Every entry, in force or not, in key order: the red list, then the black, each by subject.
    pub fn entries(&self) -> impl Iterator<Item = &ListEntry> {
        self.entries.values()
    }

    /// Number of entries, in force or not.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// SHA-256 of the whole state (version, entries, revocations) in a fixed, self-delimiting
    /// encoding, so two replicas can compare states by 32 bytes. The encoding is written out
    /// here rather than borrowed from a serializer, so a codec upgrade cannot change digests.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = DigestWriter(Sha256::new());
        h.bytes(b"yiwang.sanctions.lists.v1");
        h.u64(self.version);
        h.u64(self.entries.len() as u64);
        for e in self.entries.values() {
            h.u64(match e.list {
                ListKind::Red => 0,
                ListKind::Black => 1,
            });
            match &e.subject {
                SubjectId::CreditCode(s) => h.tagged(0, s),
                SubjectId::Mmsi(m) => {
                    h.u64(1);
                    h.u64(u64::from(*m));
                }
                SubjectId::HullNumber(s) => h.tagged(2, s),
                SubjectId::Registration(s) => h.tagged(3, s),
            }
            h.str(&e.name);
            h.str(&e.authority);
            h.str(&e.legal_basis);
            h.u64(e.effective_ms);
            h.u64(e.expires_ms);
            h.str(&e.note);
        }
        h.u64(self.revoked.len() as u64);
        for (fingerprint, (node, at)) in &self.revoked {
            h.str(fingerprint);
            h.str(node);
            h.u64(*at);
        }
        h.0.finalize().into()
    }
}

/// Overwrite `slot` with `entry`; true if that changed it.
fn replace(slot: &mut ListEntry, entry: &ListEntry) -> bool {
    if slot == entry {
        return false;
    }
    *slot = entry.clone();
    true
}

/// Feeds the digest: integers as 8 big-endian bytes, strings length-prefixed.
struct DigestWriter(Sha256);

impl DigestWriter {
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.update(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.update(v.to_be_bytes());
    }
    fn tagged(&mut self, tag: u64, s: &str) {
        self.u64(tag);
        self.str(s);
    }
}

/// A revocation as snapshots carry it.
#[derive(Serialize)]
struct RevocationRef<'a> {
    fingerprint: &'a str,
    node: &'a str,
    version: u64,
}

#[derive(Deserialize)]
struct Revocation {
    fingerprint: String,
    node: String,
    version: u64,
}

/// The snapshot form: entries and revocations as sequences (not maps keyed by tuples, which
/// JSON cannot carry), in key order.
#[derive(Deserialize)]
#[serde(rename = "Lists")]
struct Snapshot {
    version: u64,
    entries: Vec<ListEntry>,
    revoked: Vec<Revocation>,
}

/// Serializes a map's values as a sequence without copying them.
struct Seq<I>(I);

impl<I> Serialize for Seq<I>
where
    I: Iterator + Clone,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.clone())
    }
}

/// The raft snapshot path: `{ version, entries: [ListEntry], revoked: [{fingerprint, node,
/// version}] }`, written straight from the maps (no copy of a 100 000-entry state).
impl Serialize for Lists {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Lists", 3)?;
        st.serialize_field("version", &self.version)?;
        st.serialize_field("entries", &Seq(self.entries.values()))?;
        let revoked = self.revoked.iter().map(|(fingerprint, (node, version))| RevocationRef {
            fingerprint,
            node,
            version: *version,
        });
        st.serialize_field("revoked", &Seq(revoked))?;
        st.end()
    }
}

/// Restores a snapshot. Entries are taken as they are (not re-validated: rules may tighten
/// in a later release, and a replica must still load the state the group agreed on), but a
/// snapshot that lists one key twice, or records a revocation after its own version, is
/// corrupt and refused rather than resolved by picking one.
impl<'de> Deserialize<'de> for Lists {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Lists, D::Error> {
        let snapshot = Snapshot::deserialize(d)?;
        let mut lists = Lists { version: snapshot.version, ..Lists::default() };
        for entry in snapshot.entries {
            let key = (entry.list, entry.subject.clone());
            if lists.entries.insert(key, entry).is_some() {
                return Err(D::Error::custom("sanctions snapshot lists one (list, subject) twice"));
            }
        }
        for r in snapshot.revoked {
            if r.version > lists.version {
                return Err(D::Error::custom(format!(
                    "sanctions snapshot at version {} has a revocation from version {}",
                    lists.version, r.version
                )));
            }
            if lists.revoked.insert(r.fingerprint, (r.node, r.version)).is_some() {
                return Err(D::Error::custom("sanctions snapshot revokes one fingerprint twice"));
            }
        }
        Ok(lists)
    }
}
