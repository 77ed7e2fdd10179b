//! `run RECIPE.toml`: prune → distill → quantize a text teacher in one command, measuring every
//! step the same way (size, MACs, tract and onnxruntime latency, held-out accuracy, agreement with
//! the teacher) and writing `report.md` and `report.svg` beside the packages.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::eval::measure_text::{self, HeldOut, MeasureError, Measurement, Settings};
use crate::package::text::{PackageError, TextPackage};
use crate::passes;
use crate::passes::distill::text::DistillError;
use crate::passes::prune::bert::{Plan, PruneError};
use crate::passes::quantize::{self, QuantizeError};
use crate::recipe::plot::Point;

/// A recipe file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Name of the final student package.
    pub name: String,
    /// The teacher's manifest, relative to the model cache.
    pub teacher: PathBuf,
    /// Seed of the 80/20 split and of every shuffle.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Where the texts come from.
    pub data: Data,
    /// Structured pruning; absent: the student starts as the teacher.
    pub prune: Option<Plan>,
    /// Keep only the tokens the training texts use (plus single characters and special tokens).
    #[serde(default)]
    pub vocabulary: bool,
    /// With `vocabulary`: keep only tokens the training texts use at least this many times (rarer
    /// words fall apart into kept pieces).
    #[serde(default = "default_min_count")]
    pub vocabulary_min_count: usize,
    /// Distillation; absent: no training.
    pub distill: Option<DistillStep>,
    /// Quantization; absent: the student stays float.
    pub quantize: Option<QuantizeStep>,
    /// How steps are measured.
    #[serde(default)]
    pub measure: Settings,
}

fn default_seed() -> u64 {
    42
}

fn default_min_count() -> usize {
    1
}

/// Data files, relative to the model cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Data {
    /// `rotten_tomatoes_corpus_full.csv.bz2`.
    pub labelled: PathBuf,
    /// `guardian_headlines.csv.bz2`, texts for the teacher to label.
    pub unlabelled: Option<PathBuf>,
    /// Use only the first N labelled training texts.
    pub train_limit: Option<usize>,
    /// Use only the first N unlabelled texts.
    pub unlabelled_limit: Option<usize>,
    /// Measure on only the first N held-out texts (and texts of the other kind).
    pub test_limit: Option<usize>,
    /// Text of another kind, every step scored on it too: one of VADER's human-rated sets
    /// (`data/vader/*_GroundTruth.txt`).
    pub other: Option<PathBuf>,
}

impl Data {
    /// The selection limits.
    pub fn limits(&self) -> crate::data::corpus::Limits {
        crate::data::corpus::Limits {
            train: self.train_limit,
            unlabelled: self.unlabelled_limit,
            test: self.test_limit,
        }
    }
}

/// The `[distill]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillStep {
    /// Passes over the training texts.
    pub epochs: usize,
    /// Texts per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Softening temperature.
    pub temperature: f64,
    /// Weight of the cross-entropy on labelled texts.
    pub alpha: f64,
    /// Variants of every labelled training text for the teacher to label (default 0).
    #[serde(default)]
    pub augment: usize,
    /// `roget.csv.bz2` in the model cache: the variants also swap words for others of their
    /// thesaurus category.
    pub thesaurus: Option<PathBuf>,
    /// Weight of the mean squared error between pooled vectors (default 0: logits only).
    #[serde(default)]
    pub hidden_weight: f64,
}

/// The `[quantize]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantizeStep {
    /// `weights` (int8 storage, float arithmetic), `dynamic` (MatMulInteger, onnxruntime's
    /// fastest) or `dynamic-ops` (the same arithmetic in plain ops, tract's fastest).
    pub mode: String,
    /// Nodes or weights to leave in float.
    #[serde(default)]
    pub keep_float: Vec<String>,
}

