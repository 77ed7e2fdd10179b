//! What both recipe runners share: a measured step, what a run produced, the speed target, and
//! the epilogue that writes the report, the plot and the student's metrics.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::FileError;
use crate::eval::cost::Measured;
use crate::passes::distill::Trained;
use crate::recipe::RecipeError;
use crate::recipe::plot::Point;

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

/// Says `text` on stderr, unless `quiet`: how a recipe announces its steps.
pub fn say(quiet: bool, text: &str) {
    if !quiet {
        eprintln!("{text}");
    }
}

/// A recipe run's steps so far: every package a pass writes is announced, measured by the
/// family's `measure` and kept, the teacher first.
pub struct Steps<M, F> {
    steps: Vec<Step<M>>,
    quiet: bool,
    measure: F,
}

impl<M, F: FnMut(&'static str, &Path) -> Result<M, RecipeError>> Steps<M, F> {
    /// The steps of a run whose teacher at `manifest` measured `teacher`.
    pub fn new(manifest: &Path, teacher: M, quiet: bool, measure: F) -> Self {
        let teacher = Step {
            name: "teacher",
            manifest: manifest.to_owned(),
            measured: teacher,
        };
        Steps {
            steps: vec![teacher],
            quiet,
            measure,
        }
    }

    /// Says `text` on stderr, unless the run is quiet.
    pub fn say(&self, text: &str) {
        say(self.quiet, text);
    }

    /// Measures the package at `manifest` as step `name` and keeps it; returns the manifest, the
    /// next step's input.
    pub fn record(
        &mut self,
        name: &'static str,
        manifest: PathBuf,
    ) -> Result<PathBuf, RecipeError> {
        self.say(&format!("measuring {name}: {}", manifest.display()));
        let measured = (self.measure)(name, &manifest)?;
        self.steps.push(Step {
            name,
            manifest: manifest.clone(),
            measured,
        });
        Ok(manifest)
    }

    /// Records the package a distillation wrote (a recipe never asks one to stop early).
    pub fn distilled(&mut self, trained: Trained) -> Result<PathBuf, RecipeError> {
        let manifest = trained
            .manifest
            .expect("distill stops early only when asked to");
        self.record("distill", manifest)
    }

    /// Every step, teacher first.
    pub fn into_steps(self) -> Vec<Step<M>> {
        self.steps
    }
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
    let c = step.measured.cost();
    format!(
        "| {} | {} | {} | {} | {:.2} | {} |",
        step.name,
        c.bytes,
        c.parameters,
        c.macs
            .map_or("–".into(), |n| format!("{:.1} M", n as f64 / 1e6)),
        c.tract_ms,
        c.ort_ms.map_or("–".into(), |ms| format!("{ms:.2}")),
    )
}

/// The header cells of [`cost_cells`].
pub const COST_HEADER: &str = "| step | bytes | parameters | MACs | tract ms | ORT ms |";

/// Whether `tract_ms` meets the speed target against `teacher` (`None`: onnxruntime was not
/// measured).
pub fn fast(teacher: &impl Measured, tract_ms: f64) -> Option<bool> {
    teacher
        .cost()
        .ort_ms
        .map(|ms| ms / tract_ms >= SPEED_TARGET)
}

/// The end of a report: the Pareto front of `points`, the steps that meet the targets (`meets`;
/// `targets[0]` names them, `targets[1]` when `teacher` had no onnxruntime timing), each with its
/// `metric`, and the plot of `plotted` against latency and size.
pub fn closing_section(
    teacher: &impl Measured,
    points: &[Point],
    targets: [&str; 2],
    meets: impl Fn(&Point) -> bool,
    metric: impl Fn(f64) -> String,
    plotted: &str,
) -> String {
    let targets = if teacher.cost().ort_ms.is_some() {
        targets[0]
    } else {
        targets[1]
    };
    let mut out = crate::recipe::pareto::markdown(points, targets, meets, metric);
    out.push_str(&format!(
        "\n![{plotted} against latency and size](report.svg)\n"
    ));
    out
}

/// "met" or "missed".
pub fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "missed" }
}

/// The note on empty onnxruntime columns (when there are), the `## Targets` heading and the speed
/// target's line for the last step.
pub fn speed_section<M: Measured>(steps: &[Step<M>]) -> String {
    let mut out = String::new();
    if let Some(reason) = steps
        .iter()
        .find_map(|s| s.measured.cost().ort_missing.as_deref())
    {
        let _ = writeln!(out, "\nonnxruntime columns are empty: {reason}.");
    }
    let (t, s) = (&steps[0].measured, steps[steps.len() - 1].measured.cost());
    out.push_str("\n## Targets\n\n");
    let _ = writeln!(
        out,
        "- speed: teacher ORT {} ms / student tract {:.2} ms = {} (target ≥ {SPEED_TARGET}×): {}",
        t.cost().ort_ms.map_or("–".into(), |ms| format!("{ms:.2}")),
        s.tract_ms,
        t.cost()
            .ort_ms
            .map_or("–".into(), |ms| format!("{:.2}×", ms / s.tract_ms)),
        fast(t, s.tract_ms).map_or("not measured", verdict),
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
            latency_ms: s.measured.cost().tract_ms,
            bytes: s.measured.cost().bytes,
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
