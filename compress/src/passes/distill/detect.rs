//! Knowledge distillation of a DBNet-style text detector: the student's own ONNX graph is
//! trained in candle ([`crate::onnx::candle`]) to reproduce the teacher's probability map.
//!
//! The teacher runs in tract once over the training images; its maps are cached on disk as
//! 8-bit PNGs beside a list of the images they belong to, and every step reads its batch from
//! disk (images, maps, boxes), so the set never has to fit in memory. A step takes random crops,
//! runs the student to its logits (the input of its final Sigmoid), and minimises
//! `T²·KL(σ(teacher/T) ‖ σ(student/T)) + α·BCE(σ(student), true mask)` per pixel, where the true
//! mask is each rendered box shrunk as DBNet's own labels are (`D = A·(1 − 0.4²)/L`) and text
//! pixels weigh [`TEXT_WEIGHT`] times the background. When the student's map is smaller than its
//! input (a downscaled student), the targets are averaged down to it. Checkpoints let a stopped
//! run resume at its step; the trained weights are written back into the student's ONNX file,
//! and its decoder is fitted to its own maps on training images ([`crate::eval::tune_decoder`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use edgemass::model::Model;
use edgemass::model::manifest::DecoderSpec;
use edgemass::vision::preprocess::{load_image, prepare};
use image::GrayImage;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::FileError;
use crate::data::render_text::{Labelled, read_labels};
use crate::eval::detect::Truth;
use crate::onnx::candle::CandleGraph;
use crate::package::detect::DetectPackage;
use crate::passes::distill::{DistillError, Run, Trained};
use crate::train::scaffold::{Decay, Schedule, Trainer};

/// Text pixels (teacher or true mask above one half) count this many times in the loss.
pub const TEXT_WEIGHT: f64 = 5.0;

/// Training images the student's decoder is fitted on after training.
const TUNING_IMAGES: usize = 100;

/// DBNet's label shrink ratio.
const SHRINK: f32 = 0.4;

/// How a detection student is trained: the `[distill]` table of a detection recipe and the flags
/// of `edgemass-compress distill` for a detection package, declared once.
#[derive(Debug, Clone, PartialEq, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Passes over the training images.
    #[arg(long, default_value_t = 4)]
    pub epochs: usize,
    /// Crops per step.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Side of the square training crops in input pixels (a multiple of 64).
    #[arg(long, default_value_t = 320)]
    pub crop: usize,
    /// Peak learning rate (linear warm-up over 5 % of the steps, then cosine decay).
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Softening temperature T.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Weight alpha of the cross-entropy against the true boxes.
    #[arg(long, default_value_t = 0.5)]
    pub alpha: f64,
}

default_from_flags!(Settings);

/// What to distill and how: the flags of `edgemass-compress distill` for a detection student.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Teacher, student, output and run control.
    #[command(flatten)]
    pub run: Run,
    /// Rendered-text sets to train on (directories written by render-text; repeatable): their
    /// boxes give the task term.
    #[arg(long = "train", required = true)]
    pub train: Vec<PathBuf>,
    /// A rendered-text set the held-out loss is measured on.
    #[arg(long)]
    pub held_out: PathBuf,
    /// Use only the first N training images.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Measure on only the first N held-out images.
    #[arg(long, default_value = "20")]
    pub held_out_limit: Option<usize>,
    /// How the student is trained.
    #[command(flatten)]
    pub settings: Settings,
}