/// Errors of a recipe run.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// The recipe file is unreadable or invalid.
    #[error("{path}: {reason}")]
    Recipe {
        /// The recipe.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A package step failed.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// Pruning failed.
    #[error(transparent)]
    Prune(#[from] PruneError),
    /// Distillation failed.
    #[error(transparent)]
    Distill(#[from] DistillError),
    /// Vocabulary pruning failed.
    #[error(transparent)]
    Vocabulary(#[from] passes::prune::vocab::VocabError),
    /// Quantization failed.
    #[error("quantize: {0}")]
    Quantize(#[from] QuantizeError),
    /// Measuring failed.
    #[error(transparent)]
    Measure(#[from] MeasureError),
    /// The report could not be written.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// One measured step (of a text recipe, or with `M` another task's measurement).
#[derive(Debug, Clone)]
pub struct Step<M = Measurement> {
    /// `teacher`, then the passes: `prune`, `vocabulary`, `distill`, `quantize`, `downscale`.
    pub name: &'static str,
    /// The step's package manifest.
    pub manifest: PathBuf,
    /// What was measured.
    pub measured: M,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Outcome<M = Measurement> {
    /// Every step, teacher first.
    pub steps: Vec<Step<M>>,
    /// `report.md`.
    pub report: PathBuf,
    /// `report.svg`.
    pub plot: PathBuf,
}

impl Recipe {
    /// Reads and checks a recipe file.
    pub fn load(path: &Path) -> Result<Recipe, RecipeError> {
        let bad = |reason: String| RecipeError::Recipe {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let recipe: Recipe = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if let Some(q) = &recipe.quantize {
            mode(&q.mode).map_err(bad)?;
        }
        Ok(recipe)
    }
}

fn mode(name: &str) -> Result<quantize::Mode, String> {
    quantize::Mode::ALL
        .into_iter()
        .find(|m| m.name() == name)
        .ok_or_else(|| {
            let known: Vec<&str> = quantize::Mode::ALL.iter().map(|m| m.name()).collect();
            format!("[quantize] mode `{name}` is unknown ({})", known.join(", "))
        })
}

/// Runs `recipe` with data and teacher from `cache`, writing packages and the report into `out`.
/// Each step is announced on stderr unless `quiet`; `progress` draws progress bars. A recipe
/// without steps only measures the teacher and leaves its manifest untouched.
pub fn run(
    recipe: &Recipe,
    cache: &Path,
    out: &Path,
    quiet: bool,
    progress: bool,
) -> Result<Outcome, RecipeError> {
    let write_error = |path: &Path, e: &dyn std::fmt::Display| RecipeError::Write {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(out).map_err(|e| write_error(out, &e))?;
    let teacher_manifest = cache.join(&recipe.teacher);
    let labelled = cache.join(&recipe.data.labelled);
    let teacher = TextPackage::open(&teacher_manifest)?;
    let held_out = HeldOut::new(&labelled, recipe.seed, recipe.data.test_limit)?;
    let other = match &recipe.data.other {
        Some(path) => Some(HeldOut::rated(&cache.join(path), recipe.data.test_limit)?),
        None => None,
    };
    let rows = |name: &str| out.join(format!("held-out-{name}.jsonl"));
    let say = |text: String| {
        if !quiet {
            eprintln!("{text}");
        }
    };
    say(format!(
        "measuring the teacher {}",
        teacher_manifest.display()
    ));
    let first = measure_text::measure(
        &teacher_manifest,
        &held_out,
        other.as_ref(),
        &recipe.measure,
        None,
        &rows("teacher"),
    )?;
    let reference = first.predictions.clone();
    let mut steps = vec![Step {
        name: "teacher",
        manifest: teacher_manifest.clone(),
        measured: first,
    }];
    let mut current = teacher_manifest.clone();
    let mut measure = |name: &'static str, manifest: PathBuf| -> Result<PathBuf, RecipeError> {
        say(format!("measuring {name}: {}", manifest.display()));
        let measured = measure_text::measure(
            &manifest,
            &held_out,
            other.as_ref(),
            &recipe.measure,
            Some(&reference),
            &rows(name),
        )?;
        steps.push(Step {
            name,
            manifest: manifest.clone(),
            measured,
        });
        Ok(manifest)
    };

    if let Some(plan) = &recipe.prune {
        say(format!("pruning: {plan}"));
        let name = format!("{}-pruned", recipe.name);
        let manifest =
            passes::prune::bert::prune_package(&current, plan, &out.join("1-prune"), &name)?;
        current = measure("prune", manifest)?;
    }
    if recipe.vocabulary {
        let texts = training_texts(recipe, cache)?;
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let name = format!("{}-vocabulary", recipe.name);
        let kept = passes::prune::vocab::prune_vocabulary(
            &current,
            &texts,
            recipe.vocabulary_min_count,
            &out.join("2-vocabulary"),
            &name,
        )?;
        say(format!(
            "vocabulary: kept {} of {} tokens",
            kept.after, kept.before
        ));
        current = measure("vocabulary", kept.manifest)?;
    }
    if let Some(d) = &recipe.distill {
        let dir = out.join("3-distill");
        let mut options =
            passes::distill::text::Options::new(&teacher_manifest, &current, &labelled, &dir);
        options.name = format!("{}-distilled", recipe.name);
        options.work = out.join("work");
        options.unlabelled = recipe.data.unlabelled.as_ref().map(|u| cache.join(u));
        let limits = recipe.data.limits();
        options.train_limit = limits.train;
        options.unlabelled_limit = limits.unlabelled;
        options.test_limit = limits.test;
        options.epochs = d.epochs;
        options.batch_size = d.batch_size;
        options.learning_rate = d.lr;
        options.temperature = d.temperature;
        options.alpha = d.alpha;
        options.augment = d.augment;
        options.thesaurus = d.thesaurus.as_ref().map(|t| cache.join(t));
        options.hidden_weight = d.hidden_weight;
        options.seed = recipe.seed;
        options.progress = progress;
        say(format!("distilling for {} epochs", d.epochs));
        let report = passes::distill::text::distill(&options)?;
        let manifest = report
            .manifest
            .expect("distill stops early only when asked to");
        current = measure("distill", manifest)?;
    }
    if let Some(q) = &recipe.quantize {
        say(format!("quantizing ({})", q.mode));
        let mut options =
            quantize::Options::new(mode(&q.mode).map_err(|reason| RecipeError::Recipe {
                path: PathBuf::from("[quantize]"),
                reason,
            })?);
        options.keep_float = q.keep_float.clone();
        let manifest = quantize_package(&current, &options, &out.join("4-quantize"), &recipe.name)?;
        current = measure("quantize", manifest)?;
    }

    let (report, plot) = (out.join("report.md"), out.join("report.svg"));
    let points: Vec<Point> = steps
        .iter()
        .map(|s| Point {
            name: s.name,
            latency_ms: s.measured.tract_ms,
            bytes: s.measured.bytes,
            metric: s.measured.accuracy,
        })
        .collect();
    crate::write_atomic(
        &report,
        markdown(recipe, &teacher, &steps, &points).as_bytes(),
    )
    .map_err(|e| write_error(&report, &e))?;
    crate::recipe::plot::draw(&points, "held-out accuracy", &plot)
        .map_err(|e| write_error(&plot, &e))?;
    if steps.len() > 1 {
        record_metrics(&current, &steps[steps.len() - 1].measured.metrics()).map_err(|reason| {
            RecipeError::Write {
                path: current.clone(),
                reason,
            }
        })?;
    }
    Ok(Outcome {
        steps,
        report,
        plot,
    })
}

/// The texts distillation trains on: Rotten Tomatoes' training split and the unlabelled texts.
fn training_texts(recipe: &Recipe, cache: &Path) -> Result<Vec<String>, RecipeError> {
    let corpus = crate::data::corpus::corpus(
        &cache.join(&recipe.data.labelled),
        recipe
            .data
            .unlabelled
            .as_ref()
            .map(|u| cache.join(u))
            .as_deref(),
        recipe.seed,
        recipe.data.limits(),
    )
    .map_err(PackageError::from)?;
    Ok(corpus
        .train
        .into_iter()
        .map(|e| e.text)
        .chain(corpus.unlabelled)
        .collect())
}

/// Writes a copy of the `text-classify` package at `manifest` into `out` with its graph
/// quantized; returns the new manifest.
pub fn quantize_package(
    manifest: &Path,
    options: &quantize::Options,
    out: &Path,
    name: &str,
) -> Result<PathBuf, RecipeError> {
    let package = TextPackage::open(manifest)?;
    let graph = crate::onnx::graph::Graph::load(&package.model).map_err(PackageError::from)?;
    let quantized = quantize::quantize(&graph.proto, options)?;
    let provenance = package.derived_provenance(format!(
        "quantize: {} int8, {} weights",
        options.mode.name(),
        quantized.weights.len()
    ));
    Ok(package.write_derived(
        out,
        name,
        format!("int8 ({}) of {}", options.mode.name(), manifest.display()),
        &quantized.model,
        provenance,
    )?)
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

fn percent(fraction: f64) -> String {
    format!("{:.2} %", fraction * 100.0)
}

fn markdown(recipe: &Recipe, teacher: &TextPackage, steps: &[Step], points: &[Point]) -> String {
    let m = &recipe.measure;
    let mut out = format!(
        "# {}\n\nTeacher `{}` (sha256 {}…). Latency at batch 1 × {} tokens: tract on one \
         thread with a plan for that shape (as the agent runs a single text), onnxruntime on {} \
         threads, median of {} runs. Accuracy and F1 (positive) on the held-out Rotten Tomatoes \
         split (seed {}, {} texts), agreement = same top class as the teacher.\n\n",
        recipe.name,
        recipe.teacher.display(),
        &teacher.sha256[..16],
        m.sequence,
        m.ort_threads,
        m.runs,
        recipe.seed,
        steps[0].measured.examples,
    );
    // Text of another kind gets a column of its own, named after its file.
    let other = recipe.data.other.as_ref().map(|p| {
        let name = p
            .file_name()
            .map_or("other".into(), |n| n.to_string_lossy());
        format!(" accuracy on {name} |")
    });
    let _ = writeln!(
        out,
        "| step | bytes | parameters | MACs | tract ms | ORT ms | accuracy (tract) | accuracy \
         (ORT) | F1 | agreement |{}\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|{}",
        other.as_deref().unwrap_or(""),
        if other.is_some() { "---:|" } else { "" },
    );
    for s in steps {
        let v = &s.measured;
        let ort = v.ort.as_ref();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2} | {} | {} | {} | {:.3} | {} |{}",
            s.name,
            v.bytes,
            v.parameters,
            v.macs
                .map_or("–".into(), |n| format!("{:.1} M", n as f64 / 1e6)),
            v.tract_ms,
            ort.map_or("–".into(), |o| format!("{:.2}", o.latency_ms)),
            percent(v.accuracy),
            ort.map_or("–".into(), |o| percent(o.accuracy)),
            v.f1,
            percent(v.agreement),
            v.other_accuracy
                .map_or(String::new(), |a| format!(" {} |", percent(a))),
        );
    }
    if let Some(reason) = steps.iter().find_map(|s| s.measured.ort_missing.clone()) {
        let _ = writeln!(out, "\nonnxruntime columns are empty: {reason}.");
    }
    let (t, s) = (&steps[0].measured, &steps[steps.len() - 1].measured);
    out.push_str("\n## Targets\n\n");
    let teacher_ort = t.ort.as_ref().map(|o| o.latency_ms);
    let speed = teacher_ort.map(|ms| ms / s.tract_ms);
    let drop = (t.accuracy - s.accuracy) * 100.0;
    let smaller = t.bytes as f64 / s.bytes as f64;
    let verdict = |ok: bool| if ok { "met" } else { "missed" };
    // The speed and size targets, for the last step and for the Pareto lines alike.
    let fast = |tract_ms: f64| teacher_ort.map(|ms| ms / tract_ms >= 3.0);
    let small = |bytes: u64| t.bytes as f64 / bytes as f64 >= 10.0;
    let _ = writeln!(
        out,
        "- speed: teacher ORT {} ms / student tract {:.2} ms = {} (target ≥ 3×): {}",
        teacher_ort.map_or("–".into(), |ms| format!("{ms:.2}")),
        s.tract_ms,
        speed.map_or("–".into(), |x| format!("{x:.2}×")),
        fast(s.tract_ms).map_or("not measured", verdict),
    );
    let _ = writeln!(
        out,
        "- accuracy: {} → {}, a drop of {drop:.2} points (target ≤ 1.0): {}",
        percent(t.accuracy),
        percent(s.accuracy),
        verdict(drop <= 1.0)
    );
    let _ = writeln!(
        out,
        "- size: {} → {} bytes, {smaller:.1}× smaller (target ≥ 10×): {}",
        t.bytes,
        s.bytes,
        verdict(small(s.bytes))
    );
    let targets = if teacher_ort.is_some() {
        "the speed and size targets"
    } else {
        "the size target (speed not measured)"
    };
    out.push_str(&crate::recipe::pareto::markdown(
        points,
        targets,
        |p| small(p.bytes) && fast(p.latency_ms).unwrap_or(true),
        percent,
    ));
    out.push_str("\n![accuracy against latency and size](report.svg)\n");
    out
}
