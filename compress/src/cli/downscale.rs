//! `downscale`: a fully convolutional detector run at a fraction of its input resolution inside.

use std::path::PathBuf;

use edgemass_compress::onnx::graph::Graph;
use edgemass_compress::passes::downscale;

use super::write_onnx;

/// Run a fully convolutional detector (DBNet) at 1/FACTOR of its input resolution inside.
#[derive(clap::Args)]
pub struct Downscale {
    /// A detection package manifest or an ONNX file.
    #[arg(long)]
    model: PathBuf,
    /// Package directory to write (for a manifest), or the ONNX file to write.
    #[arg(long)]
    out: PathBuf,
    /// Package (model) name.
    #[arg(long, default_value = "downscaled")]
    name: String,
    /// Resolution divisor inside the network.
    #[arg(long, default_value_t = 2)]
    factor: usize,
}

/// Runs the command.
pub fn run(args: &Downscale) -> anyhow::Result<String> {
    if args.model.extension().is_some_and(|e| e == "onnx") {
        let graph = Graph::load(&args.model)?;
        write_onnx(&args.out, &downscale::downscale(&graph.proto, args.factor)?)?;
        return Ok(format!("wrote {}", args.out.display()));
    }
    let manifest = downscale::downscale_package(&args.model, args.factor, &args.out, &args.name)?;
    Ok(format!("wrote {}", manifest.display()))
}
