//! One camera's pull-point subscription as a state machine with no I/O, in the manner of
//! `mesh::uplink`: the driver (`client.rs`) reports what happened ([`Subscription::handle`]) and
//! the passing of time ([`Subscription::handle_timeout`]), and asks what to do
//! ([`Subscription::poll_action`]) and when to wake up ([`Subscription::poll_timeout`]). Times
//! are `Instant`s the driver reads from tokio's clock, so a paused runtime drives the machine.
//!
//! The rules:
//! - One request at a time: the machine asks for the next only once the last one is answered
//!   or has failed (the driver puts a deadline on each).
//! - The life of a subscription: GetCapabilities at the device service (a fault other than an
//!   authentication failure means the camera does not say, and the conventional address is
//!   used), CreatePullPointSubscription, then PullMessages again as soon as one returns, and
//!   Renew, between two pulls, once half of the granted termination time has passed.
//! - A camera that answers an empty pull at once (ignoring our Timeout) is pulled at most once
//!   a second.
//! - A pull or renewal that faults, or a pull that gets no answer, means the subscription may
//!   be gone (a rebooted camera forgets it): a new one is created at once. If that subscription
//!   had never served a pull or renewal, the failure counts as a failed creation instead, so a
//!   camera that accepts subscriptions and then refuses them is not hammered.
//! - A failed creation, a renewal with no answer, and any authentication failure report the
//!   camera offline (once per outage) and wait a backoff: drawn uniformly from `[b/2, b]`,
//!   where `b` starts at the first backoff and doubles after every wait up to the maximum; then
//!   everything starts again from GetCapabilities. A created subscription resets `b` and
//!   reports the camera online.
//! - On shutdown a live subscription is ended with Unsubscribe (whatever was in flight is
//!   abandoned by the driver); then the machine stops.

use super::soap::Operation;
use crate::rng::Rng;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The first wait after a failure.
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// The longest wait after failures.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// The least time between two pulls when the first returned nothing.
pub const EMPTY_PULL_PAUSE: Duration = Duration::from_secs(1);

/// The machine's timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The termination time asked for; renewed at half of it (or of what the camera granted).
    pub termination: Duration,
    pub backoff_first: Duration,
    pub backoff_max: Duration,
}

impl Config {
    pub fn new(termination: Duration) -> Config {
        Config { termination, backoff_first: BACKOFF_FIRST, backoff_max: BACKOFF_MAX }
    }
}

/// How a request failed, as far as the machine cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No usable answer: refused connection, deadline passed, an HTTP error without a fault.
    Unreachable,
    /// The camera refused our credentials.
    Unauthorized,
    /// A SOAP fault other than an authentication failure.
    Fault,
    /// An answer the node could not read, or one without what it must contain.
    Garbled,
}

/// What happened, as the driver tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// GetCapabilities answered, with the event service's address if the camera gave one.
    Discovered {
        events_url: Option<String>,
    },
    /// CreatePullPointSubscription answered: the subscription's address, and the termination
    /// time the camera granted if it said (its TerminationTime less its CurrentTime).
    Created {
        address: String,
        granted: Option<Duration>,
    },
    /// PullMessages answered with `messages` notifications.
    Pulled {
        messages: usize,
    },
    Renewed {
        granted: Option<Duration>,
    },
    Unsubscribed,
    /// The request `op` failed.
    Failed {
        op: Operation,
        failure: Failure,
        reason: String,
    },
    /// The node is stopping; anything in flight is abandoned.
    Shutdown,
}

/// What the driver is to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `op` to `url` and report its outcome.
    Send { op: Operation, url: String },
    /// The camera cannot be reached (reported once per outage).
    Offline { reason: String },
    /// It can again.
    Online,
    /// Nothing more to do.
    Stopped,
}

