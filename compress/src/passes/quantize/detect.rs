//! Quantizing a detection package: activation ranges calibrated on real images (prepared exactly
//! as the agent prepares them), every form checked against the float model in tract and timed,
//! the fastest correct form shipped as the package's model and the portable QDQ form written
//! beside it (`model.qdq.onnx`) for other runtimes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use edgemass::model::Outputs;
use edgemass::vision::preprocess::{load_image, prepare};
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::{Tensor, TypedRunnableModel};

use crate::onnx::graph::constants_to_initializers;
use crate::onnx::tract;
use crate::onnx::tract::{
    CheckError, compare, compare_planned, median_latency, median_latency_planned,
};
use crate::package::detect::{DetectPackage, INT8_FILE};
use crate::passes::quantize::calibrate::{self, Method};
use crate::passes::quantize::static_conv::{self, Candidate, Form};
use crate::passes::quantize::{self, QuantizePassError, nnef};

/// How a detection package is quantized: the `[quantize]` table of a detection recipe and the
/// flags of `edgemass-compress quantize` for a detection package, declared once.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Use only the first N calibration images.
    #[arg(long, visible_alias = "limit", default_value_t = 16)]
    pub calibration_images: usize,
    /// How activation ranges are chosen.
    #[arg(long, value_enum, default_value_t = Method::Percentile)]
    pub method: Method,
    /// A convolution (node or weight name) left float; repeatable.
    #[arg(long = "keep-float", value_name = "NAME")]
    pub keep_float: Vec<String>,
    /// Every output's cosine similarity to the float model must reach this.
    #[arg(long, default_value_t = quantize::DEFAULT_MIN_COSINE)]
    pub min_cosine: f32,
    /// Timed tract runs per form.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
}

default_from_flags!(Settings);

/// What to quantize and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// Images to calibrate and check on (the first `settings.calibration_images` are used).
    pub calibration: Vec<PathBuf>,
    /// How.
    pub settings: Settings,
}

/// One form as measured (the int8-weights form is left out when no weight is large enough to
/// quantize outside the convolutions kept float). The `qlinear-nnef` row is the QLinearConv form as tract's own NNEF
/// archive (quantized types kept); it is measured, not shipped, since the agent loads ONNX.
#[derive(Debug, Clone)]
pub struct Row {
    /// `float`, `weights`, `static-qdq` or `static-qlinear`.
    pub form: &'static str,
    /// Encoded size.
    pub bytes: usize,
    /// Median single-thread tract time.
    pub tract: Duration,
    /// Worst cosine similarity of any output to the float model over the calibration images.
    pub cosine: f32,
}

/// What the pass did.
#[derive(Debug, Clone)]
pub struct Report {
    /// Every form, float first.
    pub rows: Vec<Row>,
    /// Why the QLinearConv form has no NNEF row, when tract could not write or read it.
    pub nnef_missing: Option<String>,
    /// The form shipped as `model.onnx`.
    pub chosen: &'static str,
    /// Convolutions quantized statically.
    pub convs: usize,
    /// Convolutions left float because quantizing them moved the outputs too far.
    pub left_float: usize,
    /// The new manifest.
    pub manifest: PathBuf,
    /// The portable QDQ file.
    pub qdq: PathBuf,
    /// The QDQ form's largest deviation from float (the agent's measure) on the calibration
    /// images and the agent's start-up picture.
    pub deviation: f64,
    /// The `[int8] tolerance` written for it.
    pub tolerance: f64,
}

impl Report {
    /// A table of the forms and what was written.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{} convolutions quantized statically, {} left float\n{:<15} {:>10} {:>9} {:>10}\n",
            self.convs, self.left_float, "form", "bytes", "tract ms", "cosine"
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:<15} {:>10} {:>9.2} {:>10.6}",
                r.form,
                r.bytes,
                r.tract.as_secs_f64() * 1e3,
                r.cosine
            );
        }
        if let Some(why) = &self.nnef_missing {
            let _ = writeln!(s, "qlinear-nnef: not measured: {why}");
        }
        let _ = write!(
            s,
            "shipped {} as {}; portable QDQ form in {} (largest deviation from float {:.3}, \
             written as its tolerance {:.2})",
            self.chosen,
            self.manifest.display(),
            self.qdq.display(),
            self.deviation,
            self.tolerance
        );
        s
    }
}

/// The worst cosine similarity of any output of `candidate` to `float` over the samples; 0 when
/// the candidate makes NaNs or tract panics on it (tract 0.23 trips an integer overflow check in
/// some QuantizeLinear/DequantizeLinear chains).
fn cosine(
    float: &ModelProto,
    candidate: &ModelProto,
    samples: &[Vec<tract_onnx::prelude::Tensor>],
) -> Result<f32, CheckError> {
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        compare(float, candidate, samples)
    }));
    let Ok(checks) = checked else {
        return Ok(0.0);
    };
    let worst = checks?.iter().map(|c| c.cosine).fold(1.0, f32::min);
    Ok(if worst.is_nan() { 0.0 } else { worst })
}

