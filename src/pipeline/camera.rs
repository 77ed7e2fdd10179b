//! One camera's stage as the agent starts it: its frame slot, source thread and inference
//! thread, the counters they fill, and the commands (`enabled`, thresholds) that reach it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::fallback::Links;
use super::worker::{Control, Worker};
use super::{AgentError, Queues};
use crate::config::{CameraConfig, LabelThresholds, TrackerConfig};
use crate::fallback::vision::CameraFallback;
use crate::observe::counters::WorkerStats;
use crate::observe::stats::CameraCounters;
use crate::publish::client::Handle;
use crate::publish::command::Command;
use crate::publish::topics::Topics;
use crate::queue;
use crate::source::slot::Slot;
use crate::source::{self, Frame, SourceProblem, SourceStats};
use crate::vision::detector::Detector;

/// What every camera's threads share.
pub(super) struct Shared<'a> {
    /// Where events and snapshots go.
    pub(super) publisher: &'a Handle,
    /// Topic names.
    pub(super) topics: &'a Topics,
    /// Cancelled to stop the sources.
    pub(super) stop: &'a tokio_util::sync::CancellationToken,
    /// Where sources report problems.
    pub(super) problems: &'a queue::Sender<SourceProblem>,
    /// Publish a retained JPEG per label (`mqtt.snapshots`).
    pub(super) snapshots: bool,
    /// Inference threads (`inference.threads`).
    pub(super) threads: usize,
}

/// A camera's frame slot, source thread and inference thread.
pub(super) type Threads = (
    Arc<Slot<Frame>>,
    std::thread::JoinHandle<()>,
    std::thread::JoinHandle<()>,
);

/// What commands change on a running camera: its name, its switch and its tracker's settings as
/// last set.
pub(super) type Controls = (String, Arc<Control>, TrackerConfig);

/// Every started camera: threads, counters and controls in the order of the config.
#[derive(Default)]
pub(super) struct Cameras {
    /// Joined at shutdown.
    pub(super) threads: Vec<Threads>,
    /// For stats and metrics.
    pub(super) counters: Vec<CameraCounters>,
    /// What commands reach the cameras through.
    pub(super) controls: Vec<Controls>,
}

impl Cameras {
    /// Starts each camera with its detector and its link to the host, whose answer queue is
    /// listed in `queues`.
    pub(super) fn spawn_all(
        cameras: &[CameraConfig],
        detectors: Vec<Detector>,
        links: &mut Links,
        queues: &mut Queues,
        shared: &Shared,
    ) -> Result<Cameras, AgentError> {
        let mut started = Cameras::default();
        for (index, (camera, detector)) in cameras.iter().zip(detectors).enumerate() {
            let fallback = links.camera(index);
            queues
                .0
                .extend(fallback.as_ref().map(|f| f.answers_queue()));
            started.spawn(camera, detector, fallback, shared)?;
        }
        Ok(started)
    }

    /// Starts `camera`'s source and inference threads, joined by a fresh frame slot.
    fn spawn(
        &mut self,
        camera: &CameraConfig,
        detector: Detector,
        fallback: Option<CameraFallback>,
        shared: &Shared,
    ) -> Result<(), AgentError> {
        let slot = Arc::new(Slot::default());
        let source_stats = Arc::new(SourceStats::default());
        let worker_stats = Arc::new(WorkerStats::default());
        let control = Arc::new(Control {
            enabled: AtomicBool::new(camera.enabled),
            tracker: Mutex::new(None),
        });
        self.counters.push(CameraCounters {
            name: camera.name.clone(),
            model: detector.model().manifest().name.clone(),
            choice: detector.model().choice().clone(),
            source: source_stats.clone(),
            worker: worker_stats.clone(),
            slot: slot.clone(),
        });
        self.controls
            .push((camera.name.clone(), control.clone(), camera.tracker.clone()));
        let ctx = source::Context {
            slot: slot.clone(),
            stop: shared.stop.clone(),
            stats: source_stats,
            problems: shared.problems.clone(),
        };
        let source_thread = source::spawn(camera, ctx).map_err(AgentError::Thread)?;
        let worker = Worker {
            camera: camera.clone(),
            detector,
            slot: slot.clone(),
            publisher: shared.publisher.clone(),
            topics: shared.topics.clone(),
            control,
            stats: worker_stats,
            snapshots: shared.snapshots,
            threads: shared.threads,
            fallback,
        };
        let worker_thread = worker.spawn().map_err(AgentError::Thread)?;
        self.threads.push((slot, source_thread, worker_thread));
        Ok(())
    }
}

/// Applies each validated command to its camera until the publisher closes the queue.
pub(super) fn follow_commands(
    mut controls: Vec<Controls>,
    mut commands: queue::Receiver<Command>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(command) = commands.recv().await {
            apply(&mut controls, command);
        }
    })
}

/// Applies a validated command to its camera.
fn apply(controls: &mut [Controls], command: Command) {
    match command {
        Command::Enable { camera, enabled } => {
            if let Some((_, control, _)) = controls.iter().find(|(c, _, _)| *c == camera) {
                control.enabled.store(enabled, Ordering::Relaxed);
            }
        }
        Command::Thresholds {
            camera,
            label,
            min_score,
            threshold,
        } => {
            let Some((_, control, tracker)) = controls.iter_mut().find(|(c, _, _)| *c == camera)
            else {
                return;
            };
            let mut targets: Vec<&mut LabelThresholds> = match &label {
                Some(label) => {
                    let current = tracker.thresholds(label);
                    vec![tracker.labels.entry(label.clone()).or_insert(current)]
                }
                None => std::iter::once(&mut tracker.default)
                    .chain(tracker.labels.values_mut())
                    .collect(),
            };
            for t in targets.iter_mut() {
                if let Some(v) = min_score {
                    t.min_score = v;
                }
                if let Some(v) = threshold {
                    t.threshold = v;
                }
                t.min_score = t.min_score.min(t.threshold);
            }
            if let Ok(mut pending) = control.tracker.lock() {
                *pending = Some(tracker.clone());
            }
        }
    }
}
