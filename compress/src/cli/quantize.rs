//! `quantize`: weights (and activations) stored as int8 and checked against the float model, by
//! the model's family: an ONNX file or a text-classify package through the weight quantizer, a
//! detection package through calibrated static quantization.

use std::path::PathBuf;

use clap::Parser;
use edgemass_compress::passes::quantize::{self, Check, detect};

use super::family::{Family, Flags, Form, Raw, dispatch};
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
    dispatch(
        &raw.positional_to("model"),
        "quantize",
        "model",
        &[
            Form::of::<File>(&[Family::Onnx], "ONNX files"),
            Form::of::<Text>(&[Family::Text], "text-classify packages"),
            Form::of::<Detect>(&[Family::Detect], "detection packages"),
        ],
    )
}

impl Flags for File {
    fn run(self) -> anyhow::Result<String> {
        let report = quantize::quantize_file(&self.model, &self.out, &self.options, &self.check)?;
        Ok(report.to_text())
    }
}

impl Flags for Text {
    fn run(self) -> anyhow::Result<String> {
        let manifest =
            quantize::text::quantize_package(&self.model, &self.options, &self.out, &self.name)?;
        Ok(format!(
            "quantized ({}) {}\nwrote {}",
            self.options.mode.name(),
            self.model.display(),
            manifest.display()
        ))
    }
}

impl Flags for Detect {
    fn run(self) -> anyhow::Result<String> {
        let options = detect::Options {
            calibration: files(&self.calibration, IMAGE_EXTENSIONS)?,
            settings: self.settings,
        };
        Ok(detect::quantize_package(&self.model, &options, &self.out, &self.name)?.to_text())
    }
}
