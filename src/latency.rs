//! Latency statistics and process memory, for `edgemass bench` and the running agent's stats.

use std::time::Duration;

/// Summary of repeated timings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: Duration,
    /// 95th percentile (nearest rank).
    pub p95: Duration,
    /// Mean.
    pub mean: Duration,
}

impl Latency {
    /// Summarises `samples`; `None` when there are none.
    pub fn of(samples: &[Duration]) -> Option<Latency> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort();
        let rank =
            |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        let total: Duration = sorted.iter().sum();
        Some(Latency {
            p50: rank(0.5),
            p95: rank(0.95),
            mean: total / sorted.len() as u32,
        })
    }

    /// Runs per second at the mean latency.
    pub fn per_second(&self) -> f64 {
        1.0 / self.mean.as_secs_f64()
    }
}

/// The most recent timings of a running stage, shared between its thread and the stats reader.
#[derive(Debug, Default)]
pub struct RecentLatencies {
    window: std::sync::Mutex<std::collections::VecDeque<Duration>>,
}

/// Timings a [`RecentLatencies`] keeps.
const WINDOW: usize = 256;

impl RecentLatencies {
    /// Adds a timing, forgetting the oldest beyond the window.
    pub fn record(&self, took: Duration) {
        if let Ok(mut w) = self.window.lock() {
            if w.len() == WINDOW {
                w.pop_front();
            }
            w.push_back(took);
        }
    }

    /// Percentiles of the kept timings; `None` before the first.
    pub fn summary(&self) -> Option<Latency> {
        let samples: Vec<Duration> = self.window.lock().ok()?.iter().copied().collect();
        Latency::of(&samples)
    }
}

/// Peak resident set size of this process in bytes (Linux `VmHWM`), if the kernel reports it.
pub fn peak_rss() -> Option<u64> {
    status_bytes("VmHWM:")
}

/// Current resident set size of this process in bytes (Linux `VmRSS`).
pub fn current_rss() -> Option<u64> {
    status_bytes("VmRSS:")
}

/// A kB field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<Duration> = (1..=20).rev().map(Duration::from_millis).collect();
        let l = Latency::of(&samples).unwrap();
        assert_eq!(
            (l.p50, l.p95),
            (Duration::from_millis(10), Duration::from_millis(19))
        );
        assert_eq!(l.mean, Duration::from_micros(10_500));
        assert!(Latency::of(&[]).is_none());
    }

    #[test]
    fn peak_rss_is_reported_on_linux() {
        let rss = peak_rss().expect("VmHWM in /proc/self/status");
        assert!(rss > 1024 * 1024, "{rss}");
    }
}
