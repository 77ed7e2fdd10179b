//! Image folders and globs: each file decoded in name order at the configured rate, optionally
//! looping. Unreadable files are reported and skipped. Nothing is dropped: the source waits for
//! inference to take each frame.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Context, Frame, now};
use crate::config::CameraConfig;
use crate::vision::preprocess::load_image;

const EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "bmp", "webp", "gif"];

/// Lists the images a path names: a directory's image files, or a glob's matches, sorted.
pub fn list(path: &str) -> Result<Vec<PathBuf>, String> {
    let dir = std::path::Path::new(path);
    let mut files: Vec<PathBuf> = if dir.is_dir() {
        std::fs::read_dir(dir)
            .map_err(|e| format!("cannot list {path}: {e}"))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect()
    } else {
        glob::glob(path)
            .map_err(|e| format!("bad glob {path}: {e}"))?
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect()
    };
    files.sort();
    if files.is_empty() {
        return Err(format!("no images at {path}"));
    }
    Ok(files)
}

/// Runs until the files are done (or forever when looping) or shutdown.
pub fn run(camera: &CameraConfig, ctx: &Context) {
    let period = Duration::from_secs_f64(1.0 / camera.fps);
    let mut attempt = 0;
    loop {
        let files = match list(&camera.path) {
            Ok(files) => files,
            Err(message) => {
                ctx.problem(&camera.name, message);
                if !camera.looping || !ctx.sleep(super::backoff(attempt)) {
                    return;
                }
                attempt += 1;
                continue;
            }
        };
        let mut next = Instant::now();
        for file in files {
            if ctx.stop.is_cancelled() {
                return;
            }
            let image = match load_image(&file) {
                Ok(image) => image,
                Err(e) => {
                    ctx.problem(&camera.name, format!("{:#}", anyhow::Error::from(e)));
                    continue;
                }
            };
            if !ctx.sleep(next.saturating_duration_since(Instant::now())) {
                return;
            }
            next = Instant::now() + period;
            let origin = file
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            if !ctx.slot.put_wait(Frame {
                image,
                captured: now(),
                origin,
            }) {
                return;
            }
            ctx.stats.frames.fetch_add(1, Ordering::Relaxed);
        }
        if !camera.looping {
            return;
        }
    }
}
