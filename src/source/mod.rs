//! Frame sources: image folders and globs, and video files, network streams and V4L2/USB
//! cameras through an ffmpeg subprocess. Each runs on its own thread and hands frames to a
//! [`Slot`](crate::source::slot::Slot).

pub mod camera;
pub mod ffmpeg;
pub mod images;
pub mod ppm;
pub mod slot;
pub mod video;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use image::RgbImage;
use tokio_util::sync::CancellationToken;

use crate::config::{CameraConfig, SourceKind};
use slot::Slot;

/// One captured frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The pixels.
    pub image: RgbImage,
    /// Capture time, unix seconds.
    pub captured: f64,
    /// Where it came from: a file name or `frame N`.
    pub origin: String,
}

/// Problems a source reports while it keeps trying; the agent logs them and publishes them on
/// the error topic.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceProblem {
    /// Camera name.
    pub camera: String,
    /// What went wrong, one line.
    pub message: String,
}

/// Counters a source keeps.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Frames delivered to the slot.
    pub frames: AtomicU64,
    /// Failures (unreadable image, stream dropped, camera gone).
    pub errors: AtomicU64,
    /// Restarts of the underlying process or device.
    pub restarts: AtomicU64,
}

/// Everything a source thread needs.
pub struct Context {
    /// Where frames go.
    pub slot: Arc<Slot<Frame>>,
    /// Cancelled at shutdown.
    pub stop: CancellationToken,
    /// Counters.
    pub stats: Arc<SourceStats>,
    /// Problem reports; when the queue is full a report is dropped and counted (it is logged
    /// here either way).
    pub problems: crate::queue::Sender<SourceProblem>,
}

impl Context {
    /// Records and reports a problem.
    pub fn problem(&self, camera: &str, message: String) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(camera, "{message}");
        let _ = self.problems.try_send(SourceProblem {
            camera: camera.to_owned(),
            message,
        });
    }

    /// Sleeps up to `d`; returns false if shutdown began meanwhile.
    pub fn sleep(&self, d: Duration) -> bool {
        let step = Duration::from_millis(50);
        let mut left = d;
        while !left.is_zero() {
            if self.stop.is_cancelled() {
                return false;
            }
            let s = left.min(step);
            std::thread::sleep(s);
            left -= s;
        }
        !self.stop.is_cancelled()
    }
}

/// Current time as unix seconds.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Starts the camera's source on its own thread; the slot is closed when the source ends.
pub fn spawn(camera: &CameraConfig, ctx: Context) -> std::io::Result<std::thread::JoinHandle<()>> {
    let camera = camera.clone();
    std::thread::Builder::new()
        .name(format!("source-{}", camera.name))
        .spawn(move || {
            match camera.source {
                SourceKind::Images => images::run(&camera, &ctx),
                SourceKind::Video | SourceKind::Stream => video::run(&camera, &ctx),
                SourceKind::Camera => camera::run(&camera, &ctx),
            }
            ctx.slot.close();
        })
}

/// Restart delays for sources that fail: 0.5 s doubling to 30 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500)
        .saturating_mul(1 << attempt.min(6))
        .min(Duration::from_secs(30))
}
