//! One camera's inference loop, on its own thread: newest frame → motion gate → detector →
//! tracker → events, counts and snapshots for the publisher. Objects scored in the camera's
//! fallback band go to the host without waiting; its answers are applied between frames.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use image::RgbImage;
use serde_json::json;

use super::motion::MotionGate;
use crate::config::CameraConfig;
use crate::config::TrackerConfig;
use crate::fallback::vision::{Answer, CameraFallback};
use crate::model::threads::with_threads;
use crate::observe::counters::{Latest, WorkerStats};
use crate::publish::client::{Handle, Outgoing};
use crate::publish::topics::Topics;
use crate::source::slot::{Slot, Taken};
use crate::source::{Frame, now};
use crate::track::{Event, Tracker};
use crate::vision::Detection;
use crate::vision::detector::Detector;
use crate::vision::{annotate, jpeg};

/// Least time between two snapshots of one label.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

/// Run-time switches of a camera, changed by MQTT commands.
#[derive(Debug)]
pub struct Control {
    /// Whether frames go to inference.
    pub enabled: AtomicBool,
    /// New tracker settings to apply before the next frame.
    pub tracker: Mutex<Option<TrackerConfig>>,
}

/// Everything the loop needs.
pub struct Worker {
    /// Camera settings.
    pub camera: CameraConfig,
    /// The loaded model.
    pub detector: Detector,
    /// Frames from the source.
    pub slot: Arc<Slot<Frame>>,
    /// Where events go.
    pub publisher: Handle,
    /// Topic names.
    pub topics: Topics,
    /// Run-time switches.
    pub control: Arc<Control>,
    /// Counters.
    pub stats: Arc<WorkerStats>,
    /// Publish retained snapshots per label.
    pub snapshots: bool,
    /// Threads for this camera's matrix products.
    pub threads: usize,
    /// The link to the fallback host, when the camera has one.
    pub fallback: Option<CameraFallback>,
}

