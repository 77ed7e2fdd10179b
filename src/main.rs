//! The `edgemass` command: parses arguments, sets up logging and maps errors to exit codes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use edgemass::bench::{Latency, peak_rss};
use edgemass::model::{Model, npy};
use edgemass::vision::annotate;
use edgemass::vision::detector::Detector;
use edgemass::vision::preprocess::load_image;
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "edgemass",
    version,
    about = "Run compressed vision models on small boards"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Detect objects in images with a model package.
    Detect {
        /// The model manifest (NAME.model.toml).
        #[arg(long, value_name = "MANIFEST")]
        model: PathBuf,
        /// Images to read (JPEG or PNG).
        #[arg(long, value_name = "FILE", num_args = 1.., required = true)]
        image: Vec<PathBuf>,
        /// One JSON object per detection and line instead of a table.
        #[arg(long)]
        json: bool,
        /// Write the images with boxes drawn: a file for one image, a directory for several.
        #[arg(long, value_name = "OUT")]
        annotate: Option<PathBuf>,
    },
    /// Measure load time, latency, frames/s and peak memory of a model.
    Bench {
        /// The model manifest (NAME.model.toml).
        #[arg(long, value_name = "MANIFEST")]
        model: PathBuf,
        /// Image to run on (default: a mid-grey frame of the input size).
        #[arg(long, value_name = "FILE")]
        image: Option<PathBuf>,
        /// Timed runs.
        #[arg(long, default_value_t = 30)]
        runs: usize,
        /// Untimed warm-up runs.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write the exact input tensor a model gets for an image, as .npy, to replay it elsewhere.
    Tensor {
        /// The model manifest (NAME.model.toml).
        #[arg(long, value_name = "MANIFEST")]
        model: PathBuf,
        /// The image.
        #[arg(long, value_name = "FILE")]
        image: PathBuf,
        /// Output .npy file.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("EDGEMASS_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Detect {
            model,
            image,
            json,
            annotate,
        } => detect(&model, &image, json, annotate.as_deref()),
        Command::Bench {
            model,
            image,
            runs,
            warmup,
            json,
        } => bench(&model, image.as_deref(), runs, warmup, json),
        Command::Tensor { model, image, out } => tensor(&model, &image, &out),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let message = format!("{e:#}");
            eprintln!(
                "edgemass: error: {}",
                message.split_whitespace().collect::<Vec<_>>().join(" ")
            );
            ExitCode::FAILURE
        }
    }
}

fn load_detector(manifest: &Path) -> anyhow::Result<Detector> {
    let model = Model::from_manifest_path(manifest)?;
    Ok(Detector::new(model)?)
}

fn detect(
    manifest: &Path,
    images: &[PathBuf],
    json: bool,
    annotate_to: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let detector = load_detector(manifest)?;
    let labels = detector.labels();
    let name = &detector.model().manifest().name;
    let annotate_dir = match annotate_to {
        Some(out) if images.len() > 1 || out.is_dir() => {
            std::fs::create_dir_all(out)
                .with_context(|| format!("cannot create directory {}", out.display()))?;
            true
        }
        _ => false,
    };
    let mut failed = 0;
    let mut stdout = std::io::stdout().lock();
    for path in images {
        let found = load_image(path)
            .map_err(anyhow::Error::from)
            .and_then(|image| {
                let found = detector.detect(&image)?;
                if let Some(out) = annotate_to {
                    let target = if annotate_dir {
                        out.join(path.file_name().unwrap_or_default())
                    } else {
                        out.to_owned()
                    };
                    let mut image = image;
                    annotate::draw(&mut image, &found.detections, labels);
                    image
                        .save(&target)
                        .with_context(|| format!("cannot write {}", target.display()))?;
                }
                Ok((image_size_note(path), found))
            });
        let (size, found) = match found {
            Ok(ok) => ok,
            Err(e) => {
                eprintln!(
                    "edgemass: error: {}",
                    format!("{e:#}")
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                failed += 1;
                continue;
            }
        };
        if json {
            for d in &found.detections {
                let mut line = json!({
                    "image": path.display().to_string(),
                    "label": labels[d.class],
                    "score": round(d.score, 4),
                    "box": d.bbox.to_array().map(|v| round(v, 1)),
                });
                if !d.keypoints.is_empty() {
                    line["keypoints"] = json!(
                        d.keypoints
                            .iter()
                            .map(|p| p.map(|v| round(v, 1)))
                            .collect::<Vec<_>>()
                    );
                }
                writeln!(stdout, "{line}")?;
            }
        } else {
            writeln!(
                stdout,
                "{}{size}: {} detection(s) by {name} (preprocess {:.1} ms, inference {:.1} ms, decode {:.1} ms)",
                path.display(),
                found.detections.len(),
                found.preprocess.as_secs_f64() * 1e3,
                found.inference.as_secs_f64() * 1e3,
                found.decode.as_secs_f64() * 1e3,
            )?;
            for d in &found.detections {
                let [x1, y1, x2, y2] = d.bbox.to_array();
                writeln!(
                    stdout,
                    "  {:<20} {:.2}  [{x1:.0}, {y1:.0}, {x2:.0}, {y2:.0}]",
                    labels[d.class], d.score
                )?;
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} image(s) could not be processed",
            images.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn image_size_note(path: &Path) -> String {
    image::image_dimensions(path)
        .map(|(w, h)| format!(" ({w}x{h})"))
        .unwrap_or_default()
}

fn round(v: f32, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v as f64 * f).round() / f
}

fn bench(
    manifest: &Path,
    image: Option<&Path>,
    runs: usize,
    warmup: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let started = Instant::now();
    let detector = load_detector(manifest)?;
    let load = started.elapsed();
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
                "model": m.name, "input": [m.input.width, m.input.height], "runs": runs,
                "load_ms": ms(load), "inference_p50_ms": ms(infer.p50), "inference_p95_ms": ms(infer.p95),
                "end_to_end_p50_ms": ms(total.p50), "end_to_end_p95_ms": ms(total.p95),
                "frames_per_s": total.per_second(), "peak_rss_mib": rss_mib,
            })
        );
    } else {
        println!(
            "model {} ({}x{}), {runs} runs after {warmup} warm-up, 1 thread",
            m.name, m.input.width, m.input.height
        );
        println!("| stage | p50 ms | p95 ms |");
        println!("|---|---:|---:|");
        println!("| load + plan | {:.1} | |", ms(load));
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

fn tensor(manifest: &Path, image: &Path, out: &Path) -> anyhow::Result<ExitCode> {
    let manifest = edgemass::model::Manifest::from_path(manifest)?;
    let frame = load_image(image)?;
    let (tensor, _) = edgemass::vision::preprocess::prepare(&frame, &manifest.input);
    let view = tensor.to_plain_array_view::<f32>()?;
    let data: Vec<f32> = view.iter().copied().collect();
    std::fs::write(out, npy::encode_f32(tensor.shape(), &data))
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(ExitCode::SUCCESS)
}
