//! The circuit breaker in front of the host: closed (requests flow), open after consecutive
//! failures (requests are refused at once), half-open after a pause (probes go through one at a
//! time; enough successes close it, one failure opens it again). A pure state machine: the
//! caller passes `tokio::time::Instant`s, so tests pause and advance time without sockets.

use tokio::time::Instant;

use crate::config::BreakerConfig;

/// The breaker's state, as reported in stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Requests flow.
    Closed,
    /// Probes go one at a time.
    HalfOpen,
    /// Requests are refused.
    Open,
}

impl State {
    /// `closed`, `half-open` or `open`.
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::HalfOpen => "half-open",
            State::Open => "open",
        }
    }

    /// 0 closed, 1 half-open, 2 open (a Prometheus gauge).
    pub fn level(self) -> u8 {
        match self {
            State::Closed => 0,
            State::HalfOpen => 1,
            State::Open => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool, successes: u32 },
}

/// Permission for one request; its outcome goes back with [`Breaker::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    generation: u64,
    probe: bool,
}

/// The breaker.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    inner: Inner,
    /// Bumped on every state change, so outcomes of requests let through in an earlier state
    /// do not count in the current one.
    generation: u64,
    opened: u64,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Breaker {
        Breaker {
            config,
            inner: Inner::Closed { failures: 0 },
            generation: 0,
            opened: 0,
        }
    }

    /// The state at `now` (an open breaker whose pause is over reads as half-open).
    pub fn state(&self, now: Instant) -> State {
        match self.inner {
            Inner::Closed { .. } => State::Closed,
            Inner::Open { until } if now >= until => State::HalfOpen,
            Inner::Open { .. } => State::Open,
            Inner::HalfOpen { .. } => State::HalfOpen,
        }
    }

    /// How many times the breaker has opened.
    pub fn opened(&self) -> u64 {
        self.opened
    }

    /// Lets a request through, or refuses it while open or while a probe is out.
    pub fn try_acquire(&mut self, now: Instant) -> Option<Ticket> {
        if let Inner::Open { until } = self.inner
            && now >= until
        {
            self.change(Inner::HalfOpen {
                probing: false,
                successes: 0,
            });
        }
        match &mut self.inner {
            Inner::Closed { .. } => Some(Ticket {
                generation: self.generation,
                probe: false,
            }),
            Inner::HalfOpen { probing, .. } if !*probing => {
                *probing = true;
                Some(Ticket {
                    generation: self.generation,
                    probe: true,
                })
            }
            Inner::HalfOpen { .. } | Inner::Open { .. } => None,
        }
    }

    /// Gives back a ticket whose request was never sent.
    pub fn cancel(&mut self, ticket: Ticket) {
        if ticket.generation == self.generation
            && ticket.probe
            && let Inner::HalfOpen { probing, .. } = &mut self.inner
        {
            *probing = false;
        }
    }

    /// Records how a request went.
    pub fn record(&mut self, ticket: Ticket, success: bool, now: Instant) {
        if ticket.generation != self.generation {
            return;
        }
        match (&mut self.inner, success) {
            (Inner::Closed { failures }, true) => *failures = 0,
            (Inner::Closed { failures }, false) => {
                *failures += 1;
                if *failures >= self.config.failures {
                    self.open(now);
                }
            }
            (Inner::HalfOpen { probing, successes }, true) => {
                *probing = false;
                *successes += 1;
                if *successes >= self.config.probes {
                    self.change(Inner::Closed { failures: 0 });
                }
            }
            (Inner::HalfOpen { .. }, false) => self.open(now),
            (Inner::Open { .. }, _) => {}
        }
    }

    fn open(&mut self, now: Instant) {
        self.opened += 1;
        self.change(Inner::Open {
            until: now + self.config.open_for,
        });
    }

    fn change(&mut self, inner: Inner) {
        self.inner = inner;
        self.generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::advance;

    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            failures: 3,
            open_for: Duration::from_secs(10),
            probes: 2,
        })
    }

    fn fail(b: &mut Breaker) {
        let t = b.try_acquire(Instant::now()).expect("admitted");
        b.record(t, false, Instant::now());
    }

    fn succeed(b: &mut Breaker) {
        let t = b.try_acquire(Instant::now()).expect("admitted");
        b.record(t, true, Instant::now());
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_only() {
        let mut b = breaker();
        fail(&mut b);
        fail(&mut b);
        succeed(&mut b);
        fail(&mut b);
        fail(&mut b);
        assert_eq!(b.state(Instant::now()), State::Closed);
        fail(&mut b);
        assert_eq!(b.state(Instant::now()), State::Open);
        assert_eq!(b.opened(), 1);
        assert_eq!(b.try_acquire(Instant::now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_after_the_pause_lets_one_probe_at_a_time() {
        let mut b = breaker();
        (0..3).for_each(|_| fail(&mut b));
        advance(Duration::from_secs(9)).await;
        assert_eq!(b.try_acquire(Instant::now()), None);
        advance(Duration::from_secs(1)).await;
        assert_eq!(b.state(Instant::now()), State::HalfOpen);
        let probe = b.try_acquire(Instant::now()).expect("probe");
        assert_eq!(b.try_acquire(Instant::now()), None, "one probe at a time");
        b.record(probe, true, Instant::now());
        assert_eq!(b.state(Instant::now()), State::HalfOpen);
        succeed(&mut b);
        assert_eq!(b.state(Instant::now()), State::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_it_again_for_a_full_pause() {
        let mut b = breaker();
        (0..3).for_each(|_| fail(&mut b));
        advance(Duration::from_secs(10)).await;
        fail(&mut b);
        assert_eq!(b.state(Instant::now()), State::Open);
        assert_eq!(b.opened(), 2);
        advance(Duration::from_secs(5)).await;
        assert_eq!(b.try_acquire(Instant::now()), None);
        advance(Duration::from_secs(5)).await;
        assert!(b.try_acquire(Instant::now()).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn outcomes_from_an_earlier_state_do_not_count() {
        let mut b = breaker();
        let old = b.try_acquire(Instant::now()).unwrap();
        (0..3).for_each(|_| fail(&mut b));
        advance(Duration::from_secs(10)).await;
        let probe = b.try_acquire(Instant::now()).unwrap();
        // The late success of a request let through while closed is no probe.
        b.record(old, true, Instant::now());
        assert_eq!(
            b.try_acquire(Instant::now()),
            None,
            "the probe is still out"
        );
        b.record(probe, true, Instant::now());
        assert_eq!(b.state(Instant::now()), State::HalfOpen, "needs two probes");
        succeed(&mut b);
        assert_eq!(b.state(Instant::now()), State::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_frees_the_slot() {
        let mut b = breaker();
        (0..3).for_each(|_| fail(&mut b));
        advance(Duration::from_secs(10)).await;
        let probe = b.try_acquire(Instant::now()).unwrap();
        b.cancel(probe);
        assert!(b.try_acquire(Instant::now()).is_some());
    }

    #[test]
    fn states_have_names_and_levels() {
        assert_eq!(State::HalfOpen.name(), "half-open");
        assert_eq!(
            [State::Closed, State::HalfOpen, State::Open].map(State::level),
            [0, 1, 2]
        );
    }
}
