//! `export-triton`: a package written as a Triton model repository.

use std::path::PathBuf;

use edgemass_compress::package;

/// Write a package as a Triton model repository.
#[derive(clap::Args)]
pub struct ExportTriton {
    /// The package manifest (NAME.model.toml).
    #[arg(long)]
    model: PathBuf,
    /// The repository directory (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// max_batch_size of a model with a batch dimension (0: no batching).
    #[arg(long, default_value_t = 8)]
    max_batch: usize,
    /// dynamic_batching max_queue_delay_microseconds.
    #[arg(long, default_value_t = 2000)]
    max_queue_delay_us: u64,
}

/// Runs the command.
pub fn run(args: &ExportTriton) -> anyhow::Result<String> {
    let batching = package::triton::Batching {
        max_batch: args.max_batch,
        max_queue_delay_us: args.max_queue_delay_us,
    };
    let dir = package::triton::export(&args.model, &args.out, batching)?;
    Ok(format!("wrote {}", dir.display()))
}
