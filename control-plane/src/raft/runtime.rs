//! openraft's async runtime: tokio's, except for randomness. openraft draws its election
//! timeouts from `AsyncRuntime::thread_rng()`, a function without arguments; the stock runtime
//! answers with the OS-seeded thread RNG, so no two runs elect alike and the simulator could
//! not replay an election. Here the generator comes from the voter instance's seed instead.
//!
//! The seed reaches openraft's tasks through a tokio task-local: [`seeded`] runs a future
//! (the one that calls `Raft::new`) with the voter's generator in scope, and [`SeededRuntime`]'s
//! `spawn` carries the spawner's generator into every task it starts, so openraft's core and
//! replication tasks draw from the voter that made them, however many voters share a process.

use node::rng::{Rng, Seed};
use openraft::{AsyncRuntime, OptionalSend, TokioInstant, TokioRuntime};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

tokio::task_local! {
    static VOTER_RNG: SeededRng;
}

/// Run `future` (and every openraft task it spawns) with randomness drawn from `seed`.
pub async fn seeded<F: Future>(seed: Seed, future: F) -> F::Output {
    VOTER_RNG.scope(SeededRng::new(seed), future).await
}

/// One voter's generator; clones share its stream.
#[derive(Debug, Clone)]
pub struct SeededRng(Arc<Mutex<Rng>>);

impl SeededRng {
    fn new(seed: Seed) -> SeededRng {
        SeededRng(Arc::new(Mutex::new(seed.rng("raft"))))
    }

    fn current() -> SeededRng {
        // Every openraft task runs under `seeded` (spawn carries the scope along), so this
        // only fails if a voter was built outside it: a bug in this crate, which must not turn
        // into OS randomness silently.
        VOTER_RNG
            .try_with(SeededRng::clone)
            .expect("openraft drew randomness outside control_plane::raft::runtime::seeded")
    }

    fn next(&self) -> u64 {
        // A poisoned lock only means another task panicked mid-draw; the state is a u64.
        self.0.lock().unwrap_or_else(|p| p.into_inner()).next_u64()
    }
}

impl rand_core::RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        (self.next() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.next()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).fill(dest)
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// tokio, with each voter's seeded generator (see the module docs).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SeededRuntime;

impl AsyncRuntime for SeededRuntime {
    type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <TokioRuntime as AsyncRuntime>::Sleep;
    type Instant = TokioInstant;
    type TimeoutError = <TokioRuntime as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = <TokioRuntime as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = SeededRng;
    type OneshotSender<T: OptionalSend> = <TokioRuntime as AsyncRuntime>::OneshotSender<T>;
    type OneshotReceiverError = <TokioRuntime as AsyncRuntime>::OneshotReceiverError;
    type OneshotReceiver<T: OptionalSend> = <TokioRuntime as AsyncRuntime>::OneshotReceiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        let rng = SeededRng::current();
        tokio::spawn(VOTER_RNG.scope(rng, future))
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        TokioRuntime::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        TokioRuntime::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(duration: Duration, future: F) -> Self::Timeout<R, F> {
        TokioRuntime::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(deadline: Self::Instant, future: F) -> Self::Timeout<R, F> {
        TokioRuntime::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        SeededRng::current()
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        TokioRuntime::oneshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::RngCore;

    async fn draws() -> Vec<u64> {
        // Drawn in a task spawned through the runtime, as openraft's core draws them.
        SeededRuntime::spawn(async {
            let mut rng = SeededRuntime::thread_rng();
            (0..4).map(|_| rng.next_u64()).collect::<Vec<_>>()
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn spawned_tasks_draw_from_their_voters_seed() {
        let a = seeded(Seed(1), draws()).await;
        let again = seeded(Seed(1), draws()).await;
        let b = seeded(Seed(2), draws()).await;
        assert_eq!(a, again, "the same seed gives the same election timeouts");
        assert_ne!(a, b, "two voters draw different timeouts");
    }
}
