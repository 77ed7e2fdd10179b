//! V4L2/USB cameras through nokhwa, kept thin: open, stream decoded RGB frames, reopen with
//! backoff when the device disappears.

use std::sync::atomic::Ordering;

use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{CameraIndex, RequestedFormat, RequestedFormatType, Resolution};

use super::{Context, Frame, backoff, now};
use crate::config::CameraConfig;

fn index(path: &str) -> CameraIndex {
    let digits = path.trim_start_matches("/dev/video");
    match digits.parse::<u32>() {
        Ok(i) => CameraIndex::Index(i),
        Err(_) => CameraIndex::String(path.to_owned()),
    }
}

/// Runs until shutdown; frames that inference has not taken are replaced (newest wins).
pub fn run(camera: &CameraConfig, ctx: &Context) {
    let mut attempt = 0;
    let mut sequence = 0u64;
    while !ctx.stop.is_cancelled() {
        let format = RequestedFormat::new::<RgbFormat>(RequestedFormatType::HighestResolution(
            Resolution::new(camera.width, camera.height),
        ));
        let opened = nokhwa::Camera::new(index(&camera.path), format)
            .and_then(|mut c| c.open_stream().map(|()| c));
        let mut device = match opened {
            Ok(device) => device,
            Err(e) => {
                ctx.problem(
                    &camera.name,
                    format!("cannot open camera {}: {e}", camera.path),
                );
                if !ctx.sleep(backoff(attempt)) {
                    return;
                }
                attempt += 1;
                ctx.stats.restarts.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        attempt = 0;
        while !ctx.stop.is_cancelled() {
            let image = device
                .frame()
                .and_then(|buffer| buffer.decode_image::<RgbFormat>());
            match image {
                Ok(image) => {
                    sequence += 1;
                    let frame = Frame {
                        image,
                        captured: now(),
                        origin: format!("frame {sequence}"),
                    };
                    if !ctx.slot.put(frame) {
                        return;
                    }
                    ctx.stats.frames.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    ctx.problem(&camera.name, format!("camera {} stopped: {e}", camera.path));
                    break;
                }
            }
        }
        let _ = device.stop_stream();
    }
}