#[derive(Debug, Clone)]
enum State {
    /// Waiting out a backoff; then GetCapabilities.
    Backoff {
        until: Instant,
    },
    Discovering,
    Creating,
    /// A live subscription at `address`.
    Subscribed {
        address: String,
        renew_at: Instant,
        next_pull: Instant,
        /// It has served a pull or a renewal.
        proven: bool,
    },
    Stopping,
    Stopped,
}

/// One camera's subscription.
#[derive(Debug)]
pub struct Subscription {
    config: Config,
    device_url: String,
    fallback_events_url: String,
    events_url: Option<String>,
    state: State,
    in_flight: Option<(Operation, Instant)>,
    backoff: Duration,
    offline: bool,
    rng: Rng,
    actions: VecDeque<Action>,
}

impl Subscription {
    /// A machine for the camera whose device service is `device_url`; `fallback_events_url` is
    /// used when the camera does not name its event service. It starts with GetCapabilities.
    ///
    /// # Panics
    /// With a zero termination time or backoff, or a first backoff over the maximum.
    pub fn new(config: Config, device_url: String, fallback_events_url: String, rng: Rng, now: Instant) -> Self {
        assert!(!config.termination.is_zero() && !config.backoff_first.is_zero(), "timings must be positive");
        assert!(config.backoff_first <= config.backoff_max, "the first backoff is over the maximum");
        let mut s = Subscription {
            backoff: config.backoff_first,
            config,
            device_url,
            fallback_events_url,
            events_url: None,
            state: State::Backoff { until: now },
            in_flight: None,
            offline: false,
            rng,
            actions: VecDeque::new(),
        };
        s.step(now);
        s
    }

    /// The request awaiting its outcome, if any.
    pub fn in_flight(&self) -> Option<Operation> {
        self.in_flight.map(|(op, _)| op)
    }

    /// How long the current backoff waits from `now`, if the machine is in one.
    pub fn backoff_left(&self, now: Instant) -> Option<Duration> {
        match self.state {
            State::Backoff { until } => Some(until.saturating_duration_since(now)),
            _ => None,
        }
    }

    pub fn is_stopped(&self) -> bool {
        matches!(self.state, State::Stopped)
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When the machine next wants [`Subscription::handle_timeout`]; `None` while a request is
    /// in flight (its deadline is the driver's) or once stopped.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.in_flight.is_some() {
            return None;
        }
        match &self.state {
            State::Backoff { until } => Some(*until),
            State::Subscribed { renew_at, next_pull, .. } => Some(*renew_at.min(next_pull)),
            _ => None,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.step(now);
    }

    pub fn handle(&mut self, event: Event, now: Instant) {
        if event == Event::Shutdown {
            self.shutdown(now);
            return;
        }
        let answered = match &event {
            Event::Discovered { .. } => Operation::GetCapabilities,
            Event::Created { .. } => Operation::CreatePullPointSubscription,
            Event::Pulled { .. } => Operation::PullMessages,
            Event::Renewed { .. } => Operation::Renew,
            Event::Unsubscribed => Operation::Unsubscribe,
            Event::Failed { op, .. } => *op,
            Event::Shutdown => unreachable!("handled above"),
        };
        // An outcome of something not asked for (or abandoned) changes nothing.
        let Some((op, sent_at)) = self.in_flight else { return };
        if op != answered {
            return;
        }
        self.in_flight = None;
        match event {
            Event::Discovered { events_url } => self.create(events_url, now),
            Event::Failed { op: Operation::GetCapabilities, failure: Failure::Fault | Failure::Garbled, .. } => {
                // The camera answers but does not say: use the conventional address.
                self.create(None, now)
            }
            Event::Created { address, granted } => {
                self.backoff = self.config.backoff_first;
                if self.offline {
                    self.offline = false;
                    self.actions.push_back(Action::Online);
                }
                self.state = State::Subscribed {
                    address,
                    renew_at: now + self.half_life(granted),
                    next_pull: now,
                    proven: false,
                };
            }
            Event::Pulled { messages } => {
                if let State::Subscribed { next_pull, proven, .. } = &mut self.state {
                    *proven = true;
                    *next_pull = if messages == 0 && now < sent_at + EMPTY_PULL_PAUSE {
                        sent_at + EMPTY_PULL_PAUSE
                    } else {
                        now
                    };
                }
            }
            Event::Renewed { granted } => {
                let half = self.half_life(granted);
                if let State::Subscribed { renew_at, proven, .. } = &mut self.state {
                    *proven = true;
                    *renew_at = now + half;
                }
            }
            Event::Unsubscribed | Event::Failed { op: Operation::Unsubscribe, .. } => {
                self.state = State::Stopped;
                self.actions.push_back(Action::Stopped);
            }
            Event::Failed { op, failure, reason } => {
                let proven = matches!(self.state, State::Subscribed { proven: true, .. });
                let lost_subscription = match (op, failure) {
                    (_, Failure::Unauthorized) => false,
                    (Operation::PullMessages, _) => true,
                    (Operation::Renew, Failure::Fault | Failure::Garbled) => true,
                    _ => false,
                };
                if lost_subscription && proven {
                    // Most likely the camera forgot it (a reboot): make a new one at once.
                    self.create(self.events_url.clone(), now);
                } else {
                    self.fail(format!("{}: {reason}", op.name()), now);
                }
            }
            Event::Shutdown => unreachable!("handled above"),
        }
        self.step(now);
    }

