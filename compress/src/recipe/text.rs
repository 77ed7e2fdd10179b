//! `run RECIPE.toml`: prune → distill → quantize a text teacher in one command, measuring every
//! step the same way (size, MACs, tract and onnxruntime latency, held-out accuracy, agreement with
//! the teacher) and writing `report.md` and `report.svg` beside the packages.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::FileError;
use crate::eval::measure_text::{self, HeldOut, Measurement, Settings};
use crate::package::PackageError;
use crate::package::text::TextPackage;
use crate::passes;
use crate::passes::prune::bert::Plan;
use crate::passes::quantize;
use crate::recipe::RecipeError;
use crate::recipe::plot::Point;
use crate::recipe::step;

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
    pub distill: Option<passes::distill::text::Settings>,
    /// Quantization; absent: the student stays float.
    pub quantize: Option<quantize::Options>,
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

/// One measured step of a text recipe.
pub type Step = step::Step<Measurement>;

/// What a text recipe run produced.
pub type Outcome = step::Outcome<Measurement>;

impl Recipe {
    /// Reads and checks a recipe file.
    pub fn load(path: &Path) -> Result<Recipe, RecipeError> {
        step::load(path, |_| Ok(()))
    }
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
    std::fs::create_dir_all(out).map_err(|e| FileError::new(out, &e))?;
    let teacher_manifest = cache.join(&recipe.teacher);
    let labelled = cache.join(&recipe.data.labelled);
    let teacher = TextPackage::open(&teacher_manifest)?;
    let held_out = HeldOut::new(&labelled, recipe.seed, recipe.data.test_limit)?;
    let other = match &recipe.data.other {
        Some(path) => Some(HeldOut::rated(&cache.join(path), recipe.data.test_limit)?),
        None => None,
    };
    let rows = |name: &str| out.join(format!("held-out-{name}.jsonl"));
    step::say(
        quiet,
        &format!("measuring the teacher {}", teacher_manifest.display()),
    );
    let first = measure_text::measure(
        &teacher_manifest,
        &held_out,
        other.as_ref(),
        &recipe.measure,
        None,
        &rows("teacher"),
    )?;
    let reference = first.predictions.clone();
    let mut steps = step::Steps::new(&teacher_manifest, first, quiet, |name, manifest: &Path| {
        Ok(measure_text::measure(
            manifest,
            &held_out,
            other.as_ref(),
            &recipe.measure,
            Some(&reference),
            &rows(name),
        )?)
    });
    let mut current = teacher_manifest.clone();

    if let Some(plan) = &recipe.prune {
        steps.say(&format!("pruning: {plan}"));
        let name = format!("{}-pruned", recipe.name);
        let manifest =
            passes::prune::bert::prune_package(&current, plan, &out.join("1-prune"), &name)?;
        current = steps.record("prune", manifest)?;
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
        steps.say(&format!(
            "vocabulary: kept {} of {} tokens",
            kept.after, kept.before
        ));
        current = steps.record("vocabulary", kept.manifest)?;
    }
    if let Some(d) = &recipe.distill {
        let dir = out.join("3-distill");
        let mut options =
            passes::distill::text::Options::new(&teacher_manifest, &current, &labelled, &dir);
        options.run.name = format!("{}-distilled", recipe.name);
        options.run.work = Some(out.join("work"));
        options.unlabelled = recipe.data.unlabelled.as_ref().map(|u| cache.join(u));
        let limits = recipe.data.limits();
        options.train_limit = limits.train;
        options.unlabelled_limit = limits.unlabelled;
        options.test_limit = limits.test;
        options.settings = passes::distill::text::Settings {
            thesaurus: d.thesaurus.as_ref().map(|t| cache.join(t)),
            ..d.clone()
        };
        options.run.seed = recipe.seed;
        options.run.progress = progress;
        steps.say(&format!("distilling for {} epochs", d.epochs));
        let report = passes::distill::text::distill(&options)?;
        current = steps.distilled(report.trained)?;
    }
    if let Some(q) = &recipe.quantize {
        steps.say(&format!("quantizing ({})", q.mode.name()));
        let manifest =
            quantize::text::quantize_package(&current, q, &out.join("4-quantize"), &recipe.name)?;
        steps.record("quantize", manifest)?;
    }

    Ok(step::finish(
        steps.into_steps(),
        out,
        "held-out accuracy",
        |steps, points| markdown(recipe, &teacher, steps, points),
    )?)
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
        "{} accuracy (tract) | accuracy (ORT) | F1 | agreement |{}\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|{}",
        step::COST_HEADER,
        other.as_deref().unwrap_or(""),
        if other.is_some() { "---:|" } else { "" },
    );
    for s in steps {
        let v = &s.measured;
        let _ = writeln!(
            out,
            "{} {} | {} | {:.3} | {} |{}",
            step::cost_cells(s),
            percent(v.accuracy),
            v.ort_accuracy.map_or("–".into(), percent),
            v.f1,
            percent(v.agreement),
            v.other_accuracy
                .map_or(String::new(), |a| format!(" {} |", percent(a))),
        );
    }
    out.push_str(&step::speed_section(steps));
    let (t, s) = (&steps[0].measured, &steps[steps.len() - 1].measured);
    let drop = (t.accuracy - s.accuracy) * 100.0;
    let smaller = t.cost.bytes as f64 / s.cost.bytes as f64;
    // The size target, for the last step and for the Pareto lines alike.
    let small = |bytes: u64| t.cost.bytes as f64 / bytes as f64 >= 10.0;
    let _ = writeln!(
        out,
        "- accuracy: {} → {}, a drop of {drop:.2} points (target ≤ 1.0): {}",
        percent(t.accuracy),
        percent(s.accuracy),
        step::verdict(drop <= 1.0)
    );
    let _ = writeln!(
        out,
        "- size: {} → {} bytes, {smaller:.1}× smaller (target ≥ 10×): {}",
        t.cost.bytes,
        s.cost.bytes,
        step::verdict(small(s.cost.bytes))
    );
    out.push_str(&step::closing_section(
        t,
        points,
        [
            "the speed and size targets",
            "the size target (speed not measured)",
        ],
        |p| small(p.bytes) && step::fast(t, p.latency_ms).unwrap_or(true),
        percent,
        "accuracy",
    ));
    out
}
