//! `run`: a recipe, every step measured, the report and the student written.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use edgemass_compress::recipe;
use edgemass_compress::recipe::step::Outcome;

/// Run a recipe: prune, distill and quantize a teacher, measuring every step into report.md.
#[derive(clap::Args)]
pub struct Run {
    /// The recipe (examples in compress/recipes/).
    recipe: PathBuf,
    /// Output directory for the step packages and the report (default: out/NAME).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Model cache holding the teacher and the data (default: $EDGEMASS_MODEL_CACHE, else
    /// models/cache).
    #[arg(long)]
    cache: Option<PathBuf>,
}

/// Runs the command.
pub fn run(args: Run) -> anyhow::Result<String> {
    let (path, out, cache) = (&args.recipe, args.out, args.cache);
    let cache = cache
        .or_else(|| std::env::var_os("EDGEMASS_MODEL_CACHE").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("models/cache"));
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let progress = std::io::stderr().is_terminal();
    if recipe::detect::is_detect(&text) {
        let recipe = recipe::detect::DetectRecipe::load(path)?;
        let out = out.unwrap_or_else(|| Path::new("out").join(&recipe.name));
        return Ok(summary(&recipe::detect::run(
            &recipe, &cache, &out, false, progress,
        )?));
    }
    let recipe = recipe::text::Recipe::load(path)?;
    let out = out.unwrap_or_else(|| Path::new("out").join(&recipe.name));
    Ok(summary(&recipe::text::run(
        &recipe, &cache, &out, false, progress,
    )?))
}

/// The report of a finished run, and where it and the student are.
fn summary<M>(outcome: &Outcome<M>) -> String {
    let report = std::fs::read_to_string(&outcome.report).unwrap_or_default();
    format!(
        "{report}\nwrote {} and {}; the student is {}",
        outcome.report.display(),
        outcome.plot.display(),
        outcome.steps[outcome.steps.len() - 1].manifest.display()
    )
}
