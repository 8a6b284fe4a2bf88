//! `/healthz` and the `store_failed` metric: a node is healthy while its store takes writes.
//! Once a flush or write fails the store refuses every write (see [`Store::has_failed`]); the
//! binary then stops so its supervisor restarts it, but until it does, and for an instance a
//! library user keeps running, a load balancer or probe must not hear "ok".

use crate::metrics::Metrics;
use crate::store::Store;
use axum::http::StatusCode;

/// The answer to `GET /healthz`: 200 `ok`, or 503 saying the store failed.
pub fn health(store: &Store) -> (StatusCode, &'static str) {
    if store.has_failed() {
        (StatusCode::SERVICE_UNAVAILABLE, "store failed: it refuses writes after a failed flush; see the log\n")
    } else {
        (StatusCode::OK, "ok")
    }
}

/// Set `store_failed` to 1 when the store fails. Runs until then (or until its task is
/// dropped with the instance).
pub async fn watch(store: Store, metrics: Metrics) {
    store.failure().await;
    metrics.store_failed.set(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::{InjectedBugs, Op, SimDisk, StoreConfig};
    use proto::{Kind, NodeId};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn health_and_the_metric_follow_the_store() {
        let disk = SimDisk::new(3);
        let clock = Arc::new(ManualClock::new(1_000));
        let node = NodeId::new("town-a").unwrap();
        let metrics = Metrics::unregistered();
        let store =
            Store::simulated(&disk, node, clock, StoreConfig::default(), metrics.clone(), InjectedBugs::default())
                .unwrap();
        let watcher = tokio::spawn(watch(store.clone(), metrics.clone()));
        let append = || vec![Op::Append { kind: Kind::Alert, payload: b"x".to_vec() }];
        store.commit(append()).await.unwrap();
        assert_eq!(health(&store), (StatusCode::OK, "ok"));
        assert_eq!(metrics.store_failed.get(), 0);

        disk.update_faults(|f| f.fail_flushes = true);
        store.commit(append()).await.unwrap_err();
        let (status, body) = health(&store);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("store failed"), "{body}");
        watcher.await.unwrap();
        assert_eq!(metrics.store_failed.get(), 1);
    }
}
