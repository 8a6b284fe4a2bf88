//! Where checkpoints stand: the tollgates (`/VIID/Tollgates`) and devices (`/VIID/APEs`) that
//! devices and lower platforms register, kept in the store so reads after a restart still
//! carry positions. One owner: [`Places`] holds the map and writes the tree.

use super::objects::Place;
use crate::records;
use crate::store::{Op, Store, StoreError};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The state tree of registered places; keys are a kind byte then the id.
pub const PLACES_TREE: &str = "state/viid_places";
/// Most places kept (the city has 5,672 checkpoints): past it, new ones are refused.
pub const MAX_PLACES: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PlaceKind {
    Tollgate,
    Ape,
}

impl PlaceKind {
    fn tag(self) -> u8 {
        match self {
            PlaceKind::Tollgate => b't',
            PlaceKind::Ape => b'a',
        }
    }

    fn from_tag(b: u8) -> Option<PlaceKind> {
        match b {
            b't' => Some(PlaceKind::Tollgate),
            b'a' => Some(PlaceKind::Ape),
            _ => None,
        }
    }
}

fn key(kind: PlaceKind, id: &str) -> Vec<u8> {
    let mut k = vec![kind.tag()];
    k.extend_from_slice(id.as_bytes());
    k
}

#[derive(Clone)]
pub struct Places {
    store: Store,
    map: Arc<Mutex<BTreeMap<PlaceKind, BTreeMap<String, Place>>>>,
}

impl Places {
    /// Load what the store holds.
    pub fn load(store: Store) -> Result<Places, StoreError> {
        let mut map: BTreeMap<PlaceKind, BTreeMap<String, Place>> = BTreeMap::new();
        let mut count = 0;
        for kv in store.scan(PLACES_TREE, b"")? {
            let (k, v) = kv?;
            let Some(kind) = k.first().copied().and_then(PlaceKind::from_tag) else { continue };
            match records::decode::<Place>(&v) {
                Ok(place) if count < MAX_PLACES => {
                    count += 1;
                    map.entry(kind).or_default().insert(place.id.clone(), place);
                }
                Ok(_) => break,
                Err(e) => tracing::warn!(error = %e, "unreadable VIID place skipped"),
            }
        }
        Ok(Places { store, map: Arc::new(Mutex::new(map)) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<PlaceKind, BTreeMap<String, Place>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the places `ids` would fit, counting only the new ones.
    pub fn room_for(&self, kind: PlaceKind, ids: &[&str]) -> bool {
        let map = self.lock();
        let known = map.get(&kind);
        let new = ids.iter().filter(|id| !known.is_some_and(|k| k.contains_key(**id))).count();
        map.values().map(BTreeMap::len).sum::<usize>() + new <= MAX_PLACES
    }

    /// Make places durable, then serve them.
    pub async fn upsert(&self, kind: PlaceKind, places: Vec<Place>) -> Result<(), StoreError> {
        let mut ops = Vec::with_capacity(places.len());
        for p in &places {
            let value = records::encode(p).map_err(|e| StoreError::Codec(e.to_string()))?;
            ops.push(Op::Put { tree: PLACES_TREE, key: key(kind, &p.id), value });
        }
        self.store.commit(ops).await?;
        let mut map = self.lock();
        let known = map.entry(kind).or_default();
        for p in places {
            known.insert(p.id.clone(), p);
        }
        Ok(())
    }

    pub fn list(&self, kind: PlaceKind) -> Vec<Place> {
        self.lock().get(&kind).map(|k| k.values().cloned().collect()).unwrap_or_default()
    }

    /// Where a read was made: its tollgate's position, else its device's.
    pub fn position(&self, tollgate: Option<&str>, device: Option<&str>) -> Option<(f64, f64)> {
        let map = self.lock();
        let at = |kind, id: Option<&str>| map.get(&kind)?.get(id?).and_then(|p| p.lat.zip(p.lon));
        at(PlaceKind::Tollgate, tollgate).or_else(|| at(PlaceKind::Ape, device))
    }
}
