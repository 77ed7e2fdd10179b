//! Statistics of the running agent: the JSON published on `P/D/stats` and the Prometheus text
//! served on `/metrics`, both read from the same live counters.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::{Value, json};

use crate::fallback::stats::HostStats;
use crate::latency::{current_rss, peak_rss};
use crate::model::{Choice, Precision};
use crate::observe::counters::TextStats;
use crate::observe::counters::WorkerStats;
use crate::publish::client::Status;
use crate::queue::{Policy, QueueStats};
use crate::source::slot::Slot;
use crate::source::{Frame, SourceStats};

/// The live counters of one camera.
#[derive(Clone)]
pub struct CameraCounters {
    /// Camera name.
    pub name: String,
    /// Model id.
    pub model: String,
    /// The runtime and form running the model, and what was measured to choose them.
    pub choice: Choice,
    /// Source counters.
    pub source: Arc<SourceStats>,
    /// Inference counters.
    pub worker: Arc<WorkerStats>,
    /// The hand-off slot (dropped frames).
    pub slot: Arc<Slot<Frame>>,
}

/// Everything stats are made of.
pub struct Registry {
    /// When the agent started.
    pub started: Instant,
    /// Per camera.
    pub cameras: Vec<CameraCounters>,
    /// The text classifier's model name and counters.
    pub text: Option<(String, Arc<TextStats>)>,
    /// The publisher's counters.
    pub publisher: Arc<Status>,
    /// The fallback host's counters, when there is a host.
    pub fallback: Option<Arc<HostStats>>,
    /// The counted channels (publish, broker input, commands, texts, source problems).
    pub queues: Vec<Arc<QueueStats>>,
    /// Most events the outbox keeps.
    pub outbox_capacity: usize,
}

/// A `/metrics` family read from every queue: its name, type, help and value.
type QueueMetric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&QueueRow) -> f64,
);

/// One queue as stats and metrics show it.
struct QueueRow {
    name: String,
    capacity: usize,
    depth: u64,
    high_water: u64,
    dropped: u64,
    policy: Policy,
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The runtime running a camera's model, and each candidate measured at load time.
fn runtime_json(choice: &Choice) -> Value {
    json!({
        "runtime": choice.runtime,
        "precision": choice.precision.name(),
        "tolerance": choice.tolerance,
        "measured": choice.candidates.iter().map(|c| json!({
            "runtime": c.runtime,
            "precision": c.precision.name(),
            "ms": (ms(c.time) * 100.0).round() / 100.0,
            "deviation": c.deviation,
            "tolerance": c.tolerance,
        })).collect::<Vec<_>>(),
    })
}

/// Prometheus labels naming a camera, its model and one runtime and form.
fn runtime_labels(c: &CameraCounters, runtime: &str, precision: Precision) -> String {
    format!(
        "{{camera=\"{}\",model=\"{}\",runtime=\"{runtime}\",precision=\"{}\"}}",
        c.name,
        c.model,
        precision.name()
    )
}

/// Inferred-frame counts at the last stats message, to compute fps over the interval.
pub struct Rates {
    at: Instant,
    inferred: Vec<u64>,
}

impl Registry {
    /// Starts rate tracking from now.
    pub fn rates(&self) -> Rates {
        Rates {
            at: Instant::now(),
            inferred: self
                .cameras
                .iter()
                .map(|c| c.worker.inferred.load(Ordering::Relaxed))
                .collect(),
        }
    }

    /// Every bounded queue: the counted channels, each camera's frame slot and the outbox.
    fn queue_rows(&self) -> Vec<QueueRow> {
        let mut rows: Vec<QueueRow> = self
            .queues
            .iter()
            .map(|q| QueueRow {
                name: q.name.clone(),
                capacity: q.capacity,
                depth: q.depth(),
                high_water: q.high_water(),
                dropped: q.dropped_total(),
                policy: q.policy,
            })
            .collect();
        rows.extend(self.cameras.iter().map(|c| QueueRow {
            name: format!("frames/{}", c.name),
            capacity: 1,
            depth: u64::from(c.slot.is_full()),
            high_water: c.source.frames.load(Ordering::Relaxed).min(1),
            dropped: c.slot.dropped(),
            policy: Policy::Replace,
        }));
        let p = &self.publisher;
        rows.push(QueueRow {
            name: "outbox".into(),
            capacity: self.outbox_capacity,
            depth: p.outbox_depth.load(Ordering::Relaxed),
            high_water: p.outbox_high_water.load(Ordering::Relaxed),
            dropped: p.outbox_dropped.load(Ordering::Relaxed),
            policy: Policy::DropOldest,
        });
        rows
    }

