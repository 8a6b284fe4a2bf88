//! The uplink: which parent a node keeps its one upward link to, as a state machine with no I/O
//! and no clock.
//!
//! The lifecycle of that link is where the subtle mistakes live: a parent that accepts the
//! handshake and drops the session at once must not be redialled in a tight loop, the jitter
//! that spreads a county's towns apart after an outage must come from the node's seed (so a
//! simulation replays) and not from the clock, a node on a fallback must come back to its
//! preferred parent without hammering it. So the decisions live here, where plain values and
//! generated scenarios can test them, and `link.rs` only carries them out — the way
//! quinn-proto's `Connection` sits under quinn's async driver. The driver feeds what happened
//! ([`Uplink::handle_event`]) and the passing of time ([`Uplink::handle_timeout`]), and asks
//! what to do ([`Uplink::poll_action`]) and when to wake up next ([`Uplink::poll_timeout`]).
//! Times are `std::time::Instant`s the driver passes in (read from tokio's clock, so a paused
//! runtime's virtual time drives the machine).
//!
//! The rules:
//! - A round dials the parents in order, preferred first; a parent that refuses, fails or does
//!   not answer within the connect timeout is reported partitioned and the next one is tried.
//! - When a whole round fails, the machine waits before the next one: a wait drawn uniformly
//!   from `[b/2, b]`, where `b` starts at the first backoff and doubles after every wait up to
//!   the maximum.
//! - A session that lasted at least the stable duration resets `b` and the next round starts
//!   at once. One that died sooner (a parent that accepts and then drops us) does not: the next
//!   round waits out the backoff like a failed one, so such a parent is retried ever more
//!   slowly instead of in a loop. A successful dial alone resets nothing.
//! - While linked to a fallback, every probe interval (counted from the end of the previous
//!   round of probes) the better parents are probed in order; the first that answers is
//!   switched to: the current session is closed and that parent dialled at once.
//!
//! Parents are named by their place in the site's list of parents: 0 is the preferred one.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// How long a dial (or probe) may take before it is given up and the next parent tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a node on a fallback parent checks whether a better parent answers.
pub const PROBE_EVERY: Duration = Duration::from_secs(10);
/// The first reconnect backoff; each wait after that doubles it.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(500);
/// The longest reconnect backoff.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A session that lasted this long was a working link: its end resets the backoff. One that
/// ended sooner counts as a failed round.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

/// Why the link left a parent it was linked to, as reported for that parent.
pub const LEFT_FOR_PREFERRED: &str = "left for the preferred parent";
pub const LEFT_FOR_BETTER: &str = "left for a better parent";
/// The close reason sent to a parent the node leaves for a better one.
pub const SWITCHING: &str = "switching to a better parent";

/// The uplink's timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UplinkConfig {
    /// A dial or probe that has not answered after this long is abandoned.
    pub connect_timeout: Duration,
    /// The pause between rounds of probes while on a fallback.
    pub probe_every: Duration,
    /// The backoff after the first failed round.
    pub backoff_first: Duration,
    /// The backoff never grows past this.
    pub backoff_max: Duration,
    /// A session at least this long resets the backoff.
    pub stable_after: Duration,
}

impl Default for UplinkConfig {
    fn default() -> Self {
        UplinkConfig {
            connect_timeout: CONNECT_TIMEOUT,
            probe_every: PROBE_EVERY,
            backoff_first: BACKOFF_FIRST,
            backoff_max: BACKOFF_MAX,
            stable_after: STABLE_AFTER,
        }
    }
}

/// One dial or probe, and the session a successful dial becomes. The driver tags its tasks
/// with it, so every outcome is matched to what the machine asked for, and an outcome of
/// something the machine has since given up is recognised as stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Attempt(u64);

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What happened, as the driver tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The dial `attempt` has a connection to the right parent; the driver now runs the session
    /// on it (see [`Uplink::session`]) and later reports its end as `SessionEnded` with the same
    /// attempt.
    DialSucceeded {
        attempt: Attempt,
    },
    /// The dial `attempt` failed (refused, wrong identity, handshake error).
    DialFailed {
        attempt: Attempt,
        error: String,
    },
    /// The better parent probed by `attempt` answers.
    ProbeSucceeded {
        attempt: Attempt,
    },
    ProbeFailed {
        attempt: Attempt,
        error: String,
    },
    /// The session of dial `attempt` ended on its own (the parent went away, a protocol or
    /// store error); `error` says why.
    SessionEnded {
        attempt: Attempt,
        error: String,
    },
}

