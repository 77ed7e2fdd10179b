//! Training a text classifier on a BERT-family encoder with candle: a linear head on frozen
//! sentence vectors, or fine-tuning every weight; the result is a `text-classify` package.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{D, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use indicatif::ProgressBar;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use tokenizers::Tokenizer;

use crate::bert::net::{self, Net};
use crate::bert::weights::Linear;
use crate::bert::{BertConfig, BertError, Encoder, Pooling};
use crate::data;
use crate::data::corpus::{DataError, Example, SENTIMENT_LABELS};
use crate::package::{Provenance, TextClassifier};
use crate::train::scaffold::{Decay, Schedule, Trainer};

/// Errors while training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The encoder could not be read or the package written.
    #[error(transparent)]
    Bert(#[from] BertError),
    /// The data set could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The tokenizer could not be loaded or failed on a text.
    #[error("tokenizer {path}: {reason}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A tensor operation failed.
    #[error("training failed")]
    Candle(#[from] candle_core::Error),
    /// The options cannot work.
    #[error("{0}")]
    Options(String),
}

/// Which weights are trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A linear head on frozen sentence vectors (logistic regression).
    Head,
    /// The head and every encoder weight.
    FineTune,
}

/// What to train and where to write it.
#[derive(Debug, Clone)]
pub struct Options {
    /// The encoder checkpoint (safetensors).
    pub weights: PathBuf,
    /// Its `config.json`.
    pub config: PathBuf,
    /// Its `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// `rotten_tomatoes_corpus_full.csv.bz2`.
    pub data: PathBuf,
    /// Package directory to write.
    pub out: PathBuf,
    /// Package name.
    pub name: String,
    /// Head only or everything.
    pub mode: Mode,
    /// Passes over the training split (fine-tuning).
    pub epochs: usize,
    /// Examples per step (fine-tuning).
    pub batch_size: usize,
    /// Peak learning rate (fine-tuning; warm-up then linear decay).
    pub learning_rate: f64,
    /// Seed of the 80/20 split and of the fine-tuning shuffles.
    pub seed: u64,
    /// Longest token sequence.
    pub max_length: usize,
    /// Use only the first N training examples.
    pub train_limit: Option<usize>,
    /// Use only the first N held-out examples.
    pub test_limit: Option<usize>,
    /// Dropout probability while fine-tuning (0 makes a run repeatable).
    pub dropout: f32,
    /// Draw a progress bar.
    pub progress: bool,
}

impl Options {
    /// Defaults for a checkpoint directory holding `model.safetensors`, `config.json` and
    /// `tokenizer.json`.
    pub fn new(checkpoint: &Path, data: &Path, out: &Path) -> Options {
        Options {
            weights: checkpoint.join("model.safetensors"),
            config: checkpoint.join("config.json"),
            tokenizer: checkpoint.join("tokenizer.json"),
            data: data.to_owned(),
            out: out.to_owned(),
            name: "sentiment".into(),
            mode: Mode::Head,
            epochs: 2,
            batch_size: 32,
            learning_rate: 5e-5,
            seed: 42,
            max_length: 128,
            train_limit: None,
            test_limit: None,
            dropout: crate::bert::net::DROPOUT,
            progress: false,
        }
    }
}

/// What a training run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Training examples used.
    pub train_examples: usize,
    /// Held-out examples scored.
    pub test_examples: usize,
    /// Training loss at the start and at the end: of the first and last head step, or (when
    /// fine-tuning) the mean of the first and last epoch.
    pub loss: (f64, f64),
    /// Held-out accuracy of the frozen-encoder head (always trained first).
    pub head_accuracy: f64,
    /// Held-out accuracy of the packaged model.
    pub accuracy: f64,
    /// Wall time in seconds.
    pub seconds: f64,
    /// The package manifest written.
    pub manifest: PathBuf,
}

/// Held-out fraction of Rotten Tomatoes.
const TEST_FRACTION: f64 = 0.2;
/// Full-batch steps of the logistic-regression head.
const HEAD_STEPS: usize = 400;
/// Examples per forward pass when only embedding.
const EMBED_BATCH: usize = 64;

