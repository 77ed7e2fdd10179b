//! Counters of each served model, for `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::latency::RecentLatencies;

/// What one model has done.
#[derive(Debug, Default)]
pub struct ModelStats {
    /// Inference requests received.
    pub requests: AtomicU64,
    /// Requests answered with outputs.
    pub successes: AtomicU64,
    /// Requests refused (bad input, full queue) or failed.
    pub failures: AtomicU64,
    /// Requests refused because the queue was full.
    pub queue_full: AtomicU64,
    /// Batches run.
    pub batches: AtomicU64,
    /// Rows in those batches.
    pub rows: AtomicU64,
    /// Recent batch run times.
    pub inference: RecentLatencies,
    /// Recent request times, queueing included.
    pub request: RecentLatencies,
}

/// Prometheus text for `models` (name and counters).
pub fn prometheus<'a>(models: impl Iterator<Item = (&'a str, &'a ModelStats)> + Clone) -> String {
    let mut out = String::new();
    type Read = fn(&ModelStats) -> f64;
    let rows: [(&str, &str, &str, Read); 10] = [
        (
            "requests_total",
            "counter",
            "Inference requests received.",
            |s| load(&s.requests),
        ),
        (
            "successes_total",
            "counter",
            "Requests answered with outputs.",
            |s| load(&s.successes),
        ),
        (
            "failures_total",
            "counter",
            "Requests refused or failed.",
            |s| load(&s.failures),
        ),
        (
            "queue_full_total",
            "counter",
            "Requests refused because the queue was full.",
            |s| load(&s.queue_full),
        ),
        ("batches_total", "counter", "Batches run.", |s| {
            load(&s.batches)
        }),
        (
            "batch_rows_total",
            "counter",
            "Rows in the batches run.",
            |s| load(&s.rows),
        ),
        (
            "inference_ms_p50",
            "gauge",
            "Median run time of recent batches.",
            |s| ms(&s.inference, false),
        ),
        (
            "inference_ms_p95",
            "gauge",
            "95th percentile run time of recent batches.",
            |s| ms(&s.inference, true),
        ),
        (
            "request_ms_p50",
            "gauge",
            "Median time of recent requests, queueing included.",
            |s| ms(&s.request, false),
        ),
        (
            "request_ms_p95",
            "gauge",
            "95th percentile time of recent requests.",
            |s| ms(&s.request, true),
        ),
    ];
    for (name, kind, help, read) in rows {
        let _ = writeln!(
            out,
            "# HELP edgemass_serve_{name} {help}\n# TYPE edgemass_serve_{name} {kind}"
        );
        for (model, stats) in models.clone() {
            let _ = writeln!(
                out,
                "edgemass_serve_{name}{{model=\"{model}\"}} {}",
                read(stats)
            );
        }
    }
    out
}

fn load(counter: &AtomicU64) -> f64 {
    counter.load(Ordering::Relaxed) as f64
}

fn ms(latencies: &RecentLatencies, p95: bool) -> f64 {
    latencies.summary().map_or(0.0, |s| {
        (if p95 { s.p95 } else { s.p50 }).as_secs_f64() * 1e3
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_gets_a_row_per_metric() {
        let a = ModelStats::default();
        a.requests.store(3, Ordering::Relaxed);
        let b = ModelStats::default();
        let text = prometheus([("a", &a), ("b", &b)].into_iter());
        assert!(
            text.contains("edgemass_serve_requests_total{model=\"a\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("edgemass_serve_batch_rows_total{model=\"b\"} 0\n"),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE").count(), 10);
    }
}