impl Worker {
    /// Starts the loop on its own thread; it ends when the slot is closed and empty.
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        let name = format!("infer-{}", self.camera.name);
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || with_threads(self.threads, &name, || self.run()))
    }

    fn run(self) {
        let model = self.detector.model().manifest().name.clone();
        let mut tracker = Tracker::new(&self.camera.name, &model, self.camera.tracker.clone());
        if let Some(fallback) = &self.fallback {
            tracker.escalate(fallback.band());
        }
        let mut gate = self
            .camera
            .motion_gate
            .then(|| MotionGate::new(0.002, 25, 50));
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut last_snapshot: HashMap<String, Instant> = HashMap::new();
        let mut was_enabled = true;
        loop {
            let taken = self.slot.take(Duration::from_millis(200));
            self.host_answers(&mut tracker, &mut counts);
            let frame = match taken {
                Taken::Item(frame) => frame,
                Taken::Timeout => continue,
                Taken::Closed => break,
            };
            if let Some(config) = self.control.tracker.lock().ok().and_then(|mut t| t.take()) {
                tracker.set_config(config);
            }
            let enabled = self.control.enabled.load(Ordering::Relaxed);
            if !enabled {
                if was_enabled {
                    let events = tracker.end_all(now());
                    self.emit(&events, &tracker, &mut counts);
                }
                was_enabled = false;
                self.stats.disabled_skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            was_enabled = true;
            if let Some(gate) = gate.as_mut()
                && !gate.should_infer(&frame.image)
            {
                self.stats.motion_skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let started = Instant::now();
            let found = match self.detector.detect(&frame.image) {
                Ok(found) => found,
                Err(e) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(camera = %self.camera.name, "{:#}", anyhow::Error::from(e));
                    continue;
                }
            };
            let elapsed = started.elapsed();
            self.stats.inferred.fetch_add(1, Ordering::Relaxed);
            self.stats.latencies.record(elapsed);
            let labels = self.detector.labels();
            let seen: Vec<_> = found
                .detections
                .iter()
                .map(|d| (labels[d.class].clone(), d.score, d.bbox))
                .collect();
            let events = tracker.update(&seen, frame.captured);
            self.emit(&events, &tracker, &mut counts);
            if let Some(fallback) = &self.fallback {
                let uncertain = tracker.take_uncertain();
                if !uncertain.is_empty() {
                    tracker.unanswered(&fallback.try_send(&frame.image, uncertain));
                }
            }
            if self.snapshots {
                self.snapshot(&frame.image, &found.detections, &events, &mut last_snapshot);
            }
            if let Ok(mut latest) = self.stats.latest.lock() {
                *latest = Some(Arc::new(Latest {
                    frame: frame.image,
                    detections: found.detections,
                }));
            }
        }
        let events = tracker.end_all(now());
        self.emit(&events, &tracker, &mut counts);
    }

    /// Applies the host's answers that have arrived: verdicts become events, objects left
    /// unanswered may be sent again.
    fn host_answers(&self, tracker: &mut Tracker, counts: &mut BTreeMap<String, usize>) {
        let Some(fallback) = &self.fallback else {
            return;
        };
        for answer in fallback.try_answers() {
            match answer {
                Answer::Verdicts(verdicts) => {
                    for verdict in verdicts {
                        match tracker.verify(verdict) {
                            Some(events) => self.emit(&events, tracker, counts),
                            None => fallback.late(1),
                        }
                    }
                }
                Answer::Unanswered(ids) => tracker.unanswered(&ids),
            }
        }
    }

    /// Publishes events, then the counts that changed.
    fn emit(&self, events: &[Event], tracker: &Tracker, counts: &mut BTreeMap<String, usize>) {
        for event in events {
            let id = uuid::Uuid::now_v7().to_string();
            let payload = json!({
                "id": id,
                "time": now(),
                "type": event.kind,
                "before": event.before,
                "after": event.after,
            });
            self.stats.events.fetch_add(1, Ordering::Relaxed);
            self.publisher.blocking_send(Outgoing::Event {
                id,
                topic: self.topics.events(),
                payload: payload.to_string().into_bytes(),
            });
        }
        let labels = tracker.counts();
        let groups = self.detector.model().manifest().groups.counts(&labels);
        for (label, count) in labels.into_iter().chain(groups) {
            if counts.get(&label) != Some(&count) {
                self.publisher.blocking_send(Outgoing::State {
                    topic: self.topics.count(&self.camera.name, &label),
                    payload: count.to_string().into_bytes(),
                });
                counts.insert(label, count);
            }
        }
    }

    /// Publishes a JPEG per label that had a new or updated object, at most once a second each.
    fn snapshot(
        &self,
        frame: &RgbImage,
        detections: &[Detection],
        events: &[Event],
        last: &mut HashMap<String, Instant>,
    ) {
        let labels = self.detector.labels();
        let mut wanted: Vec<&str> = events
            .iter()
            .filter(|e| e.kind != crate::track::EventKind::End)
            .map(|e| e.after.label.as_str())
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        for label in wanted {
            if last
                .get(label)
                .is_some_and(|t| t.elapsed() < SNAPSHOT_EVERY)
            {
                continue;
            }
            let mine: Vec<Detection> = detections
                .iter()
                .filter(|d| labels[d.class] == label)
                .cloned()
                .collect();
            let mut image = frame.clone();
            annotate::draw(&mut image, &mine, labels);
            match jpeg::encode(&image) {
                Ok(jpeg) => {
                    self.publisher.blocking_send(Outgoing::State {
                        topic: self.topics.snapshot(&self.camera.name, label),
                        payload: jpeg,
                    });
                    last.insert(label.to_owned(), Instant::now());
                }
                Err(e) => tracing::warn!(camera = %self.camera.name, "cannot encode snapshot: {e}"),
            }
        }
    }
}
