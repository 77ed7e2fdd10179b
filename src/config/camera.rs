//! `[[camera]]`: each camera's source, model and tracker, and what it escalates.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use super::fallback::{RawEscalation, escalation};
use super::inference::RawInference;
use super::raw::{Context, yes};
use super::tracker::thresholds;
use super::{ConfigError, EscalationConfig, Inference, TrackerConfig, invalid, is_name};
use crate::model::{Manifest, ManifestError, Options, Precision, RuntimeSetting};

/// Where a camera's frames come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A directory or glob of images.
    Images,
    /// A video file.
    Video,
    /// An RTSP or HTTP(S) stream.
    Stream,
    /// A local capture device.
    Camera,
}

/// One camera and its tracker.
#[derive(Clone, PartialEq)]
pub struct CameraConfig {
    /// Unique name, `[A-Za-z0-9_-]`, used in topics.
    pub name: String,
    /// Whether the camera runs.
    pub enabled: bool,
    /// Source kind.
    pub source: SourceKind,
    /// Resolved file path or glob (images, video), URL (stream) or device (camera).
    pub path: String,
    /// Frames per second to feed: playback rate, or the rate requested from a camera.
    pub fps: f64,
    /// Images and video: start over at the end.
    pub looping: bool,
    /// Camera only: requested capture width.
    pub width: u32,
    /// Camera only: requested capture height.
    pub height: u32,
    /// Model manifest.
    pub model: PathBuf,
    /// Float or int8 form of the model (the camera's own, else `[inference]`'s).
    pub precision: Precision,
    /// What runs the model (the camera's own, else `[inference]`'s).
    pub runtime: RuntimeSetting,
    /// `[width, height]` fed to a fully convolutional model instead of its manifest's size.
    pub input_size: Option<[u32; 2]>,
    /// Skip inference on frames without motion.
    pub motion_gate: bool,
    /// Tracker thresholds.
    pub tracker: TrackerConfig,
    /// Detections whose score lies in a band go to the host.
    pub fallback: Option<EscalationConfig>,
}

impl CameraConfig {
    /// The camera's model manifest at the camera's input size (its form is chosen at load
    /// time, see [`CameraConfig::load_options`]).
    pub fn manifest(&self) -> Result<Manifest, ManifestError> {
        let manifest = Manifest::from_path(&self.model)?;
        Ok(match self.input_size {
            Some(size) => manifest.with_input_size(size),
            None => manifest,
        })
    }

    /// How to load the camera's model with `inference`'s threads and library.
    pub fn load_options(&self, inference: &Inference) -> Options {
        Options {
            runtime: self.runtime,
            precision: self.precision,
            library: inference.onnxruntime.clone(),
            threads: inference.threads,
        }
    }

    /// `path` with any password in a URL replaced by `[redacted]`, for logs.
    pub fn redacted_path(&self) -> String {
        redact_url(&self.path)
    }
}

impl fmt::Debug for CameraConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CameraConfig")
            .field("name", &self.name)
            .field("enabled", &self.enabled)
            .field("source", &self.source)
            .field("path", &self.redacted_path())
            .field("fps", &self.fps)
            .field("looping", &self.looping)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("model", &self.model)
            .field("precision", &self.precision)
            .field("runtime", &self.runtime)
            .field("input_size", &self.input_size)
            .field("motion_gate", &self.motion_gate)
            .field("tracker", &self.tracker)
            .field("fallback", &self.fallback)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCamera {
    #[serde(default)]
    pub(super) name: String,
    #[serde(default = "yes")]
    pub(super) enabled: bool,
    #[serde(default)]
    pub(super) source: Option<SourceKind>,
    #[serde(default)]
    pub(super) path: String,
    #[serde(default = "default_fps")]
    pub(super) fps: f64,
    #[serde(default, rename = "loop")]
    pub(super) looping: bool,
    #[serde(default = "default_width")]
    pub(super) width: u32,
    #[serde(default = "default_height")]
    pub(super) height: u32,
    #[serde(default)]
    pub(super) model: String,
    #[serde(default)]
    pub(super) precision: Option<Precision>,
    #[serde(default)]
    pub(super) runtime: Option<RuntimeSetting>,
    #[serde(default)]
    pub(super) input_size: Option<[u32; 2]>,
    #[serde(default)]
    pub(super) motion_gate: Option<bool>,
    #[serde(default = "default_min_score")]
    pub(super) min_score: f32,
    #[serde(default = "default_threshold")]
    pub(super) threshold: f32,
    #[serde(default = "default_iou")]
    pub(super) iou: f32,
    #[serde(default = "default_max_missed")]
    pub(super) max_missed: u32,
    #[serde(default)]
    pub(super) labels: BTreeMap<String, RawLabel>,
    #[serde(default)]
    pub(super) fallback: Option<RawEscalation>,
}

