//! Measuring a detection package the way every detection recipe step is compared: file size,
//! parameters, MACs and tract latency at the package's input size, mAP@0.5 against the true boxes
//! of a rendered-text set, mAP@0.5 against the teacher's boxes on untouched photos, and
//! onnxruntime's latency and mAP on the same file and the same input tensors (through
//! `scripts/ort_detect.py`; its raw outputs are decoded by the same decoder).

use std::path::{Path, PathBuf};

use edgemass::model::Outputs;
use edgemass::model::npy;
use edgemass::vision::Detection;
use edgemass::vision::detector::Detector;
use edgemass::vision::preprocess::load_image;
use serde::Deserialize;
use tract_onnx::prelude::tract_ndarray::ArrayD;

use crate::eval::cost::{Cost, MeasureError, Measured};
use crate::eval::detect::{
    EvalError, IOU, Truth, as_truth, detect_all, mean_average_precision, precision_recall,
};
use crate::onnx::inspect;
use crate::onnx::tract::median_latency;
use crate::package::detect::DetectPackage;

/// How to measure.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Timed runs; the median is reported.
    pub runs: usize,
    /// onnxruntime's intra-op threads.
    pub ort_threads: usize,
    /// Also run onnxruntime (needs `python3` with `onnxruntime` and `numpy`).
    pub onnxruntime: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            runs: 20,
            ort_threads: 2,
            onnxruntime: true,
        }
    }
}

/// The images a package is measured on.
pub struct Sets {
    /// Rendered-text images.
    pub rendered: Vec<PathBuf>,
    /// Their true boxes.
    pub truth: Vec<Vec<Truth>>,
    /// Untouched photos.
    pub photos: Vec<PathBuf>,
    /// The teacher's boxes on the photos, once the teacher is measured.
    pub teacher_boxes: Option<Vec<Vec<Truth>>>,
}

/// Everything measured on one package.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Size and speed.
    pub cost: Cost,
    /// mAP@0.5 against the true boxes (tract).
    pub map: f64,
    /// Precision and recall at the package's own score threshold.
    pub precision_recall: (f64, f64),
    /// mAP@0.5 against the teacher's boxes on the untouched photos.
    pub agreement: Option<f64>,
    /// mAP@0.5 against the true boxes in onnxruntime, when it ran.
    pub ort_map: Option<f64>,
    /// The package's detections on the photos (the teacher's become the reference).
    pub photo_detections: Vec<Vec<Detection>>,
    /// Score threshold of the manifest.
    pub score_threshold: f32,
}

impl Measured for Measurement {
    fn cost(&self) -> &Cost {
        &self.cost
    }

    fn quality(&self) -> f64 {
        self.map
    }

    fn metrics(&self) -> Vec<(&'static str, f64)> {
        let mut m = vec![("map50_rendered_text", self.map)];
        m.extend(self.cost.metrics());
        m.extend(self.agreement.map(|a| ("map50_against_teacher_photos", a)));
        m.extend(self.ort_map.map(|a| ("map50_rendered_text_ort", a)));
        m
    }
}

/// Measures the package at `manifest` on `sets`; scratch files go to `scratch`.
pub fn measure(
    manifest: &Path,
    sets: &Sets,
    settings: &Settings,
    scratch: &Path,
    progress: bool,
) -> Result<Measurement, MeasureError> {
    let package = DetectPackage::open(manifest)?;
    let graph = package.graph()?;
    let shape = crate::package::detect::package_input(&package.manifest);
    let macs = inspect::inspect(&graph, std::slice::from_ref(&shape))
        .ok()
        .and_then(|r| r.macs.ok())
        .map(|m| m.total);
    let detector = crate::eval::detect::scoring_detector(manifest)?;
    let first = load_image(&sets.rendered[0]).map_err(EvalError::from)?;
    let (tensor, _) = detector.prepare(&first);
    let tract_ms =
        median_latency(&graph.proto, &[tensor], settings.runs, "student")?.as_secs_f64() * 1e3;
    let run = detect_all(manifest, &sets.rendered, progress)?;
    let map = mean_average_precision(&run.detections, &sets.truth, IOU).unwrap_or(0.0);
    let pr = precision_recall(&run.detections, &sets.truth, run.score_threshold, IOU);
    let photos = detect_all(manifest, &sets.photos, false)?;
    let agreement = sets
        .teacher_boxes
        .as_ref()
        .and_then(|t| mean_average_precision(&photos.detections, t, IOU));
    let mut cost = Cost::of(&graph, macs, tract_ms);
    let ort_map = cost.with_ort(settings.onnxruntime, || {
        onnxruntime(&package, &detector, sets, settings, scratch)
    });
    Ok(Measurement {
        cost,
        map,
        precision_recall: pr,
        agreement,
        ort_map,
        photo_detections: photos.detections,
        score_threshold: run.score_threshold,
    })
}