/// What the driver is to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Connect to parent `parent` (its place in the list).
    Dial { parent: usize, attempt: Attempt },
    /// Check that the better parent `parent` answers a handshake, and close that connection.
    Probe { parent: usize, attempt: Attempt },
    /// Give up the dial or probe `attempt` (it took too long); no event is expected for it.
    Abandon { attempt: Attempt },
    /// End the session of dial `attempt` now, telling the parent `reason`; no `SessionEnded`
    /// is expected for it.
    Close { attempt: Attempt, reason: &'static str },
    /// Parent `parent` is not linked, because of `error`.
    Partitioned { parent: usize, error: String },
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Waiting out a backoff; the next round starts at `until` with the preferred parent.
    Backoff { until: Instant },
    /// Dialing `parent`; given up at `deadline`.
    Dialing { parent: usize, attempt: Attempt, deadline: Instant },
    /// A session with `parent` since `since`.
    Linked { parent: usize, attempt: Attempt, since: Instant, probe: Probe },
}

/// Looking for a better parent while linked.
#[derive(Debug, Clone, Copy)]
enum Probe {
    /// Linked to the preferred parent: there is none better.
    Off,
    /// The next round of probes starts at `at`.
    Idle { at: Instant },
    /// Probing `parent`; given up at `deadline`.
    InFlight { parent: usize, attempt: Attempt, deadline: Instant },
}

/// The link lifecycle of one node towards its parents.
#[derive(Debug)]
pub struct Uplink {
    config: UplinkConfig,
    parents: usize,
    state: State,
    /// The `b` of the next wait: drawn from `[b/2, b]`, after which `b` doubles (to the max).
    backoff: Duration,
    rng: SplitMix64,
    next_attempt: u64,
    actions: VecDeque<Action>,
}

impl Uplink {
    /// A machine for a node with `parents` parents (at least one), its jitter drawn from
    /// `seed`. It starts by dialling the preferred parent.
    ///
    /// # Panics
    /// With no parents, or timings of zero (they would make it spin), or a first backoff over
    /// the maximum.
    pub fn new(parents: usize, config: UplinkConfig, seed: u64, now: Instant) -> Uplink {
        assert!(parents > 0, "an uplink needs at least one parent");
        assert!(
            !config.connect_timeout.is_zero() && !config.probe_every.is_zero() && !config.backoff_first.is_zero(),
            "uplink timings must be positive: {config:?}"
        );
        assert!(config.backoff_first <= config.backoff_max, "the first backoff is over the maximum: {config:?}");
        let mut uplink = Uplink {
            backoff: config.backoff_first,
            config,
            parents,
            state: State::Backoff { until: now },
            rng: SplitMix64(seed),
            next_attempt: 1,
            actions: VecDeque::new(),
        };
        uplink.dial(0, now);
        uplink
    }

    pub fn config(&self) -> &UplinkConfig {
        &self.config
    }

    /// The live session, if any: its parent and the dial it came from.
    pub fn session(&self) -> Option<(usize, Attempt)> {
        match self.state {
            State::Linked { parent, attempt, .. } => Some((parent, attempt)),
            _ => None,
        }
    }

    /// Take in what happened. Outcomes of attempts the machine no longer waits for (abandoned
    /// dials and probes, closed sessions) are ignored.
    pub fn handle_event(&mut self, event: Event, now: Instant) {
        match event {
            Event::DialSucceeded { attempt } => {
                let State::Dialing { parent, attempt: dialing, .. } = self.state else { return };
                if dialing != attempt {
                    return;
                }
                let probe = if parent == 0 { Probe::Off } else { Probe::Idle { at: now + self.config.probe_every } };
                self.state = State::Linked { parent, attempt, since: now, probe };
            }
            Event::DialFailed { attempt, error } => {
                let State::Dialing { parent, attempt: dialing, .. } = self.state else { return };
                if dialing != attempt {
                    return;
                }
                self.report(parent, error);
                self.next_in_round(parent, now);
            }
            Event::ProbeSucceeded { attempt } => {
                let State::Linked { parent, attempt: session, since, probe } = self.state else { return };
                let Probe::InFlight { parent: better, attempt: probing, .. } = probe else { return };
                if probing != attempt {
                    return;
                }
                self.actions.push_back(Action::Close { attempt: session, reason: SWITCHING });
                let why = if better == 0 { LEFT_FOR_PREFERRED } else { LEFT_FOR_BETTER };
                self.report(parent, why.to_string());
                if now.saturating_duration_since(since) >= self.config.stable_after {
                    self.backoff = self.config.backoff_first;
                }
                // The probe just answered: no reason to wait. Should this dial fail, the round
                // goes on down the list from there.
                self.dial(better, now);
            }
            Event::ProbeFailed { attempt, error } => {
                let State::Linked { parent, probe, .. } = self.state else { return };
                let Probe::InFlight { parent: better, attempt: probing, .. } = probe else { return };
                if probing != attempt {
                    return;
                }
                self.report(better, error);
                self.probe_from(better + 1, parent, now);
            }
            Event::SessionEnded { attempt, error } => {
                let State::Linked { parent, attempt: session, since, probe } = self.state else { return };
                if session != attempt {
                    return;
                }
                if let Probe::InFlight { attempt: probing, .. } = probe {
                    self.actions.push_back(Action::Abandon { attempt: probing });
                }
                self.report(parent, error);
                if now.saturating_duration_since(since) >= self.config.stable_after {
                    self.backoff = self.config.backoff_first;
                    self.dial(0, now);
                } else {
                    // Connected and dropped at once: as good as a failed round, or a parent that
                    // accepts and drops us would be redialled in a loop.
                    self.wait(now);
                }
            }
        }
    }

