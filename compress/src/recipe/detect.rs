//! `run RECIPE.toml` for a detection teacher (`task = "detect"`): render the training and test
//! images at the teacher's input size, then downscale → prune → distill → quantize, measuring every step the same way
//! ([`crate::eval::measure_detect`]) and writing `report.md` and `report.svg` beside the packages.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::FileError;
use crate::data::render_text;
use crate::eval::cost::MeasureError;
use crate::eval::detect::{IOU, mean_average_precision, truth_of};
use crate::eval::measure_detect::{self, Measurement, Sets, Settings};
use crate::passes;
use crate::passes::downscale::downscale_package;
use crate::passes::prune::conv::{Plan, prune_package};
use crate::recipe::RecipeError;
use crate::recipe::plot::Point;
use crate::recipe::step;

/// A detection recipe file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectRecipe {
    /// `detect`.
    pub task: String,
    /// Name of the final student package.
    pub name: String,
    /// The teacher's manifest, relative to the recipe file.
    pub teacher: PathBuf,
    /// Where the images come from.
    pub data: Data,
    /// Run the network at 1/`factor` resolution inside.
    pub downscale: Option<Downscale>,
    /// Channel pruning.
    pub prune: Option<Plan>,
    /// Distillation.
    pub distill: Option<passes::distill::detect::Settings>,
    /// Static int8.
    pub quantize: Option<passes::quantize::detect::Settings>,
    /// How steps are measured.
    #[serde(default)]
    pub measure: Settings,
}

/// The `[data]` table; paths are relative to the model cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Data {
    /// Photos the training images are drawn on.
    pub backgrounds: PathBuf,
    /// Held-out photos: the test images are drawn on them, and the teacher's boxes on them
    /// untouched give the agreement metric.
    pub photos: PathBuf,
    /// `guardian_headlines.csv.bz2`, the words.
    pub words: PathBuf,
    /// Training images to render.
    pub train_images: usize,
    /// Test images to render.
    pub test_images: usize,
    /// Seed of the rendering.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_seed() -> u64 {
    42
}

/// The `[downscale]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Downscale {
    /// Resolution divisor.
    pub factor: usize,
}

/// One measured step of a detection recipe.
pub type Step = step::Step<Measurement>;

/// What a detection recipe run produced.
pub type Outcome = step::Outcome<Measurement>;

impl DetectRecipe {
    /// Reads and checks a recipe; the teacher path becomes absolute.
    pub fn load(path: &Path) -> Result<DetectRecipe, RecipeError> {
        step::load(path, |recipe: &mut DetectRecipe| {
            if recipe.task != "detect" {
                return Err(format!("task `{}` is not `detect`", recipe.task));
            }
            if recipe.data.train_images == 0 || recipe.data.test_images == 0 {
                return Err("[data] needs at least one training and one test image".into());
            }
            recipe.teacher = path
                .parent()
                .unwrap_or(Path::new("."))
                .join(&recipe.teacher);
            Ok(())
        })
    }
}

/// Whether the recipe text is a detection recipe (`task = "detect"`).
pub fn is_detect(text: &str) -> bool {
    text.parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get("task")?.as_str().map(|s| s == "detect"))
        .unwrap_or(false)
}