/// Splits Rotten Tomatoes 80/20, trains, evaluates on the held-out part and writes the package.
pub fn train(options: &Options) -> Result<Report, TrainError> {
    let started = Instant::now();
    let device = Device::Cpu;
    let examples = data::corpus::rotten_tomatoes(&options.data)?;
    let (mut train_set, mut test_set) = data::corpus::split(&examples, TEST_FRACTION, options.seed);
    train_set.truncate(options.train_limit.unwrap_or(usize::MAX));
    test_set.truncate(options.test_limit.unwrap_or(usize::MAX));
    if train_set.is_empty() || test_set.is_empty() {
        return Err(TrainError::Options(
            "no training or held-out examples left".into(),
        ));
    }
    let tokenizer = load_tokenizer(&options.tokenizer, options.max_length)?;
    let train_tokens = tokenize(&tokenizer, &options.tokenizer, &train_set)?;
    let test_tokens = tokenize(&tokenizer, &options.tokenizer, &test_set)?;
    let train_labels: Vec<u32> = train_set.iter().map(|e| e.label as u32).collect();
    let test_labels: Vec<u32> = test_set.iter().map(|e| e.label as u32).collect();

    let config = BertConfig::from_path(&options.config)?;
    let mut encoder = Encoder::from_safetensors(&options.weights, config)?;
    let mut head = Linear::zeros(SENTIMENT_LABELS.len(), encoder.config.hidden_size);
    let pooling = Pooling::Mean;

    let mut net = Net::new(&encoder, &head, pooling, &device)?;
    net.set_dropout(options.dropout);
    let bar = crate::progress_bar(options.progress, 0, "embedding");
    let train_vectors = embed_all(&net, &train_tokens, &device, &bar)?;
    let test_vectors = embed_all(&net, &test_tokens, &device, &bar)?;
    bar.finish_and_clear();
    let targets = Tensor::new(train_labels.as_slice(), &device)?;
    let mut optimizer = AdamW::new(
        net.trainable(true),
        ParamsAdamW {
            lr: 1e-2,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;
    let mut head_losses = Vec::with_capacity(HEAD_STEPS);
    for _ in 0..HEAD_STEPS {
        let loss = candle_nn::loss::cross_entropy(&net.logits(&train_vectors)?, &targets)?;
        optimizer.backward_step(&loss)?;
        head_losses.push(loss.to_scalar::<f32>()? as f64);
    }
    let head_accuracy = accuracy(&net.logits(&test_vectors)?, &test_labels)?;
    let mut loss = (head_losses[0], head_losses[HEAD_STEPS - 1]);
    let mut accuracy_now = head_accuracy;

    if options.mode == Mode::FineTune {
        let (first, last) = fine_tune(&net, options, &train_tokens, &train_labels, &device)?;
        loss = (first, last);
        let bar = crate::progress_bar(options.progress, 1, "evaluating");
        let vectors = embed_all(&net, &test_tokens, &device, &bar)?;
        bar.finish_and_clear();
        accuracy_now = accuracy(&net.logits(&vectors)?, &test_labels)?;
    }
    net.write_back(&mut encoder, &mut head)?;

    let mut provenance = Provenance {
        source: format!(
            "edgemass-compress train-text from {}",
            options.weights.display()
        ),
        license: "Apache-2.0".into(),
        ..Default::default()
    };
    provenance.passes.push("import bert".into());
    provenance.passes.push(match options.mode {
        Mode::Head => format!("linear head, frozen encoder, {HEAD_STEPS} steps"),
        Mode::FineTune => format!(
            "linear head then fine-tune all weights, {} epochs, batch {}, lr {}",
            options.epochs, options.batch_size, options.learning_rate
        ),
    });
    provenance.metrics.insert("accuracy".into(), accuracy_now);
    provenance
        .metrics
        .insert("head_accuracy".into(), head_accuracy);
    provenance
        .metrics
        .insert("test_examples".into(), test_set.len() as f64);
    provenance
        .metrics
        .insert("train_examples".into(), train_set.len() as f64);
    let manifest = TextClassifier {
        name: &options.name,
        description: format!(
            "Rotten Tomatoes sentiment on a {}-layer {:?} encoder ({})",
            encoder.config.num_layers,
            encoder.config.family,
            match options.mode {
                Mode::Head => "frozen",
                Mode::FineTune => "fine-tuned",
            }
        ),
        model: &crate::bert::onnx::classifier(&encoder, pooling, &head),
        labels: SENTIMENT_LABELS.iter().map(|s| s.to_string()).collect(),
        tokenizer: &options.tokenizer,
        max_length: options.max_length,
        provenance,
    }
    .write(&options.out)?;
    Ok(Report {
        train_examples: train_set.len(),
        test_examples: test_set.len(),
        loss,
        head_accuracy,
        accuracy: accuracy_now,
        seconds: started.elapsed().as_secs_f64(),
        manifest,
    })
}

/// Token ids per text (no padding; batches pad themselves).
struct Tokens {
    ids: Vec<Vec<u32>>,
}

fn load_tokenizer(path: &Path, max_length: usize) -> Result<Tokenizer, TrainError> {
    crate::data::corpus::tokenizer(path, max_length, false).map_err(|reason| {
        TrainError::Tokenizer {
            path: path.to_owned(),
            reason,
        }
    })
}

fn tokenize(
    tokenizer: &Tokenizer,
    path: &Path,
    examples: &[Example],
) -> Result<Tokens, TrainError> {
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let encodings = tokenizer
        .encode_batch(texts, true)
        .map_err(|e| TrainError::Tokenizer {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(Tokens {
        ids: encodings.iter().map(|e| e.get_ids().to_vec()).collect(),
    })
}

/// Pads the chosen rows to their longest and makes a batch.
fn make_batch(tokens: &Tokens, rows: &[usize], device: &Device) -> candle_core::Result<net::Batch> {
    let len = rows.iter().map(|&r| tokens.ids[r].len()).max().unwrap_or(0);
    let pad = |r: usize, fill: &dyn Fn(u32) -> u32| -> Vec<u32> {
        let row = &tokens.ids[r];
        let mut out: Vec<u32> = row.iter().map(|&v| fill(v)).collect();
        out.resize(len, 0);
        out
    };
    let ids: Vec<Vec<u32>> = rows.iter().map(|&r| pad(r, &|v| v)).collect();
    let mask: Vec<Vec<u32>> = rows.iter().map(|&r| pad(r, &|_| 1)).collect();
    let types = vec![vec![0; len]; rows.len()];
    net::batch(&ids, &mask, &types, device)
}

/// Pooled vectors of every text, in order, without dropout; batches sorted by length.
fn embed_all(
    net: &Net,
    tokens: &Tokens,
    device: &Device,
    bar: &ProgressBar,
) -> Result<Tensor, TrainError> {
    let mut order: Vec<usize> = (0..tokens.ids.len()).collect();
    order.sort_by_key(|&i| tokens.ids[i].len());
    bar.set_length(bar.length().unwrap_or(0) + order.len() as u64);
    let mut pieces = Vec::new();
    for rows in order.chunks(EMBED_BATCH) {
        pieces.push(
            net.embed(&make_batch(tokens, rows, device)?, false)?
                .detach(),
        );
        bar.inc(rows.len() as u64);
    }
    let sorted = Tensor::cat(&pieces, 0)?;
    let mut back = vec![0u32; order.len()];
    for (position, &row) in order.iter().enumerate() {
        back[row] = position as u32;
    }
    Ok(sorted.index_select(&Tensor::new(back.as_slice(), device)?, 0)?)
}

/// Trains every weight; returns the mean loss of the first and the last epoch.
fn fine_tune(
    net: &Net,
    options: &Options,
    tokens: &Tokens,
    labels: &[u32],
    device: &Device,
) -> Result<(f64, f64), TrainError> {
    if options.epochs == 0 || options.batch_size == 0 {
        return Err(TrainError::Options(
            "fine-tuning needs at least one epoch and a batch size of at least 1".into(),
        ));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    let steps_per_epoch = labels.len().div_ceil(options.batch_size);
    let total = steps_per_epoch * options.epochs;
    let mut trainer = Trainer::new(
        net.trainable(false),
        Schedule::new(options.learning_rate, total, 16, Decay::Linear),
        0.01,
        options.progress,
        "fine-tuning",
        0,
    )?;
    let mut epoch_losses = Vec::new();
    for _ in 0..options.epochs {
        let mut batches = length_buckets(tokens, options.batch_size, &mut rng);
        batches.shuffle(&mut rng);
        let mut sum = 0.0;
        for rows in &batches {
            trainer.next_step();
            let batch = make_batch(tokens, rows, device)?;
            let targets: Vec<u32> = rows.iter().map(|&r| labels[r]).collect();
            let logits = net.logits(&net.embed(&batch, true)?)?;
            let loss =
                candle_nn::loss::cross_entropy(&logits, &Tensor::new(targets.as_slice(), device)?)?;
            sum += f64::from(trainer.backward_step(&loss)?);
        }
        epoch_losses.push(sum / batches.len() as f64);
        if !options.progress {
            eprintln!(
                "epoch {}/{}: mean loss {:.4}",
                epoch_losses.len(),
                options.epochs,
                sum / batches.len() as f64
            );
        }
    }
    trainer.finish();
    Ok((epoch_losses[0], epoch_losses[epoch_losses.len() - 1]))
}

/// Shuffled rows grouped so each batch holds texts of similar length (less padding).
fn length_buckets(
    tokens: &Tokens,
    batch_size: usize,
    rng: &mut rand::rngs::StdRng,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..tokens.ids.len()).collect();
    order.shuffle(rng);
    let mut batches = Vec::new();
    for chunk in order.chunks_mut(batch_size * 32) {
        chunk.sort_by_key(|&i| tokens.ids[i].len());
        batches.extend(chunk.chunks(batch_size).map(<[usize]>::to_vec));
    }
    batches
}

fn accuracy(logits: &Tensor, labels: &[u32]) -> Result<f64, TrainError> {
    let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
    let right = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
    Ok(right as f64 / labels.len() as f64)
}
