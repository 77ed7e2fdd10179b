//! The model package manifest (`NAME.model.toml`): what the ONNX file is, how to feed it and how
//! to read its outputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::precision::{Precision, cpu_has_dotprod};

/// Environment variable naming the model cache; `{cache}` in a manifest's `file` expands to it.
pub const CACHE_ENV: &str = "EDGEMASS_MODEL_CACHE";

/// Errors while reading or validating a manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The manifest file could not be read.
    #[error("cannot read manifest {path}")]
    Read {
        /// The manifest path.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The TOML is malformed, has an unknown key, or a value of the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The manifest path.
        path: PathBuf,
        /// What the parser found, with its line.
        message: String,
    },
    /// A field parsed but its value is not acceptable.
    #[error("{path}: `{field}` {reason}")]
    Invalid {
        /// The manifest path.
        path: PathBuf,
        /// The dotted name of the field.
        field: &'static str,
        /// What was expected.
        reason: String,
    },
    /// int8 was asked for and the package has no int8 form.
    #[error("model `{model}` has no [int8] file: ask for precision fp32 or auto")]
    NoInt8 {
        /// The model id.
        model: String,
    },
}

/// What a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// Boxes with labels and scores.
    Detect,
    /// One label for the whole image.
    Classify,
    /// One label for a text.
    TextClassify,
}

/// Memory order of the image tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `[1, 3, H, W]`
    Nchw,
    /// `[1, H, W, 3]`
    Nhwc,
}

/// Channel order of the image tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorOrder {
    /// Red first.
    Rgb,
    /// Blue first (OpenCV-trained models).
    Bgr,
}

/// How a photo is fitted to the input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resize {
    /// Keep the aspect ratio and pad the rest with `pad`, centred.
    Letterbox,
    /// Scale each axis on its own.
    Stretch,
    /// Scale each axis on its own by TensorFlow's `ResizeBilinear` (no corner alignment, no
    /// half-pixel centres: source = destination · in / out), in floats that are not rounded back
    /// to bytes, as the graphs of TensorFlow's Object Detection API do it.
    Bilinear,
}

/// The image input tensor and its preprocessing: `value = (pixel / 255 - mean) / std`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Name of the model input.
    pub name: String,
    /// Tensor layout.
    pub layout: Layout,
    /// Tensor width in pixels.
    pub width: u32,
    /// Tensor height in pixels.
    pub height: u32,
    /// Channel order.
    #[serde(default = "default_color")]
    pub color: ColorOrder,
    /// Resize mode.
    #[serde(default = "default_resize")]
    pub resize: Resize,
    /// Per-channel mean, in units of the 0..1 pixel value.
    #[serde(default)]
    pub mean: [f32; 3],
    /// Per-channel standard deviation, in units of the 0..1 pixel value.
    #[serde(default = "default_std")]
    pub std: [f32; 3],
    /// Grey level (0..255) of letterbox padding.
    #[serde(default)]
    pub pad: u8,
}

fn default_color() -> ColorOrder {
    ColorOrder::Rgb
}

fn default_resize() -> Resize {
    Resize::Letterbox
}

fn default_std() -> [f32; 3] {
    [1.0; 3]
}

/// Box coordinate convention of a `boxes-scores` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoxFormat {
    /// Corners.
    Xyxy,
    /// Centre and size.
    Cxcywh,
}

