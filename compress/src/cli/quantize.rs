//! `quantize`: weights (and activations) stored as int8 and checked against the float model, by
//! the model's family: an ONNX file or a text-classify package through the weight quantizer, a
//! detection package through calibrated static quantization.

use std::path::PathBuf;

use clap::Parser;
use edgemass_compress::passes::quantize::{self, Check, detect};

use super::family::{Family, FamilyHelp, Raw, without_model};
use edgemass_compress::data::{IMAGE_EXTENSIONS, files};

/// `quantize` of an ONNX file.
#[derive(Parser)]
pub struct File {
    /// The float ONNX model (also accepted as the first argument).
    #[arg(long)]
    model: PathBuf,
    /// The quantized model to write.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    options: quantize::Options,
    #[command(flatten)]
    check: Check,
}

/// `quantize` of a text-classify package.
#[derive(Parser)]
pub struct Text {
    /// The package manifest (NAME.model.toml; also accepted as the first argument).
    #[arg(long)]
    model: PathBuf,
    /// Package directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Package (model) name.
    #[arg(long, default_value = "int8")]
    name: String,
    #[command(flatten)]
    options: quantize::Options,
}

/// `quantize` of a detection package (`quantize-detect`): activation ranges calibrated on images,
/// every form checked against the float model and timed in tract, the fastest correct one
/// shipped and the portable QDQ form written beside it.
#[derive(Parser)]
pub struct Detect {
    /// The package manifest (also accepted as the first argument).
    #[arg(long)]
    model: PathBuf,
    /// Calibration images: files or directories of .jpg/.png files.
    #[arg(long, required = true, num_args = 1..)]
    calibration: Vec<PathBuf>,
    /// Package directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Package (model) name.
    #[arg(long, default_value = "int8")]
    name: String,
    #[command(flatten)]
    settings: detect::Settings,
}

/// Runs `quantize` with the flags of the model's family.
pub fn run(raw: Raw) -> anyhow::Result<String> {
    let raw = raw.positional_to("model");
    let Some(model) = raw.flag("model") else {
        return without_model(
            &raw,
            "quantize",
            "model",
            vec![
                FamilyHelp::of::<File>("ONNX files"),
                FamilyHelp::of::<Text>("text-classify packages"),
                FamilyHelp::of::<Detect>("detection packages"),
            ],
        );
    };
    match Family::of(&model)? {
        Family::Onnx => quantize_file(&raw.parse("quantize")),
        Family::Text => quantize_text(&raw.parse("quantize")),
        Family::Detect => quantize_detect(&raw.parse("quantize")),
    }
}

fn quantize_file(args: &File) -> anyhow::Result<String> {
    let report = quantize::quantize_file(&args.model, &args.out, &args.options, &args.check)?;
    Ok(report.to_text())
}

fn quantize_text(args: &Text) -> anyhow::Result<String> {
    let manifest =
        quantize::text::quantize_package(&args.model, &args.options, &args.out, &args.name)?;
    Ok(format!(
        "quantized ({}) {}\nwrote {}",
        args.options.mode.name(),
        args.model.display(),
        manifest.display()
    ))
}

/// Runs `quantize` on a detection package.
pub fn quantize_detect(args: &Detect) -> anyhow::Result<String> {
    let options = detect::Options {
        calibration: files(&args.calibration, IMAGE_EXTENSIONS)?,
        settings: args.settings.clone(),
    };
    Ok(detect::quantize_package(&args.model, &options, &args.out, &args.name)?.to_text())
}
