//! The `edgemass-compress` command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;

use edgemass_compress::graph::Graph;
use edgemass_compress::inspect::{self, InputShape};
use edgemass_compress::prune_bert::{self, Criterion};
use edgemass_compress::{bert, distill, eval_text, export_triton, quantize, recipe, train_text};

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
    },
    /// Train a Rotten Tomatoes sentiment classifier on a BERT-family checkpoint and write a
    /// text-classify package.
    TrainText(TrainText),
    /// Score a Rotten Tomatoes text-classify package with tract on the held-out split.
    EvalText {
        /// The package manifest (NAME.model.toml).
        #[arg(long)]
        model: PathBuf,
        /// rotten_tomatoes_corpus_full.csv.bz2.
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
    /// Train a student package to imitate a teacher package (knowledge distillation, candle).
    Distill(Distill),
    /// Store weights as int8 (optionally with integer MatMuls), check the outputs against the
    /// float model in tract, and write the quantized model.
    Quantize(QuantizeArgs),
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
        } => inspect_model(&model, &inputs, top, dot.as_deref(), json),
        Command::EvalText {
            model,
            data,
            seed,
            limit,
        } => eval_text::evaluate(&model, &data, seed, limit)
            .map(|e| {
                format!(
                    "{}: {:.2} % of {} held-out reviews right (tract)",
                    model.display(),
                    e.accuracy * 100.0,
                    e.examples
                )
            })
            .map_err(anyhow::Error::from),
        Command::TrainText(args) => train_text(&args).map_err(anyhow::Error::from),
        Command::Import(Import::Bert(args)) => import_bert(&args).map_err(anyhow::Error::from),
        Command::Prune(args) => prune(&args).map_err(anyhow::Error::from),
        Command::Distill(args) => distill(&args).map_err(anyhow::Error::from),
        Command::Run { recipe, out, cache } => {
            run_recipe(&recipe, out, cache).map_err(anyhow::Error::from)
        }
        Command::Quantize(args) => quantize(&args).map_err(anyhow::Error::from),
        Command::ExportTriton {
            model,
            out,
            max_batch,
            max_queue_delay_us,
        } => export_triton::export(
            &model,
            &out,
            export_triton::Batching {
                max_batch,
                max_queue_delay_us,
            },
        )
        .map(|dir| format!("wrote {}", dir.display()))
        .map_err(anyhow::Error::from),
    };
    match result {
        Ok(text) => {
            println!("{}", text.trim_end());
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
        let drawing = edgemass_compress::dot::to_dot(&graph, report.macs.as_ref().ok());
        edgemass_compress::dot::write(path, &drawing)?;
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

fn train_text(args: &TrainText) -> Result<String, train_text::TrainError> {
    let mut options = train_text::Options::new(&args.checkpoint, &args.data, &args.out);
    options.name = args.name.clone();
    options.mode = if args.fine_tune {
        train_text::Mode::FineTune
    } else {
        train_text::Mode::Head
    };
    options.epochs = args.epochs;
    options.batch_size = args.batch_size;
    options.learning_rate = args.lr;
    options.seed = args.seed;
    options.max_length = args.max_length;
    options.train_limit = args.train_limit;
    options.test_limit = args.test_limit;
    options.progress = std::io::stderr().is_terminal();
    let report = train_text::train(&options)?;
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

fn prune(args: &Prune) -> Result<String, prune_bert::PruneError> {
    let plan = prune_bert::Plan {
        layers: args.layers.clone(),
        heads: args.heads,
        ffn: args.ffn,
        ffn_global: args.ffn_global,
        criterion: args.criterion,
    };
    let manifest = prune_bert::prune_package(&args.model, &plan, &args.out, &args.name)?;
    Ok(format!("pruned {plan}\nwrote {}", manifest.display()))
}

fn distill(args: &Distill) -> Result<String, distill::DistillError> {
    let mut options = distill::Options::new(&args.teacher, &args.student, &args.data, &args.out);
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
    options.seed = args.seed;
    options.train_limit = args.train_limit;
    options.unlabelled_limit = args.unlabelled_limit;
    options.test_limit = args.test_limit;
    options.checkpoint_every = args.checkpoint_every;
    options.resume = !args.restart;
    options.stop_after = args.stop_after;
    options.progress = std::io::stderr().is_terminal();
    let r = distill::distill(&options)?;
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
    #[arg(long, default_value_t = quantize::DEFAULT_MIN_ELEMENTS)]
    min_elements: usize,
    /// A node (or weight) whose weights stay float; repeatable.
    #[arg(long = "keep-float", value_name = "NAME")]
    keep_float: Vec<String>,
    /// Shape of an input for the check, NAME=DIMS[:LO..HI] (e.g. input_ids=1x64:0..1000); needed
    /// for inputs with symbolic dims; repeatable.
    #[arg(long = "sample", value_name = "NAME=DIMS")]
    samples: Vec<quantize::SampleSpec>,
    /// Refuse to write when an output's cosine similarity to the float model is lower.
    #[arg(long, default_value_t = quantize::DEFAULT_MIN_COSINE)]
    min_cosine: f32,
    /// Also time the float model and every quantized form in tract (median of RUNS, 1 thread).
    #[arg(long, value_name = "RUNS")]
    bench: Option<usize>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    Weights,
    Dynamic,
    DynamicOps,
}

fn quantize(args: &QuantizeArgs) -> Result<String, quantize::FileError> {
    let mut options = quantize::Options::new(match args.mode {
        ModeArg::Weights => quantize::Mode::Weights,
        ModeArg::Dynamic => quantize::Mode::Dynamic,
        ModeArg::DynamicOps => quantize::Mode::DynamicOps,
    });
    options.min_elements = args.min_elements;
    options.keep_float = args.keep_float.clone();
    let check = quantize::Check {
        samples: args.samples.clone(),
        min_cosine: args.min_cosine,
        bench_runs: args.bench,
    };
    quantize::quantize_file(&args.model, &args.out, &options, &check).map(|r| r.to_text())
}

fn run_recipe(
    path: &Path,
    out: Option<PathBuf>,
    cache: Option<PathBuf>,
) -> Result<String, recipe::RecipeError> {
    let recipe = recipe::Recipe::load(path)?;
    let cache = cache
        .or_else(|| std::env::var_os("EDGEMASS_MODEL_CACHE").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("models/cache"));
    let out = out.unwrap_or_else(|| Path::new("out").join(&recipe.name));
    let outcome = recipe::run(
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
