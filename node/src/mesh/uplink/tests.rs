use super::*;
use proptest::prelude::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A machine and its clock, for scenarios written out step by step.
struct Script {
    start: Instant,
    now: Instant,
    m: Uplink,
}

impl Script {
    fn new(parents: usize, seed: u64) -> Script {
        let start = Instant::now();
        Script { start, now: start, m: Uplink::new(parents, UplinkConfig::default(), seed, start) }
    }

    fn at(&self) -> Duration {
        self.now - self.start
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    fn event(&mut self, e: Event) {
        self.m.handle_event(e, self.now);
    }

    /// Move the clock to the machine's next timeout and handle it.
    fn fire(&mut self) {
        self.now = self.m.poll_timeout().expect("a timeout");
        self.m.handle_timeout(self.now);
    }

    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.m.poll_action()).collect()
    }

    /// The one dial the machine asks for now; panics on anything else.
    fn dial(&mut self) -> (usize, Attempt) {
        match self.actions().as_slice() {
            [Action::Dial { parent, attempt }] => (*parent, *attempt),
            other => panic!("expected one dial at {:?}, got {other:?}", self.at()),
        }
    }
}

fn refused(attempt: Attempt) -> Event {
    Event::DialFailed { attempt, error: "refused".into() }
}

#[test]
fn preferred_down_fallback_then_back_to_the_preferred() {
    let mut s = Script::new(2, 7);
    let (p, a) = s.dial();
    assert_eq!(p, 0, "the preferred parent first");
    s.event(refused(a));
    let actions = s.actions();
    assert_eq!(actions[0], Action::Partitioned { parent: 0, error: "refused".into() });
    let Action::Dial { parent: 1, attempt: fallback } = actions[1] else { panic!("{actions:?}") };
    assert_eq!(actions.len(), 2, "the fallback is dialled at once: {actions:?}");
    s.advance(ms(40));
    s.event(Event::DialSucceeded { attempt: fallback });
    assert_eq!(s.m.session(), Some((1, fallback)));
    assert!(s.actions().is_empty());

    // Every 10 s the preferred parent is probed; the first time it is still down.
    assert_eq!(s.m.poll_timeout(), Some(s.now + PROBE_EVERY));
    s.fire();
    let [Action::Probe { parent: 0, attempt: probe }] = s.actions()[..] else { panic!() };
    s.advance(ms(3));
    s.m.handle_event(Event::ProbeFailed { attempt: probe, error: "refused".into() }, s.now);
    assert_eq!(s.actions(), vec![Action::Partitioned { parent: 0, error: "refused".into() }]);
    assert_eq!(s.m.poll_timeout(), Some(s.now + PROBE_EVERY), "the next round a probe interval after this one");

    // Then it answers: the fallback session is closed and the preferred parent dialled.
    s.fire();
    let [Action::Probe { parent: 0, attempt: probe }] = s.actions()[..] else { panic!() };
    s.advance(ms(30));
    s.event(Event::ProbeSucceeded { attempt: probe });
    let actions = s.actions();
    assert_eq!(actions[0], Action::Close { attempt: fallback, reason: SWITCHING });
    assert_eq!(actions[1], Action::Partitioned { parent: 1, error: LEFT_FOR_PREFERRED.into() });
    let Action::Dial { parent: 0, attempt: back } = actions[2] else { panic!("{actions:?}") };
    s.event(Event::DialSucceeded { attempt: back });
    assert_eq!(s.m.session(), Some((0, back)));
    assert_eq!(s.m.poll_timeout(), None, "on the preferred parent nothing is due");
    // The closed session's end, should it still come, changes nothing.
    s.event(Event::SessionEnded { attempt: fallback, error: "closed".into() });
    assert!(s.actions().is_empty());
    assert_eq!(s.m.session(), Some((0, back)));
}

