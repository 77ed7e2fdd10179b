//! What both recipe runners share: a measured step, what a run produced, the speed target, and
//! the epilogue that writes the report, the plot and the student's metrics.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::FileError;
use crate::recipe::RecipeError;
use crate::recipe::plot::Point;

/// What a family's measurement of a step gives the report.
pub trait Measured {
    /// tract latency at batch 1, ms.
    fn tract_ms(&self) -> f64;
    /// onnxruntime latency, ms, when it was measured.
    fn ort_ms(&self) -> Option<f64>;
    /// Why onnxruntime was not measured.
    fn ort_missing(&self) -> Option<&str>;
    /// Size of the ONNX file.
    fn bytes(&self) -> u64;
    /// Values in initializers.
    fn parameters(&self) -> u64;
    /// Multiply-accumulates at batch 1, when tract could count them.
    fn macs(&self) -> Option<u64>;
    /// The quality the plot shows (held-out accuracy, mAP), as a fraction.
    fn quality(&self) -> f64;
    /// What goes into the package's `[provenance.metrics]`.
    fn metrics(&self) -> Vec<(&'static str, f64)>;
}

/// Implements [`Measured`] for a family's measurement: a struct with `tract_ms`, `ort` (whose
/// `latency_ms` is onnxruntime's), `ort_missing`, `bytes` and a `metrics()` method, whose quality
/// is the field `$quality`.
macro_rules! measured {
    ($measurement:ty, $quality:ident) => {
        impl $crate::recipe::step::Measured for $measurement {
            fn tract_ms(&self) -> f64 {
                self.tract_ms
            }

            fn ort_ms(&self) -> Option<f64> {
                self.ort.as_ref().map(|o| o.latency_ms)
            }

            fn ort_missing(&self) -> Option<&str> {
                self.ort_missing.as_deref()
            }

            fn bytes(&self) -> u64 {
                self.bytes
            }

            fn parameters(&self) -> u64 {
                self.parameters
            }

            fn macs(&self) -> Option<u64> {
                self.macs
            }

            fn quality(&self) -> f64 {
                self.$quality
            }

            fn metrics(&self) -> Vec<(&'static str, f64)> {
                <$measurement>::metrics(self)
            }
        }
    };
}
pub(crate) use measured;

/// One measured step.
#[derive(Debug, Clone)]
pub struct Step<M> {
    /// `teacher`, then the passes: `prune`, `vocabulary`, `distill`, `quantize`, `downscale`.
    pub name: &'static str,
    /// The step's package manifest.
    pub manifest: PathBuf,
    /// What was measured.
    pub measured: M,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Outcome<M> {
    /// Every step, teacher first.
    pub steps: Vec<Step<M>>,
    /// `report.md`.
    pub report: PathBuf,
    /// `report.svg`.
    pub plot: PathBuf,
}

/// The speed target: the student in tract at least 3× faster than the teacher in onnxruntime.
pub const SPEED_TARGET: f64 = 3.0;

/// The cells every report table starts with, for a step: its name, bytes, parameters, MACs, tract
/// ms and ORT ms (the header is [`COST_HEADER`]).
pub fn cost_cells<M: Measured>(step: &Step<M>) -> String {
    let m = &step.measured;
    format!(
        "| {} | {} | {} | {} | {:.2} | {} |",
        step.name,
        m.bytes(),
        m.parameters(),
        m.macs()
            .map_or("–".into(), |n| format!("{:.1} M", n as f64 / 1e6)),
        m.tract_ms(),
        m.ort_ms().map_or("–".into(), |ms| format!("{ms:.2}")),
    )
}

/// The header cells of [`cost_cells`].
pub const COST_HEADER: &str = "| step | bytes | parameters | MACs | tract ms | ORT ms |";

/// Whether `tract_ms` meets the speed target against `teacher` (`None`: onnxruntime was not
/// measured).
pub fn fast(teacher: &impl Measured, tract_ms: f64) -> Option<bool> {
    teacher.ort_ms().map(|ms| ms / tract_ms >= SPEED_TARGET)
}

/// "met" or "missed".
pub fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "missed" }
}

