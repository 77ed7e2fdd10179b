//! The `ffmpeg` subprocess behind video files, network streams and V4L2 cameras: it decodes the
//! input and writes PPM frames to a pipe, each with its own size (see [`super::ppm`]). Files play
//! at the configured rate (and loop if asked); live inputs restart with backoff until shutdown.

use std::io::{BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::ppm::{self, PpmError};
use super::{Context, Frame, backoff, now};
use crate::config::CameraConfig;

/// What ffmpeg reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// Arguments before `-i` (demuxer, timeouts, device options).
    pub options: Vec<String>,
    /// The file, URL or device after `-i`.
    pub path: String,
    /// A live input (stream, camera): frames are taken as they come, and the input is reopened
    /// whenever it ends. Otherwise frames are paced at the camera's rate.
    pub live: bool,
    /// What the input is called in messages: `video`, `stream`, `camera`.
    pub kind: &'static str,
}

impl Input {
    /// The whole ffmpeg command line after the program name.
    pub fn args(&self, fps: f64) -> Vec<String> {
        let mut args: Vec<String> = ["-hide_banner", "-loglevel", "error", "-nostdin"]
            .map(String::from)
            .to_vec();
        args.extend(self.options.iter().cloned());
        args.extend(["-i".into(), self.path.clone(), "-an".into()]);
        args.extend(["-vf".into(), format!("fps={fps}")]);
        for a in ["-f", "image2pipe", "-c:v", "ppm", "-pix_fmt", "rgb24", "-"] {
            args.push(a.into());
        }
        args
    }
}

fn spawn(input: &Input, fps: f64) -> Result<Child, String> {
    Command::new("ffmpeg")
        .args(input.args(fps))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                "ffmpeg is not installed (Debian: apt install ffmpeg)".to_owned()
            }
            _ => format!("cannot run ffmpeg: {e}"),
        })
}

/// How one ffmpeg process ended.
enum Ended {
    /// Shutdown, or the slot closed: stop for good.
    Stop,
    /// The input ended after this many frames; `clean` when the pipe closed between frames.
    Input {
        frames: u64,
        clean: bool,
        why: Option<String>,
    },
}

/// Runs until the input ends (unless looping or live), or shutdown.
pub fn run(camera: &CameraConfig, ctx: &Context, input: &Input) {
    let mut attempt = 0;
    let mut sequence = 0u64;
    loop {
        if ctx.stop.is_cancelled() {
            return;
        }
        let mut child = match spawn(input, camera.fps) {
            Ok(child) => child,
            Err(message) => {
                ctx.problem(&camera.name, message);
                if !(input.live || camera.looping) || !ctx.sleep(backoff(attempt)) {
                    return;
                }
                attempt += 1;
                ctx.stats.restarts.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let ended = match child.stdout.take() {
            Some(pipe) => frames(camera, ctx, input, pipe, &mut sequence),
            None => Ended::Input {
                frames: 0,
                clean: false,
                why: None,
            },
        };
        let _ = child.kill();
        let status = child.wait();
        let Ended::Input { frames, clean, why } = ended else {
            return;
        };
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        let failed = !clean || status.map(|s| !s.success()).unwrap_or(true) || frames == 0;
        if failed {
            let reason = why
                .or_else(|| stderr.lines().last().map(|l| l.trim().to_owned()))
                .unwrap_or_else(|| "ffmpeg stopped".to_owned());
            ctx.problem(
                &camera.name,
                format!(
                    "{} {} stopped after {frames} frame(s): {reason}",
                    input.kind, input.path
                ),
            );
        } else {
            attempt = 0;
        }
        if !(input.live || camera.looping) {
            return;
        }
        if failed && !ctx.sleep(backoff(attempt)) {
            return;
        }
        attempt += 1;
        ctx.stats.restarts.fetch_add(1, Ordering::Relaxed);
    }
}

/// Hands ffmpeg's frames to the slot until the pipe ends or shutdown.
fn frames(
    camera: &CameraConfig,
    ctx: &Context,
    input: &Input,
    pipe: ChildStdout,
    sequence: &mut u64,
) -> Ended {
    let period = Duration::from_secs_f64(1.0 / camera.fps);
    let mut pipe = BufReader::with_capacity(1 << 20, pipe);
    let mut next = Instant::now();
    let mut delivered = 0u64;
    loop {
        if ctx.stop.is_cancelled() {
            return Ended::Stop;
        }
        let image = match ppm::read_frame(&mut pipe) {
            Ok(image) => image,
            Err(e) => {
                return Ended::Input {
                    frames: delivered,
                    clean: matches!(e, PpmError::End),
                    why: matches!(e, PpmError::Frame(_))
                        .then(|| format!("ffmpeg wrote a bad frame: {e}")),
                };
            }
        };
        if !input.live && !ctx.sleep(next.saturating_duration_since(Instant::now())) {
            return Ended::Stop;
        }
        next = Instant::now() + period;
        *sequence += 1;
        delivered += 1;
        let frame = Frame {
            image,
            captured: now(),
            origin: format!("frame {sequence}"),
        };
        if !ctx.slot.put(frame) {
            return Ended::Stop;
        }
        ctx.stats.frames.fetch_add(1, Ordering::Relaxed);
    }
}