/// How to turn the model's outputs into detections.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DecoderSpec {
    /// Ultralytics YOLOv8: `[1, 4 + C, N]`, boxes as centre/size in input pixels, no objectness.
    Yolov8 {
        /// Output name.
        output: String,
    },
    /// YOLOv5: `[1, N, 5 + C]`, boxes as centre/size, objectness times class score.
    Yolov5 {
        /// Output name.
        output: String,
    },
    /// MediaPipe BlazeFace: per-anchor logits and box + keypoint offsets, one pair of outputs per
    /// anchor grid.
    Blazeface {
        /// Score outputs, one per grid, `[1, cells² · anchors, 1]`.
        scores: Vec<String>,
        /// Box outputs, one per grid, `[1, cells² · anchors, 4 + 2·keypoints]`.
        boxes: Vec<String>,
        /// `[cells per row, anchors per cell]` of each grid.
        grids: Vec<[u32; 2]>,
    },
    /// DBNet text detection: a probability map binarised, split into regions and unclipped.
    Dbnet {
        /// Output name, `[1, 1, H, W]`.
        output: String,
        /// Pixel probability above which a pixel is text.
        #[serde(default = "default_dbnet_threshold")]
        threshold: f32,
        /// How far a region's box grows: area · ratio / perimeter.
        #[serde(default = "default_unclip_ratio")]
        unclip_ratio: f32,
        /// Regions whose shorter side is below this (input pixels) are dropped.
        #[serde(default = "default_min_size")]
        min_size: f32,
    },
    /// SSD / DETR style: boxes `[1, N, 4]` and class scores `[1, N, C]`, already de-duplicated.
    BoxesScores {
        /// Box output name.
        boxes: String,
        /// Score output name.
        scores: String,
        /// Box convention.
        format: BoxFormat,
        /// Whether coordinates are 0..1 fractions of the input size.
        normalized: bool,
    },
    /// SSD of TensorFlow's Object Detection API: box encodings `[1, N, 1, 4]` (or `[1, N, 4]`)
    /// relative to a grid of anchors, and class logits `[1, N, 1 + classes]` with the background
    /// first; sigmoid scores, boxes clipped to the image, per-class NMS, at most 100 boxes.
    Ssd {
        /// Box encoding output name.
        boxes: String,
        /// Class logit output name.
        scores: String,
        /// The logit column of each label, in the order of `labels` (COCO ids leave gaps).
        columns: Vec<usize>,
        /// Anchor grid of each feature map, cells per side.
        #[serde(default = "default_ssd_grids")]
        grids: Vec<u32>,
        /// Anchor scale of the first and the last feature map; those between are spaced evenly.
        #[serde(default = "default_ssd_scales")]
        scales: [f32; 2],
        /// Aspect ratios of the anchors of every feature map but the first, which has three
        /// boxes: (0.1, 1), (first scale, 2), (first scale, 0.5).
        #[serde(default = "default_ssd_aspect_ratios")]
        aspect_ratios: Vec<f32>,
        /// Divisors of the encoded y, x, height and width.
        #[serde(default = "default_ssd_box_scales")]
        box_scales: [f32; 4],
    },
    /// Image classification: logits `[1, C]` through softmax.
    Softmax {
        /// Output name.
        output: String,
        /// How many labels to report.
        #[serde(default = "default_top_k")]
        top_k: usize,
    },
}

fn default_dbnet_threshold() -> f32 {
    0.3
}

fn default_unclip_ratio() -> f32 {
    1.6
}

fn default_min_size() -> f32 {
    3.0
}

fn default_ssd_grids() -> Vec<u32> {
    vec![19, 10, 5, 3, 2, 1]
}

fn default_ssd_scales() -> [f32; 2] {
    [0.2, 0.95]
}

fn default_ssd_aspect_ratios() -> Vec<f32> {
    vec![1.0, 2.0, 0.5, 3.0, 0.3333]
}

fn default_ssd_box_scales() -> [f32; 4] {
    [10.0, 10.0, 5.0, 5.0]
}

fn default_top_k() -> usize {
    1
}

impl DecoderSpec {
    /// The model outputs this decoder reads.
    pub fn output_names(&self) -> Vec<&str> {
        match self {
            DecoderSpec::Yolov8 { output }
            | DecoderSpec::Yolov5 { output }
            | DecoderSpec::Dbnet { output, .. }
            | DecoderSpec::Softmax { output, .. } => vec![output],
            DecoderSpec::Blazeface { scores, boxes, .. } => {
                scores.iter().chain(boxes).map(String::as_str).collect()
            }
            DecoderSpec::BoxesScores { boxes, scores, .. }
            | DecoderSpec::Ssd { boxes, scores, .. } => vec![boxes, scores],
        }
    }
}

/// Default thresholds; cameras may override them.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Minimum score of a reported detection.
    #[serde(default = "default_score")]
    pub score: f32,
    /// IoU above which NMS suppresses the weaker of two boxes of one label.
    #[serde(default = "default_iou")]
    pub iou: f32,
}

fn default_score() -> f32 {
    0.25
}

fn default_iou() -> f32 {
    0.45
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            score: default_score(),
            iou: default_iou(),
        }
    }
}

