//! Knowledge distillation of a text student from its teacher, trained with candle.
//!
//! The teacher runs in tract once over the training texts (Rotten Tomatoes' training split, with
//! labels, plus unlabelled Guardian headlines); its logits are cached on disk as JSON lines beside
//! the texts, which the student tokenizes itself (its vocabulary may be pruned). Training streams
//! that file in chunks, so the data set never has to fit in memory, and minimises `T²·KL(teacher/T ‖ student/T) + α·cross-entropy` (the task term only on
//! labelled rows) `+ β·MSE(student pooled vector, teacher pooled vector)` when asked: the pooled
//! vector the head reads carries far more of what the teacher knows than its two logits. More
//! texts for the teacher to label can be made from the training reviews (`augment`).
//! Checkpoints let an interrupted run resume at the step it reached; the optimiser's
//! moments restart from zero on resume.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{D, Device, Tensor};
use indicatif::ProgressBar;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::FileError;
use crate::bert::net::{self, Net};
use crate::data;
use crate::package::text::TextPackage;
use crate::passes::distill::{DistillError, Run, Trained};
use crate::train::scaffold::{Decay, Schedule, Trainer};

/// How a text student is trained: the `[distill]` table of a text recipe and the flags of
/// `edgemass-compress distill` for a text package, declared once.
#[derive(Debug, Clone, PartialEq, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Passes over the training texts.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Texts per step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Peak learning rate (linear warm-up over a tenth of the steps, then linear decay).
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// Softening temperature T.
    #[arg(long, default_value_t = 2.0)]
    pub temperature: f64,
    /// Weight alpha of the cross-entropy on labelled texts.
    #[arg(long, default_value_t = 0.5)]
    pub alpha: f64,
    /// Variants of every labelled training text (words dropped, swapped, cut to a span) for the
    /// teacher to label, as extra unlabelled texts.
    #[arg(long, default_value_t = 0)]
    pub augment: usize,
    /// roget.csv.bz2 (in a recipe: relative to the model cache): the variants also swap words for
    /// others of their thesaurus category.
    #[arg(long)]
    pub thesaurus: Option<PathBuf>,
    /// Weight beta of the mean squared error between the student's and the teacher's pooled
    /// vectors (0: logits only; the hidden sizes must match).
    #[arg(long, default_value_t = 0.0)]
    pub hidden_weight: f64,
    /// Dropout in the student while it trains (0: none, and the run is repeatable).
    #[arg(long, default_value_t = crate::bert::net::DROPOUT)]
    pub dropout: f32,
}

default_from_flags!(Settings);

/// What to distill and how: the flags of `edgemass-compress distill` for a text student.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Teacher, student, output and run control.
    #[command(flatten)]
    pub run: Run,
    /// rotten_tomatoes_corpus_full.csv.bz2 (labelled; split 80/20 with --seed, the same split as
    /// `train-text`'s): the training split gives labelled texts, the held-out split measures the
    /// loss.
    #[arg(long)]
    pub data: PathBuf,
    /// guardian_headlines.csv.bz2 (unlabelled texts for the teacher to label).
    #[arg(long)]
    pub unlabelled: Option<PathBuf>,
    /// Use only the first N labelled training texts.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Use only the first N unlabelled texts.
    #[arg(long)]
    pub unlabelled_limit: Option<usize>,
    /// Measure on only the first N held-out texts.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// How the student is trained.
    #[command(flatten)]
    pub settings: Settings,
}

impl Options {
    /// Defaults for distilling `student` from `teacher` on `data` into `out`.
    pub fn new(teacher: &Path, student: &Path, data: &Path, out: &Path) -> Options {
        Options {
            run: Run::new(teacher, student, out),
            data: data.to_owned(),
            unlabelled: None,
            train_limit: None,
            unlabelled_limit: None,
            test_limit: None,
            settings: Settings::default(),
        }
    }

    /// The thesaurus the variants swap words from: none without variants.
    fn swaps(&self) -> Option<&Path> {
        self.settings
            .thesaurus
            .as_deref()
            .filter(|_| self.settings.augment > 0)
    }