#[test]
fn all_parents_down_the_backoff_doubles_to_the_max() {
    let mut s = Script::new(3, 11);
    let mut b = BACKOFF_FIRST;
    let mut waits = Vec::new();
    let mut dial = s.dial();
    for _round in 0..12 {
        for want in 0..3 {
            let (parent, attempt) = dial;
            assert_eq!(parent, want, "parents in order");
            s.advance(ms(1));
            s.event(refused(attempt));
            let actions = s.actions();
            assert_eq!(actions[0], Action::Partitioned { parent, error: "refused".into() });
            match actions[1..] {
                [Action::Dial { parent, attempt }] => dial = (parent, attempt),
                [] => assert_eq!(parent, 2, "a wait only after the last parent"),
                _ => panic!("{actions:?}"),
            }
        }
        let failed = s.now;
        s.fire();
        let wait = s.now - failed;
        assert!(wait >= b / 2 && wait <= b, "waited {wait:?} with a backoff of {b:?}");
        waits.push(wait);
        b = (b * 2).min(BACKOFF_MAX);
        dial = s.dial();
    }
    assert!(waits.iter().all(|w| *w <= BACKOFF_MAX));
    assert!(waits[11] >= BACKOFF_MAX / 2, "the backoff reached its maximum: {waits:?}");
}

#[test]
fn a_silent_parent_is_given_up_after_the_connect_timeout() {
    let mut s = Script::new(2, 1);
    let (_, a) = s.dial();
    assert_eq!(s.m.poll_timeout(), Some(s.now + CONNECT_TIMEOUT));
    s.advance(CONNECT_TIMEOUT - ms(1));
    s.m.handle_timeout(s.now);
    assert!(s.actions().is_empty(), "not yet");
    s.fire();
    assert_eq!(s.at(), CONNECT_TIMEOUT);
    let actions = s.actions();
    assert_eq!(actions[0], Action::Abandon { attempt: a });
    assert_eq!(actions[1], Action::Partitioned { parent: 0, error: "no answer within 5s".into() });
    assert!(matches!(actions[2], Action::Dial { parent: 1, .. }), "{actions:?}");
    // A late answer from the abandoned dial is stale.
    s.event(Event::DialSucceeded { attempt: a });
    assert_eq!(s.m.session(), None);
}

#[test]
fn a_session_that_dies_at_once_is_not_redialled_at_once() {
    let mut s = Script::new(1, 3);
    let mut b = BACKOFF_FIRST;
    for _ in 0..8 {
        let (_, a) = s.dial();
        s.event(Event::DialSucceeded { attempt: a });
        s.advance(ms(100));
        s.event(Event::SessionEnded { attempt: a, error: "reset by peer".into() });
        assert_eq!(s.actions(), vec![Action::Partitioned { parent: 0, error: "reset by peer".into() }]);
        let died = s.now;
        s.m.handle_timeout(died);
        assert!(s.actions().is_empty(), "no redial the moment the session died");
        s.fire();
        let wait = s.now - died;
        assert!(wait >= b / 2 && wait <= b, "waited {wait:?} with a backoff of {b:?}");
        b = (b * 2).min(BACKOFF_MAX);
    }
    // A session that lasts resets the backoff: its end is followed by a dial at once, and the
    // next quick death waits the first backoff again.
    let (_, a) = s.dial();
    s.event(Event::DialSucceeded { attempt: a });
    s.advance(STABLE_AFTER);
    s.event(Event::SessionEnded { attempt: a, error: "idle timeout".into() });
    let actions = s.actions();
    assert!(matches!(actions[..], [Action::Partitioned { .. }, Action::Dial { parent: 0, .. }]), "{actions:?}");
    let Action::Dial { attempt: a, .. } = actions[1] else { unreachable!() };
    s.event(Event::DialSucceeded { attempt: a });
    s.event(Event::SessionEnded { attempt: a, error: "reset by peer".into() });
    s.actions();
    let died = s.now;
    s.fire();
    assert!(s.now - died <= BACKOFF_FIRST, "backoff reset: waited {:?}", s.now - died);
}

#[test]
fn a_session_ending_while_probing_abandons_the_probe() {
    let mut s = Script::new(2, 5);
    let (_, a) = s.dial();
    s.event(refused(a));
    let Action::Dial { attempt: fallback, .. } = s.actions()[1] else { panic!() };
    s.event(Event::DialSucceeded { attempt: fallback });
    s.fire();
    let [Action::Probe { attempt: probe, .. }] = s.actions()[..] else { panic!() };
    s.event(Event::SessionEnded { attempt: fallback, error: "gone".into() });
    let actions = s.actions();
    assert_eq!(actions[0], Action::Abandon { attempt: probe });
    assert!(matches!(actions[2], Action::Dial { parent: 0, .. }), "stable session: at once: {actions:?}");
    s.event(Event::ProbeSucceeded { attempt: probe });
    assert!(s.actions().is_empty(), "a stale probe is ignored");
}