/// Per-label overrides; an unset field falls back to the camera's value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLabel {
    #[serde(default)]
    pub(super) min_score: Option<f32>,
    #[serde(default)]
    pub(super) threshold: Option<f32>,
}

fn default_fps() -> f64 {
    5.0
}

fn default_width() -> u32 {
    1280
}

fn default_height() -> u32 {
    720
}

fn default_min_score() -> f32 {
    0.3
}

fn default_threshold() -> f32 {
    0.5
}

fn default_iou() -> f32 {
    0.3
}

fn default_max_missed() -> u32 {
    5
}

/// Checks every `[[camera]]` in file order; names must be unique.
pub(super) fn validate(
    raw: &[RawCamera],
    inference: &RawInference,
    ctx: &Context,
) -> Result<Vec<CameraConfig>, ConfigError> {
    let mut names = BTreeSet::new();
    let mut cameras = Vec::with_capacity(raw.len());
    for (index, camera) in raw.iter().enumerate() {
        let camera = self::camera(index, camera, inference, ctx)?;
        if !names.insert(camera.name.clone()) {
            return Err(invalid(
                format!("camera[{index}].name"),
                format!("`{}` is used by an earlier camera", camera.name),
            ));
        }
        cameras.push(camera);
    }
    Ok(cameras)
}