    /// Act on every deadline that has passed by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Backoff { until } if now >= until => self.dial(0, now),
            State::Dialing { parent, attempt, deadline } if now >= deadline => {
                self.actions.push_back(Action::Abandon { attempt });
                self.report(parent, self.no_answer());
                self.next_in_round(parent, now);
            }
            State::Linked { parent, probe: Probe::Idle { at }, .. } if now >= at => self.probe_from(0, parent, now),
            State::Linked { parent, probe: Probe::InFlight { parent: better, attempt, deadline }, .. }
                if now >= deadline =>
            {
                self.actions.push_back(Action::Abandon { attempt });
                self.report(better, self.no_answer());
                self.probe_from(better + 1, parent, now);
            }
            _ => {}
        }
    }

    /// The next thing to do, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Uplink::handle_timeout`] is next due; `None` while linked to the preferred parent
    /// (only the session's end can change anything then).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Backoff { until } => Some(until),
            State::Dialing { deadline, .. } => Some(deadline),
            State::Linked { probe: Probe::Off, .. } => None,
            State::Linked { probe: Probe::Idle { at }, .. } => Some(at),
            State::Linked { probe: Probe::InFlight { deadline, .. }, .. } => Some(deadline),
        }
    }

    fn attempt(&mut self) -> Attempt {
        let a = Attempt(self.next_attempt);
        self.next_attempt += 1;
        a
    }

    fn dial(&mut self, parent: usize, now: Instant) {
        let attempt = self.attempt();
        self.actions.push_back(Action::Dial { parent, attempt });
        self.state = State::Dialing { parent, attempt, deadline: now + self.config.connect_timeout };
    }

    /// `parent` failed: try the next one, or wait when it was the last.
    fn next_in_round(&mut self, parent: usize, now: Instant) {
        if parent + 1 < self.parents {
            self.dial(parent + 1, now);
        } else {
            self.wait(now);
        }
    }

    /// Wait a jittered backoff before the next round, and double the backoff after it.
    fn wait(&mut self, now: Instant) {
        let b = self.backoff;
        let low = b / 2;
        let span = u64::try_from((b - low).as_nanos()).unwrap_or(u64::MAX);
        let wait = low + Duration::from_nanos(self.rng.below(span.saturating_add(1)));
        self.backoff = (b * 2).min(self.config.backoff_max);
        self.state = State::Backoff { until: now + wait };
    }

    /// Probe the first better parent from `first` on, or, when none is left before `current`,
    /// end the round and start the next after the probe interval.
    fn probe_from(&mut self, first: usize, current: usize, now: Instant) {
        let next = if first < current {
            let attempt = self.attempt();
            self.actions.push_back(Action::Probe { parent: first, attempt });
            Probe::InFlight { parent: first, attempt, deadline: now + self.config.connect_timeout }
        } else {
            Probe::Idle { at: now + self.config.probe_every }
        };
        if let State::Linked { probe, .. } = &mut self.state {
            *probe = next;
        }
    }

    fn report(&mut self, parent: usize, error: String) {
        self.actions.push_back(Action::Partitioned { parent, error });
    }

    fn no_answer(&self) -> String {
        format!("no answer within {:?}", self.config.connect_timeout)
    }
}

/// SplitMix64 (Steele, Lea and Flood): a tiny, well-mixed generator, good for jitter and not
/// meant for anything secret. Any seed, zero included, gives a full-period sequence.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0) by multiply-shift; the bias, under `n / 2^64`, is nothing at
    /// the nanosecond spans of a backoff.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests;