/// Where a model came from and what was measured on it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// Package and path the file comes from, or the tool that made it.
    #[serde(default)]
    pub source: String,
    /// Licence of the weights.
    #[serde(default)]
    pub license: String,
    /// sha256 of the teacher this model was compressed from.
    #[serde(default)]
    pub teacher_sha256: Option<String>,
    /// Compression passes applied, in order.
    #[serde(default)]
    pub passes: Vec<String>,
    /// Measured metrics by name.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    task: Task,
    file: String,
    sha256: String,
    #[serde(default)]
    description: String,
    input: InputSpec,
    decoder: DecoderSpec,
    labels: Vec<String>,
    #[serde(default)]
    thresholds: Thresholds,
    #[serde(default)]
    provenance: Provenance,
    #[serde(default)]
    int8: Option<RawInt8>,
    #[serde(default)]
    tensorflow: Option<TensorflowCut>,
    #[serde(default)]
    groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    runtime: RawRuntime,
}

/// `[runtime]`: how far another runtime or the int8 file may stray from tract's float outputs.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawRuntime {
    tolerance: f64,
}

impl Default for RawRuntime {
    fn default() -> Self {
        RawRuntime {
            tolerance: DEFAULT_TOLERANCE,
        }
    }
}

/// The largest difference from tract's float outputs, as a share of an output's range, that a
/// package accepts unless its `[runtime] tolerance` says otherwise.
pub const DEFAULT_TOLERANCE: f64 = 0.05;

/// `[groups]`: names for sets of labels (`vehicle = ["car", "bus", …]`). Each group is counted
/// like a label, and a model with groups gets its Home Assistant entities per group rather than
/// per label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelGroups(BTreeMap<String, Vec<String>>);

impl LabelGroups {
    /// Group names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The count of each group one of whose labels has been counted: the sum of its labels'.
    pub fn counts(&self, labels: &BTreeMap<String, usize>) -> BTreeMap<String, usize> {
        self.0
            .iter()
            .filter(|(_, members)| members.iter().any(|m| labels.contains_key(m)))
            .map(|(group, members)| {
                let sum = members.iter().filter_map(|m| labels.get(m)).sum();
                (group.clone(), sum)
            })
            .collect()
    }
}

/// `[tensorflow]`: `file` is a frozen TensorFlow GraphDef, cut to the part tract runs. The image
/// (`input.name`) enters in place of node `replace`'s output, so the graph's own pre-processor
/// is left out; the decoder's outputs end it, so its post-processor is left out too (both are
/// TensorFlow loops, done by the agent instead).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorflowCut {
    /// The node whose output 0 the image replaces.
    pub replace: String,
}

/// `[int8]`: the same network quantized to int8, which tract runs with integer kernels.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInt8 {
    file: String,
    sha256: String,
    /// How far this file may stray from tract's float outputs (the measure of `[runtime]
    /// tolerance`); the quantizer writes what it measured. Default: `[runtime] tolerance`.
    tolerance: Option<f64>,
}

/// A model file and the sha256 it must have.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFile {
    /// The ONNX file.
    pub file: PathBuf,
    /// Expected sha256, lowercase hex.
    pub sha256: String,
}

/// A validated manifest with its model path resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Model id, used in events and logs.
    pub name: String,
    /// What the model is for.
    pub task: Task,
    /// The ONNX file.
    pub file: PathBuf,
    /// Expected sha256 of `file`, lowercase hex.
    pub sha256: String,
    /// One line for humans.
    pub description: String,
    /// Input tensor and preprocessing.
    pub input: InputSpec,
    /// Output decoder.
    pub decoder: DecoderSpec,
    /// Class names, indexed by class id.
    pub labels: Vec<String>,
    /// Default thresholds.
    pub thresholds: Thresholds,
    /// Origin and metrics.
    pub provenance: Provenance,
    /// The int8 form of the network, if the package has one.
    pub int8: Option<ModelFile>,
    /// Which form `file` is.
    pub precision: Precision,
    /// Set when `file` is a frozen TensorFlow graph rather than ONNX.
    pub tensorflow: Option<TensorflowCut>,
    /// The largest difference from tract's float outputs, as a share of an output's range, that
    /// the float file on another runtime may show and still be chosen.
    pub tolerance: f64,
    /// The same bound for the int8 file: quantization moves outputs by more than a runtime does,
    /// so a package may allow it more (`[int8] tolerance`, default `tolerance`).
    pub int8_tolerance: f64,
    /// The model cache `{cache}` stands for (where onnxruntime's library is looked for too).
    pub cache: PathBuf,
    /// Named sets of labels, counted together.
    pub groups: LabelGroups,
}

impl Manifest {
    /// Reads and validates a manifest file; relative paths are taken from its directory.
    pub fn from_path(path: &Path) -> Result<Manifest, ManifestError> {
        let (text, dir, cache) = read(path)?;
        Manifest::parse(&text, path, dir, cache.as_deref())
    }