/// The note on empty onnxruntime columns (when there are), the `## Targets` heading and the speed
/// target's line for the last step.
pub fn speed_section<M: Measured>(steps: &[Step<M>]) -> String {
    let mut out = String::new();
    if let Some(reason) = steps.iter().find_map(|s| s.measured.ort_missing()) {
        let _ = writeln!(out, "\nonnxruntime columns are empty: {reason}.");
    }
    let (t, s) = (&steps[0].measured, &steps[steps.len() - 1].measured);
    out.push_str("\n## Targets\n\n");
    let _ = writeln!(
        out,
        "- speed: teacher ORT {} ms / student tract {:.2} ms = {} (target ≥ {SPEED_TARGET}×): {}",
        t.ort_ms().map_or("–".into(), |ms| format!("{ms:.2}")),
        s.tract_ms(),
        t.ort_ms()
            .map_or("–".into(), |ms| format!("{:.2}×", ms / s.tract_ms())),
        fast(t, s.tract_ms()).map_or("not measured", verdict),
    );
    out
}

/// The epilogue of a run into `out`: `report.md` as `markdown` writes it, `report.svg` with the
/// quality labelled `quality`, and the last step's metrics in its manifest (when there was a
/// step after the teacher).
pub fn finish<M: Measured>(
    steps: Vec<Step<M>>,
    out: &Path,
    quality: &str,
    markdown: impl FnOnce(&[Step<M>], &[Point]) -> String,
) -> Result<Outcome<M>, FileError> {
    let (report, plot) = (out.join("report.md"), out.join("report.svg"));
    let points: Vec<Point> = steps
        .iter()
        .map(|s| Point {
            name: s.name,
            latency_ms: s.measured.tract_ms(),
            bytes: s.measured.bytes(),
            metric: s.measured.quality(),
        })
        .collect();
    crate::write_atomic(&report, markdown(&steps, &points).as_bytes())
        .map_err(|e| FileError::new(&report, e))?;
    crate::recipe::plot::draw(&points, quality, &plot).map_err(|e| FileError::new(&plot, e))?;
    if let [_, .., last] = steps.as_slice() {
        record_metrics(&last.manifest, &last.measured.metrics())
            .map_err(|e| FileError::new(&last.manifest, e))?;
    }
    Ok(Outcome {
        steps,
        report,
        plot,
    })
}

/// The recipe file at `path` read as `T`; `check` refuses what parses but cannot run.
pub fn load<T: serde::de::DeserializeOwned>(
    path: &Path,
    check: impl FnOnce(&mut T) -> Result<(), String>,
) -> Result<T, RecipeError> {
    let bad = |reason: String| RecipeError::Recipe {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let mut recipe: T = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    check(&mut recipe).map_err(bad)?;
    Ok(recipe)
}

/// Stores `metrics` in `[provenance.metrics]` of the manifest at `manifest`.
pub fn record_metrics(manifest: &Path, metrics: &[(&str, f64)]) -> Result<(), String> {
    let bad = |e: &dyn std::fmt::Display| e.to_string();
    let text = std::fs::read_to_string(manifest).map_err(|e| bad(&e))?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| bad(&e))?;
    let provenance = table
        .entry("provenance")
        .or_insert_with(|| toml::Value::Table(Default::default()));
    let metrics_table = provenance
        .as_table_mut()
        .ok_or_else(|| bad(&"[provenance] is not a table"))?
        .entry("metrics")
        .or_insert_with(|| toml::Value::Table(Default::default()))
        .as_table_mut()
        .ok_or_else(|| bad(&"[provenance.metrics] is not a table"))?;
    for (key, value) in metrics {
        metrics_table.insert((*key).into(), toml::Value::Float(*value));
    }
    let text = toml::to_string(&table).map_err(|e| bad(&e))?;
    crate::write_atomic(manifest, text.as_bytes()).map_err(|e| bad(&e))
}
