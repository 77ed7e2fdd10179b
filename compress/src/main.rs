//! The `edgemass-compress` command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::io::{IsTerminal, Write};

use edgemass_compress::onnx::graph::Graph;
use edgemass_compress::onnx::inspect::{self, InputShape};
use edgemass_compress::passes::prune::bert::Criterion;
use edgemass_compress::passes::quantize::calibrate::Method;
use edgemass_compress::{bert, eval, package, passes, recipe, train};

#[derive(Parser)]
#[command(
    name = "edgemass-compress",
    version,
    about = "Compress ONNX teachers into students for edgemass"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show parameters, size, operators, inputs, outputs and multiply-accumulates (MACs) of an
    /// ONNX model.
    Inspect {
        /// The ONNX file.
        model: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Fix an input's shape for counting MACs, e.g. images=1,3,320,320 (repeatable; symbolic
        /// batch dims default to 1, other symbolic dims must be given).
        #[arg(long = "input", value_name = "NAME=D1,D2,...")]
        inputs: Vec<InputShape>,
        /// How many nodes to list by MACs.
        #[arg(long, default_value_t = 15)]
        top: usize,
        /// Draw the graph into FILE: Graphviz DOT, or SVG when FILE ends in .svg (needs
        /// graphviz's `dot` on PATH).
        #[arg(long, value_name = "FILE")]
        dot: Option<PathBuf>,
        /// Also time every node in tract over RUNS runs (one thread) and show where the time goes.
        #[arg(long, value_name = "RUNS", conflicts_with = "json")]
        profile: Option<usize>,
    },
    /// Draw lines of real words with real fonts onto photos: text detection images whose true
    /// boxes are known exactly (JPEGs and labels.jsonl).
    RenderText(RenderText),
    /// Score a detection package on a rendered-text set (mAP@0.5 against the true boxes) and,
    /// with --teacher, against the teacher's boxes on the same images.
    EvalDetect(EvalDetect),
    /// Train a Rotten Tomatoes sentiment classifier on a BERT-family checkpoint and write a
    /// text-classify package.
    TrainText(TrainText),
    /// Score a Rotten Tomatoes text-classify package with tract on text it never saw.
    EvalText {
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
    },
    /// Build an ONNX model from a checkpoint in another format.
    #[command(subcommand)]
    Import(Import),
    /// Remove layers, attention heads and feed-forward neurons from a text-classify package.
    Prune(Prune),
    /// Remove convolution channels (with everything tied to them) from a detection package or an
    /// ONNX file.
    PruneConv(PruneConv),
    /// Run a fully convolutional detector (DBNet) at 1/FACTOR of its input resolution inside:
    /// pooling folded into the first convolution, upsampling into the last transposed one.
    Downscale {
        /// A detection package manifest or an ONNX file.
        #[arg(long)]
        model: PathBuf,
        /// Package directory to write (for a manifest), or the ONNX file to write.
        #[arg(long)]
        out: PathBuf,
        /// Package (model) name.
        #[arg(long, default_value = "downscaled")]
        name: String,
        /// Resolution divisor inside the network.
        #[arg(long, default_value_t = 2)]
        factor: usize,
    },
    /// Fit a DBNet package's binarisation threshold and unclip ratio to its own maps on a
    /// rendered-text set (best mAP@0.5), and write them into its manifest.
    TuneDecoder {
        /// The package manifest (rewritten in place).
        #[arg(long)]
        model: PathBuf,
        /// A directory written by render-text (use training images, not the test set).
        #[arg(long)]
        data: PathBuf,
        /// Use only the first N images.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Train a detection student (DBNet) to reproduce its teacher's probability maps on
    /// rendered-text images (knowledge distillation, candle).
    DistillDetect(DistillDetect),
    /// Train a student package to imitate a teacher package (knowledge distillation, candle).
    Distill(Distill),
    /// Store weights as int8 (optionally with integer MatMuls), check the outputs against the
    /// float model in tract, and write the quantized model.
    Quantize(QuantizeArgs),
    /// Quantize a detection package to int8 with activation ranges calibrated on images: every
    /// form is checked against the float model and timed in tract, the fastest correct one is
    /// shipped, and the portable QDQ form is written beside it.
    QuantizeDetect(QuantizeDetect),
    /// Write a package as a Triton model repository (NAME/1/model.onnx and NAME/config.pbtxt),
    /// for a GPU host running Triton or for `edgemass serve`.
    ExportTriton {
        /// The package manifest (NAME.model.toml).
        #[arg(long)]
        model: PathBuf,
        /// The repository directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// max_batch_size of a model with a batch dimension (0: no batching).
        #[arg(long, default_value_t = 8)]
        max_batch: usize,
        /// dynamic_batching max_queue_delay_microseconds.
        #[arg(long, default_value_t = 2000)]
        max_queue_delay_us: u64,
    },
    /// Run a recipe: prune, distill and quantize a teacher, measuring every step into report.md.
    Run {
        /// The recipe (examples in compress/recipes/).
        recipe: PathBuf,
        /// Output directory for the step packages and the report (default: out/NAME).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Model cache holding the teacher and the data (default: $EDGEMASS_MODEL_CACHE, else
        /// models/cache).
        #[arg(long)]
        cache: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct Prune {
    /// The package manifest to prune (NAME.model.toml).
    #[arg(long)]
    model: PathBuf,
    /// Package directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Package (model) name.
    #[arg(long, default_value = "pruned")]
    name: String,
    /// Positions of the layers to keep, in run order (e.g. 0,2,4).
    #[arg(long, value_delimiter = ',')]
    layers: Option<Vec<usize>>,
    /// Attention heads to keep in every layer.
    #[arg(long)]
    heads: Option<usize>,
    /// Fraction of feed-forward neurons to keep, in (0, 1].
    #[arg(long)]
    ffn: Option<f64>,
    /// Rank feed-forward neurons across all layers instead of per layer.
    #[arg(long)]
    ffn_global: bool,
    /// Importance measure.
    #[arg(long, value_enum, default_value_t = Criterion::L2)]
    criterion: Criterion,
}

#[derive(clap::Args)]
struct RenderText {
    /// Background photos: files or directories of .jpg/.png files.
    #[arg(long, required = true, num_args = 1..)]
    photos: Vec<PathBuf>,
    /// guardian_headlines.csv.bz2: where the words come from.
    #[arg(long)]
    words: PathBuf,
    /// TrueType fonts: files or directories of .ttf files (default: the six fonts of Debian's
    /// fonts-dejavu-core).
    #[arg(long, num_args = 1.., default_values = edgemass_compress::data::render_text::DEJAVU_CORE)]
    fonts: Vec<PathBuf>,
    /// Directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Images to render.
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// Image size, WIDTHxHEIGHT.
    #[arg(long, default_value = "960x960", value_parser = parse_size)]
    size: (u32, u32),
    /// Lines of text per image, MIN..MAX.
    #[arg(long, default_value = "2..6", value_parser = parse_range::<usize>)]
    lines: (usize, usize),
    /// Font pixel size, MIN..MAX.
    #[arg(long, default_value = "20..64", value_parser = parse_range::<f32>)]
    text_px: (f32, f32),
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(clap::Args)]
struct EvalDetect {
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

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    s.split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .ok_or_else(|| format!("`{s}` is not WIDTHxHEIGHT"))
}

fn parse_range<T: std::str::FromStr>(s: &str) -> Result<(T, T), String> {
    s.split_once("..")
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .ok_or_else(|| format!("`{s}` is not MIN..MAX"))
}

/// Files under `paths` (directories are listed, in name order) whose extension is in `exts`.
fn files(paths: &[PathBuf], exts: &[&str]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut listed: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| anyhow::anyhow!("cannot list {}: {e}", p.display()))?
                .filter_map(|e| Some(e.ok()?.path()))
                .filter(|f| {
                    f.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| exts.contains(&e.to_ascii_lowercase().as_str()))
                })
                .collect();
            listed.sort();
            out.extend(listed);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn render_text(args: &RenderText) -> anyhow::Result<String> {
    use edgemass_compress::data::render_text::{self, Options};
    let headlines = edgemass_compress::data::corpus::guardian_headlines(&args.words)?;
    let options = Options {
        photos: files(&args.photos, &["jpg", "jpeg", "png"])?,
        fonts: files(&args.fonts, &["ttf", "otf"])?,
        words: render_text::words(&headlines),
        out: args.out.clone(),
        count: args.count,
        width: args.size.0,
        height: args.size.1,
        lines: args.lines,
        text_px: args.text_px,
        seed: args.seed,
        progress: std::io::stderr().is_terminal(),
    };
    let r = render_text::render(&options)?;
    Ok(format!(
        "rendered {} images with {} lines of text from {} photos and {} fonts\nwrote {}",
        r.images,
        r.boxes,
        options.photos.len(),
        options.fonts.len(),
        r.labels.display()
    ))
}

fn eval_detect(args: &EvalDetect) -> anyhow::Result<String> {
    use edgemass_compress::eval::detect as ev;
    let (mut images, mut truth) = (files(&args.images, &["jpg", "jpeg", "png"])?, None);
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

#[derive(clap::Args)]
struct PruneConv {
    /// A detection package manifest (NAME.model.toml) or an ONNX file.
    #[arg(long)]
    model: PathBuf,
    /// Package directory to write (for a manifest), or the ONNX file to write.
    #[arg(long)]
    out: PathBuf,
    /// Package (model) name.
    #[arg(long, default_value = "pruned")]
    name: String,
    /// Fraction of every group's channels to keep, in (0, 1].
    #[arg(long)]
    keep: f64,
    /// Rank channels across all groups instead of group by group.
    #[arg(long)]
    global: bool,
    /// A different fraction for the groups a convolution makes, NODE=FRACTION (NODE: part of
    /// its name; repeatable; the first match wins).
    #[arg(long = "layer", value_name = "NODE=FRACTION")]
    layers: Vec<String>,
    /// Kept channel counts are rounded up to a multiple of this.
    #[arg(long, default_value_t = edgemass_compress::passes::prune::conv::DEFAULT_MULTIPLE)]
    multiple: usize,
    /// Importance measure.
    #[arg(long, value_enum, default_value_t = Criterion::L2)]
    criterion: Criterion,
    /// Input shape for the analysis, e.g. x=1,3,960,960 (default: a package's input size, or
    /// the file's fixed dims).
    #[arg(long = "input", value_name = "NAME=D1,D2,...")]
    inputs: Vec<InputShape>,
}

#[derive(clap::Args)]
struct DistillDetect {
    /// The teacher's manifest.
    #[arg(long)]
    teacher: PathBuf,
    /// The student's manifest (e.g. written by prune-conv).
    #[arg(long)]
    student: PathBuf,
    /// Rendered-text sets to train on (directories written by render-text; repeatable).
    #[arg(long = "train", required = true)]
    train: Vec<PathBuf>,
    /// A rendered-text set for the held-out loss.
    #[arg(long)]
    held_out: PathBuf,
    /// Package directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Package (model) name.
    #[arg(long, default_value = "student")]
    name: String,
    /// Directory for the teacher-map cache and checkpoints (default: OUT/work).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Passes over the training images.
    #[arg(long, default_value_t = 4)]
    epochs: usize,
    /// Crops per step.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Side of the square training crops in input pixels (a multiple of 64).
    #[arg(long, default_value_t = 320)]
    crop: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Softening temperature T.
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Weight of the cross-entropy against the true boxes.
    #[arg(long, default_value_t = 0.5)]
    alpha: f64,
    /// Seed of the shuffles and crops.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Use only the first N training images.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Measure on only the first N held-out images.
    #[arg(long, default_value_t = 20)]
    held_out_limit: usize,
    /// Steps between checkpoints (0: none).
    #[arg(long, default_value_t = 100)]
    checkpoint_every: usize,
    /// Start over instead of resuming from a checkpoint in the work directory.
    #[arg(long)]
    restart: bool,
    /// Stop after this many steps in total and keep the checkpoint; run again to resume.
    #[arg(long)]
    stop_after: Option<usize>,
}

#[derive(clap::Args)]
struct Distill {
    /// The teacher's manifest.
    #[arg(long)]
    teacher: PathBuf,
    /// The student's manifest (e.g. written by `prune`).
    #[arg(long)]
    student: PathBuf,
    /// rotten_tomatoes_corpus_full.csv.bz2 (labelled; split 80/20 with --seed).
    #[arg(long)]
    data: PathBuf,
    /// guardian_headlines.csv.bz2 (unlabelled texts for the teacher to label).
    #[arg(long)]
    unlabelled: Option<PathBuf>,
    /// Package directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Package (model) name.
    #[arg(long, default_value = "student")]
    name: String,
    /// Directory for the teacher-logit cache and checkpoints (default: OUT/work).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Passes over the training texts.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Texts per step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    /// Softening temperature T.
    #[arg(long, default_value_t = 2.0)]
    temperature: f64,
    /// Weight of the cross-entropy on labelled texts.
    #[arg(long, default_value_t = 0.5)]
    alpha: f64,
    /// Variants of every labelled training text (words dropped, swapped, cut to a span) for the
    /// teacher to label, as extra unlabelled texts.
    #[arg(long, default_value_t = 0)]
    augment: usize,
    /// roget.csv.bz2: the variants also swap words for others of their thesaurus category.
    #[arg(long)]
    thesaurus: Option<PathBuf>,
    /// Weight of the mean squared error between the student's and the teacher's pooled vectors
    /// (0: logits only; the hidden sizes must match).
    #[arg(long, default_value_t = 0.0)]
    hidden_weight: f64,
    /// Seed of the split and the shuffles.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Use only the first N labelled training texts.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Use only the first N unlabelled texts.
    #[arg(long)]
    unlabelled_limit: Option<usize>,
    /// Measure on only the first N held-out texts.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Steps between checkpoints (0: none).
    #[arg(long, default_value_t = 200)]
    checkpoint_every: usize,
    /// Start over instead of resuming from a checkpoint in the work directory.
    #[arg(long)]
    restart: bool,
    /// Stop after this many steps in total and keep the checkpoint; run again to resume.
    #[arg(long)]
    stop_after: Option<usize>,
}

#[derive(Subcommand)]
enum Import {
    /// A BERT, RoBERTa or ALBERT encoder from safetensors weights and its config.json.
    Bert(ImportBert),
}

#[derive(clap::Args)]
struct ImportBert {
    /// The safetensors checkpoint.
    #[arg(long)]
    weights: PathBuf,
    /// The model's config.json (default: beside the weights).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output directory: receives model.onnx and a copy of tokenizer.json when one is beside the
    /// weights.
    #[arg(long)]
    out: PathBuf,
    /// Sentence pooling (default: from pooling_config.json beside the weights, else mean).
    #[arg(long, value_enum)]
    pooling: Option<PoolingArg>,
    /// L2-normalise the sentence embedding (sentence-transformers' Normalize module).
    #[arg(long)]
    normalize: bool,
}

#[derive(clap::Args)]
struct TrainText {
    /// Directory with model.safetensors, config.json and tokenizer.json.
    #[arg(long)]
    checkpoint: PathBuf,
    /// rotten_tomatoes_corpus_full.csv.bz2 (split 80/20 with --seed).
    #[arg(long)]
    data: PathBuf,
    /// Package directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Package (model) name.
    #[arg(long, default_value = "sentiment")]
    name: String,
    /// Train every encoder weight after the head (default: the head only, encoder frozen).
    #[arg(long)]
    fine_tune: bool,
    /// Fine-tuning passes over the training split.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Fine-tuning examples per step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Fine-tuning peak learning rate.
    #[arg(long, default_value_t = 5e-5)]
    lr: f64,
    /// Seed of the split and the shuffles.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Longest token sequence.
    #[arg(long, default_value_t = 128)]
    max_length: usize,
    /// Use only the first N training examples.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Score only the first N held-out examples.
    #[arg(long)]
    test_limit: Option<usize>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PoolingArg {
    Mean,
    Cls,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect {
            model,
            json,
            inputs,
            top,
            dot,
            profile,
        } => inspect_model(&model, &inputs, top, dot.as_deref(), json).and_then(|text| {
            let Some(runs) = profile else {
                return Ok(text);
            };
            let p =
                edgemass_compress::onnx::profile::profile(&Graph::load(&model)?, &inputs, runs)?;
            Ok(format!("{text}{}", p.to_text(top)))
        }),
        Command::EvalText {
            model,
            data,
            seed,
            limit,
        } => eval::text::evaluate(&model, &data, seed, limit)
            .map(|e| {
                format!(
                    "{}: {:.2} % of {} held-out texts right (tract)",
                    model.display(),
                    e.accuracy * 100.0,
                    e.examples
                )
            })
            .map_err(anyhow::Error::from),
        Command::TrainText(args) => train_text(&args).map_err(anyhow::Error::from),
        Command::Import(Import::Bert(args)) => import_bert(&args).map_err(anyhow::Error::from),
        Command::Prune(args) => prune(&args).map_err(anyhow::Error::from),
        Command::PruneConv(args) => prune_conv(&args),
        Command::Downscale {
            model,
            out,
            name,
            factor,
        } => downscale(&model, &out, &name, factor),
        Command::RenderText(args) => render_text(&args),
        Command::EvalDetect(args) => eval_detect(&args),
        Command::TuneDecoder { model, data, limit } => tune_decoder(&model, &data, limit),
        Command::DistillDetect(args) => distill_detect(&args).map_err(anyhow::Error::from),
        Command::Distill(args) => distill(&args).map_err(anyhow::Error::from),
        Command::Run { recipe, out, cache } => run_recipe(&recipe, out, cache),
        Command::Quantize(args) => quantize(&args).map_err(anyhow::Error::from),
        Command::QuantizeDetect(args) => quantize_detect(&args),
        Command::ExportTriton {
            model,
            out,
            max_batch,
            max_queue_delay_us,
        } => package::triton::export(
            &model,
            &out,
            package::triton::Batching {
                max_batch,
                max_queue_delay_us,
            },
        )
        .map(|dir| format!("wrote {}", dir.display()))
        .map_err(anyhow::Error::from),
    };
    match result {
        Ok(text) => {
            // A closed pipe (`| head`) is not an error of ours.
            let _ = writeln!(std::io::stdout(), "{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edgemass-compress: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn inspect_model(
    model: &Path,
    inputs: &[InputShape],
    top: usize,
    dot: Option<&Path>,
    json: bool,
) -> anyhow::Result<String> {
    let graph = Graph::load(model)?;
    let report = inspect::inspect(&graph, inputs)?;
    if let Some(path) = dot {
        let drawing = edgemass_compress::onnx::dot::to_dot(&graph, report.macs.as_ref().ok());
        edgemass_compress::onnx::dot::write(path, &drawing)?;
    }
    if json {
        return Ok(report.to_json(top).to_string());
    }
    let mut text = report.to_text(top);
    if let Some(path) = dot {
        text.push_str(&format!("drawing     {}\n", path.display()));
    }
    Ok(text)
}

fn import_bert(args: &ImportBert) -> Result<String, bert::BertError> {
    let dir = args.weights.parent().unwrap_or(Path::new("."));
    let config_path = args
        .config
        .clone()
        .unwrap_or_else(|| dir.join("config.json"));
    let config = bert::BertConfig::from_path(&config_path)?;
    let pooling = match args.pooling {
        Some(PoolingArg::Mean) => bert::Pooling::Mean,
        Some(PoolingArg::Cls) => bert::Pooling::Cls,
        None if dir.join("pooling_config.json").is_file() => {
            bert::pooling_from_config(&dir.join("pooling_config.json"))?
        }
        None => bert::Pooling::Mean,
    };
    let encoder = bert::Encoder::from_safetensors(&args.weights, config)?;
    let model = bert::onnx::to_onnx(
        &encoder,
        bert::Export {
            pooling,
            normalize: args.normalize,
            head: None,
        },
    );
    std::fs::create_dir_all(&args.out).map_err(|source| bert::BertError::Write {
        path: args.out.clone(),
        source,
    })?;
    let onnx = args.out.join("model.onnx");
    let bytes = bert::write_onnx(&model, &onnx)?;
    let tokenizer = dir.join("tokenizer.json");
    if tokenizer.is_file() {
        let copy = args.out.join("tokenizer.json");
        std::fs::copy(&tokenizer, &copy)
            .map_err(|source| bert::BertError::Write { path: copy, source })?;
    }
    let c = &encoder.config;
    Ok(format!(
        "{:?} encoder: {} layers, hidden {}, {} heads, {pooling:?} pooling{} -> {} ({bytes} bytes)",
        c.family,
        c.num_layers,
        c.hidden_size,
        c.num_heads,
        if args.normalize {
            ", L2-normalised"
        } else {
            ""
        },
        onnx.display()
    ))
}

fn train_text(args: &TrainText) -> Result<String, train::text::TrainError> {
    let mut options = train::text::Options::new(&args.checkpoint, &args.data, &args.out);
    options.name = args.name.clone();
    options.mode = if args.fine_tune {
        train::text::Mode::FineTune
    } else {
        train::text::Mode::Head
    };
    options.epochs = args.epochs;
    options.batch_size = args.batch_size;
    options.learning_rate = args.lr;
    options.seed = args.seed;
    options.max_length = args.max_length;
    options.train_limit = args.train_limit;
    options.test_limit = args.test_limit;
    options.progress = std::io::stderr().is_terminal();
    let report = train::text::train(&options)?;
    Ok(format!(
        "trained on {} examples, held out {}: frozen-encoder head {:.2} %, packaged model {:.2} %\n\
         loss {:.4} -> {:.4}, {:.0} s\nwrote {}",
        report.train_examples,
        report.test_examples,
        report.head_accuracy * 100.0,
        report.accuracy * 100.0,
        report.loss.0,
        report.loss.1,
        report.seconds,
        report.manifest.display()
    ))
}

fn prune(args: &Prune) -> Result<String, passes::prune::bert::PruneError> {
    let plan = passes::prune::bert::Plan {
        layers: args.layers.clone(),
        heads: args.heads,
        ffn: args.ffn,
        ffn_global: args.ffn_global,
        criterion: args.criterion,
    };
    let manifest = passes::prune::bert::prune_package(&args.model, &plan, &args.out, &args.name)?;
    Ok(format!("pruned {plan}\nwrote {}", manifest.display()))
}

/// Writes `model` to `path` whole or not at all.
fn write_onnx(path: &Path, model: &tract_onnx::pb::ModelProto) -> anyhow::Result<()> {
    edgemass_compress::write_atomic(path, &prost::Message::encode_to_vec(model))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

fn downscale(model: &Path, out: &Path, name: &str, factor: usize) -> anyhow::Result<String> {
    use edgemass_compress::passes::downscale;
    if model.extension().is_some_and(|e| e == "onnx") {
        write_onnx(
            out,
            &downscale::downscale(&Graph::load(model)?.proto, factor)?,
        )?;
        return Ok(format!("wrote {}", out.display()));
    }
    let manifest = downscale::downscale_package(model, factor, out, name)?;
    Ok(format!("wrote {}", manifest.display()))
}

fn prune_conv(args: &PruneConv) -> anyhow::Result<String> {
    use edgemass_compress::passes::prune::conv::{LayerKeep, Plan};
    let mut layers = Vec::with_capacity(args.layers.len());
    for spec in &args.layers {
        let (node, keep) = spec
            .split_once('=')
            .and_then(|(n, k)| Some((n, k.parse::<f64>().ok()?)))
            .ok_or_else(|| anyhow::anyhow!("--layer `{spec}` is not NODE=FRACTION"))?;
        layers.push(LayerKeep {
            node: node.into(),
            keep,
        });
    }
    let plan = Plan {
        keep: args.keep,
        global: args.global,
        criterion: args.criterion,
        multiple: args.multiple,
        min_channels: args.multiple,
        layers,
    };
    let is_onnx = args.model.extension().is_some_and(|e| e == "onnx");
    let (pruned, wrote) = if is_onnx {
        let graph = Graph::load(&args.model)?;
        let pruned =
            edgemass_compress::passes::prune::conv::prune(&graph.proto, &args.inputs, &plan)?;
        write_onnx(&args.out, &pruned.model)?;
        (pruned, args.out.clone())
    } else {
        edgemass_compress::passes::prune::conv::prune_package(
            &args.model,
            &args.inputs,
            &plan,
            &args.out,
            &args.name,
        )?
    };
    let (before, after) = pruned.channels();
    let (macs_before, macs_after) = pruned.macs;
    Ok(format!(
        "pruned {plan}: {} groups, channels {before} -> {after}, MACs {} -> {} ({:.1}x fewer), {} groups fixed\nwrote {}",
        pruned.groups.len(),
        edgemass_compress::onnx::inspect::short(macs_before),
        edgemass_compress::onnx::inspect::short(macs_after),
        macs_before as f64 / macs_after.max(1) as f64,
        pruned.fixed.len(),
        wrote.display()
    ))
}

fn tune_decoder(model: &Path, data: &Path, limit: usize) -> anyhow::Result<String> {
    let mut set = edgemass_compress::data::render_text::read_labels(data)?;
    set.truncate(limit);
    let images: Vec<PathBuf> = set.iter().map(|l| data.join(&l.image)).collect();
    let truth = edgemass_compress::eval::detect::truth_of(&set);
    let t = edgemass_compress::eval::tune_decoder::tune(model, &images, &truth)?;
    Ok(format!(
        "threshold {:.2}, unclip ratio {:.2}: mAP@0.5 {:.4} -> {:.4} on {} images\nwrote {}",
        t.threshold,
        t.unclip_ratio,
        t.before,
        t.after,
        images.len(),
        model.display()
    ))
}

fn distill_detect(
    args: &DistillDetect,
) -> Result<String, edgemass_compress::passes::distill::detect::DistillDetectError> {
    use edgemass_compress::passes::distill::detect::{Options, distill};
    let mut o = Options::new(
        &args.teacher,
        &args.student,
        args.train.clone(),
        &args.held_out,
        &args.out,
    );
    o.name = args.name.clone();
    if let Some(work) = &args.work {
        o.work = work.clone();
    }
    o.epochs = args.epochs;
    o.batch_size = args.batch_size;
    o.crop = args.crop;
    o.learning_rate = args.lr;
    o.temperature = args.temperature;
    o.alpha = args.alpha;
    o.seed = args.seed;
    o.train_limit = args.train_limit;
    o.held_out_limit = Some(args.held_out_limit);
    o.checkpoint_every = args.checkpoint_every;
    o.resume = !args.restart;
    o.stop_after = args.stop_after;
    o.progress = std::io::stderr().is_terminal();
    let r = distill(&o)?;
    Ok(format!(
        "distilled on {} images{}: held-out loss {:.4} -> {:.4} on {} images, {} steps, {:.0} s\n{}",
        r.images,
        r.resumed_from
            .map_or(String::new(), |s| format!(", resumed at step {s}")),
        r.held_out_loss.0,
        r.held_out_loss.1,
        r.held_out,
        r.steps,
        r.seconds,
        match (&r.manifest, &r.decoder) {
            (Some(m), Some(t)) => format!(
                "decoder fitted: threshold {:.2}, unclip ratio {:.2} (mAP@0.5 {:.4} -> {:.4} on training images)\nwrote {}",
                t.threshold,
                t.unclip_ratio,
                t.before,
                t.after,
                m.display()
            ),
            (Some(m), None) => format!("wrote {}", m.display()),
            _ => "stopped as asked; run the same command again to resume".into(),
        }
    ))
}

fn distill(args: &Distill) -> Result<String, passes::distill::text::DistillError> {
    let mut options =
        passes::distill::text::Options::new(&args.teacher, &args.student, &args.data, &args.out);
    options.unlabelled = args.unlabelled.clone();
    options.name = args.name.clone();
    if let Some(work) = &args.work {
        options.work = work.clone();
    }
    options.epochs = args.epochs;
    options.batch_size = args.batch_size;
    options.learning_rate = args.lr;
    options.temperature = args.temperature;
    options.alpha = args.alpha;
    options.augment = args.augment;
    options.thesaurus = args.thesaurus.clone();
    options.hidden_weight = args.hidden_weight;
    options.seed = args.seed;
    options.train_limit = args.train_limit;
    options.unlabelled_limit = args.unlabelled_limit;
    options.test_limit = args.test_limit;
    options.checkpoint_every = args.checkpoint_every;
    options.resume = !args.restart;
    options.stop_after = args.stop_after;
    options.progress = std::io::stderr().is_terminal();
    let r = passes::distill::text::distill(&options)?;
    Ok(format!(
        "distilled on {} texts ({} labelled){}: held-out loss {:.4} -> {:.4}, accuracy {:.2} % -> \
         {:.2} %, teacher agreement {:.2} %, {} steps, {:.0} s\n{}",
        r.examples,
        r.labelled,
        r.resumed_from
            .map_or(String::new(), |s| format!(", resumed at step {s}")),
        r.held_out_loss.0,
        r.held_out_loss.1,
        r.accuracy.0 * 100.0,
        r.accuracy.1 * 100.0,
        r.agreement * 100.0,
        r.steps,
        r.seconds,
        match &r.manifest {
            Some(m) => format!("wrote {}", m.display()),
            None => "stopped as asked; run the same command again to resume".into(),
        }
    ))
}

#[derive(clap::Args)]
struct QuantizeArgs {
    /// The float ONNX model.
    model: PathBuf,
    /// The quantized model to write.
    #[arg(long)]
    out: PathBuf,
    /// `weights`: int8 weights dequantized in the graph; `dynamic`: also MatMulInteger on
    /// activations quantized at run time (ONNX Runtime's form); `dynamic-ops`: the same with the
    /// activation quantization written out in elementary ops (faster in tract).
    #[arg(long, value_enum, default_value = "weights")]
    mode: ModeArg,
    /// Weights with fewer values stay float.
    #[arg(long, default_value_t = passes::quantize::DEFAULT_MIN_ELEMENTS)]
    min_elements: usize,
    /// A node (or weight) whose weights stay float; repeatable.
    #[arg(long = "keep-float", value_name = "NAME")]
    keep_float: Vec<String>,
    /// Shape of an input for the check, NAME=DIMS[:LO..HI] (e.g. input_ids=1x64:0..1000); needed
    /// for inputs with symbolic dims; repeatable.
    #[arg(long = "sample", value_name = "NAME=DIMS")]
    samples: Vec<passes::quantize::SampleSpec>,
    /// Refuse to write when an output's cosine similarity to the float model is lower.
    #[arg(long, default_value_t = passes::quantize::DEFAULT_MIN_COSINE)]
    min_cosine: f32,
    /// Also time the float model and every quantized form in tract (median of RUNS, 1 thread).
    #[arg(long, value_name = "RUNS")]
    bench: Option<usize>,
}

#[derive(clap::Args)]
struct QuantizeDetect {
    /// The package manifest.
    #[arg(long)]
    model: PathBuf,
    /// Calibration images: files or directories of .jpg/.png files.
    #[arg(long, required = true, num_args = 1..)]
    calibration: Vec<PathBuf>,
    /// Use only the first N calibration images.
    #[arg(long, default_value_t = 16)]
    limit: usize,
    /// How activation ranges are chosen.
    #[arg(long, value_enum, default_value_t = Method::Percentile)]
    method: Method,
    /// A convolution (node or weight name) left float; repeatable.
    #[arg(long = "keep-float", value_name = "NAME")]
    keep_float: Vec<String>,
    /// Every output's cosine similarity to the float model must reach this.
    #[arg(long, default_value_t = passes::quantize::DEFAULT_MIN_COSINE)]
    min_cosine: f32,
    /// Timed tract runs per form.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Package directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Package (model) name.
    #[arg(long, default_value = "int8")]
    name: String,
}

fn quantize_detect(args: &QuantizeDetect) -> anyhow::Result<String> {
    use edgemass_compress::passes::quantize::detect::{Options, quantize_package};
    let mut calibration = files(&args.calibration, &["jpg", "jpeg", "png"])?;
    calibration.truncate(args.limit);
    let options = Options {
        calibration,
        method: args.method,
        keep_float: args.keep_float.clone(),
        min_cosine: args.min_cosine,
        runs: args.runs,
    };
    Ok(quantize_package(&args.model, &options, &args.out, &args.name)?.to_text())
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    Weights,
    Dynamic,
    DynamicOps,
}

fn quantize(args: &QuantizeArgs) -> Result<String, passes::quantize::FileError> {
    let mut options = passes::quantize::Options::new(match args.mode {
        ModeArg::Weights => passes::quantize::Mode::Weights,
        ModeArg::Dynamic => passes::quantize::Mode::Dynamic,
        ModeArg::DynamicOps => passes::quantize::Mode::DynamicOps,
    });
    options.min_elements = args.min_elements;
    options.keep_float = args.keep_float.clone();
    let check = passes::quantize::Check {
        samples: args.samples.clone(),
        min_cosine: args.min_cosine,
        bench_runs: args.bench,
    };
    passes::quantize::quantize_file(&args.model, &args.out, &options, &check).map(|r| r.to_text())
}

fn run_recipe(path: &Path, out: Option<PathBuf>, cache: Option<PathBuf>) -> anyhow::Result<String> {
    let cache = cache
        .or_else(|| std::env::var_os("EDGEMASS_MODEL_CACHE").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("models/cache"));
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    if edgemass_compress::recipe::detect::is_detect(&text) {
        use edgemass_compress::recipe::detect::{DetectRecipe, run};
        let recipe = DetectRecipe::load(path)?;
        let out = out.unwrap_or_else(|| Path::new("out").join(&recipe.name));
        let outcome = run(
            &recipe,
            &cache,
            &out,
            false,
            std::io::stderr().is_terminal(),
        )?;
        let report = std::fs::read_to_string(&outcome.report).unwrap_or_default();
        return Ok(format!(
            "{report}\nwrote {} and {}; the student is {}",
            outcome.report.display(),
            outcome.plot.display(),
            outcome.steps[outcome.steps.len() - 1].manifest.display()
        ));
    }
    let recipe = recipe::text::Recipe::load(path)?;
    let out = out.unwrap_or_else(|| Path::new("out").join(&recipe.name));
    let outcome = recipe::text::run(
        &recipe,
        &cache,
        &out,
        false,
        std::io::stderr().is_terminal(),
    )?;
    let report = std::fs::read_to_string(&outcome.report).unwrap_or_default();
    Ok(format!(
        "{report}\nwrote {} and {}; the student is {}",
        outcome.report.display(),
        outcome.plot.display(),
        outcome.steps[outcome.steps.len() - 1].manifest.display()
    ))
}
