//! The rate budget of escalations: a token bucket that refills at `rate` per second up to
//! `burst`. Pure: the caller passes `tokio::time::Instant`s.

use tokio::time::Instant;

/// A token bucket.
#[derive(Debug)]
pub struct Budget {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Budget {
    /// A full bucket of `burst` tokens refilling at `rate` per second.
    pub fn new(rate: f64, burst: u32, now: Instant) -> Budget {
        Budget {
            rate,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            at: now,
        }
    }

    /// Takes a token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::advance;

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_rate() {
        let mut b = Budget::new(2.0, 3, Instant::now());
        let taken = (0..5).filter(|_| b.try_take(Instant::now())).count();
        assert_eq!(taken, 3);
        advance(Duration::from_millis(499)).await;
        assert!(!b.try_take(Instant::now()));
        advance(Duration::from_millis(1)).await;
        assert!(b.try_take(Instant::now()));
        advance(Duration::from_secs(60)).await;
        let taken = (0..10).filter(|_| b.try_take(Instant::now())).count();
        assert_eq!(taken, 3, "refills only up to the burst");
    }
}
