//! `eval`: a package scored on what it never saw, by its family: a text-classify package on
//! held-out reviews or human-rated texts, a detection package on a rendered-text set or photos.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Parser;
use edgemass_compress::eval;

use super::family::{Family, Flags, Form, Raw, dispatch};
use edgemass_compress::data::{IMAGE_EXTENSIONS, files};

/// `eval` of a text-classify package (`eval-text`).
#[derive(Parser)]
pub struct EvalText {
    /// The package manifest (NAME.model.toml).
    #[arg(long)]
    model: PathBuf,
    /// rotten_tomatoes_corpus_full.csv.bz2 (scored on its held-out split), or one of VADER's
    /// human-rated sets, data/vader/*_GroundTruth.txt (scored whole, near-neutral texts left
    /// out).
    #[arg(long)]
    data: PathBuf,
    /// Seed of the 80/20 split (as given to train-text).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Score only the first N held-out examples.
    #[arg(long)]
    limit: Option<usize>,
}

/// Runs `eval` with the flags of the model's family.
pub fn run(raw: Raw) -> anyhow::Result<String> {
    dispatch(
        &raw,
        "eval",
        "model",
        &[
            Form::of::<EvalText>(&[Family::Text], "text-classify packages"),
            Form::of::<EvalDetect>(&[Family::Detect], "detection packages"),
        ],
    )
}

impl Flags for EvalText {
    fn run(self) -> anyhow::Result<String> {
        let e = eval::text::evaluate(&self.model, &self.data, self.seed, self.limit)?;
        Ok(format!(
            "{}: {:.2} % of {} held-out texts right (tract)",
            self.model.display(),
            e.accuracy * 100.0,
            e.examples
        ))
    }
}

/// `eval` of a detection package (`eval-detect`).
#[derive(Parser)]
pub struct EvalDetect {
    /// The package manifest to score.
    #[arg(long)]
    model: PathBuf,
    /// A directory written by render-text: mAP@0.5 against its true boxes.
    #[arg(long, required_unless_present = "images")]
    data: Option<PathBuf>,
    /// Images without boxes (files or directories): mAP@0.5 against the teacher's boxes only.
    #[arg(long, num_args = 1.., requires = "teacher")]
    images: Vec<PathBuf>,
    /// The teacher's manifest: also report agreement with its boxes.
    #[arg(long)]
    teacher: Option<PathBuf>,
    /// Score only the first N images.
    #[arg(long)]
    limit: Option<usize>,
}

impl Flags for EvalDetect {
    fn run(self) -> anyhow::Result<String> {
        detect(&self)
    }
}

/// Scores a detection package on rendered-text truth, and against its teacher when given one.
fn detect(args: &EvalDetect) -> anyhow::Result<String> {
    use edgemass_compress::eval::detect as ev;
    let (mut images, mut truth) = (files(&args.images, IMAGE_EXTENSIONS)?, None);
    if let Some(data) = &args.data {
        let set = edgemass_compress::data::render_text::read_labels(data)?;
        images = set.iter().map(|l| data.join(&l.image)).collect();
        truth = Some(ev::truth_of(&set));
    }
    let limit = args.limit.unwrap_or(images.len()).min(images.len());
    images.truncate(limit);
    let progress = std::io::stderr().is_terminal();
    let run = ev::detect_all(&args.model, &images, progress)?;
    let mut lines = vec![format!(
        "{}: {} images, tract {:.1} ms per image",
        args.model.display(),
        images.len(),
        run.inference.as_secs_f64() * 1e3
    )];
    let mut map = None;
    if let Some(truth) = truth.as_mut() {
        truth.truncate(limit);
        let m = ev::mean_average_precision(&run.detections, truth, ev::IOU).unwrap_or(0.0);
        let (p, r) = ev::precision_recall(&run.detections, truth, run.score_threshold, ev::IOU);
        lines.push(format!(
            "mAP@0.5 {m:.4} against {} true boxes; at score {:.2}: precision {p:.3}, recall {r:.3}",
            truth.iter().map(Vec::len).sum::<usize>(),
            run.score_threshold
        ));
        map = Some(m);
    }
    if let Some(teacher) = &args.teacher {
        let reference = ev::detect_all(teacher, &images, progress)?;
        let theirs = ev::as_truth(&reference.detections, reference.score_threshold);
        let agreement =
            ev::mean_average_precision(&run.detections, &theirs, ev::IOU).unwrap_or(0.0);
        lines.push(format!(
            "mAP@0.5 {agreement:.4} against the {} boxes of the teacher {} (tract {:.1} ms per image)",
            theirs.iter().map(Vec::len).sum::<usize>(),
            teacher.display(),
            reference.inference.as_secs_f64() * 1e3
        ));
        if let (Some(m), Some(truth)) = (map, &truth) {
            let t =
                ev::mean_average_precision(&reference.detections, truth, ev::IOU).unwrap_or(0.0);
            lines.push(format!(
                "teacher mAP@0.5 {t:.4} against the true boxes: the student has {:.1} % of it",
                100.0 * m / t.max(1e-9)
            ));
        }
    }
    Ok(lines.join("\n"))
}