/// The convolutions to quantize so the QDQ form stays within `min_cosine` of float: all of them
/// if that holds, else all but the most sensitive ones (each convolution quantized alone, ranked
/// by how far it moves the outputs on the first sample), as few left float as suffice. Returns
/// the convolutions to quantize and the graph indices of those left float.
fn fit(
    float: &ModelProto,
    convs: Vec<Candidate>,
    ranges: &HashMap<String, (f32, f32)>,
    samples: &[Vec<tract_onnx::prelude::Tensor>],
    min_cosine: f32,
) -> Result<(Vec<Candidate>, Vec<usize>), QuantizePassError> {
    let holds = |subset: &[Candidate]| -> Result<bool, QuantizePassError> {
        let model = static_conv::quantize_convs(float, subset, ranges, Form::Qdq)?;
        Ok(cosine(float, &model, samples)? >= min_cosine)
    };
    if holds(&convs)? {
        return Ok((convs, Vec::new()));
    }
    let mut ranked = Vec::with_capacity(convs.len());
    for c in &convs {
        let alone = static_conv::quantize_convs(float, std::slice::from_ref(c), ranges, Form::Qdq)?;
        ranked.push((cosine(float, &alone, &samples[..1])?, c.clone()));
    }
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
    let ranked: Vec<Candidate> = ranked.into_iter().map(|(_, c)| c).collect();
    let (mut lo, mut hi) = (0, ranked.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if holds(&ranked[mid..])? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    if lo == ranked.len() {
        return Err(QuantizePassError::NoForm {
            min_cosine,
            best: 0.0,
        });
    }
    let left = ranked[..lo].iter().map(|(i, _, _)| *i).collect();
    Ok((ranked[lo..].to_vec(), left))
}

/// The QLinearConv form through tract's NNEF archive and back, checked and timed.
fn nnef_row(
    float: &ModelProto,
    qlinear: &ModelProto,
    samples: &[Vec<tract_onnx::prelude::Tensor>],
    runs: usize,
) -> Result<Row, CheckError> {
    let (archive, plan) = nnef::round_trip(qlinear, &samples[0])?;
    let checks = compare_planned(float, &plan, samples)?;
    let cosine = checks.iter().map(|c| c.cosine).fold(1.0, f32::min);
    Ok(Row {
        form: "qlinear-nnef",
        bytes: archive.len(),
        tract: median_latency_planned(&plan, &samples[0], runs, "nnef")?,
        cosine: if cosine.is_nan() { 0.0 } else { cosine },
    })
}

/// Quantizes the package at `manifest` into a package named `name` in `out`.
pub fn quantize_package(
    manifest: &Path,
    options: &Options,
    out: &Path,
    name: &str,
) -> Result<Report, QuantizePassError> {
    let settings = &options.settings;
    let calibration =
        &options.calibration[..settings.calibration_images.min(options.calibration.len())];
    if calibration.is_empty() {
        return Err(QuantizePassError::Options(
            "no calibration images given".into(),
        ));
    }
    if !(settings.min_cosine > 0.0 && settings.min_cosine <= 1.0) {
        return Err(QuantizePassError::Options(format!(
            "the minimum cosine must be in (0, 1], not {}",
            settings.min_cosine
        )));
    }
    let package = DetectPackage::open(manifest)?;
    let mut float = package.graph()?.proto;
    constants_to_initializers(&mut float);
    let mut samples = Vec::with_capacity(calibration.len());
    for path in calibration {
        let (tensor, _) = prepare(&load_image(path)?, &package.manifest.input);
        samples.push(vec![tensor]);
    }
    let keep = |n: &tract_onnx::pb::NodeProto| {
        settings
            .keep_float
            .iter()
            .any(|k| *k == n.name || n.input.get(1) == Some(k))
    };
    let graph = float.graph.as_ref().expect("a loaded graph");
    let convs: Vec<_> = static_conv::candidates(&float)
        .into_iter()
        .filter(|(i, _, _)| !keep(&graph.node[*i]))
        .collect();
    if convs.is_empty() {
        return Err(QuantizePassError::Options(
            "no convolution with a stored f32 weight to quantize".into(),
        ));
    }
    let mut tensors: Vec<String> = convs
        .iter()
        .flat_map(|(_, x, y)| [x.clone(), y.clone()])
        .collect();
    tensors.sort();
    tensors.dedup();
    let stats = calibrate::collect(&float, &tensors, &samples)?;
    let ranges: HashMap<String, (f32, f32)> = stats
        .iter()
        .map(|(t, s)| (t.clone(), s.range(settings.method)))
        .collect();
    let (convs, left_float) = fit(&float, convs, &ranges, &samples, settings.min_cosine)?;
    let mut weights_options = quantize::Options::new(quantize::Mode::Weights);
    weights_options.keep_float = settings.keep_float.clone();
    weights_options
        .keep_float
        .extend(left_float.iter().map(|&i| graph.node[i].input[1].clone()));
    let weights = match quantize::quantize(&float, &weights_options) {
        Ok(q) => Some(("weights", q.model)),
        Err(quantize::QuantizeError::NothingToQuantize { .. }) => None,
        Err(e) => return Err(QuantizePassError::Options(e.to_string())),
    };
    let forms: Vec<(&'static str, ModelProto)> = [
        Some(("float", float.clone())),
        weights,
        Some((
            Form::Qdq.name(),
            static_conv::quantize_convs(&float, &convs, &ranges, Form::Qdq)?,
        )),
        Some((
            Form::QLinear.name(),
            static_conv::quantize_convs(&float, &convs, &ranges, Form::QLinear)?,
        )),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut rows = Vec::with_capacity(forms.len());
    for (form, model) in &forms {
        rows.push(Row {
            form,
            bytes: prost::Message::encoded_len(model),
            tract: median_latency(model, &samples[0], settings.runs, form)?,
            cosine: cosine(&float, model, &samples)?,
        });
    }
    let qlinear = &forms.last().expect("the QLinear form is built").1;
    let nnef = nnef_row(&float, qlinear, &samples, settings.runs);
    let correct = |r: &&Row| r.form != "float" && r.cosine >= settings.min_cosine;
    let Some(best) = rows.iter().filter(correct).min_by_key(|r| r.tract) else {
        return Err(QuantizePassError::NoForm {
            min_cosine: settings.min_cosine,
            best: rows[1..].iter().map(|r| r.cosine).fold(0.0, f32::max),
        });
    };
    let chosen = best.form;
    let model = &forms
        .iter()
        .find(|(f, _)| *f == chosen)
        .expect("a row per form")
        .1;
    let provenance = package.derived_provenance(format!(
        "quantize: {chosen} int8 ({} activations calibrated on {} images, {} convolutions)",
        settings.method.name(),
        samples.len(),
        convs.len()
    ));
    let qdq_model = &forms
        .iter()
        .find(|(f, _)| *f == Form::Qdq.name())
        .expect("the QDQ form is built")
        .1;
    let mut checked = samples.clone();
    let (scene, _) = prepare(&edgemass::vision::scene::scene(), &package.manifest.input);
    checked.push(vec![scene]);
    let deviation = deviation(&float, qdq_model, &checked)?;
    let tolerance = int8_tolerance(deviation);
    let manifest = package.write_derived(
        out,
        name,
        format!("int8 ({chosen}) of {}", package.manifest.name),
        model,
        Some((qdq_model, tolerance)),
        &provenance,
    )?;
    let nnef_missing = match nnef {
        Ok(row) => {
            rows.push(row);
            None
        }
        Err(e) => Some(format!("{:#}", anyhow::Error::from(e))),
    };
    Ok(Report {
        rows,
        left_float: left_float.len(),
        nnef_missing,
        chosen,
        convs: convs.len(),
        qdq: out.join(INT8_FILE),
        deviation,
        tolerance,
        manifest,
    })
}

/// The largest deviation ([`edgemass::model::choose::deviation`], the agent's measure) of the
/// QDQ form from float on any of `samples`, both run in tract.
fn deviation(
    float: &ModelProto,
    qdq: &ModelProto,
    samples: &[Vec<Tensor>],
) -> Result<f64, CheckError> {
    let names: Vec<String> = float
        .graph
        .iter()
        .flat_map(|g| &g.output)
        .map(|o| o.name.clone())
        .collect();
    let Some(first) = samples.first() else {
        return Err(CheckError::NoSamples);
    };
    // Every sample is prepared to the manifest's input shape: one plan each serves them all.
    let reference = tract::plan(float, first, "float")?;
    let candidate = tract::plan(qdq, first, "quantized")?;
    let outputs = |plan: &Arc<TypedRunnableModel>, sample: &[Tensor], label: &str| {
        let mut values = Vec::new();
        for t in tract::execute(plan, sample, label)? {
            let t = t
                .cast_to::<f32>()
                .map_err(tract::tract_error(label, "read an output of"))?;
            let view = t
                .to_plain_array_view::<f32>()
                .map_err(tract::tract_error(label, "read an output of"))?;
            values.push(view.to_owned());
        }
        Ok::<_, CheckError>(Outputs::new(names.iter().cloned().zip(values).collect()))
    };
    let mut worst = 0f64;
    for sample in samples {
        let expected = outputs(&reference, sample, "float")?;
        let got = outputs(&candidate, sample, "quantized")?;
        worst = worst.max(edgemass::model::choose::deviation(&expected, &got));
    }
    Ok(worst)
}

/// The `[int8] tolerance` written for a file that deviated by at most `measured`: a quarter
/// more, for other runtimes' rounding and other pictures, rounded up to a hundredth.
fn int8_tolerance(measured: f64) -> f64 {
    ((measured * 1.25 * 100.0).ceil() / 100.0).clamp(0.01, 1.0)
}