    /// The data selection as corpus limits.
    pub fn limits(&self) -> data::corpus::Limits {
        data::corpus::Limits {
            train: self.train_limit,
            unlabelled: self.unlabelled_limit,
            test: self.test_limit,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Report {
    /// Training texts (labelled + unlabelled).
    pub examples: usize,
    /// Of which labelled.
    pub labelled: usize,
    /// Held-out texts measured.
    pub held_out: usize,
    /// Held-out distillation loss before and after training.
    pub held_out_loss: (f64, f64),
    /// Held-out accuracy (candle) before and after training.
    pub accuracy: (f64, f64),
    /// Agreement with the teacher's top class on the held-out texts after training.
    pub agreement: f64,
    /// Steps, resumption, time and the package written.
    pub trained: Trained,
}

/// One line of the teacher cache: the text, its label when known, the teacher's logits and, for
/// hidden-state distillation, its pooled vector. Texts, not ids, are cached because the student
/// may have a pruned vocabulary.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached {
    text: String,
    label: Option<u32>,
    logits: Vec<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pooled: Option<Vec<f32>>,
}

/// A cached row tokenized for the student.
#[derive(Debug, Clone)]
struct Row {
    ids: Vec<u32>,
    label: Option<u32>,
    logits: Vec<f32>,
    pooled: Option<Vec<f32>>,
}

/// Tokenizes cached rows with the student's tokenizer.
fn tokenized(student: &TextPackage, cached: Vec<Cached>) -> Result<Vec<Row>, DistillError> {
    let texts: Vec<&str> = cached.iter().map(|c| c.text.as_str()).collect();
    let ids = student.tokenize(&texts)?;
    Ok(cached
        .into_iter()
        .zip(ids)
        .map(|(c, ids)| Row {
            ids,
            label: c.label,
            logits: c.logits,
            pooled: c.pooled,
        })
        .collect())
}

/// Rows trained on between shuffles; the cache is streamed in pieces this large.
const CHUNK_BATCHES: usize = 32;

/// Distills the student into a new package.
pub fn distill(options: &Options) -> Result<Report, DistillError> {
    let started = Instant::now();
    if options.settings.epochs == 0
        || options.settings.batch_size == 0
        || options.settings.temperature <= 0.0
    {
        return Err(DistillError::Options(
            "epochs and batch size must be at least 1, the temperature above 0".into(),
        ));
    }
    if !(options.settings.hidden_weight >= 0.0 && options.settings.hidden_weight.is_finite()) {
        return Err(DistillError::Options(format!(
            "the hidden-state weight must be 0 or more, not {}",
            options.settings.hidden_weight
        )));
    }
    let device = Device::Cpu;
    let teacher = TextPackage::open(&options.run.teacher)?;
    let student = TextPackage::open(&options.run.student)?;
    if teacher.labels != student.labels {
        return Err(DistillError::Options(format!(
            "teacher labels {:?} differ from student labels {:?}",
            teacher.labels, student.labels
        )));
    }
    let model = student.encoder()?;
    let head = head(&model, &student)?.clone();
    // The teacher's encoder, read only for hidden-state distillation: its graph gives the pooled
    // vectors.
    let teacher_encoder = if options.settings.hidden_weight > 0.0 {
        Some(teacher.encoder()?)
    } else {
        None
    };
    if let Some(imported) = &teacher_encoder {
        let (theirs, ours) = (
            imported.encoder.config.hidden_size,
            model.encoder.config.hidden_size,
        );
        if theirs != ours {
            return Err(DistillError::Options(format!(
                "hidden-state distillation needs the student's hidden size ({ours}) to be the \
                 teacher's ({theirs}); set the hidden-state weight to 0"
            )));
        }
    }
    let work = options.run.work();
    std::fs::create_dir_all(&work).map_err(|e| FileError::new(&work, e))?;

    let (train_file, test_file) = teacher_cache(options, &teacher, teacher_encoder.as_ref())?;
    let examples = count_rows(&train_file)?;
    let test_rows = tokenized(&student, read_rows(&test_file)?)?;
    let labelled = examples.1;
    let examples = examples.0;

    let mut net = Net::new(&model.encoder, &head, model.pooling, &device)?;
    net.set_dropout(options.settings.dropout);
    let before = held_out(&net, &test_rows, options, &device)?;

    let (checkpoints, start) = options
        .run
        .resume(&teacher.sha256, &student.sha256, |path| {
            net.load(path).map_err(DistillError::from)
        })?;

    let report = |now: &Measured, steps: usize, manifest: Option<PathBuf>| Report {
        examples,
        labelled,
        held_out: test_rows.len(),
        held_out_loss: (before.loss, now.loss),
        accuracy: (before.accuracy, now.accuracy),
        agreement: now.agreement,
        trained: Trained {
            steps,
            resumed_from: (start > 0).then_some(start),
            seconds: started.elapsed().as_secs_f64(),
            manifest,
        },
    };
    let batches_per_epoch = {
        let chunk = options.settings.batch_size * CHUNK_BATCHES;
        (examples / chunk) * CHUNK_BATCHES
            + (examples % chunk).div_ceil(options.settings.batch_size)
    };
    let total = batches_per_epoch * options.settings.epochs;
    let mut trainer = Trainer::new(
        net.trainable(false),
        Schedule::new(options.settings.lr, total, 10, Decay::Linear),
        0.01,
        options.run.progress,
        "distilling",
        start,
    )?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.run.seed);
    for _ in 0..options.settings.epochs {
        let mut stream = RowStream::open(&train_file)?;
        while let Some(chunk) = stream.next_chunk(options.settings.batch_size * CHUNK_BATCHES)? {
            let mut chunk = tokenized(&student, chunk)?;
            chunk.shuffle(&mut rng);
            let mut batches: Vec<Vec<Row>> = {
                chunk.sort_by_key(|r| r.ids.len());
                chunk
                    .chunks(options.settings.batch_size)
                    .map(<[Row]>::to_vec)
                    .collect()
            };
            batches.shuffle(&mut rng);
            for rows in &batches {
                let step = trainer.next_step();
                if step <= start {
                    continue;
                }
                let batch = tensors(rows, &device)?;
                let pooled = net.embed(&batch.inputs, true)?;
                trainer.backward_step(&loss(&net.logits(&pooled)?, &pooled, &batch, options)?)?;
                if checkpoints
                    .after_step(step, |path| net.save(path).map_err(DistillError::from))?
                {
                    trainer.finish();
                    let now = held_out(&net, &test_rows, options, &device)?;
                    return Ok(report(&now, step - start, None));
                }
            }
        }
    }
    trainer.finish();
    let after = held_out(&net, &test_rows, options, &device)?;

    let (mut encoder, mut head) = (model.encoder.clone(), head);
    net.write_back(&mut encoder, &mut head)?;
    let mut provenance = student.derived_provenance(format!(
        "distill: {} epochs over {examples} texts ({labelled} labelled, {} variants each{}), T {}, \
         alpha {}, hidden-state weight {}, lr {}, batch {}",
        options.settings.epochs,
        options.settings.augment,
        if options.swaps().is_some() {
            " with thesaurus swaps"
        } else {
            ""
        },
        options.settings.temperature,
        options.settings.alpha,
        options.settings.hidden_weight,
        options.settings.lr,
        options.settings.batch_size
    ));
    provenance.teacher_sha256 = Some(teacher.sha256.clone());
    provenance
        .metrics
        .insert("held_out_accuracy_candle".into(), after.accuracy);
    provenance
        .metrics
        .insert("teacher_agreement".into(), after.agreement);
    let c = &encoder.config;
    let manifest = student.write_derived(
        &options.run.out,
        &options.run.name,
        format!(
            "{} layers, {} heads, FFN {}, distilled from {}",
            c.num_layers,
            c.num_heads,
            c.intermediate_size,
            options.run.teacher.display()
        ),
        &crate::bert::onnx::classifier(&encoder, model.pooling, &head),
        provenance,
    )?;
    checkpoints.remove()?;
    Ok(report(
        &after,
        trainer.steps().saturating_sub(start),
        Some(manifest),
    ))
}

/// The classification head of a package's encoder.
fn head<'a>(
    imported: &'a crate::bert::from_onnx::Imported,
    package: &TextPackage,
) -> Result<&'a crate::bert::weights::Linear, DistillError> {
    imported.head.as_ref().ok_or_else(|| {
        DistillError::Options(format!(
            "{} has no classification head",
            package.model.display()
        ))
    })
}

