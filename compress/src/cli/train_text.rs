//! `train-text`: a sentiment teacher trained on a BERT-family checkpoint.

use std::io::IsTerminal;
use std::path::PathBuf;

use edgemass_compress::train;

#[derive(clap::Args)]
pub struct TrainText {
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

/// Runs the command.
pub fn run(args: &TrainText) -> anyhow::Result<String> {
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
