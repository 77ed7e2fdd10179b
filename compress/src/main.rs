//! The `edgemass-compress` command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;

use edgemass_compress::graph::Graph;
use edgemass_compress::inspect::summarize;
use edgemass_compress::{bert, eval_text, train_text};

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
    /// Show parameters, size, operators, inputs and outputs of an ONNX model.
    Inspect {
        /// The ONNX file.
        model: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
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
        Command::Inspect { model, json } => {
            Graph::load(&model).map_err(anyhow::Error::from).map(|g| {
                let summary = summarize(&g);
                if json {
                    summary.to_json().to_string()
                } else {
                    summary.to_text()
                }
            })
        }
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
