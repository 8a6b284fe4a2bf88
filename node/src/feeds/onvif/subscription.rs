//! One camera's pull-point subscription as a state machine with no I/O, in the manner of
//! `mesh::uplink`: the driver (`client.rs`) reports what happened ([`Subscription::handle`]) and
//! the passing of time ([`Subscription::handle_timeout`]), and asks what to do
//! ([`Subscription::poll_action`]) and when to wake up ([`Subscription::poll_timeout`]). Times
//! are `Instant`s the driver reads from tokio's clock, so a paused runtime drives the machine.
//!
//! The rules:
//! - One request at a time: the machine asks for the next only once the last one is answered
//!   or has failed (the driver puts a deadline on each).
//! - The life of a subscription: GetSystemDateAndTime at the device service (so the driver
//!   can date its security tokens by the camera's clock; a camera that will not say is taken
//!   to agree with ours), GetCapabilities there (a fault other than an authentication failure
//!   means the camera does not say, and the conventional address is used),
//!   CreatePullPointSubscription, then PullMessages again as soon as one returns, and
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
//!   everything starts again from GetSystemDateAndTime. A created subscription resets `b` and
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
    /// GetSystemDateAndTime answered (the driver keeps the camera's clock offset).
    ClockRead,
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
    /// Waiting out a backoff; then GetSystemDateAndTime.
    Backoff {
        until: Instant,
    },
    ReadingClock,
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
            Event::ClockRead => Operation::GetSystemDateAndTime,
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
            // Whatever the camera says of its clock, only its silence stops the way forward.
            Event::ClockRead
            | Event::Failed {
                op: Operation::GetSystemDateAndTime,
                failure: Failure::Fault | Failure::Garbled | Failure::Unauthorized,
                ..
            } => {
                self.state = State::Discovering;
                self.send(Operation::GetCapabilities, self.device_url.clone(), now);
            }
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
                self.state = State::ReadingClock;
                self.send(Operation::GetSystemDateAndTime, self.device_url.clone(), now);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use proptest::prelude::*;

    const DEVICE: &str = "http://cam/onvif/device_service";
    const FALLBACK: &str = "http://cam/onvif/event_service";

    fn machine(now: Instant) -> Subscription {
        Subscription::new(Config::new(Duration::from_secs(60)), DEVICE.into(), FALLBACK.into(), Rng::new(3), now)
    }

    fn drain(s: &mut Subscription) -> Vec<Action> {
        std::iter::from_fn(|| s.poll_action()).collect()
    }

    fn send(op: Operation, url: &str) -> Action {
        Action::Send { op, url: url.into() }
    }

    fn failed(op: Operation, failure: Failure) -> Event {
        Event::Failed { op, failure, reason: "test".into() }
    }

    /// Discovery and creation, up to the first pull.
    fn subscribed(t0: Instant) -> Subscription {
        let mut s = machine(t0);
        assert_eq!(drain(&mut s), vec![send(Operation::GetSystemDateAndTime, DEVICE)]);
        s.handle(Event::ClockRead, t0);
        assert_eq!(drain(&mut s), vec![send(Operation::GetCapabilities, DEVICE)]);
        s.handle(Event::Discovered { events_url: Some("http://cam/events".into()) }, t0);
        assert_eq!(drain(&mut s), vec![send(Operation::CreatePullPointSubscription, "http://cam/events")]);
        s.handle(Event::Created { address: "http://cam/sub/1".into(), granted: None }, t0);
        assert_eq!(drain(&mut s), vec![send(Operation::PullMessages, "http://cam/sub/1")]);
        s
    }

    #[test]
    fn pulls_in_a_loop_and_renews_at_half_life_between_pulls() {
        let t0 = Instant::now();
        let mut s = subscribed(t0);
        s.handle(Event::Pulled { messages: 3 }, t0 + Duration::from_secs(1));
        assert_eq!(drain(&mut s), vec![send(Operation::PullMessages, "http://cam/sub/1")], "at once after events");
        // A pull is in flight when the renewal falls due: the renewal waits for it.
        let t = t0 + Duration::from_secs(31);
        s.handle_timeout(t);
        assert!(drain(&mut s).is_empty());
        s.handle(Event::Pulled { messages: 0 }, t);
        assert_eq!(drain(&mut s), vec![send(Operation::Renew, "http://cam/sub/1")]);
        // The camera granted only 20 s: the next renewal comes 10 s later.
        s.handle(Event::Renewed { granted: Some(Duration::from_secs(20)) }, t);
        assert_eq!(drain(&mut s), vec![send(Operation::PullMessages, "http://cam/sub/1")]);
        s.handle(Event::Pulled { messages: 0 }, t + Duration::from_secs(10));
        assert_eq!(drain(&mut s), vec![send(Operation::Renew, "http://cam/sub/1")]);
    }

    #[test]
    fn an_empty_pull_answered_at_once_waits_a_moment() {
        let t0 = Instant::now();
        let mut s = subscribed(t0);
        s.handle(Event::Pulled { messages: 0 }, t0);
        assert!(drain(&mut s).is_empty());
        assert_eq!(s.poll_timeout(), Some(t0 + EMPTY_PULL_PAUSE));
        s.handle_timeout(t0 + EMPTY_PULL_PAUSE);
        assert_eq!(drain(&mut s), vec![send(Operation::PullMessages, "http://cam/sub/1")]);
    }

    #[test]
    fn a_camera_that_does_not_say_gets_the_conventional_address() {
        let t0 = Instant::now();
        let mut s = machine(t0);
        drain(&mut s);
        s.handle(failed(Operation::GetSystemDateAndTime, Failure::Unauthorized), t0);
        assert_eq!(
            drain(&mut s),
            vec![send(Operation::GetCapabilities, DEVICE)],
            "a camera that keeps its clock to itself"
        );
        s.handle(failed(Operation::GetCapabilities, Failure::Fault), t0);
        assert_eq!(drain(&mut s), vec![send(Operation::CreatePullPointSubscription, FALLBACK)]);
    }

    #[test]
    fn a_reboot_recreates_the_subscription_and_reports_one_outage() {
        let t0 = Instant::now();
        let mut s = subscribed(t0);
        s.handle(Event::Pulled { messages: 1 }, t0);
        drain(&mut s);
        // The camera reboots: the pull gets no answer, so a new subscription is asked for at once.
        s.handle(failed(Operation::PullMessages, Failure::Unreachable), t0);
        assert_eq!(drain(&mut s), vec![send(Operation::CreatePullPointSubscription, "http://cam/events")]);
        // It is still down: offline, once, and a backoff.
        s.handle(failed(Operation::CreatePullPointSubscription, Failure::Unreachable), t0);
        let actions = drain(&mut s);
        assert!(matches!(actions.as_slice(), [Action::Offline { .. }]), "{actions:?}");
        let wait = s.backoff_left(t0).unwrap();
        assert!(wait >= BACKOFF_FIRST / 2 && wait <= BACKOFF_FIRST, "{wait:?}");
        let mut t = t0 + wait;
        for _ in 0..3 {
            s.handle_timeout(t);
            assert_eq!(drain(&mut s), vec![send(Operation::GetSystemDateAndTime, DEVICE)]);
            s.handle(failed(Operation::GetSystemDateAndTime, Failure::Unreachable), t);
            assert!(drain(&mut s).is_empty(), "no second offline in the same outage");
            t += s.backoff_left(t).unwrap();
        }
        s.handle_timeout(t);
        drain(&mut s);
        s.handle(Event::ClockRead, t);
        assert_eq!(drain(&mut s), vec![send(Operation::GetCapabilities, DEVICE)]);
        s.handle(Event::Discovered { events_url: None }, t);
        assert_eq!(drain(&mut s), vec![send(Operation::CreatePullPointSubscription, FALLBACK)]);
        s.handle(Event::Created { address: "http://cam/sub/2".into(), granted: None }, t);
        assert_eq!(drain(&mut s), vec![Action::Online, send(Operation::PullMessages, "http://cam/sub/2")]);
    }

    #[test]
    fn a_failed_renewal_is_an_outage_at_once() {
        let t0 = Instant::now();
        let mut s = subscribed(t0);
        s.handle(Event::Pulled { messages: 0 }, t0 + Duration::from_secs(30));
        assert_eq!(drain(&mut s), vec![send(Operation::Renew, "http://cam/sub/1")]);
        s.handle(failed(Operation::Renew, Failure::Unreachable), t0 + Duration::from_secs(31));
        assert!(matches!(drain(&mut s).as_slice(), [Action::Offline { .. }]));
    }

    #[test]
    fn wrong_credentials_are_an_outage_and_back_off() {
        let t0 = Instant::now();
        let mut s = machine(t0);
        drain(&mut s);
        s.handle(Event::ClockRead, t0);
        drain(&mut s);
        s.handle(failed(Operation::GetCapabilities, Failure::Unauthorized), t0);
        assert!(matches!(drain(&mut s).as_slice(), [Action::Offline { .. }]));
        assert!(s.backoff_left(t0).is_some());
    }

    #[test]
    fn a_subscription_that_never_served_backs_off_instead_of_looping() {
        let t0 = Instant::now();
        let mut s = subscribed(t0);
        s.handle(failed(Operation::PullMessages, Failure::Fault), t0);
        assert!(matches!(drain(&mut s).as_slice(), [Action::Offline { .. }]));
        assert!(s.backoff_left(t0).is_some());
    }

    #[test]
    fn shutdown_unsubscribes_a_live_subscription() {
        let t0 = Instant::now();
        let mut s = subscribed(t0);
        s.handle(Event::Shutdown, t0);
        assert_eq!(drain(&mut s), vec![send(Operation::Unsubscribe, "http://cam/sub/1")]);
        s.handle(Event::Pulled { messages: 2 }, t0);
        assert!(drain(&mut s).is_empty(), "the abandoned pull's answer is stale");
        s.handle(Event::Unsubscribed, t0);
        assert_eq!(drain(&mut s), vec![Action::Stopped]);
        assert!(s.is_stopped());
        let mut s = machine(t0);
        drain(&mut s);
        s.handle(Event::Shutdown, t0);
        assert_eq!(drain(&mut s), vec![Action::Stopped], "nothing to unsubscribe");
    }

    /// What the generated driver does next.
    #[derive(Debug, Clone)]
    enum Step {
        /// Answer the request in flight successfully (with this many messages for a pull).
        Succeed(usize),
        Fail(u8),
        /// Let time pass to the machine's next timeout.
        Wait,
        Shutdown,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0usize..3).prop_map(Step::Succeed),
            3 => (0u8..4).prop_map(Step::Fail),
            3 => Just(Step::Wait),
            1 => Just(Step::Shutdown),
        ]
    }

    proptest! {
        #[test]
        fn one_request_at_a_time_bounded_backoff_one_alert_per_outage(
            seed in any::<u64>(),
            steps in proptest::collection::vec(step(), 1..200),
        ) {
            let mut now = Instant::now();
            let config = Config::new(Duration::from_secs(60));
            let mut s = Subscription::new(config.clone(), DEVICE.into(), FALLBACK.into(), Rng::new(seed), now);
            let mut outstanding: Option<Operation> = None;
            let mut offline = false;
            let mut stopping = false;
            let mut stopped = false;
            for st in steps {
                for action in std::iter::from_fn(|| s.poll_action()) {
                    match action {
                        Action::Send { op, .. } => {
                            prop_assert!(outstanding.is_none(), "{op:?} while {outstanding:?} is in flight");
                            prop_assert!(!stopping || op == Operation::Unsubscribe, "{op:?} after shutdown");
                            outstanding = Some(op);
                        }
                        Action::Offline { .. } => {
                            prop_assert!(!offline, "two offline reports in one outage");
                            offline = true;
                        }
                        Action::Online => {
                            prop_assert!(offline, "online without an outage");
                            offline = false;
                        }
                        Action::Stopped => {
                            prop_assert!(stopping);
                            stopped = true;
                        }
                    }
                }
                prop_assert_eq!(s.in_flight(), outstanding);
                if let Some(wait) = s.backoff_left(now) {
                    prop_assert!(wait <= config.backoff_max);
                }
                if stopped {
                    break;
                }
                now += Duration::from_millis(100);
                match (st, outstanding.take()) {
                    (Step::Shutdown, _) => {
                        stopping = true;
                        s.handle(Event::Shutdown, now);
                    }
                    (Step::Succeed(n), Some(op)) => {
                        let ev = match op {
                            Operation::GetSystemDateAndTime => Event::ClockRead,
                            Operation::GetCapabilities => Event::Discovered { events_url: None },
                            Operation::CreatePullPointSubscription => Event::Created { address: "http://cam/s".into(), granted: None },
                            Operation::PullMessages => Event::Pulled { messages: n },
                            Operation::Renew => Event::Renewed { granted: None },
                            Operation::Unsubscribe => Event::Unsubscribed,
                        };
                        s.handle(ev, now);
                    }
                    (Step::Fail(k), Some(op)) => {
                        let failure = [Failure::Unreachable, Failure::Unauthorized, Failure::Fault, Failure::Garbled][k as usize];
                        s.handle(Event::Failed { op, failure, reason: "generated".into() }, now);
                    }
                    (_, Some(op)) => {
                        // Waiting while a request is in flight: its deadline is the driver's; put
                        // it back and let time pass.
                        outstanding = Some(op);
                        now += Duration::from_secs(1);
                    }
                    (_, None) => {
                        match s.poll_timeout() {
                            Some(t) => {
                                prop_assert!(t <= now + config.termination, "a wait longer than the termination time");
                                now = now.max(t);
                            }
                            None => prop_assert!(stopping, "an idle machine with nothing to wait for"),
                        }
                        s.handle_timeout(now);
                    }
                }
            }
        }
    }
}