    /// The stats message; fps is measured since `rates` was last updated.
    pub fn to_json(&self, rates: &mut Rates) -> Value {
        let elapsed = rates.at.elapsed().as_secs_f64().max(1e-3);
        let mut cameras = serde_json::Map::new();
        for (i, c) in self.cameras.iter().enumerate() {
            let inferred = c.worker.inferred.load(Ordering::Relaxed);
            let before = rates.inferred.get(i).copied().unwrap_or(0);
            let (p50, p95) = c
                .worker
                .latency()
                .map_or((0.0, 0.0), |l| (ms(l.p50), ms(l.p95)));
            cameras.insert(
                c.name.clone(),
                json!({
                    "model": c.model,
                    "runtime": runtime_json(&c.choice),
                    "fps": ((inferred - before) as f64 / elapsed * 100.0).round() / 100.0,
                    "inference_ms_p50": (p50 * 10.0).round() / 10.0,
                    "inference_ms_p95": (p95 * 10.0).round() / 10.0,
                    "frames": c.source.frames.load(Ordering::Relaxed),
                    "inferred": inferred,
                    "dropped_frames": c.slot.dropped(),
                    "motion_skipped": c.worker.motion_skipped.load(Ordering::Relaxed),
                    "events": c.worker.events.load(Ordering::Relaxed),
                    "source_errors": c.source.errors.load(Ordering::Relaxed),
                    "inference_errors": c.worker.errors.load(Ordering::Relaxed),
                }),
            );
        }
        *rates = self.rates();
        let p = &self.publisher;
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": self.started.elapsed().as_secs(),
            "memory_rss_mib": current_rss().map(|b| (b as f64 / 1048576.0 * 10.0).round() / 10.0),
            "memory_peak_mib": peak_rss().map(|b| (b as f64 / 1048576.0 * 10.0).round() / 10.0),
            "connected": p.connected.load(Ordering::Relaxed),
            "outbox_depth": p.outbox_depth.load(Ordering::Relaxed),
            "outbox_dropped": p.outbox_dropped.load(Ordering::Relaxed),
            "events_acked": p.events_acked.load(Ordering::Relaxed),
            "models": self.cameras.iter().map(|c| c.model.clone()).collect::<Vec<_>>(),
            "cameras": cameras,
            "text": self.text.as_ref().map(|(model, t)| {
                let (p50, p95) = t.latencies.summary().map_or((0.0, 0.0), |l| (ms(l.p50), ms(l.p95)));
                json!({
                    "model": model,
                    "received": t.received.load(Ordering::Relaxed),
                    "classified": t.classified.load(Ordering::Relaxed),
                    "errors": t.errors.load(Ordering::Relaxed),
                    "batches": t.batches.load(Ordering::Relaxed),
                    "batch_ms_p50": (p50 * 10.0).round() / 10.0,
                    "batch_ms_p95": (p95 * 10.0).round() / 10.0,
                })
            }),
            "fallback": self.fallback.as_ref().map(|f| f.to_json()),
            "queues": self.queue_rows().into_iter().map(|q| (q.name, json!({
                "capacity": q.capacity,
                "depth": q.depth,
                "high_water": q.high_water,
                "dropped": q.dropped,
                "policy": q.policy.name(),
            }))).collect::<serde_json::Map<_, _>>(),
        })
    }

    /// Prometheus text exposition.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, rows: Vec<(String, f64)>| {
            let _ = writeln!(
                out,
                "# HELP edgemass_{name} {help}\n# TYPE edgemass_{name} {kind}"
            );
            for (labels, value) in rows {
                let _ = writeln!(out, "edgemass_{name}{labels} {value}");
            }
        };
        let per_camera = |f: &dyn Fn(&CameraCounters) -> f64| -> Vec<(String, f64)> {
            self.cameras
                .iter()
                .map(|c| {
                    (
                        format!("{{camera=\"{}\",model=\"{}\"}}", c.name, c.model),
                        f(c),
                    )
                })
                .collect()
        };
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
        metric(
            "frames_total",
            "counter",
            "Frames delivered by the source.",
            per_camera(&|c| load(&c.source.frames)),
        );
        metric(
            "inferred_frames_total",
            "counter",
            "Frames run through the model.",
            per_camera(&|c| load(&c.worker.inferred)),
        );
        metric(
            "dropped_frames_total",
            "counter",
            "Frames replaced before inference took them.",
            per_camera(&|c| c.slot.dropped() as f64),
        );
        metric(
            "motion_skipped_frames_total",
            "counter",
            "Frames skipped by the motion gate.",
            per_camera(&|c| load(&c.worker.motion_skipped)),
        );
        metric(
            "events_total",
            "counter",
            "Tracked-object events produced.",
            per_camera(&|c| load(&c.worker.events)),
        );
        metric(
            "source_errors_total",
            "counter",
            "Source failures.",
            per_camera(&|c| load(&c.source.errors)),
        );
        metric(
            "runtime_info",
            "gauge",
            "1 for the runtime and form running the camera's model.",
            self.cameras
                .iter()
                .map(|c| (runtime_labels(c, c.choice.runtime, c.choice.precision), 1.0))
                .collect(),
        );
        metric(
            "runtime_candidate_ms",
            "gauge",
            "Load-time median run of each runtime and form measured for the camera's model.",
            self.cameras
                .iter()
                .flat_map(|c| {
                    c.choice
                        .candidates
                        .iter()
                        .map(move |k| (runtime_labels(c, k.runtime, k.precision), ms(k.time)))
                })
                .collect(),
        );
        metric(
            "inference_ms_p50",
            "gauge",
            "Median inference time of recent frames.",
            per_camera(&|c| c.worker.latency().map_or(0.0, |l| ms(l.p50))),
        );
        metric(
            "inference_ms_p95",
            "gauge",
            "95th percentile inference time of recent frames.",
            per_camera(&|c| c.worker.latency().map_or(0.0, |l| ms(l.p95))),
        );
        let p = &self.publisher;
        metric(
            "mqtt_connected",
            "gauge",
            "1 when a broker session is up.",
            vec![(
                String::new(),
                f64::from(u8::from(p.connected.load(Ordering::Relaxed))),
            )],
        );
        metric(
            "outbox_depth",
            "gauge",
            "Events waiting for the broker.",
            vec![(String::new(), load(&p.outbox_depth))],
        );
        metric(
            "outbox_dropped_total",
            "counter",
            "Events dropped because the outbox was full.",
            vec![(String::new(), load(&p.outbox_dropped))],
        );
        metric(
            "events_acked_total",
            "counter",
            "Events acknowledged by the broker.",
            vec![(String::new(), load(&p.events_acked))],
        );
        let queues = self.queue_rows();
        let columns: [QueueMetric; 4] = [
            (
                "queue_capacity",
                "gauge",
                "Most items a bounded queue holds.",
                |q| q.capacity as f64,
            ),
            (
                "queue_depth",
                "gauge",
                "Items waiting in a bounded queue.",
                |q| q.depth as f64,
            ),
            (
                "queue_high_water",
                "gauge",
                "Most items that ever waited in a bounded queue at once.",
                |q| q.high_water as f64,
            ),
            (
                "queue_dropped_total",
                "counter",
                "Items a full queue dropped, replaced or refused, by its policy.",
                |q| q.dropped as f64,
            ),
        ];
        for (name, kind, help, value) in columns {
            let rows = queues
                .iter()
                .map(|q| {
                    let labels = format!("{{queue=\"{}\",policy=\"{}\"}}", q.name, q.policy.name());
                    (labels, value(q))
                })
                .collect();
            metric(name, kind, help, rows);
        }
        if let Some((model, t)) = &self.text {
            let labels = format!("{{model=\"{model}\"}}");
            for (name, help, value) in [
                (
                    "texts_received_total",
                    "Texts accepted for classification.",
                    &t.received,
                ),
                ("texts_classified_total", "Texts classified.", &t.classified),
                ("text_errors_total", "Texts rejected or failed.", &t.errors),
            ] {
                metric(name, "counter", help, vec![(labels.clone(), load(value))]);
            }
        }
        if let Some(f) = &self.fallback {
            for (name, help, value) in [
                (
                    "fallback_escalations_total",
                    "Requests sent to the fallback host.",
                    &f.escalations,
                ),
                (
                    "fallback_answers_total",
                    "Requests the fallback host answered.",
                    &f.answers,
                ),
                (
                    "fallback_errors_total",
                    "Requests to the fallback host that failed.",
                    &f.errors,
                ),
                (
                    "fallback_timeouts_total",
                    "Requests to the fallback host that timed out.",
                    &f.timeouts,
                ),
                (
                    "fallback_late_total",
                    "Host answers that came after their object had ended.",
                    &f.late,
                ),
                (
                    "fallback_breaker_opened_total",
                    "Times the circuit breaker opened.",
                    &f.breaker_opened,
                ),
            ] {
                metric(name, "counter", help, vec![(String::new(), load(value))]);
            }
            metric(
                "fallback_refused_total",
                "counter",
                "Results not sent to the host, by reason.",
                [
                    ("busy", &f.refused_busy),
                    ("open", &f.refused_open),
                    ("budget", &f.refused_budget),
                ]
                .into_iter()
                .map(|(reason, value)| (format!("{{reason=\"{reason}\"}}"), load(value)))
                .collect(),
            );
            metric(
                "fallback_breaker_state",
                "gauge",
                "Circuit breaker: 0 closed, 1 half-open, 2 open.",
                vec![(String::new(), f64::from(f.breaker_state().level()))],
            );
            let (p50, p95) = f
                .latencies
                .summary()
                .map_or((0.0, 0.0), |l| (ms(l.p50), ms(l.p95)));
            metric(
                "fallback_host_ms_p50",
                "gauge",
                "Median round trip of recent host requests.",
                vec![(String::new(), p50)],
            );
            metric(
                "fallback_host_ms_p95",
                "gauge",
                "95th percentile round trip of recent host requests.",
                vec![(String::new(), p95)],
            );
        }
        metric(
            "uptime_seconds",
            "gauge",
            "Seconds since start.",
            vec![(String::new(), self.started.elapsed().as_secs_f64().round())],
        );
        metric(
            "memory_rss_bytes",
            "gauge",
            "Resident memory.",
            vec![(String::new(), current_rss().unwrap_or(0) as f64)],
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fallback::breaker::State;

    #[test]
    fn fallback_counters_reach_the_stats_message_and_metrics() {
        let host = Arc::new(HostStats::default());
        host.escalations.store(7, Ordering::Relaxed);
        host.refused_open.store(3, Ordering::Relaxed);
        host.breaker.store(State::Open.level(), Ordering::Relaxed);
        host.latencies.record(std::time::Duration::from_millis(40));
        let registry = Registry {
            started: Instant::now(),
            cameras: Vec::new(),
            text: None,
            publisher: Arc::new(Status::default()),
            fallback: Some(host),
            queues: Vec::new(),
            outbox_capacity: 10,
        };
        let json = registry.to_json(&mut registry.rates());
        assert_eq!(json["fallback"]["escalations"], 7);
        assert_eq!(json["fallback"]["breaker"], "open");
        assert_eq!(json["fallback"]["refused"]["open"], 3);
        assert_eq!(json["fallback"]["host_ms_p50"], 40.0);
        let text = registry.prometheus();
        for line in [
            "edgemass_fallback_escalations_total 7\n",
            "edgemass_fallback_refused_total{reason=\"open\"} 3\n",
            "edgemass_fallback_breaker_state 2\n",
            "edgemass_fallback_host_ms_p50 40\n",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        let without = Registry {
            fallback: None,
            ..registry
        };
        assert!(without.to_json(&mut without.rates())["fallback"].is_null());
        assert!(!without.prometheus().contains("fallback"));
    }

    #[test]
    fn every_queue_reaches_the_stats_message_and_metrics() {
        let text_in = QueueStats::new("text_in", 2, Policy::Refuse);
        text_in.pushed();
        text_in.pushed();
        text_in.popped();
        text_in.dropped();
        let publisher = Arc::new(Status::default());
        publisher.outbox_depth.store(3, Ordering::Relaxed);
        publisher.outbox_high_water.store(9, Ordering::Relaxed);
        let registry = Registry {
            started: Instant::now(),
            cameras: Vec::new(),
            text: None,
            publisher,
            fallback: None,
            queues: vec![text_in],
            outbox_capacity: 100,
        };
        let json = registry.to_json(&mut registry.rates());
        assert_eq!(
            json["queues"]["text_in"],
            json!({"capacity": 2, "depth": 1, "high_water": 2, "dropped": 1, "policy": "refuse"})
        );
        assert_eq!(json["queues"]["outbox"]["high_water"], 9);
        assert_eq!(json["queues"]["outbox"]["policy"], "drop-oldest");
        let text = registry.prometheus();
        for line in [
            "edgemass_queue_dropped_total{queue=\"text_in\",policy=\"refuse\"} 1\n",
            "edgemass_queue_high_water{queue=\"outbox\",policy=\"drop-oldest\"} 9\n",
            "edgemass_queue_capacity{queue=\"outbox\",policy=\"drop-oldest\"} 100\n",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }
}