#[test]
fn one_seed_one_jitter() {
    fn waits(seed: u64) -> Vec<Duration> {
        let mut s = Script::new(1, seed);
        (0..10)
            .map(|_| {
                let (_, a) = s.dial();
                s.event(refused(a));
                s.actions();
                let failed = s.now;
                s.fire();
                s.now - failed
            })
            .collect()
    }
    assert_eq!(waits(42), waits(42));
    assert_ne!(waits(42), waits(43));
}

// ---------------------------------------------------------------------------------------------
// Property tests: the machine in a generated world.

/// The world around the machine: which parents answer when, how dials and sessions go.
#[derive(Debug, Clone)]
struct World {
    /// Per parent: whether it answers at the start, and the times it flips.
    reach: Vec<(bool, Vec<Duration>)>,
    /// Per parent: a dial while it is down hangs (and must be timed out) rather than being
    /// refused.
    silent: Vec<bool>,
    /// How long a dial or probe to an answering parent takes (may exceed the connect timeout).
    dial: Duration,
    /// How long a refused dial takes.
    refuse: Duration,
    /// How long after its parent goes down a session notices.
    notice: Duration,
    /// How long successive sessions last at most, in turn (a session also ends when its
    /// parent goes down).
    lifetimes: Vec<Duration>,
    /// When an outcome and a timeout fall due at the same instant, which is handled first.
    timers_first: bool,
}

impl World {
    fn parents(&self) -> usize {
        self.reach.len()
    }

    /// Whether parent `p` answers at `t`.
    fn up(&self, p: usize, t: Duration) -> bool {
        let (initial, flips) = &self.reach[p];
        initial ^ (flips.iter().filter(|f| **f <= t).count() % 2 == 1)
    }

    /// If parent `p` was up just before `t`, since when it was up without a break.
    fn up_since_before(&self, p: usize, t: Duration) -> Option<Duration> {
        let (initial, flips) = &self.reach[p];
        let before: Vec<Duration> = flips.iter().copied().filter(|f| *f < t).collect();
        let up = initial ^ (before.len() % 2 == 1);
        up.then(|| before.last().copied().unwrap_or(Duration::ZERO))
    }

    /// The first time at or after `t` that parent `p` is down, if it ever is.
    fn down_from(&self, p: usize, t: Duration) -> Option<Duration> {
        if !self.up(p, t) {
            return Some(t);
        }
        self.reach[p].1.iter().copied().find(|f| *f > t && !self.up(p, *f))
    }

    fn next_flip(&self, after: Duration) -> Option<Duration> {
        self.reach.iter().flat_map(|(_, f)| f.iter().copied()).filter(|f| *f > after).min()
    }
}

/// Whether the next dial must come at once (to a given parent) or after a backoff wait.
#[derive(Debug, Clone, Copy)]
enum NextDial {
    AtOnce { at: Duration, parent: usize },
    After { from: Duration, backoff: Duration },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    Dial,
    Probe,
}

/// What the harness saw, in order: the determinism check compares these.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Action(Duration, Action),
    Timeout(Duration, Option<Duration>),
}

/// Drives a machine through a world, keeping its own model of what the machine may do and
/// asserting every step against it.
struct Harness<'w> {
    world: &'w World,
    start: Instant,
    now: Duration,
    /// Outcomes due, in the order they were scheduled: (due, event).
    pending: Vec<(Duration, Event)>,
    /// The dial and the probe in flight: attempt, parent, started.
    dials: Vec<(Attempt, usize, Duration)>,
    probes: Vec<(Attempt, usize, Duration)>,
    /// The live session: attempt, parent, since.
    session: Option<(Attempt, usize, Duration)>,
    sessions_started: usize,
    next_dial: Option<NextDial>,
    /// The model's backoff `b`.
    backoff: Duration,
    /// Partitioned reports the machine owes, in order.
    reports: Vec<(usize, String)>,
    /// A probe just answered: the machine must close the session and dial this parent.
    switch_to: Option<usize>,
    /// When each parent was last probed.
    last_probe: Vec<Option<Duration>>,
    /// The earliest a round of probes may start (a probe interval after the last one ended).
    probe_round_from: Option<Duration>,
    /// The probe that just failed or was abandoned in this instant: (parent, at).
    probe_failed: Option<(usize, Duration)>,
    waits: Vec<Duration>,
    seen: Vec<Seen>,
}