/// The distillation loss of a batch, given the student's logits and pooled vectors.
fn loss(
    logits: &Tensor,
    pooled: &Tensor,
    batch: &BatchTensors,
    options: &Options,
) -> candle_core::Result<Tensor> {
    let t = options.settings.temperature;
    let student_log = candle_nn::ops::log_softmax(&(logits / t)?, D::Minus1)?;
    let teacher_log = candle_nn::ops::log_softmax(&(&batch.teacher / t)?, D::Minus1)?;
    let kl = (teacher_log.exp()? * (teacher_log - student_log)?)?
        .sum(D::Minus1)?
        .mean_all()?;
    let mut total = (kl * (t * t))?;
    // Caches carry pooled vectors only when distillation asks for them (their names say so).
    if let Some(theirs) = &batch.pooled {
        let mse = (pooled - theirs)?.sqr()?.mean_all()?;
        total = (total + (mse * options.settings.hidden_weight)?)?;
    }
    let labelled = batch.mask.sum_all()?.to_scalar::<f32>()?;
    if options.settings.alpha == 0.0 || labelled == 0.0 {
        return Ok(total);
    }
    let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let picked = log_probs
        .gather(&batch.labels.unsqueeze(1)?, 1)?
        .squeeze(1)?;
    let ce = ((picked * &batch.mask)?.sum_all()? * (-1.0 / f64::from(labelled)))?;
    total + (ce * options.settings.alpha)?
}