fn camera(
    index: usize,
    raw: &RawCamera,
    inference: &RawInference,
    ctx: &Context,
) -> Result<CameraConfig, ConfigError> {
    let key = |field: &str| format!("camera[{index}].{field}");
    if !is_name(&raw.name) {
        return Err(invalid(
            key("name"),
            "must be one or more characters of A-Z, a-z, 0-9, `_` and `-`",
        ));
    }
    let source = raw.source.ok_or_else(|| {
        invalid(
            key("source"),
            "is required: images, video, stream or camera",
        )
    })?;
    let given = raw.path.trim();
    if given.is_empty() {
        return Err(invalid(key("path"), "must not be empty"));
    }
    let path = match source {
        SourceKind::Images | SourceKind::Video => ctx
            .resolve(given)
            .into_os_string()
            .into_string()
            .map_err(|_| invalid(key("path"), "is not valid UTF-8 once resolved"))?,
        SourceKind::Stream => {
            let scheme_ok = ["rtsp://", "rtsps://", "http://", "https://"]
                .iter()
                .any(|scheme| {
                    given.len() > scheme.len() && given[..scheme.len()].eq_ignore_ascii_case(scheme)
                });
            if !scheme_ok {
                return Err(invalid(
                    key("path"),
                    "must be a URL starting with rtsp://, rtsps://, http:// or https://",
                ));
            }
            given.to_owned()
        }
        SourceKind::Camera => given.to_owned(),
    };
    if !(raw.fps.is_finite() && raw.fps > 0.0 && raw.fps <= 120.0) {
        return Err(invalid(
            key("fps"),
            "must be greater than 0 and at most 120",
        ));
    }
    for (field, value) in [("width", raw.width), ("height", raw.height)] {
        if !(1..=8192).contains(&value) {
            return Err(invalid(key(field), "must be between 1 and 8192"));
        }
    }
    if raw.model.trim().is_empty() {
        return Err(invalid(
            key("model"),
            "must name a model manifest (NAME.model.toml)",
        ));
    }
    if let Some(size) = raw.input_size
        && !size.iter().all(|s| s % 32 == 0 && (32..=4096).contains(s))
    {
        return Err(invalid(
            key("input_size"),
            "must be [width, height], each a multiple of 32 from 32 to 4096",
        ));
    }
    let default = thresholds(&key(""), raw.min_score, raw.threshold)?;
    let mut labels = BTreeMap::new();
    for (label, over) in &raw.labels {
        if label.is_empty() {
            return Err(invalid(key("labels"), "has an empty label name"));
        }
        let thresholds = thresholds(
            &key(&format!("labels.{label}.")),
            over.min_score.unwrap_or(default.min_score),
            over.threshold.unwrap_or(default.threshold),
        )?;
        labels.insert(label.clone(), thresholds);
    }
    if !(raw.iou.is_finite() && raw.iou > 0.0 && raw.iou <= 1.0) {
        return Err(invalid(key("iou"), "must be greater than 0 and at most 1"));
    }
    Ok(CameraConfig {
        name: raw.name.clone(),
        enabled: raw.enabled,
        source,
        path,
        fps: raw.fps,
        looping: raw.looping,
        width: raw.width,
        height: raw.height,
        model: ctx.resolve(raw.model.trim()),
        precision: raw.precision.unwrap_or(inference.precision),
        runtime: raw.runtime.unwrap_or(inference.runtime),
        input_size: raw.input_size,
        motion_gate: raw
            .motion_gate
            .unwrap_or(matches!(source, SourceKind::Camera | SourceKind::Stream)),
        tracker: TrackerConfig {
            default,
            labels,
            iou: raw.iou,
            max_missed: raw.max_missed,
        },
        fallback: raw
            .fallback
            .as_ref()
            .map(|f| escalation(&key("fallback."), f, ctx))
            .transpose()?,
    })
}

/// Replaces the password of `scheme://user:password@host` with `[redacted]`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let Some((user, _password)) = authority[..at].split_once(':') else {
        return url.to_owned();
    };
    format!("{scheme}://{user}:[redacted]@{}", &rest[at + 1..])
}

#[cfg(test)]
mod tests {
    use super::super::testing::{MINIMAL, each_names_its_key, error, parse, with_camera_line};
    use super::*;

    #[test]
    fn defaults_fill_unset_keys() {
        let c = parse(MINIMAL).unwrap();
        let cam = &c.cameras[0];
        assert!(cam.enabled);
        assert_eq!(cam.source, SourceKind::Images);
        assert_eq!((cam.fps, cam.looping), (5.0, false));
        assert_eq!((cam.width, cam.height), (1280, 720));
        assert!(!cam.motion_gate);
    }

    #[test]
    fn each_rule_names_its_key() {
        each_names_its_key(&[
            (
                with_camera_line("input_size = [640, 600]"),
                "`camera[0].input_size`",
            ),
            (
                format!(
                    "{MINIMAL}\n{}",
                    &MINIMAL[MINIMAL.find("[[camera]]").unwrap()..]
                ),
                "`camera[1].name`",
            ),
            (
                MINIMAL.replace("path = \"photos\"", "path = \"\""),
                "`camera[0].path`",
            ),
            (
                MINIMAL
                    .replace("source = \"images\"", "source = \"stream\"")
                    .replace("\"photos\"", "\"ftp://x/y\""),
                "`camera[0].path`",
            ),
            (with_camera_line("fps = 0.0"), "`camera[0].fps`"),
            (with_camera_line("fps = 121.0"), "`camera[0].fps`"),
            (
                MINIMAL.replace("source = \"images\"", ""),
                "`camera[0].source`",
            ),
            (
                MINIMAL.replace("model = \"models/yolov8n-320.model.toml\"", ""),
                "`camera[0].model`",
            ),
        ]);
    }

