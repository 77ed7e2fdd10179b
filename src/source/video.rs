//! Video files and RTSP/HTTP streams through an `ffmpeg` subprocess that writes raw RGB frames to
//! a pipe. Files play at the configured rate (and loop if asked); a stream that drops is
//! restarted with backoff until shutdown.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use image::RgbImage;

use super::{Context, Frame, backoff, now};
use crate::config::{CameraConfig, SourceKind};

/// Asks ffprobe for the first video stream's size.
fn probe(path: &str, stream: bool) -> Result<(u32, u32), String> {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error"]);
    if path.starts_with("rtsp") {
        cmd.args(["-rtsp_transport", "tcp"]);
    }
    if stream {
        cmd.args(["-rw_timeout", "10000000"]);
    }
    cmd.args([
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=width,height",
        "-of",
        "csv=p=0:s=x",
        path,
    ]);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "ffprobe is not installed (install ffmpeg)".to_owned(),
            _ => format!("cannot run ffprobe: {e}"),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let size = text.lines().next().unwrap_or("").trim();
    let parsed = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
    match parsed {
        Some((w, h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => {
            let err = String::from_utf8_lossy(&out.stderr);
            let reason = err
                .lines()
                .last()
                .unwrap_or("no video stream")
                .trim()
                .to_owned();
            Err(format!("cannot open video {path}: {reason}"))
        }
    }
}

fn spawn_ffmpeg(path: &str, fps: f64, stream: bool) -> Result<Child, String> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin"]);
    if path.starts_with("rtsp") {
        cmd.args(["-rtsp_transport", "tcp"]);
    }
    if stream {
        cmd.args(["-rw_timeout", "10000000"]);
    }
    cmd.args([
        "-i",
        path,
        "-an",
        "-vf",
        &format!("fps={fps}"),
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-",
    ]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "ffmpeg is not installed".to_owned(),
        _ => format!("cannot run ffmpeg: {e}"),
    })
}

/// Runs until the file ends (unless looping), or shutdown; streams restart when they drop.
pub fn run(camera: &CameraConfig, ctx: &Context) {
    let stream = camera.source == SourceKind::Stream;
    let period = Duration::from_secs_f64(1.0 / camera.fps);
    let mut attempt = 0;
    let mut sequence = 0u64;
    loop {
        if ctx.stop.is_cancelled() {
            return;
        }
        let outcome = probe(&camera.path, stream)
            .and_then(|(w, h)| Ok((w, h, spawn_ffmpeg(&camera.path, camera.fps, stream)?)));
        let (w, h, mut child) = match outcome {
            Ok(ok) => ok,
            Err(message) => {
                ctx.problem(&camera.name, message);
                if !(stream || camera.looping) || !ctx.sleep(backoff(attempt)) {
                    return;
                }
                attempt += 1;
                ctx.stats.restarts.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let Some(mut pipe) = child.stdout.take() else {
            return;
        };
        let mut buffer = vec![0u8; (w * h * 3) as usize];
        let mut next = Instant::now();
        let mut delivered = 0u64;
        let ended_cleanly = loop {
            if ctx.stop.is_cancelled() {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            if let Err(e) = pipe.read_exact(&mut buffer) {
                break e.kind() == std::io::ErrorKind::UnexpectedEof;
            }
            if !stream && !ctx.sleep(next.saturating_duration_since(Instant::now())) {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            next = Instant::now() + period;
            let Some(image) = RgbImage::from_raw(w, h, buffer.clone()) else {
                break false;
            };
            sequence += 1;
            delivered += 1;
            let frame = Frame {
                image,
                captured: now(),
                origin: format!("frame {sequence}"),
            };
            if !ctx.slot.put(frame) {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            ctx.stats.frames.fetch_add(1, Ordering::Relaxed);
            attempt = 0;
        };
        let status = child.wait();
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        let failed =
            !ended_cleanly || status.map(|s| !s.success()).unwrap_or(true) || delivered == 0;
        if failed {
            let reason = stderr
                .lines()
                .last()
                .unwrap_or("ffmpeg stopped")
                .trim()
                .to_owned();
            ctx.problem(
                &camera.name,
                format!(
                    "video {} stopped after {delivered} frame(s): {reason}",
                    camera.path
                ),
            );
        }
        if !(stream || camera.looping) {
            return;
        }
        if failed && !ctx.sleep(backoff(attempt)) {
            return;
        }
        attempt += 1;
        ctx.stats.restarts.fetch_add(1, Ordering::Relaxed);
    }
}