/// A batch of rows as tensors: the student's inputs and what the teacher said.
struct BatchTensors {
    inputs: net::Batch,
    /// Teacher logits `[batch, classes]`.
    teacher: Tensor,
    /// Teacher pooled vectors `[batch, hidden]`, when every row has one.
    pooled: Option<Tensor>,
    /// Labels (0 where unknown) and the mask of labelled rows.
    labels: Tensor,
    mask: Tensor,
}

fn tensors(rows: &[Row], device: &Device) -> candle_core::Result<BatchTensors> {
    let len = rows.iter().map(|r| r.ids.len()).max().unwrap_or(0);
    let padded = |f: &dyn Fn(u32) -> u32| -> Vec<Vec<u32>> {
        rows.iter()
            .map(|r| {
                let mut v: Vec<u32> = r.ids.iter().map(|&x| f(x)).collect();
                v.resize(len, 0);
                v
            })
            .collect()
    };
    let inputs = net::batch(
        &padded(&|x| x),
        &padded(&|_| 1),
        &vec![vec![0; len]; rows.len()],
        device,
    )?;
    let classes = rows.first().map_or(0, |r| r.logits.len());
    let teacher = Tensor::from_vec(
        rows.iter()
            .flat_map(|r| r.logits.clone())
            .collect::<Vec<_>>(),
        (rows.len(), classes),
        device,
    )?;
    let labels: Vec<u32> = rows.iter().map(|r| r.label.unwrap_or(0)).collect();
    let mask: Vec<f32> = rows
        .iter()
        .map(|r| f32::from(u8::from(r.label.is_some())))
        .collect();
    let pooled = rows
        .iter()
        .map(|r| r.pooled.as_deref())
        .collect::<Option<Vec<_>>>()
        .map(|vectors| {
            let width = vectors.first().map_or(0, |v| v.len());
            Tensor::from_vec(vectors.concat(), (rows.len(), width), device)
        })
        .transpose()?;
    Ok(BatchTensors {
        inputs,
        teacher,
        pooled,
        labels: Tensor::new(labels.as_slice(), device)?,
        mask: Tensor::new(mask.as_slice(), device)?,
    })
}

