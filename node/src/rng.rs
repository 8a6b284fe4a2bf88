//! Randomness from the instance's seed. A node takes one seed from whoever builds it (the binary
//! draws it from the operating system, the simulator derives it from the run's seed) and every
//! random choice it makes comes from that seed: quinn's keys and connection ids, reconnect
//! jitter, and what comes later. Same seed, same choices: a simulated run replays.
//!
//! [`Seed::derive`] gives each user its own independent stream, named by a label, so adding a
//! user never shifts the numbers another one draws.

use sha2::{Digest, Sha256};

/// An instance's seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Seed(pub u64);

impl Seed {
    /// 32 bytes for `label`, independent of every other label's.
    pub fn derive_bytes(self, label: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.0.to_be_bytes());
        h.update((label.len() as u64).to_be_bytes());
        h.update(label.as_bytes());
        h.finalize().into()
    }

    /// A seed for `label`'s own stream.
    pub fn derive(self, label: &str) -> Seed {
        let b = self.derive_bytes(label);
        Seed(u64::from_be_bytes(b[..8].try_into().expect("32 bytes")))
    }

    /// A generator on `label`'s stream.
    pub fn rng(self, label: &str) -> Rng {
        Rng::new(self.derive(label).0)
    }
}

/// A small xorshift64* generator: repeatable from its seed, fast, and good enough for jitter,
/// fault decisions and identifiers that only need to differ. Not for keys an attacker must not
/// guess: those come from [`Seed::derive_bytes`] (SHA-256) in the simulator and from the
/// operating system in production.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Zero is xorshift's one fixed point; mixing the seed also makes nearby seeds differ at
        // once.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n); 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Multiply-shift: unbiased enough for these uses and free of a division.
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// True with probability `p` (no draw when `p` is 0, so a perfect link uses no randomness).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_repeat_from_their_seed_and_labels_are_independent() {
        let s = Seed(42);
        let draw = |mut r: Rng| (0..8).map(|_| r.next_u64()).collect::<Vec<_>>();
        assert_eq!(draw(s.rng("jitter")), draw(s.rng("jitter")));
        assert_ne!(draw(s.rng("jitter")), draw(s.rng("quinn")));
        assert_ne!(draw(s.rng("jitter")), draw(Seed(43).rng("jitter")));
        assert_ne!(s.derive_bytes("a"), s.derive_bytes("b"));
    }

    #[test]
    fn below_stays_below() {
        let mut r = Rng::new(1);
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            seen[r.below(7) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
        assert_eq!(r.below(0), 0);
    }
}