    /// Half of the termination time, or of what the camera granted if that is shorter.
    fn half_life(&self, granted: Option<Duration>) -> Duration {
        let t = granted.filter(|g| !g.is_zero()).map_or(self.config.termination, |g| g.min(self.config.termination));
        t / 2
    }

    fn create(&mut self, events_url: Option<String>, now: Instant) {
        let url = events_url.unwrap_or_else(|| self.fallback_events_url.clone());
        self.events_url = Some(url.clone());
        self.state = State::Creating;
        self.send(Operation::CreatePullPointSubscription, url, now);
    }

    fn fail(&mut self, reason: String, now: Instant) {
        if !self.offline {
            self.offline = true;
            self.actions.push_back(Action::Offline { reason });
        }
        let b = self.backoff;
        let low = b / 2;
        let spread = (b - low).as_millis() as u64;
        let wait = low + Duration::from_millis(self.rng.below(spread + 1));
        self.backoff = (b * 2).min(self.config.backoff_max);
        self.state = State::Backoff { until: now + wait };
    }

    fn shutdown(&mut self, now: Instant) {
        self.in_flight = None;
        match std::mem::replace(&mut self.state, State::Stopped) {
            State::Subscribed { address, .. } => {
                self.state = State::Stopping;
                self.in_flight = Some((Operation::Unsubscribe, now));
                self.actions.push_back(Action::Send { op: Operation::Unsubscribe, url: address });
            }
            State::Stopping => self.state = State::Stopping,
            State::Stopped => {}
            _ => self.actions.push_back(Action::Stopped),
        }
    }

    fn send(&mut self, op: Operation, url: String, now: Instant) {
        debug_assert!(self.in_flight.is_none(), "one request at a time");
        self.in_flight = Some((op, now));
        self.actions.push_back(Action::Send { op, url });
    }

    /// Send whatever is due at `now`, if nothing is in flight.
    fn step(&mut self, now: Instant) {
        if self.in_flight.is_some() {
            return;
        }
        match &self.state {
            State::Backoff { until } if now >= *until => {
                self.state = State::Discovering;
                self.send(Operation::GetCapabilities, self.device_url.clone(), now);
            }
            State::Subscribed { address, renew_at, next_pull, .. } => {
                let address = address.clone();
                if now >= *renew_at {
                    self.send(Operation::Renew, address, now);
                } else if now >= *next_pull {
                    self.send(Operation::PullMessages, address, now);
                }
            }
            _ => {}
        }
    }
}