struct Measured {
    loss: f64,
    accuracy: f64,
    agreement: f64,
}

fn held_out(
    net: &Net,
    rows: &[Row],
    options: &Options,
    device: &Device,
) -> Result<Measured, DistillError> {
    let (mut loss_sum, mut right, mut agree) = (0.0, 0, 0);
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| rows[i].ids.len());
    let batches: Vec<Vec<Row>> = order
        .chunks(64)
        .map(|c| c.iter().map(|&i| rows[i].clone()).collect())
        .collect();
    for chunk in &batches {
        let batch = tensors(chunk, device)?;
        let pooled = net.embed(&batch.inputs, false)?;
        let logits = net.logits(&pooled)?;
        loss_sum += f64::from(loss(&logits, &pooled, &batch, options)?.to_scalar::<f32>()?)
            * chunk.len() as f64;
        let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        let taught = batch.teacher.argmax(D::Minus1)?.to_vec1::<u32>()?;
        for ((p, t), row) in predicted.iter().zip(&taught).zip(chunk) {
            right += usize::from(Some(*p) == row.label);
            agree += usize::from(p == t);
        }
    }
    let n = rows.len().max(1) as f64;
    Ok(Measured {
        loss: loss_sum / n,
        accuracy: right as f64 / n,
        agreement: agree as f64 / n,
    })
}

/// The teacher-logit caches for the training texts and the held-out texts, made when missing.
/// Their names carry the teacher's hash and the data selection, so a changed teacher or limit
/// makes new files instead of reusing stale ones. With the teacher's `encoder` the rows also carry
/// its pooled vectors.
fn teacher_cache(
    options: &Options,
    teacher: &TextPackage,
    encoder: Option<&crate::bert::from_onnx::Imported>,
) -> Result<(PathBuf, PathBuf), DistillError> {
    let key = format!(
        "{}-s{}-t{}-a{}{}{}-u{}-h{}",
        &teacher.sha256[..16],
        options.run.seed,
        options.train_limit.map_or("all".into(), |n| n.to_string()),
        options.settings.augment,
        if options.swaps().is_some() {
            "-syn"
        } else {
            ""
        },
        if encoder.is_some() { "-pooled" } else { "" },
        match &options.unlabelled {
            None => "none".into(),
            Some(_) => options
                .unlabelled_limit
                .map_or("all".into(), |n| n.to_string()),
        },
        options.test_limit.map_or("all".into(), |n| n.to_string()),
    );
    let work = options.run.work();
    let train_file = work.join(format!("teacher-{key}-train.jsonl"));
    let test_file = work.join(format!("teacher-{key}-test.jsonl"));
    if train_file.is_file() && test_file.is_file() {
        return Ok((train_file, test_file));
    }
    let corpus = data::corpus::corpus(
        &options.data,
        options.unlabelled.as_deref(),
        options.run.seed,
        options.limits(),
    )?;
    let test = corpus.test;
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.run.seed);
    let thesaurus = options
        .swaps()
        .map(crate::data::thesaurus::Thesaurus::load)
        .transpose()?;
    let variants = {
        let reviews: Vec<&str> = corpus.train.iter().map(|e| e.text.as_str()).collect();
        crate::data::augment::variants(
            &reviews,
            options.settings.augment,
            thesaurus.as_ref(),
            &mut rng,
        )
    };
    let mut texts: Vec<(String, Option<u32>)> = corpus
        .train
        .into_iter()
        .map(|e| (e.text, Some(e.label as u32)))
        .chain(variants.into_iter().map(|v| (v, None)))
        .chain(corpus.unlabelled.into_iter().map(|h| (h, None)))
        .collect();
    if texts.is_empty() || test.is_empty() {
        return Err(DistillError::Options(
            "no training or held-out texts left after the limits".into(),
        ));
    }
    texts.shuffle(&mut rng);
    let test: Vec<(String, Option<u32>)> = test
        .into_iter()
        .map(|e| (e.text, Some(e.label as u32)))
        .collect();
    let plan = if let Some(imported) = encoder {
        let graph = crate::bert::onnx::classifier(
            &imported.encoder,
            imported.pooling,
            head(imported, teacher)?,
        );
        teacher.plan_graph(
            &graph,
            &[crate::bert::onnx::LOGITS, crate::bert::onnx::POOLED],
        )?
    } else {
        teacher.plan(crate::bert::onnx::LOGITS)?
    };
    let bar = crate::progress_bar(
        options.run.progress,
        (texts.len() + test.len()) as u64,
        "teacher logits",
    );
    for (rows, path) in [(&texts, &train_file), (&test, &test_file)] {
        write_teacher_rows(teacher, &plan, rows, path, &bar)?;
    }
    bar.finish_and_clear();
    Ok((train_file, test_file))
}