    #[test]
    fn stream_urls_are_redacted_in_debug() {
        let text = MINIMAL
            .replace("source = \"images\"", "source = \"stream\"")
            .replace("\"photos\"", "\"rtsp://admin:s3cret@192.0.2.1:554/live\"");
        let c = parse(&text).unwrap();
        assert_eq!(c.cameras[0].path, "rtsp://admin:s3cret@192.0.2.1:554/live");
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(
            c.cameras[0].redacted_path(),
            "rtsp://admin:[redacted]@192.0.2.1:554/live"
        );
    }

    #[test]
    fn device_and_url_paths_are_kept_verbatim() {
        let cam = MINIMAL
            .replace("source = \"images\"", "source = \"camera\"")
            .replace("\"photos\"", "\"/dev/video0\"");
        assert_eq!(parse(&cam).unwrap().cameras[0].path, "/dev/video0");
        let index = cam.replace("\"/dev/video0\"", "\"0\"");
        assert_eq!(parse(&index).unwrap().cameras[0].path, "0");
    }

    #[test]
    fn motion_gate_defaults_by_source_kind() {
        for (source, path, gate) in [
            ("images", "photos", false),
            ("video", "a.mp4", false),
            ("stream", "rtsp://192.0.2.1/live", true),
            ("camera", "/dev/video0", true),
        ] {
            let text = MINIMAL
                .replace("\"images\"", &format!("\"{source}\""))
                .replace("\"photos\"", &format!("\"{path}\""));
            assert_eq!(
                parse(&text).unwrap().cameras[0].motion_gate,
                gate,
                "{source}"
            );
            let forced = text.replace(
                "name = \"front\"",
                &format!("name = \"front\"\nmotion_gate = {}", !gate),
            );
            assert_eq!(
                parse(&forced).unwrap().cameras[0].motion_gate,
                !gate,
                "{source}"
            );
        }
    }

    #[test]
    fn a_camera_runtime_overrides_the_inference_default_and_the_library_path_is_resolved() {
        let text = MINIMAL.replace(
            "[[camera]]",
            "[inference]\nruntime = \"onnxruntime\"\nonnxruntime = \"lib/libonnxruntime.so\"\n[[camera]]",
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.cameras[0].runtime, RuntimeSetting::Onnxruntime);
        let library = c.inference.onnxruntime.clone().unwrap();
        assert!(
            library.is_absolute() && library.ends_with("lib/libonnxruntime.so"),
            "{library:?}"
        );
        let options = c.cameras[0].load_options(&c.inference);
        assert_eq!(
            (options.runtime, options.library),
            (RuntimeSetting::Onnxruntime, Some(library))
        );
        let text = text.replace("name = \"front\"", "name = \"front\"\nruntime = \"tract\"");
        assert_eq!(
            parse(&text).unwrap().cameras[0].runtime,
            RuntimeSetting::Tract
        );
        assert_eq!(
            parse(MINIMAL).unwrap().cameras[0].runtime,
            RuntimeSetting::Auto
        );
        let err = error(parse(&with_camera_line("runtime = \"tensorrt\"")));
        assert!(err.contains("tensorrt"), "{err}");
    }

    #[test]
    fn a_camera_precision_overrides_the_inference_default() {
        let text = MINIMAL.replace(
            "[[camera]]",
            "[inference]\nprecision = \"int8\"\n[[camera]]",
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.cameras[0].precision, Precision::Int8);
        let text = text.replace("name = \"front\"", "name = \"front\"\nprecision = \"fp32\"");
        assert_eq!(parse(&text).unwrap().cameras[0].precision, Precision::Fp32);
        assert_eq!(
            parse(MINIMAL).unwrap().cameras[0].precision,
            Precision::Auto
        );
        let err = error(parse(&with_camera_line("precision = \"int4\"")));
        assert!(err.contains("int4"), "{err}");
    }
}
