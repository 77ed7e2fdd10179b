//! `edgemass tensor`: an image as the tensor a model reads, to replay it in another runtime.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use edgemass::model::npy;
use edgemass::vision::preprocess::load_image;

/// `edgemass tensor`: the exact input tensor a model gets for an image, as .npy.
#[derive(clap::Args)]
pub struct Args {
    /// The model manifest (NAME.model.toml).
    #[arg(long, value_name = "MANIFEST")]
    model: PathBuf,
    /// The image.
    #[arg(long, value_name = "FILE")]
    image: PathBuf,
    /// Output .npy file.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

impl Args {
    /// Runs `tensor`.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        tensor(&self.model, &self.image, &self.out)
    }
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