fn write_teacher_rows(
    teacher: &TextPackage,
    plan: &crate::package::text::Plan,
    rows: &[(String, Option<u32>)],
    path: &Path,
    bar: &ProgressBar,
) -> Result<(), DistillError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file = tempfile::NamedTempFile::new_in(dir).map_err(|e| FileError::new(dir, e))?;
    let mut out = BufWriter::new(file);
    for chunk in rows.chunks(32) {
        let texts: Vec<&str> = chunk.iter().map(|(t, _)| t.as_str()).collect();
        let mut outputs = teacher
            .run_ids_all(plan, &teacher.tokenize(&texts)?)?
            .into_iter();
        let logits = outputs.next().unwrap_or_default();
        let mut pooled = outputs.next().map(Vec::into_iter);
        for ((text, label), logits) in chunk.iter().zip(logits) {
            let row = Cached {
                text: text.clone(),
                label: *label,
                logits,
                pooled: pooled.as_mut().and_then(Iterator::next),
            };
            serde_json::to_writer(&mut out, &row).map_err(|e| FileError::new(path, e))?;
            out.write_all(b"\n").map_err(|e| FileError::new(path, e))?;
        }
        bar.inc(chunk.len() as u64);
    }
    let file = out
        .into_inner()
        .map_err(|e| FileError::new(path, e.into_error()))?;
    file.persist(path)
        .map_err(|e| FileError::new(path, e.error))?;
    Ok(())
}

/// Reads a cache file a chunk at a time.
struct RowStream {
    path: PathBuf,
    lines: std::io::Lines<BufReader<std::fs::File>>,
}

impl RowStream {
    fn open(path: &Path) -> Result<RowStream, DistillError> {
        let file = std::fs::File::open(path).map_err(|e| FileError::new(path, e))?;
        Ok(RowStream {
            path: path.to_owned(),
            lines: BufReader::new(file).lines(),
        })
    }

    fn next_chunk(&mut self, size: usize) -> Result<Option<Vec<Cached>>, DistillError> {
        let mut rows = Vec::with_capacity(size);
        for line in self.lines.by_ref() {
            let line = line.map_err(|e| FileError::new(&self.path, e))?;
            rows.push(serde_json::from_str(&line).map_err(|e| {
                FileError::new(
                    &self.path,
                    format!("corrupt cache line ({e}); delete the file to rebuild it"),
                )
            })?);
            if rows.len() == size {
                break;
            }
        }
        Ok((!rows.is_empty()).then_some(rows))
    }
}

/// `(rows, labelled rows)` of a cache file.
fn count_rows(path: &Path) -> Result<(usize, usize), DistillError> {
    let mut stream = RowStream::open(path)?;
    let (mut all, mut labelled) = (0, 0);
    while let Some(chunk) = stream.next_chunk(4096)? {
        all += chunk.len();
        labelled += chunk.iter().filter(|r| r.label.is_some()).count();
    }
    Ok((all, labelled))
}

fn read_rows(path: &Path) -> Result<Vec<Cached>, DistillError> {
    let mut stream = RowStream::open(path)?;
    let mut rows = Vec::new();
    while let Some(chunk) = stream.next_chunk(4096)? {
        rows.extend(chunk);
    }
    Ok(rows)
}