    /// Parses manifest text. `path` is only used in messages; `dir` resolves relative paths;
    /// `cache` replaces `{cache}` (default: `dir/cache`).
    pub fn parse(
        text: &str,
        path: &Path,
        dir: &Path,
        cache: Option<&Path>,
    ) -> Result<Manifest, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: path.to_owned(),
            message: toml_message(&e, text),
        })?;
        let invalid = |field, reason: &str| ManifestError::Invalid {
            path: path.to_owned(),
            field,
            reason: reason.to_owned(),
        };
        if raw.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        let is_sha256 = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
        if !is_sha256(&raw.sha256) {
            return Err(invalid("sha256", "must be 64 hexadecimal digits"));
        }
        if raw.int8.as_ref().is_some_and(|i| !is_sha256(&i.sha256)) {
            return Err(invalid("int8.sha256", "must be 64 hexadecimal digits"));
        }
        if raw.input.width == 0 || raw.input.height == 0 {
            return Err(invalid(
                "input.width",
                "and `input.height` must be positive",
            ));
        }
        if raw.input.std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
            return Err(invalid("input.std", "must be finite and non-zero"));
        }
        if !(raw.runtime.tolerance >= 0.0 && raw.runtime.tolerance <= 1.0) {
            return Err(invalid("runtime.tolerance", "must be between 0 and 1"));
        }
        let int8_tolerance = raw.int8.as_ref().and_then(|i| i.tolerance);
        if int8_tolerance.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
            return Err(invalid("int8.tolerance", "must be between 0 and 1"));
        }
        if raw.labels.is_empty() {
            return Err(invalid("labels", "must name at least one class"));
        }
        for (field, value) in [
            ("thresholds.score", raw.thresholds.score),
            ("thresholds.iou", raw.thresholds.iou),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(invalid(field, "must be between 0 and 1"));
            }
        }
        for (group, members) in &raw.groups {
            if members.is_empty() || raw.labels.contains(group) {
                return Err(invalid(
                    "groups",
                    &format!("`{group}` must name at least one label and not be a label itself"),
                ));
            }
            if let Some(stray) = members.iter().find(|m| !raw.labels.contains(m)) {
                return Err(invalid(
                    "groups",
                    &format!("`{group}` names `{stray}`, which is not one of the labels"),
                ));
            }
        }
        match &raw.decoder {
            DecoderSpec::Blazeface {
                scores,
                boxes,
                grids,
            } if scores.is_empty()
                || scores.len() != boxes.len()
                || scores.len() != grids.len() =>
            {
                return Err(invalid(
                    "decoder.grids",
                    "must have one entry per `scores` and `boxes` output",
                ));
            }
            DecoderSpec::Ssd {
                columns,
                grids,
                aspect_ratios,
                ..
            } if columns.len() != raw.labels.len()
                || grids.is_empty()
                || aspect_ratios.iter().any(|a| !a.is_finite() || *a <= 0.0) =>
            {
                return Err(invalid(
                    "decoder",
                    "ssd needs one column per label, at least one grid and positive aspect ratios",
                ));
            }
            DecoderSpec::Softmax { top_k: 0, .. } => {
                return Err(invalid("decoder.top_k", "must be at least 1"));
            }
            DecoderSpec::Dbnet {
                unclip_ratio,
                threshold,
                ..
            } if *unclip_ratio < 0.0 || !(0.0..1.0).contains(threshold) => {
                return Err(invalid(
                    "decoder",
                    "dbnet needs 0 <= threshold < 1 and unclip_ratio >= 0",
                ));
            }
            _ => {}
        }
        Ok(Manifest {
            name: raw.name,
            task: raw.task,
            file: resolve_file(&raw.file, dir, cache),
            sha256: raw.sha256.to_ascii_lowercase(),
            description: raw.description,
            input: raw.input,
            decoder: raw.decoder,
            labels: raw.labels,
            thresholds: raw.thresholds,
            provenance: raw.provenance,
            int8: raw.int8.map(|i| ModelFile {
                file: resolve_file(&i.file, dir, cache),
                sha256: i.sha256.to_ascii_lowercase(),
            }),
            precision: Precision::Fp32,
            tensorflow: raw.tensorflow,
            groups: LabelGroups(raw.groups),
            tolerance: raw.runtime.tolerance,
            int8_tolerance: int8_tolerance.unwrap_or(raw.runtime.tolerance),
            cache: cache_dir(dir, cache),
        })
    }
}

