//! Video files and RTSP/HTTP streams, decoded by [`super::ffmpeg`].

use super::Context;
use super::ffmpeg::{self, Input};
use crate::config::{CameraConfig, SourceKind};

/// What ffmpeg is asked to open for a `video` or `stream` source.
pub fn input(camera: &CameraConfig) -> Input {
    let live = camera.source == SourceKind::Stream;
    let mut options = Vec::new();
    if camera.path.starts_with("rtsp") {
        options.extend(["-rtsp_transport".to_owned(), "tcp".to_owned()]);
    }
    if live {
        options.extend(["-rw_timeout".to_owned(), "10000000".to_owned()]);
    }
    Input {
        options,
        path: camera.path.clone(),
        live,
        kind: if live { "stream" } else { "video" },
    }
}

/// Runs until the file ends (unless looping), or shutdown; streams restart when they drop.
pub fn run(camera: &CameraConfig, ctx: &Context) {
    ffmpeg::run(camera, ctx, &input(camera));
}
