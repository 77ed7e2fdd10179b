//! `distill`: a student trained to imitate its teacher (knowledge distillation in candle), by the
//! student's family: a text-classify package on texts, a detection package on rendered-text
//! images.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Parser;
use edgemass_compress::passes::distill::{detect, text};
use edgemass_compress::train::scaffold::RunControl;

use super::family::{Family, FamilyHelp, Raw, without_model};

/// The flags every distillation takes.
#[derive(clap::Args)]
pub struct Common {
    /// The teacher's manifest.
    #[arg(long)]
    teacher: PathBuf,
    /// The student's manifest (e.g. written by `prune`).
    #[arg(long)]
    student: PathBuf,
    /// Package directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Package (model) name.
    #[arg(long, default_value = "student")]
    name: String,
    /// Directory for the teacher's outputs cache and the checkpoints (default: OUT/work).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Seed of the data split and every shuffle and crop.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    control: RunControl,
}

/// `distill` for a text-classify student.
#[derive(Parser)]
pub struct Text {
    #[command(flatten)]
    common: Common,
    /// rotten_tomatoes_corpus_full.csv.bz2 (labelled; split 80/20 with --seed).
    #[arg(long)]
    data: PathBuf,
    /// guardian_headlines.csv.bz2 (unlabelled texts for the teacher to label).
    #[arg(long)]
    unlabelled: Option<PathBuf>,
    /// Use only the first N labelled training texts.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Use only the first N unlabelled texts.
    #[arg(long)]
    unlabelled_limit: Option<usize>,
    /// Measure on only the first N held-out texts.
    #[arg(long)]
    test_limit: Option<usize>,
    #[command(flatten)]
    settings: text::Settings,
}

/// `distill` for a detection student (`distill-detect`).
#[derive(Parser)]
pub struct Detect {
    #[command(flatten)]
    common: Common,
    /// Rendered-text sets to train on (directories written by render-text; repeatable).
    #[arg(long = "train", required = true)]
    train: Vec<PathBuf>,
    /// A rendered-text set for the held-out loss.
    #[arg(long)]
    held_out: PathBuf,
    /// Use only the first N training images.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Measure on only the first N held-out images.
    #[arg(long, default_value_t = 20)]
    held_out_limit: usize,
    #[command(flatten)]
    settings: detect::Settings,
}

/// Runs `distill` with the flags of the student's family.
pub fn run(raw: Raw) -> anyhow::Result<String> {
    let Some(student) = raw.flag("student") else {
        return without_model(
            &raw,
            "distill",
            "student",
            vec![
                FamilyHelp::of::<Text>("text-classify students"),
                FamilyHelp::of::<Detect>("detection students"),
            ],
        );
    };
    match Family::of(&student)? {
        Family::Text => distill_text(raw.parse("distill")),
        Family::Detect => distill_detect(raw.parse("distill")),
        Family::Onnx => anyhow::bail!(
            "{}: distill trains packages; give the student's manifest",
            student.display()
        ),
    }
}

fn distill_text(args: Text) -> anyhow::Result<String> {
    let c = args.common;
    let mut options = text::Options::new(&c.teacher, &c.student, &args.data, &c.out);
    options.unlabelled = args.unlabelled;
    options.name = c.name;
    if let Some(work) = c.work {
        options.work = work;
    }
    options.seed = c.seed;
    options.train_limit = args.train_limit;
    options.unlabelled_limit = args.unlabelled_limit;
    options.test_limit = args.test_limit;
    options.settings = args.settings;
    options.control = c.control;
    options.progress = std::io::stderr().is_terminal();
    let r = text::distill(&options)?;
    Ok(format!(
        "distilled on {} texts ({} labelled){}: held-out loss {:.4} -> {:.4}, accuracy {:.2} % -> \
         {:.2} %, teacher agreement {:.2} %, {} steps, {:.0} s\n{}",
        r.examples,
        r.labelled,
        resumed(r.resumed_from),
        r.held_out_loss.0,
        r.held_out_loss.1,
        r.accuracy.0 * 100.0,
        r.accuracy.1 * 100.0,
        r.agreement * 100.0,
        r.steps,
        r.seconds,
        match &r.manifest {
            Some(m) => format!("wrote {}", m.display()),
            None => STOPPED.into(),
        }
    ))
}

/// Runs `distill` for a detection student.
pub fn distill_detect(args: Detect) -> anyhow::Result<String> {
    let c = args.common;
    let mut o = detect::Options::new(&c.teacher, &c.student, args.train, &args.held_out, &c.out);
    o.name = c.name;
    if let Some(work) = c.work {
        o.work = work;
    }
    o.seed = c.seed;
    o.train_limit = args.train_limit;
    o.held_out_limit = Some(args.held_out_limit);
    o.settings = args.settings;
    o.control = c.control;
    o.progress = std::io::stderr().is_terminal();
    let r = detect::distill(&o)?;
    Ok(format!(
        "distilled on {} images{}: held-out loss {:.4} -> {:.4} on {} images, {} steps, {:.0} s\n{}",
        r.images,
        resumed(r.resumed_from),
        r.held_out_loss.0,
        r.held_out_loss.1,
        r.held_out,
        r.steps,
        r.seconds,
        match (&r.manifest, &r.decoder) {
            (Some(m), Some(t)) => format!(
                "decoder fitted: threshold {:.2}, unclip ratio {:.2} (mAP@0.5 {:.4} -> {:.4} on \
                 training images)\nwrote {}",
                t.threshold,
                t.unclip_ratio,
                t.before,
                t.after,
                m.display()
            ),
            (Some(m), None) => format!("wrote {}", m.display()),
            _ => STOPPED.into(),
        }
    ))
}

/// What a run stopped by `--stop-after` says.
const STOPPED: &str = "stopped as asked; run the same command again to resume";

fn resumed(step: Option<usize>) -> String {
    step.map_or(String::new(), |s| format!(", resumed at step {s}"))
}