/// Runs `recipe` with data from `cache`, writing everything into `out`.
pub fn run(
    recipe: &DetectRecipe,
    cache: &Path,
    out: &Path,
    quiet: bool,
    progress: bool,
) -> Result<Outcome, RecipeError> {
    std::fs::create_dir_all(out).map_err(|e| FileError::new(out, &e))?;
    let d = &recipe.data;
    let input = crate::package::detect::DetectPackage::open(&recipe.teacher)
        .map_err(MeasureError::from)?
        .manifest
        .input;
    let (train_dir, test_dir) = (out.join("data/train"), out.join("data/test"));
    let headlines = crate::data::corpus::guardian_headlines(&cache.join(&d.words))?;
    let words = render_text::words(&headlines);
    for (dir, photos, count, seed) in [
        (&train_dir, &d.backgrounds, d.train_images, d.seed),
        (&test_dir, &d.photos, d.test_images, d.seed + 1),
    ] {
        if render_text::read_labels(dir).is_ok_and(|l| l.len() == count) {
            continue;
        }
        step::say(
            quiet,
            &format!("rendering {count} images into {}", dir.display()),
        );
        render_text::render(&render_text::Options {
            photos: crate::data::files(&[cache.join(photos)], crate::data::IMAGE_EXTENSIONS)?,
            fonts: crate::data::render_text::DEJAVU_CORE
                .iter()
                .map(PathBuf::from)
                .collect(),
            words: words.clone(),
            out: dir.clone(),
            count,
            width: input.width,
            height: input.height,
            lines: (2, 6),
            text_px: (20.0, (input.height as f32 / 5.0).clamp(20.0, 64.0)),
            seed,
            progress,
        })?;
    }
    let test = render_text::read_labels(&test_dir)?;
    let mut sets = Sets {
        rendered: test.iter().map(|l| test_dir.join(&l.image)).collect(),
        truth: truth_of(&test),
        photos: crate::data::files(&[cache.join(&d.photos)], crate::data::IMAGE_EXTENSIONS)?,
        teacher_boxes: None,
    };
    let scratch = out.join("work");
    let measure = |manifest: &Path, sets: &Sets| {
        measure_detect::measure(manifest, sets, &recipe.measure, &scratch, progress)
    };
    step::say(
        quiet,
        &format!("measuring the teacher {}", recipe.teacher.display()),
    );
    let mut first = measure(&recipe.teacher, &sets)?;
    let reference = measure_detect::reference_boxes(&first);
    first.agreement = mean_average_precision(&first.photo_detections, &reference, IOU);
    sets.teacher_boxes = Some(reference);
    let mut steps = step::Steps::new(&recipe.teacher, first, quiet, |_, manifest: &Path| {
        Ok(measure(manifest, &sets)?)
    });
    let mut current = recipe.teacher.clone();
    if let Some(ds) = &recipe.downscale {
        steps.say(&format!("downscaling by {}", ds.factor));
        let name = format!("{}-downscaled", recipe.name);
        let m = downscale_package(&current, ds.factor, &out.join("1-downscale"), &name)?;
        current = steps.record("downscale", m)?;
    }
    if let Some(plan) = &recipe.prune {
        steps.say(&format!("pruning: {plan}"));
        let name = format!("{}-pruned", recipe.name);
        let (_, m) = prune_package(&current, &[], plan, &out.join("2-prune"), &name)?;
        current = steps.record("prune", m)?;
    }
    if let Some(step) = &recipe.distill {
        let dir = out.join("3-distill");
        let mut o = passes::distill::detect::Options::new(
            &recipe.teacher,
            &current,
            vec![train_dir.clone()],
            &test_dir,
            &dir,
        );
        o.run.name = format!("{}-distilled", recipe.name);
        o.run.work = Some(scratch.join("distill"));
        o.run.progress = progress;
        o.settings = step.clone();
        o.held_out_limit = Some(20);
        steps.say(&format!("distilling for {} epochs", step.epochs));
        let report = passes::distill::detect::distill(&o)?;
        current = steps.distilled(report.trained)?;
    }
    if let Some(q) = &recipe.quantize {
        steps.say(&format!("quantizing ({} calibration)", q.method.name()));
        let train = render_text::read_labels(&train_dir)?;
        let options = passes::quantize::detect::Options {
            calibration: train.iter().map(|l| train_dir.join(&l.image)).collect(),
            settings: q.clone(),
        };
        let r = passes::quantize::detect::quantize_package(
            &current,
            &options,
            &out.join("4-quantize"),
            &recipe.name,
        )?;
        steps.say(&r.to_text());
        steps.record("quantize", r.manifest)?;
    }
    Ok(step::finish(
        steps.into_steps(),
        out,
        "mAP@0.5 (rendered text)",
        |steps, points| markdown(recipe, steps, points),
    )?)
}

fn markdown(recipe: &DetectRecipe, steps: &[Step], points: &[Point]) -> String {
    let m = &recipe.measure;
    let t = &steps[0].measured;
    let mut out = format!(
        "# {}\n\nTeacher `{}`. Every step runs at the teacher's input size. Latency: tract on one \
         thread, onnxruntime on {} threads, median of {} runs. mAP@0.5 on {} rendered-text images \
         drawn on held-out photos (true boxes known); agreement = mAP@0.5 against the teacher's \
         own boxes on the {} untouched photos.\n\n",
        recipe.name,
        recipe.teacher.display(),
        m.ort_threads,
        m.runs,
        recipe.data.test_images,
        steps[0].measured.photo_detections.len(),
    );
    let _ = writeln!(
        out,
        "{} mAP@0.5 (tract) | mAP@0.5 (ORT) | precision / recall | agreement |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        step::COST_HEADER
    );
    for s in steps {
        let v = &s.measured;
        let _ = writeln!(
            out,
            "{} {:.4} | {} | {:.3} / {:.3} | {} |",
            step::cost_cells(s),
            v.map,
            v.ort_map.map_or("–".into(), |m| format!("{m:.4}")),
            v.precision_recall.0,
            v.precision_recall.1,
            v.agreement.map_or("–".into(), |a| format!("{a:.4}")),
        );
    }
    out.push_str(&step::speed_section(steps));
    let s = &steps[steps.len() - 1].measured;
    let ratio = s.map / t.map.max(1e-9);
    let _ = writeln!(
        out,
        "- mAP@0.5: teacher {:.4}, student {:.4} = {:.1} % of the teacher's (target ≥ 95 %): {}",
        t.map,
        s.map,
        ratio * 100.0,
        step::verdict(ratio >= 0.95)
    );
    let map = |m: f64| format!("mAP@0.5 {m:.4}");
    out.push_str(&step::closing_section(
        t,
        points,
        ["the speed target", "the speed target (not measured)"],
        |p| step::fast(t, p.latency_ms).unwrap_or(false),
        map,
        "mAP",
    ));
    out
}