impl Options {
    /// Defaults for distilling `student` from `teacher` on the `train` sets into `out`, measured
    /// on the whole `held_out` set.
    pub fn new(
        teacher: &Path,
        student: &Path,
        train: Vec<PathBuf>,
        held_out: &Path,
        out: &Path,
    ) -> Options {
        Options {
            run: Run::new(teacher, student, out),
            train,
            held_out: held_out.to_owned(),
            train_limit: None,
            held_out_limit: None,
            settings: Settings::default(),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Report {
    /// Training images.
    pub images: usize,
    /// Held-out images measured.
    pub held_out: usize,
    /// Held-out loss before and after training.
    pub held_out_loss: (f64, f64),
    /// Steps, resumption, time and the package written.
    pub trained: Trained,
    /// The decoder settings fitted to the trained student.
    pub decoder: Option<crate::eval::tune_decoder::Tuned>,
}

/// One image with its teacher map and boxes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Sample {
    image: PathBuf,
    map: PathBuf,
    boxes: Vec<[f32; 4]>,
}

/// Distills the student into a new package.
pub fn distill(options: &Options) -> Result<Report, DistillError> {
    let started = Instant::now();
    if options.settings.epochs == 0
        || options.settings.batch_size == 0
        || options.settings.temperature <= 0.0
        || options.settings.crop == 0
        || !options.settings.crop.is_multiple_of(64)
    {
        return Err(DistillError::Options(
            "epochs and batch size must be at least 1, the temperature above 0, and the crop a \
             positive multiple of 64"
                .into(),
        ));
    }
    let device = Device::Cpu;
    let teacher = DetectPackage::open(&options.run.teacher)?;
    let student = DetectPackage::open(&options.run.student)?;
    let (t, s) = (&teacher.manifest, &student.manifest);
    if t.input != s.input || t.labels != s.labels {
        return Err(DistillError::Options(format!(
            "{} and {} must take the same input and have the same labels",
            options.run.teacher.display(),
            options.run.student.display()
        )));
    }
    let DecoderSpec::Dbnet { output, .. } = &s.decoder else {
        return Err(DistillError::Options(format!(
            "{} is not a DBNet (probability map) detector",
            options.run.student.display()
        )));
    };
    let student_model = student.graph()?.proto;
    let logits = logits_of(&student_model, output)?;
    let net = CandleGraph::new(&student_model, &device)?;
    let work = options.run.work();
    std::fs::create_dir_all(&work).map_err(|e| FileError::new(&work, e))?;

    let mut train = Vec::new();
    for set in &options.train {
        train.extend(labelled(set)?);
    }
    train.truncate(options.train_limit.unwrap_or(train.len()));
    let mut held_out = labelled(&options.held_out)?;
    held_out.truncate(options.held_out_limit.unwrap_or(held_out.len()));
    if train.is_empty() || held_out.is_empty() {
        return Err(DistillError::Options(
            "no training or held-out images".into(),
        ));
    }
    let train = teacher_maps(options, &teacher, &train, "train")?;
    let held_out = teacher_maps(options, &teacher, &held_out, "held-out")?;

    let spec = &s.input;
    let loss_of = |net: &CandleGraph, batch: &Batch| -> Result<Tensor, DistillError> {
        let z = net.forward(&batch.images, &[&logits])?.remove(0);
        Ok(loss(&z, batch, options)?)
    };
    let measure = |net: &CandleGraph| -> Result<f64, DistillError> {
        let mut total = 0.0;
        for sample in &held_out {
            let batch = Batch::whole(sample, spec, &device)?;
            total += f64::from(loss_of(net, &batch)?.to_scalar::<f32>()?);
        }
        Ok(total / held_out.len() as f64)
    };
    let before = measure(&net)?;

    let (checkpoints, start) = options
        .run
        .resume(&teacher.sha256, &student.sha256, |path| {
            net.load(path).map_err(DistillError::from)
        })?;
    let per_epoch = train.len().div_ceil(options.settings.batch_size);
    let total = per_epoch * options.settings.epochs;
    let mut trainer = Trainer::new(
        net.vars(),
        Schedule::new(options.settings.lr, total, 20, Decay::Cosine),
        1e-4,
        options.run.progress,
        "distilling",
        start,
    )?;
    let report = |after: f64, steps: usize, manifest: Option<PathBuf>| Report {
        images: train.len(),
        held_out: held_out.len(),
        held_out_loss: (before, after),
        trained: Trained {
            steps,
            resumed_from: (start > 0).then_some(start),
            seconds: started.elapsed().as_secs_f64(),
            manifest,
        },
        decoder: None,
    };
    for epoch in 0..options.settings.epochs {
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(options.run.seed ^ epoch as u64));
        for chunk in order.chunks(options.settings.batch_size) {
            let step = trainer.next_step();
            if step <= start {
                continue;
            }
            let mut rng = StdRng::seed_from_u64(options.run.seed.wrapping_mul(31) ^ step as u64);
            let samples: Vec<&Sample> = chunk.iter().map(|&i| &train[i]).collect();
            let batch = Batch::crops(&samples, spec, options.settings.crop, &mut rng, &device)?;
            trainer.backward_step(&loss_of(&net, &batch)?)?;
            if checkpoints.after_step(step, |path| net.save(path).map_err(DistillError::from))? {
                trainer.finish();
                return Ok(report(measure(&net)?, step - start, None));
            }
        }
    }
    trainer.finish();
    let after = measure(&net)?;
    let mut trained = student_model;
    net.write_back(&mut trained)?;
    let mut provenance = student.derived_provenance(format!(
        "distill-detect: {} epochs over {} images, {}px crops, T {}, alpha {}, lr {}, batch {}",
        options.settings.epochs,
        train.len(),
        options.settings.crop,
        options.settings.temperature,
        options.settings.alpha,
        options.settings.lr,
        options.settings.batch_size
    ));
    provenance.teacher_sha256 = Some(teacher.sha256.clone());
    provenance
        .metrics
        .insert("held_out_distillation_loss".into(), after);
    let manifest = student.write_derived(
        &options.run.out,
        &options.run.name,
        format!(
            "{} distilled from {}",
            student.manifest.name, teacher.manifest.name
        ),
        &trained,
        None,
        &provenance,
    )?;
    let tuning: Vec<&Sample> = train.iter().take(TUNING_IMAGES).collect();
    let tuned = crate::eval::tune_decoder::tune(
        &manifest,
        &tuning.iter().map(|s| s.image.clone()).collect::<Vec<_>>(),
        &tuning
            .iter()
            .map(|s| {
                s.boxes
                    .iter()
                    .map(|&bbox| Truth { class: 0, bbox })
                    .collect()
            })
            .collect::<Vec<_>>(),
    )?;
    checkpoints.remove()?;
    let mut done = report(after, trainer.steps().saturating_sub(start), Some(manifest));
    done.decoder = Some(tuned);
    Ok(done)
}

/// The tensor the final Sigmoid of `output` reads.
fn logits_of(model: &tract_onnx::pb::ModelProto, output: &str) -> Result<String, DistillError> {
    model
        .graph
        .iter()
        .flat_map(|g| &g.node)
        .find(|n| n.op_type == "Sigmoid" && n.output.iter().any(|o| o == output))
        .map(|n| n.input[0].clone())
        .ok_or_else(|| {
            DistillError::Options(format!(
                "the student's output `{output}` is not made by a Sigmoid, so it has no logits to \
                 distill"
            ))
        })
}

/// The images of a rendered-text set, with paths made absolute.
fn labelled(dir: &Path) -> Result<Vec<(PathBuf, Labelled)>, DistillError> {
    Ok(read_labels(dir)?
        .into_iter()
        .map(|l| (dir.join(&l.image), l))
        .collect())
}

/// The teacher's map of every image, computed once into `work` and reused while the teacher and
/// the image list are the same.
fn teacher_maps(
    options: &Options,
    teacher: &DetectPackage,
    images: &[(PathBuf, Labelled)],
    part: &str,
) -> Result<Vec<Sample>, DistillError> {
    let dir = options
        .run
        .work()
        .join(format!("teacher-{}-{part}", &teacher.sha256[..16]));
    let list = dir.join("maps.json");
    let samples: Vec<Sample> = images
        .iter()
        .enumerate()
        .map(|(i, (image, l))| Sample {
            image: image.clone(),
            map: dir.join(format!("{i:05}.png")),
            boxes: l.boxes.clone(),
        })
        .collect();
    if let Ok(text) = std::fs::read_to_string(&list)
        && serde_json::from_str::<Vec<Sample>>(&text).is_ok_and(|cached| cached == samples)
    {
        return Ok(samples);
    }
    std::fs::create_dir_all(&dir).map_err(|e| FileError::new(&dir, e))?;
    let model = Model::load(teacher.manifest.clone())?;
    let DecoderSpec::Dbnet { output, .. } = &teacher.manifest.decoder else {
        return Err(DistillError::Options(format!(
            "{} is not a DBNet (probability map) detector",
            teacher.path.display()
        )));
    };
    let bar = crate::progress_bar(
        options.run.progress,
        samples.len() as u64,
        &format!("teacher maps ({part})"),
    );
    for sample in &samples {
        let image = load_image(&sample.image)?;
        let (tensor, _) = prepare(&image, &teacher.manifest.input);
        let outputs = model.run(tensor)?;
        let map = outputs.get(output).ok_or_else(|| {
            DistillError::Options(format!("the teacher has no output `{output}`"))
        })?;
        let shape = map.shape();
        let (h, w) = (shape[shape.len() - 2], shape[shape.len() - 1]);
        let values: Vec<u8> = map
            .iter()
            .map(|p| (p.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();
        let png = GrayImage::from_raw(w as u32, h as u32, values).expect("one byte per map value");
        png.save(&sample.map)
            .map_err(|e| FileError::new(&sample.map, e))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let text = serde_json::to_string(&samples).expect("plain fields");
    crate::write_atomic(&list, text.as_bytes()).map_err(|e| FileError::new(&list, e))?;
    Ok(samples)
}

/// Inputs and per-pixel targets of one step, at the input's resolution.
struct Batch {
    images: Tensor,
    teacher: Tensor,
    truth: Tensor,
}

impl Batch {
    /// One whole image.
    fn whole(
        sample: &Sample,
        spec: &edgemass::model::manifest::InputSpec,
        device: &Device,
    ) -> Result<Batch, DistillError> {
        let (image, teacher, truth, (h, w)) = load_sample(sample, spec)?;
        Ok(Batch {
            images: Tensor::from_vec(image, (1, 3, h, w), device)?,
            teacher: Tensor::from_vec(teacher, (1, 1, h, w), device)?,
            truth: Tensor::from_vec(truth, (1, 1, h, w), device)?,
        })
    }

    /// A random `crop`-pixel square of each sample, mirrored half the time.
    fn crops(
        samples: &[&Sample],
        spec: &edgemass::model::manifest::InputSpec,
        crop: usize,
        rng: &mut StdRng,
        device: &Device,
    ) -> Result<Batch, DistillError> {
        let (mut images, mut teachers, mut truths) = (Vec::new(), Vec::new(), Vec::new());
        for sample in samples {
            let (image, teacher, truth, (h, w)) = load_sample(sample, spec)?;
            if h < crop || w < crop {
                return Err(DistillError::Options(format!(
                    "{} is {w}x{h}, smaller than the {crop}px crop",
                    sample.image.display()
                )));
            }
            let y = rng.random_range(0..=(h - crop) / 32) * 32;
            let x = rng.random_range(0..=(w - crop) / 32) * 32;
            let cut = |t: Tensor| -> candle_core::Result<Tensor> {
                t.narrow(2, y, crop)?.narrow(3, x, crop)
            };
            let mut parts = [
                cut(Tensor::from_vec(image, (1, 3, h, w), device)?)?,
                cut(Tensor::from_vec(teacher, (1, 1, h, w), device)?)?,
                cut(Tensor::from_vec(truth, (1, 1, h, w), device)?)?,
            ];
            if rng.random_bool(0.5) {
                let reversed: Vec<u32> = (0..crop as u32).rev().collect();
                let reversed = Tensor::new(reversed.as_slice(), device)?;
                for p in &mut parts {
                    *p = p.contiguous()?.index_select(&reversed, 3)?;
                }
            }
            let [i, t, g] = parts;
            images.push(i);
            teachers.push(t);
            truths.push(g);
        }
        Ok(Batch {
            images: Tensor::cat(&images, 0)?,
            teacher: Tensor::cat(&teachers, 0)?,
            truth: Tensor::cat(&truths, 0)?,
        })
    }
}

type Loaded = (Vec<f32>, Vec<f32>, Vec<f32>, (usize, usize));

/// The input tensor, teacher map and shrunk true mask of a sample, all at the input size.
fn load_sample(
    sample: &Sample,
    spec: &edgemass::model::manifest::InputSpec,
) -> Result<Loaded, DistillError> {
    let image = load_image(&sample.image)?;
    let (tensor, transform) = prepare(&image, spec);
    let (h, w) = (spec.height as usize, spec.width as usize);
    let values: Vec<f32> = tensor
        .to_plain_array_view::<f32>()
        .map_err(|e| DistillError::Options(format!("input tensor: {e}")))?
        .iter()
        .copied()
        .collect();
    let map = image::open(&sample.map)
        .map_err(|e| {
            FileError::new(
                &sample.map,
                format!("{e}; delete the directory to rebuild the teacher maps"),
            )
        })?
        .to_luma8();
    let map = if map.dimensions() == (w as u32, h as u32) {
        map
    } else {
        image::imageops::resize(
            &map,
            w as u32,
            h as u32,
            image::imageops::FilterType::Triangle,
        )
    };
    let teacher: Vec<f32> = map.pixels().map(|p| f32::from(p.0[0]) / 255.0).collect();
    let mut truth = vec![0f32; h * w];
    for b in &sample.boxes {
        let [x1, y1, x2, y2] = [
            b[0] * transform.scale_x + transform.pad_x,
            b[1] * transform.scale_y + transform.pad_y,
            b[2] * transform.scale_x + transform.pad_x,
            b[3] * transform.scale_y + transform.pad_y,
        ];
        let (bw, bh) = (x2 - x1, y2 - y1);
        let d = bw * bh * (1.0 - SHRINK * SHRINK) / (2.0 * (bw + bh)).max(1e-6);
        let (sx1, sy1, sx2, sy2) = (x1 + d, y1 + d, x2 - d, y2 - d);
        if sx2 <= sx1 || sy2 <= sy1 {
            continue;
        }
        for y in (sy1.max(0.0) as usize)..(sy2.ceil().min(h as f32) as usize) {
            for x in (sx1.max(0.0) as usize)..(sx2.ceil().min(w as f32) as usize) {
                truth[y * w + x] = 1.0;
            }
        }
    }
    Ok((values, teacher, truth, (h, w)))
}

/// `ln(1 + eˣ)`, stable for large |x|.
fn softplus(x: &Tensor) -> candle_core::Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// The per-step loss of student logits `z` against the batch's targets.
fn loss(z: &Tensor, batch: &Batch, options: &Options) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = z.dims4()?;
    let (_, _, bh, bw) = batch.teacher.dims4()?;
    let (teacher, truth) = if (h, w) == (bh, bw) {
        (batch.teacher.clone(), batch.truth.clone())
    } else {
        let fy = bh / h;
        let fx = bw / w;
        (
            batch.teacher.avg_pool2d((fy, fx))?,
            batch.truth.avg_pool2d((fy, fx))?,
        )
    };
    let t = options.settings.temperature;
    let q = teacher.clamp(1e-4f32, 1.0 - 1e-4)?;
    let teacher_logit = ((&q / (1.0 - &q)?)?).log()?;
    let soft = candle_nn::ops::sigmoid(&(teacher_logit / t)?)?;
    let zt = (z / t)?;
    let log_p = softplus(&zt.neg()?)?.neg()?;
    let log_not_p = softplus(&zt)?.neg()?;
    let entropy = ((&soft * soft.log()?)? + ((1.0 - &soft)? * (1.0 - &soft)?.log()?)?)?;
    let kl = (entropy - ((&soft * &log_p)? + ((1.0 - &soft)? * &log_not_p)?)?)?;
    let text = teacher.maximum(&truth)?.ge(0.5)?.to_dtype(z.dtype())?;
    let weight = ((text * (TEXT_WEIGHT - 1.0))? + 1.0)?;
    let norm = weight.sum_all()?;
    let distill = ((kl * &weight)?.sum_all()? / &norm)?.affine(t * t, 0.0)?;
    if options.settings.alpha == 0.0 {
        return Ok(distill);
    }
    let log_p1 = softplus(&z.neg()?)?.neg()?;
    let log_not_p1 = softplus(z)?.neg()?;
    let bce = ((&truth * log_p1)? + ((1.0 - &truth)? * log_not_p1)?)?.neg()?;
    let task = ((bce * &weight)?.sum_all()? / &norm)?;
    distill + (task * options.settings.alpha)?
}