impl Manifest {
    /// How far the `precision` form may stray from tract's float outputs and still be chosen.
    pub fn tolerance_of(&self, precision: Precision) -> f64 {
        match precision {
            Precision::Int8 => self.int8_tolerance,
            _ => self.tolerance,
        }
    }

    /// This manifest feeding `[width, height]` instead of its own input size, for fully
    /// convolutional models; loading a model whose graph fixes its size then fails naming both.
    pub fn with_input_size(mut self, [width, height]: [u32; 2]) -> Manifest {
        self.input.width = width;
        self.input.height = height;
        self
    }
}

/// Resolves a path written in a manifest: `{cache}/REST` is `REST` under `cache` (default:
/// `dir/cache`), anything else is relative to `dir`.
pub(crate) fn resolve_file(value: &str, dir: &Path, cache: Option<&Path>) -> PathBuf {
    match value.strip_prefix("{cache}/") {
        Some(rest) => cache_dir(dir, cache).join(rest),
        None => dir.join(value),
    }
}

/// The model cache: `cache` when given, else `dir/cache`.
fn cache_dir(dir: &Path, cache: Option<&Path>) -> PathBuf {
    cache.map_or_else(|| dir.join("cache"), Path::to_owned)
}

/// A manifest file's text, the directory its relative paths start from, and the model cache
/// from the environment.
pub(crate) fn read(path: &Path) -> Result<(String, &Path, Option<PathBuf>), ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_owned(),
        source,
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    Ok((text, dir, std::env::var_os(CACHE_ENV).map(PathBuf::from)))
}

/// Renders a TOML error on one line with the line number it points at.
pub fn toml_message(error: &toml::de::Error, text: &str) -> String {
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {}", error.message().trim())
        }
        None => error.message().trim().to_owned(),
    }
}

impl Manifest {
    /// This manifest with `file` and `sha256` naming the form `precision` resolves to on this
    /// CPU, and `precision` saying which it is.
    pub fn with_precision(self, precision: Precision) -> Result<Manifest, ManifestError> {
        self.with_precision_on(precision, cpu_has_dotprod())
    }

    fn with_precision_on(
        mut self,
        precision: Precision,
        dotprod: bool,
    ) -> Result<Manifest, ManifestError> {
        let resolved = precision
            .resolve(self.int8.is_some(), dotprod)
            .ok_or_else(|| ManifestError::NoInt8 {
                model: self.name.clone(),
            })?;
        if resolved == Precision::Int8 {
            let int8 = self.int8.take().expect("resolve checked the int8 file");
            self.file = int8.file;
            self.sha256 = int8.sha256;
        }
        self.precision = resolved;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YOLO: &str = r#"
        name = "yolo"
        task = "detect"
        file = "{cache}/nudenet/320n.onnx"
        sha256 = "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f"
        labels = ["a", "b"]
        [input]
        name = "images"
        layout = "nchw"
        width = 320
        height = 320
        pad = 114
        [decoder]
        kind = "yolov8"
        output = "output0"
    "#;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("m.toml"), Path::new("/models"), None)
    }

    #[test]
    fn cache_placeholder_defaults_beside_the_manifest() {
        let m = parse(YOLO).unwrap();
        assert_eq!(m.file, Path::new("/models/cache/nudenet/320n.onnx"));
        let elsewhere = Manifest::parse(
            YOLO,
            Path::new("m.toml"),
            Path::new("/models"),
            Some(Path::new("/c")),
        )
        .unwrap();
        assert_eq!(elsewhere.file, Path::new("/c/nudenet/320n.onnx"));
    }

    #[test]
    fn defaults_fill_unset_fields() {
        let m = parse(YOLO).unwrap();
        assert_eq!(m.input.std, [1.0; 3]);
        assert_eq!(m.input.resize, Resize::Letterbox);
        assert_eq!(m.thresholds, Thresholds::default());
    }

    #[test]
    fn the_int8_file_has_its_own_tolerance_defaulting_to_the_runtimes() {
        let hash = "1".repeat(64);
        let with = |int8: &str| {
            parse(&format!(
                "{YOLO}\n[runtime]\ntolerance = 0.02\n[int8]\nfile = \"q.onnx\"\nsha256 = \"{hash}\"\n{int8}"
            ))
        };
        let m = with("").unwrap();
        assert_eq!(m.tolerance_of(Precision::Int8), 0.02);
        let m = with("tolerance = 0.3").unwrap();
        assert_eq!(
            (
                m.tolerance_of(Precision::Fp32),
                m.tolerance_of(Precision::Int8)
            ),
            (0.02, 0.3)
        );
        let err = with("tolerance = 1.5").unwrap_err().to_string();
        assert!(err.contains("int8.tolerance"), "{err}");
    }

