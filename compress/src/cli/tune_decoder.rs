//! `tune-decoder`: a DBNet package's decoder thresholds fitted to its own maps.

use std::path::PathBuf;

use edgemass_compress::{data, eval};

/// Fit a DBNet package's binarisation threshold and unclip ratio on a rendered-text set.
#[derive(clap::Args)]
pub struct TuneDecoder {
    /// The package manifest (rewritten in place).
    #[arg(long)]
    model: PathBuf,
    /// A directory written by render-text (use training images, not the test set).
    #[arg(long)]
    data: PathBuf,
    /// Use only the first N images.
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

/// Runs the command.
pub fn run(args: &TuneDecoder) -> anyhow::Result<String> {
    let (model, data, limit) = (&args.model, &args.data, args.limit);
    let mut set = data::render_text::read_labels(data)?;
    set.truncate(limit);
    let images: Vec<PathBuf> = set.iter().map(|l| data.join(&l.image)).collect();
    let truth = eval::detect::truth_of(&set);
    let t = eval::tune_decoder::tune(model, &images, &truth)?;
    Ok(format!(
        "threshold {:.2}, unclip ratio {:.2}: mAP@0.5 {:.4} -> {:.4} on {} images\nwrote {}",
        t.threshold,
        t.unclip_ratio,
        t.before,
        t.after,
        images.len(),
        model.display()
    ))
}