/// The teacher's detections on the photos as the reference boxes for agreement.
pub fn reference_boxes(teacher: &Measurement) -> Vec<Vec<Truth>> {
    as_truth(&teacher.photo_detections, teacher.score_threshold)
}

#[derive(Deserialize)]
struct OrtReply {
    latency_ms: Option<f64>,
}

/// Images per onnxruntime call (their tensors sit on disk meanwhile).
const ORT_CHUNK: usize = 10;

/// onnxruntime's latency (ms) and mAP on the rendered set, through the script; `Err` says why it
/// could not run.
fn onnxruntime(
    package: &DetectPackage,
    detector: &Detector,
    sets: &Sets,
    settings: &Settings,
    scratch: &Path,
) -> Result<(f64, f64), String> {
    let names: Vec<String> = package
        .manifest
        .decoder
        .output_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut latency = None;
    let mut detections = Vec::with_capacity(sets.rendered.len());
    for (c, chunk) in sets.rendered.chunks(ORT_CHUNK).enumerate() {
        let (inputs, outputs) = (scratch.join("ort-in"), scratch.join("ort-out"));
        for d in [&inputs, &outputs] {
            let _ = std::fs::remove_dir_all(d);
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let mut transforms = Vec::with_capacity(chunk.len());
        for (i, path) in chunk.iter().enumerate() {
            let image = load_image(path).map_err(|e| e.to_string())?;
            let (tensor, transform) = detector.prepare(&image);
            let view = tensor
                .to_plain_array_view::<f32>()
                .map_err(|e| e.to_string())?;
            let values: Vec<f32> = view.iter().copied().collect();
            let file = inputs.join(format!("{i:05}.npy"));
            std::fs::write(&file, npy::encode_f32(tensor.shape(), &values))
                .map_err(|e| format!("{}: {e}", file.display()))?;
            transforms.push(transform);
        }
        let (threads, runs) = (
            settings.ort_threads.to_string(),
            if c == 0 { settings.runs } else { 0 }.to_string(),
        );
        let reply: OrtReply = crate::eval::ort::run_script(
            "ort_detect.py",
            &[
                package.manifest.file.as_os_str(),
                inputs.as_os_str(),
                outputs.as_os_str(),
                "--threads".as_ref(),
                threads.as_ref(),
                "--runs".as_ref(),
                runs.as_ref(),
            ],
        )?;
        latency = latency.or(reply.latency_ms);
        for (i, transform) in transforms.iter().enumerate() {
            let mut pairs = Vec::with_capacity(names.len());
            for name in &names {
                let file = outputs.join(format!("{i:05}.{name}.npy"));
                let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
                let (shape, values) = npy::decode_f32(&bytes)
                    .ok_or_else(|| format!("{} is not an f32 .npy", file.display()))?;
                let array = ArrayD::from_shape_vec(shape, values).map_err(|e| e.to_string())?;
                pairs.push((name.clone(), array));
            }
            let found = detector
                .decode(&Outputs::new(pairs))
                .map_err(|e| e.to_string())?;
            detections.push(found.into_iter().map(|d| transform.detection(d)).collect());
        }
    }
    Ok((
        latency.unwrap_or(f64::NAN),
        mean_average_precision(&detections, &sets.truth, IOU).unwrap_or(0.0),
    ))
}