    #[test]
    fn unknown_decoder_is_named() {
        let text = YOLO.replace("kind = \"yolov8\"", "kind = \"yolov9\"");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("yolov9") && err.contains("line"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let text = YOLO.replace("pad = 114", "pad = 114\nmystery = 1");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("mystery"), "{err}");
    }

    #[test]
    fn bad_hash_and_thresholds_name_their_field() {
        let err = parse(&YOLO.replace("c15d8273", "zz"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`sha256`"), "{err}");
        let text = format!("{YOLO}\n[thresholds]\nscore = 1.5\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("`thresholds.score`"), "{err}");
    }

    #[test]
    fn groups_are_counted_as_the_sum_of_their_labels() {
        let text = YOLO.replace("labels = [\"a\", \"b\"]", "labels = [\"a\", \"b\", \"c\"]");
        let m = parse(&format!(
            "{text}\n[groups]\nab = [\"a\", \"b\"]\nonly_c = [\"c\"]\n"
        ))
        .unwrap();
        assert_eq!(m.groups.names(), ["ab", "only_c"]);
        let counts = BTreeMap::from([("a".to_owned(), 2), ("b".to_owned(), 1)]);
        assert_eq!(
            m.groups.counts(&counts),
            BTreeMap::from([("ab".to_owned(), 3)])
        );
        let err = parse(&format!("{YOLO}\n[groups]\nab = [\"a\", \"x\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`ab` names `x`, which is not one of the labels"),
            "{err}"
        );
        let err = parse(&format!("{YOLO}\n[groups]\na = [\"b\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not be a label itself"), "{err}");
    }

    const DBNET: &str = r#"
        name = "student"
        task = "detect"
        file = "model.onnx"
        sha256 = "1111111111111111111111111111111111111111111111111111111111111111"
        labels = ["text"]
        [input]
        name = "x"
        layout = "nchw"
        width = 960
        height = 960
        [decoder]
        kind = "dbnet"
        output = "sigmoid_0.tmp_0"
        [int8]
        file = "model.qdq.onnx"
        sha256 = "2222222222222222222222222222222222222222222222222222222222222222"
    "#;

    fn manifest(text: &str) -> Manifest {
        Manifest::parse(text, Path::new("m.toml"), Path::new("/m"), None).unwrap()
    }

    #[test]
    fn auto_takes_int8_only_with_dotprod() {
        let m = manifest(DBNET);
        let on_a76 = m.clone().with_precision_on(Precision::Auto, true).unwrap();
        assert_eq!(on_a76.precision, Precision::Int8);
        assert_eq!(on_a76.file, Path::new("/m/model.qdq.onnx"));
        assert!(on_a76.sha256.starts_with("2222"));
        let on_a72 = m.with_precision_on(Precision::Auto, false).unwrap();
        assert_eq!(on_a72.precision, Precision::Fp32);
        assert_eq!(on_a72.file, Path::new("/m/model.onnx"));
        assert!(on_a72.sha256.starts_with("1111"));
    }

    #[test]
    fn explicit_forms_ignore_the_cpu() {
        let m = manifest(DBNET);
        let int8 = m.clone().with_precision_on(Precision::Int8, false).unwrap();
        assert_eq!(int8.precision, Precision::Int8);
        let fp32 = m.with_precision_on(Precision::Fp32, true).unwrap();
        assert_eq!(fp32.file, Path::new("/m/model.onnx"));
    }

    #[test]
    fn int8_without_a_file_names_the_model() {
        let text = DBNET.split("[int8]").next().unwrap();
        let m = manifest(text);
        assert_eq!(
            m.clone()
                .with_precision_on(Precision::Auto, true)
                .unwrap()
                .precision,
            Precision::Fp32
        );
        let err = m
            .with_precision_on(Precision::Int8, true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`student`") && err.contains("[int8]"), "{err}");
    }

    #[test]
    fn a_bad_int8_hash_is_named() {
        let text = DBNET.replace("2222222222222222", "zz");
        let err = Manifest::parse(&text, Path::new("m.toml"), Path::new("/m"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`int8.sha256`"), "{err}");
    }
}
