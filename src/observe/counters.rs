//! The live counters the pipeline's stages fill and the stats message, `/metrics` and the
//! snapshot page read.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use image::RgbImage;

use crate::latency::{Latency, RecentLatencies};
use crate::vision::Detection;

/// The latest inferred frame and its detections, for `/snapshot/CAMERA.jpg`.
pub struct Latest {
    /// The frame as captured.
    pub frame: RgbImage,
    /// What was found in it.
    pub detections: Vec<Detection>,
}

/// Counters of one camera's inference loop.
#[derive(Default)]
pub struct WorkerStats {
    /// Frames run through the model.
    pub inferred: AtomicU64,
    /// Frames skipped by the motion gate.
    pub motion_skipped: AtomicU64,
    /// Frames skipped because the camera is disabled.
    pub disabled_skipped: AtomicU64,
    /// Inference failures.
    pub errors: AtomicU64,
    /// Events produced.
    pub events: AtomicU64,
    /// Recent whole-frame inference times (preprocess + run + decode).
    pub latencies: RecentLatencies,
    /// Latest frame for the HTTP snapshot.
    pub latest: Mutex<Option<Arc<Latest>>>,
}

impl WorkerStats {
    /// Percentiles of the recent latencies; `None` before the first frame.
    pub fn latency(&self) -> Option<Latency> {
        self.latencies.summary()
    }
}

/// Live counters of the text stage.
#[derive(Default)]
pub struct TextStats {
    /// Texts accepted into the queue.
    pub received: AtomicU64,
    /// Texts classified and handed to the publisher.
    pub classified: AtomicU64,
    /// Inputs rejected (bad bytes, empty) or batches that failed.
    pub errors: AtomicU64,
    /// Batches run.
    pub batches: AtomicU64,
    /// Recent batch inference times.
    pub latencies: RecentLatencies,
}
