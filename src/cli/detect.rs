//! `edgemass detect`: a model package run on images, its detections printed and drawn.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use edgemass::model::{Manifest, Options};
use edgemass::vision::annotate;
use edgemass::vision::detector::Detector;
use edgemass::vision::preprocess::load_image;
use serde_json::json;

use super::{LoadArgs, one_line, round};

/// `edgemass detect`: objects in images, as a table or JSON lines, optionally drawn.
#[derive(clap::Args)]
pub struct Args {
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
    #[command(flatten)]
    load: LoadArgs,
}

impl Args {
    /// Runs `detect`.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        detect(
            &self.model,
            &self.load.options(1),
            &self.image,
            self.json,
            self.annotate.as_deref(),
        )
    }
}

/// The detector of the package at `manifest`, loaded with `options`.
pub fn load_detector(manifest: &Path, options: &Options) -> anyhow::Result<Detector> {
    let detector = Detector::load(Manifest::from_path(manifest)?, options)?;
    tracing::info!(
        "model {} on {}",
        detector.model().manifest().name,
        detector.model().choice()
    );
    Ok(detector)
}

fn detect(
    manifest: &Path,
    options: &Options,
    images: &[PathBuf],
    json: bool,
    annotate_to: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let detector = load_detector(manifest, options)?;
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
                let (w, h) = image.dimensions();
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
                Ok((format!(" ({w}x{h})"), found))
            });
        let (size, found) = match found {
            Ok(ok) => ok,
            Err(e) => {
                eprintln!("edgemass: error: {}", one_line(&e));
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
