//! V4L2/USB cameras (`/dev/videoN`) through ffmpeg's `v4l2` input, which negotiates the pixel
//! format (MJPEG, YUYV, …) and decodes it: no C headers or libclang at build time. The device is
//! reopened with backoff when it disappears.

use super::Context;
use super::ffmpeg::{self, Input};
use crate::config::CameraConfig;

/// The device path for `path`: `/dev/videoN` as given, or a bare index `N`.
pub fn device(path: &str) -> String {
    match path.parse::<u32>() {
        Ok(index) => format!("/dev/video{index}"),
        Err(_) => path.to_owned(),
    }
}

/// What ffmpeg is asked to open: the device at the configured size and rate.
pub fn input(camera: &CameraConfig) -> Input {
    Input {
        options: vec![
            "-f".into(),
            "v4l2".into(),
            "-framerate".into(),
            format!("{}", camera.fps),
            "-video_size".into(),
            format!("{}x{}", camera.width, camera.height),
        ],
        path: device(&camera.path),
        live: true,
        kind: "camera",
    }
}

/// Runs until shutdown; frames that inference has not taken are replaced (newest wins).
pub fn run(camera: &CameraConfig, ctx: &Context) {
    ffmpeg::run(camera, ctx, &input(camera));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_names_its_video_device() {
        assert_eq!(device("0"), "/dev/video0");
        assert_eq!(device("/dev/video2"), "/dev/video2");
        assert_eq!(device("/dev/v4l/by-id/usb-cam"), "/dev/v4l/by-id/usb-cam");
    }
}
