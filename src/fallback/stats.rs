//! Live counters of the fallback host, read by `P/D/stats` and `/metrics`.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use serde_json::{Value, json};

use super::breaker::State;
use crate::latency::RecentLatencies;

/// What happened to escalations.
#[derive(Debug, Default)]
pub struct HostStats {
    /// Requests sent to the host.
    pub escalations: AtomicU64,
    /// Requests the host answered in time and in order.
    pub answers: AtomicU64,
    /// Requests that failed: connection, error status, malformed answer, model that does not fit.
    pub errors: AtomicU64,
    /// Requests that took longer than the timeout.
    pub timeouts: AtomicU64,
    /// Results not sent because `max_in_flight` requests were out.
    pub refused_busy: AtomicU64,
    /// Results not sent because the breaker was open.
    pub refused_open: AtomicU64,
    /// Results not sent because the rate budget was spent.
    pub refused_budget: AtomicU64,
    /// Answers that came after their object had ended.
    pub late: AtomicU64,
    /// Times the breaker opened.
    pub breaker_opened: AtomicU64,
    /// The breaker's state as [`State::level`].
    pub breaker: AtomicU8,
    /// Recent request round trips.
    pub latencies: RecentLatencies,
}

impl HostStats {
    /// The breaker's last known state.
    pub fn breaker_state(&self) -> State {
        match self.breaker.load(Ordering::Relaxed) {
            0 => State::Closed,
            1 => State::HalfOpen,
            _ => State::Open,
        }
    }

    /// The `fallback` object of the stats message.
    pub fn to_json(&self) -> Value {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (p50, p95) = self.latencies.summary().map_or((0.0, 0.0), |l| {
            (l.p50.as_secs_f64() * 1e3, l.p95.as_secs_f64() * 1e3)
        });
        json!({
            "breaker": self.breaker_state().name(),
            "breaker_opened": load(&self.breaker_opened),
            "escalations": load(&self.escalations),
            "answers": load(&self.answers),
            "errors": load(&self.errors),
            "timeouts": load(&self.timeouts),
            "refused": {
                "busy": load(&self.refused_busy),
                "open": load(&self.refused_open),
                "budget": load(&self.refused_budget),
            },
            "late": load(&self.late),
            "host_ms_p50": (p50 * 10.0).round() / 10.0,
            "host_ms_p95": (p95 * 10.0).round() / 10.0,
        })
    }
}