impl<'w> Harness<'w> {
    fn new(world: &'w World) -> Harness<'w> {
        Harness {
            world,
            start: Instant::now(),
            now: Duration::ZERO,
            pending: Vec::new(),
            dials: Vec::new(),
            probes: Vec::new(),
            session: None,
            sessions_started: 0,
            next_dial: Some(NextDial::AtOnce { at: Duration::ZERO, parent: 0 }),
            backoff: BACKOFF_FIRST,
            reports: Vec::new(),
            switch_to: None,
            last_probe: vec![None; world.parents()],
            probe_round_from: None,
            probe_failed: None,
            waits: Vec::new(),
            seen: Vec::new(),
        }
    }

    fn instant(&self, t: Duration) -> Instant {
        self.start + t
    }

    /// Run the machine with `seed` until `horizon`.
    fn run(world: &'w World, seed: u64, horizon: Duration) -> Harness<'w> {
        let mut h = Harness::new(world);
        let mut m = Uplink::new(world.parents(), UplinkConfig::default(), seed, h.start);
        h.drain(&mut m);
        for _step in 0..200_000 {
            let timer = m.poll_timeout().map(|t| t - h.start);
            let outcome = h.pending.iter().map(|(t, _)| *t).min();
            assert!(timer.is_some() || h.session.is_some(), "at {:?} the machine waits on nothing", h.now);
            let flip = world.next_flip(h.now);
            let Some(next) = [timer, outcome, flip].into_iter().flatten().min() else {
                unreachable!("a session always has its end scheduled")
            };
            if next > horizon {
                h.check_fallback_bound(horizon);
                return h;
            }
            assert!(next >= h.now, "time went back: {next:?} after {:?}", h.now);
            h.check_fallback_bound(next);
            h.now = next;
            let outcome_due = outcome == Some(next);
            let timer_due = timer == Some(next);
            if timer_due && (world.timers_first || !outcome_due) {
                h.seen.push(Seen::Timeout(next, timer));
                m.handle_timeout(h.instant(next));
            } else if outcome_due {
                let i = h.pending.iter().position(|(t, _)| *t == next).unwrap();
                let (_, event) = h.pending.remove(i);
                h.feed(&mut m, event);
            }
            h.drain(&mut m);
        }
        panic!("did not reach the horizon in 200000 steps");
    }

    /// Before the machine hears of an outcome, update the model with what it must do next.
    fn feed(&mut self, m: &mut Uplink, event: Event) {
        let now = self.now;
        match &event {
            Event::DialSucceeded { attempt } => {
                let (_, parent, _) = take(&mut self.dials, *attempt);
                m.handle_event(event.clone(), self.instant(now));
                assert_eq!(m.session(), Some((parent, *attempt)), "a successful dial is a session");
                self.session = Some((*attempt, parent, now));
                if parent > 0 {
                    self.probe_round_from = Some(now + PROBE_EVERY);
                }
                let life = self.world.lifetimes[self.sessions_started % self.world.lifetimes.len()];
                self.sessions_started += 1;
                let dropped = self.world.down_from(parent, now).map(|d| d + self.world.notice);
                let end = dropped.map_or(now + life, |d| d.min(now + life));
                let error = format!("session {} over", self.sessions_started);
                self.pending.push((end, Event::SessionEnded { attempt: *attempt, error }));
                return;
            }
            Event::DialFailed { attempt, error } => {
                let (_, parent, _) = take(&mut self.dials, *attempt);
                self.reports.push((parent, error.clone()));
                self.after_failed_dial(parent);
            }
            Event::ProbeSucceeded { attempt } => {
                let (_, parent, _) = take(&mut self.probes, *attempt);
                self.switch_to = Some(parent);
            }
            Event::ProbeFailed { attempt, error } => {
                let (_, parent, _) = take(&mut self.probes, *attempt);
                self.reports.push((parent, error.clone()));
                self.probe_failed = Some((parent, now));
            }
            Event::SessionEnded { attempt, error } => {
                let (a, parent, since) = self.session.take().expect("a session to end");
                assert_eq!(a, *attempt);
                self.reports.push((parent, error.clone()));
                if now - since >= STABLE_AFTER {
                    self.backoff = BACKOFF_FIRST;
                    self.next_dial = Some(NextDial::AtOnce { at: now, parent: 0 });
                } else {
                    self.next_dial = Some(NextDial::After { from: now, backoff: self.backoff });
                }
            }
        }
        m.handle_event(event, self.instant(now));
    }

    fn after_failed_dial(&mut self, parent: usize) {
        self.next_dial = Some(if parent + 1 < self.world.parents() {
            NextDial::AtOnce { at: self.now, parent: parent + 1 }
        } else {
            NextDial::After { from: self.now, backoff: self.backoff }
        });
    }

    /// Take every action and check it against the model.
    fn drain(&mut self, m: &mut Uplink) {
        let now = self.now;
        while let Some(action) = m.poll_action() {
            self.seen.push(Seen::Action(now, action.clone()));
            match action {
                Action::Dial { parent, attempt } => {
                    assert!(self.session.is_none(), "a dial while a session is live");
                    assert!(self.dials.is_empty(), "a second dial in flight");
                    assert!(self.switch_to.is_none(), "a dial before closing the session");
                    match self.next_dial.take() {
                        Some(NextDial::AtOnce { at, parent: want }) => {
                            assert_eq!((now, parent), (at, want), "expected a dial of {want} at once");
                        }
                        Some(NextDial::After { from, backoff }) => {
                            assert_eq!(parent, 0, "a round after a wait starts with the preferred parent");
                            let wait = now - from;
                            assert!(
                                wait >= backoff / 2 && wait <= backoff && backoff <= BACKOFF_MAX,
                                "waited {wait:?} with a backoff of {backoff:?}"
                            );
                            self.waits.push(wait);
                            self.backoff = (backoff * 2).min(BACKOFF_MAX);
                        }
                        None => panic!("a dial of {parent} at {now:?} that nothing called for"),
                    }
                    self.dials.push((attempt, parent, now));
                    self.schedule(What::Dial, parent, attempt);
                }
                Action::Probe { parent, attempt } => {
                    let (_, current, since) = self.session.expect("probing only while linked");
                    assert!(parent < current, "probed {parent}, not better than {current}");
                    assert!(self.probes.is_empty(), "a second probe in flight");
                    assert!(now - since >= PROBE_EVERY, "probed {:?} into the session", now - since);
                    if let Some(last) = self.last_probe[parent] {
                        assert!(now - last >= PROBE_EVERY, "parent {parent} probed again after {:?}", now - last);
                    }
                    match self.probe_failed.take() {
                        // The round goes on down the list at once.
                        Some((prev, at)) if at == now && prev + 1 == parent => {}
                        _ => {
                            assert_eq!(parent, 0, "a round of probes starts with the preferred parent");
                            let from = self.probe_round_from.expect("a round due");
                            assert!(now >= from, "a round of probes at {now:?}, due at {from:?}");
                        }
                    }
                    self.last_probe[parent] = Some(now);
                    self.probes.push((attempt, parent, now));
                    self.schedule(What::Probe, parent, attempt);
                }
                Action::Abandon { attempt } => {
                    self.pending.retain(|(_, e)| attempt_of(e) != attempt);
                    if self.dials.iter().any(|(a, _, _)| *a == attempt) {
                        let (_, parent, started) = take(&mut self.dials, attempt);
                        assert_eq!(now - started, CONNECT_TIMEOUT, "a dial given up at the connect timeout");
                        self.reports.push((parent, "no answer within 5s".into()));
                        self.after_failed_dial(parent);
                    } else {
                        let (_, parent, started) = take(&mut self.probes, attempt);
                        if self.session.is_some() {
                            assert_eq!(now - started, CONNECT_TIMEOUT, "a probe given up at the connect timeout");
                            self.reports.push((parent, "no answer within 5s".into()));
                            self.probe_failed = Some((parent, now));
                        }
                        // else: abandoned because the session ended.
                    }
                }
                Action::Close { attempt, reason } => {
                    assert_eq!(reason, SWITCHING);
                    let to = self.switch_to.take().expect("a close only after a probe answered");
                    let (a, parent, since) = self.session.take().expect("a session to close");
                    assert_eq!(a, attempt);
                    self.pending.retain(|(_, e)| attempt_of(e) != attempt);
                    let why = if to == 0 { LEFT_FOR_PREFERRED } else { LEFT_FOR_BETTER };
                    self.reports.push((parent, why.into()));
                    if now - since >= STABLE_AFTER {
                        self.backoff = BACKOFF_FIRST;
                    }
                    self.next_dial = Some(NextDial::AtOnce { at: now, parent: to });
                }
                Action::Partitioned { parent, error } => {
                    assert!(!self.reports.is_empty(), "an unexpected report: {parent} {error}");
                    assert_eq!(self.reports.remove(0), (parent, error), "reports in order");
                }
            }
        }
        assert!(self.reports.is_empty(), "reports owed at {now:?}: {:?}", self.reports);
        assert!(self.switch_to.is_none(), "a probe answered and the machine did not switch");
        if self.probes.is_empty() && self.session.is_some_and(|(_, p, _)| p > 0) {
            // The round of probes ended now; the next starts a probe interval later.
            if let Some((_, at)) = self.probe_failed.take() {
                self.probe_round_from = Some(at + PROBE_EVERY);
            }
        }
        assert!(self.dials.len() + usize::from(self.session.is_some()) <= 1, "at most one dial or session");
        assert!(self.probes.len() <= 1);
        if let Some(NextDial::After { .. }) = self.next_dial {
            assert!(
                self.dials.is_empty() && self.probes.is_empty() && self.session.is_none(),
                "something in flight while backing off"
            );
        }
    }

    /// Decide the outcome of a dial or probe of `parent` started now.
    fn schedule(&mut self, what: What, parent: usize, attempt: Attempt) {
        let w = self.world;
        if w.up(parent, self.now) {
            let e = match what {
                What::Dial => Event::DialSucceeded { attempt },
                What::Probe => Event::ProbeSucceeded { attempt },
            };
            self.pending.push((self.now + w.dial, e));
        } else if !w.silent[parent] {
            let error = "refused".to_string();
            let e = match what {
                What::Dial => Event::DialFailed { attempt, error },
                What::Probe => Event::ProbeFailed { attempt, error },
            };
            self.pending.push((self.now + w.refuse, e));
        }
    }

    /// A session on a fallback does not outlast, by more than one probe interval plus the
    /// probes before the switch and a dial, a better parent answering all along: the round of
    /// probes under way when it came back (at most `current` probes, each given up after the
    /// connect timeout), the probe interval, the probes of the parents before it, the probe
    /// that finds it.
    fn check_fallback_bound(&self, t: Duration) {
        let Some((_, current, since)) = self.session else { return };
        for better in 0..current {
            let Some(up) = self.world.up_since_before(better, t) else { continue };
            if self.world.dial >= CONNECT_TIMEOUT {
                continue; // it never answers in time
            }
            let from = up.max(since);
            let bound = PROBE_EVERY + CONNECT_TIMEOUT * (current + better) as u32 + self.world.dial;
            assert!(
                t - from <= bound,
                "at {t:?} still on parent {current} though parent {better} answers since {from:?} (bound {bound:?})"
            );
        }
    }
}

fn take(list: &mut Vec<(Attempt, usize, Duration)>, attempt: Attempt) -> (Attempt, usize, Duration) {
    let i = list.iter().position(|(a, _, _)| *a == attempt).unwrap_or_else(|| panic!("{attempt} not in flight"));
    list.remove(i)
}

fn attempt_of(e: &Event) -> Attempt {
    match e {
        Event::DialSucceeded { attempt }
        | Event::DialFailed { attempt, .. }
        | Event::ProbeSucceeded { attempt }
        | Event::ProbeFailed { attempt, .. }
        | Event::SessionEnded { attempt, .. } => *attempt,
    }
}

const HORIZON: Duration = Duration::from_secs(600);

fn flips() -> impl Strategy<Value = (bool, Vec<Duration>)> {
    (any::<bool>(), proptest::collection::vec(0u64..HORIZON.as_millis() as u64, 0..6)).prop_map(|(up, mut f)| {
        f.sort_unstable();
        f.dedup();
        (up, f.into_iter().map(ms).collect())
    })
}

fn world() -> impl Strategy<Value = World> {
    (1usize..=4).prop_flat_map(|n| {
        (
            proptest::collection::vec(flips(), n),
            proptest::collection::vec(any::<bool>(), n),
            prop_oneof![3 => 1u64..1000, 1 => 1000u64..7000].prop_map(ms),
            (0u64..4000).prop_map(ms),
            (0u64..12_000).prop_map(ms),
            proptest::collection::vec(prop_oneof![0u64..2000, 2000u64..15_000, 15_000u64..200_000].prop_map(ms), 1..8),
            any::<bool>(),
        )
            .prop_map(|(reach, silent, dial, refuse, notice, lifetimes, timers_first)| World {
                reach,
                silent,
                dial,
                refuse,
                notice,
                lifetimes,
                timers_first,
            })
    })
}

/// Every parent down the whole time, some refusing and some silent.
fn dark_world() -> impl Strategy<Value = World> {
    (1usize..=4, proptest::collection::vec(any::<bool>(), 4)).prop_map(|(n, silent)| World {
        reach: vec![(false, vec![]); n],
        silent: silent[..n].to_vec(),
        dial: ms(10),
        refuse: ms(5),
        notice: secs(3),
        lifetimes: vec![secs(60)],
        timers_first: false,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// In any world, every step of the machine matches the model the harness keeps: parents
    /// in order, one dial or session at a time, one probe at a time and only of better parents
    /// at most every probe interval, dials abandoned exactly at the connect timeout, a wait of
    /// `[b/2, b]` (doubling to the max) after every failed round and after every session
    /// shorter than the stable duration, a dial at once after a stable one, nothing at all
    /// while waiting, every failure reported, a switch to a better parent soon after it
    /// answers, and always something to wait for.
    #[test]
    fn the_machine_keeps_to_the_rules(world in world(), seed in any::<u64>()) {
        Harness::run(&world, seed, HORIZON);
    }

    /// The same world and seed give the same actions at the same times.
    #[test]
    fn one_seed_one_run(world in world(), seed in any::<u64>()) {
        let a = Harness::run(&world, seed, HORIZON).seen;
        let b = Harness::run(&world, seed, HORIZON).seen;
        prop_assert_eq!(a, b);
    }

    /// Another seed, other waits: with every parent down, ten minutes of backoff differ.
    #[test]
    fn another_seed_other_jitter(world in dark_world(), seed in any::<u64>(), other in any::<u64>()) {
        prop_assume!(seed != other);
        let a = Harness::run(&world, seed, HORIZON).waits;
        let b = Harness::run(&world, other, HORIZON).waits;
        prop_assert!(a.len() >= 10, "only {} waits", a.len());
        prop_assert_ne!(a, b);
    }

    /// With every parent down, waits grow to the maximum and stay within it.
    #[test]
    fn waits_grow_to_the_max_and_no_further(world in dark_world(), seed in any::<u64>()) {
        let waits = Harness::run(&world, seed, HORIZON).waits;
        let mut b = BACKOFF_FIRST;
        for w in &waits {
            prop_assert!(*w >= b / 2 && *w <= b);
            b = (b * 2).min(BACKOFF_MAX);
        }
        prop_assert!(waits.iter().skip(8).all(|w| *w >= BACKOFF_MAX / 2), "{:?}", waits);
    }
}

/// Sessions that die at once, over and over, are redialled ever more slowly: the backoff
/// grows exactly as after failed rounds.
#[test]
fn quick_deaths_back_off_exponentially() {
    let world = World {
        reach: vec![(true, vec![]), (true, vec![])],
        silent: vec![false, false],
        dial: ms(20),
        refuse: ms(5),
        notice: secs(3),
        lifetimes: vec![ms(50)],
        timers_first: false,
    };
    let h = Harness::run(&world, 9, HORIZON);
    assert!(h.waits.len() >= 20, "{:?}", h.waits);
    let mut b = BACKOFF_FIRST;
    for w in &h.waits {
        assert!(*w >= b / 2 && *w <= b, "{w:?} with {b:?}");
        b = (b * 2).min(BACKOFF_MAX);
    }
}

/// The generated worlds are not vacuous: over a fixed sample they make the machine switch
/// back, probe, give up dials, wait and run sessions, so the properties above are exercised.
#[test]
fn the_generated_worlds_reach_every_path() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut closes, mut probes, mut abandons, mut waits, mut sessions) = (0, 0, 0, 0, 0);
    for _ in 0..200 {
        let w = world().new_tree(&mut runner).unwrap().current();
        let h = Harness::run(&w, 1, HORIZON);
        waits += h.waits.len();
        sessions += h.sessions_started;
        for s in &h.seen {
            match s {
                Seen::Action(_, Action::Close { .. }) => closes += 1,
                Seen::Action(_, Action::Probe { .. }) => probes += 1,
                Seen::Action(_, Action::Abandon { .. }) => abandons += 1,
                _ => {}
            }
        }
    }
    let counts = format!("closes {closes}, probes {probes}, abandons {abandons}, waits {waits}, sessions {sessions}");
    assert!(closes >= 20 && probes >= 200 && abandons >= 200 && waits >= 200 && sessions >= 200, "{counts}");
}
