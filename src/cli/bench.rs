//! `edgemass bench`: how fast a model loads and runs here, and how much memory it takes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use edgemass::latency::{Latency, peak_rss};
use edgemass::model::Options;
use edgemass::model::threads::with_threads;
use edgemass::text::TextClassifier;
use edgemass::vision::preprocess::load_image;
use serde_json::json;

use super::LoadArgs;
use super::detect::load_detector;

/// `edgemass bench`: load time, latency, frames/s and peak memory of a model.
#[derive(clap::Args)]
pub struct Args {
    /// The model manifest (NAME.model.toml).
    #[arg(long, value_name = "MANIFEST")]
    model: PathBuf,
    /// Image to run on (default: a mid-grey frame of the input size).
    #[arg(long, value_name = "FILE")]
    image: Option<PathBuf>,
    /// Text models: a file of texts, one per line; each of the first RUNS is timed alone,
    /// then all of them in batches of --batch.
    #[arg(long, value_name = "FILE")]
    texts: Option<PathBuf>,
    /// Text models: texts per batch in the batched pass.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Timed runs.
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// Untimed warm-up runs.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Inference threads (tract matrix products).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Image models: what runs the model and in which form.
    #[command(flatten)]
    load: LoadArgs,
}

impl Args {
    /// Runs `bench`.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let timing = Timing {
            runs: self.runs,
            warmup: self.warmup,
            threads: self.threads,
            json: self.json,
        };
        with_threads(self.threads, "bench", || match &self.texts {
            Some(texts) => bench_text(&self.model, texts, self.batch, &timing),
            None => bench(
                &self.model,
                &self.load.options(self.threads),
                self.image.as_deref(),
                &timing,
            ),
        })
    }
}

/// How `bench` times a model and prints the result.
struct Timing {
    runs: usize,
    warmup: usize,
    threads: usize,
    json: bool,
}

fn bench(
    manifest: &Path,
    options: &Options,
    image: Option<&Path>,
    timing: &Timing,
) -> anyhow::Result<ExitCode> {
    let &Timing {
        runs,
        warmup,
        threads,
        json,
    } = timing;
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let started = Instant::now();
    let detector = load_detector(manifest, options)?;
    let load = started.elapsed();
    let choice = detector.model().choice();
    let m = detector.model().manifest();
    let frame = match image {
        Some(path) => load_image(path)?,
        None => {
            image::RgbImage::from_pixel(m.input.width, m.input.height, image::Rgb([128, 128, 128]))
        }
    };
    let (tensor, _) = detector.prepare(&frame);
    for _ in 0..warmup {
        detector.model().run(tensor.clone())?;
    }
    let mut inference = Vec::with_capacity(runs);
    let mut end_to_end = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let found = detector.detect(&frame)?;
        end_to_end.push(t.elapsed());
        inference.push(found.inference);
    }
    let (Some(infer), Some(total)) = (Latency::of(&inference), Latency::of(&end_to_end)) else {
        bail!("no runs were timed");
    };
    let rss_mib = peak_rss().map(|b| b as f64 / (1024.0 * 1024.0));
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    if json {
        println!(
            "{}",
            json!({
                "model": m.name, "runtime": choice.runtime, "precision": choice.precision.name(),
                "input": [m.input.width, m.input.height],
                "measured": choice.candidates.iter().map(|c| json!({
                    "runtime": c.runtime, "precision": c.precision.name(),
                    "ms": ms(c.time), "deviation": c.deviation, "tolerance": c.tolerance,
                })).collect::<Vec<_>>(),
                "runs": runs, "threads": threads,
                "load_ms": ms(load), "inference_p50_ms": ms(infer.p50), "inference_p95_ms": ms(infer.p95),
                "end_to_end_p50_ms": ms(total.p50), "end_to_end_p95_ms": ms(total.p95),
                "frames_per_s": total.per_second(), "peak_rss_mib": rss_mib,
            })
        );
    } else {
        println!(
            "model {} ({}x{}) on {choice}; {runs} runs after {warmup} warm-up, {threads} thread(s)",
            m.name, m.input.width, m.input.height
        );
        println!("| stage | p50 ms | p95 ms |");
        println!("|---|---:|---:|");
        println!(
            "| load (and measuring the runtimes), plan and first run | {:.1} | |",
            ms(load)
        );
        println!(
            "| inference | {:.2} | {:.2} |",
            ms(infer.p50),
            ms(infer.p95)
        );
        println!(
            "| image → detections | {:.2} | {:.2} |",
            ms(total.p50),
            ms(total.p95)
        );
        println!("frames/s: {:.1}", total.per_second());
        match rss_mib {
            Some(mib) => println!("peak RSS: {mib:.1} MiB"),
            None => println!("peak RSS: not reported by this system"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Times a text classifier on the texts of `file`: one at a time, then in batches.
fn bench_text(
    manifest: &Path,
    file: &Path,
    batch: usize,
    timing: &Timing,
) -> anyhow::Result<ExitCode> {
    let &Timing {
        runs,
        warmup,
        threads,
        json,
    } = timing;
    if runs == 0 || batch == 0 {
        bail!("--runs and --batch must be at least 1");
    }
    let body = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read texts from {}", file.display()))?;
    let texts: Vec<&str> = body.lines().filter(|l| !l.trim().is_empty()).collect();
    if texts.is_empty() {
        bail!("{} holds no texts", file.display());
    }
    let started = Instant::now();
    let classifier = TextClassifier::from_manifest_path(manifest)?;
    let load = started.elapsed();
    for text in texts.iter().cycle().take(warmup) {
        classifier.classify(&[text])?;
    }
    let mut single = Vec::with_capacity(runs);
    for text in texts.iter().cycle().take(runs) {
        let t = Instant::now();
        classifier.classify(&[text])?;
        single.push(t.elapsed());
    }
    let t = Instant::now();
    let mut batches = Vec::new();
    for chunk in texts.chunks(batch) {
        let b = Instant::now();
        classifier.classify(chunk)?;
        batches.push(b.elapsed());
    }
    let batched_per_s = texts.len() as f64 / t.elapsed().as_secs_f64();
    let (Some(one), Some(many)) = (Latency::of(&single), Latency::of(&batches)) else {
        bail!("no runs were timed");
    };
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let name = &classifier.manifest().name;
    if json {
        println!(
            "{}",
            json!({
                "model": name, "texts": texts.len(), "runs": runs, "threads": threads, "batch": batch,
                "load_ms": ms(load), "single_p50_ms": ms(one.p50), "single_p95_ms": ms(one.p95),
                "single_per_s": one.per_second(), "batch_p50_ms": ms(many.p50),
                "batched_per_s": batched_per_s, "peak_rss_mib": peak_rss().map(|b| b as f64 / 1048576.0),
            })
        );
    } else {
        println!("model {name}, {} texts, {threads} thread(s)", texts.len());
        println!("| pass | p50 ms | p95 ms | texts/s |");
        println!("|---|---:|---:|---:|");
        println!(
            "| one text at a time ({runs} runs) | {:.2} | {:.2} | {:.1} |",
            ms(one.p50),
            ms(one.p95),
            one.per_second()
        );
        println!(
            "| batches of {batch} | {:.2} | {:.2} | {batched_per_s:.1} |",
            ms(many.p50),
            ms(many.p95)
        );
    }
    Ok(ExitCode::SUCCESS)
}
