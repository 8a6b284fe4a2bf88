//! The store as seen by a replication sender.

use super::sync::{Holdings, Take};
use crate::store::{Store, StoreError};
use proto::{Kind, NodeId, VersionVector};

pub struct StoreHoldings<'a>(pub &'a Store);

impl Holdings for StoreHoldings<'_> {
    type Error = StoreError;

    fn heads(&self, kind: Kind) -> Result<std::sync::Arc<VersionVector>, StoreError> {
        Ok(self.0.heads(kind))
    }

    fn read(
        &self,
        kind: Kind,
        origin: &NodeId,
        from_seq: u64,
        max: usize,
        take: &mut Take<'_>,
    ) -> Result<(), StoreError> {
        for stored in self.0.stored_entries(kind, origin, from_seq).take(max) {
            if !take(&stored?) {
                break;
            }
        }
        Ok(())
    }
}
