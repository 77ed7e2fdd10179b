//! What can stop a recipe of either family.

use std::path::PathBuf;

use crate::FileError;
use crate::data::corpus::DataError;
use crate::data::render_text::RenderError;
use crate::eval::cost::MeasureError;
use crate::package::PackageError;
use crate::passes::distill::DistillError;
use crate::passes::downscale::DownscaleError;
use crate::passes::prune::PruneError;
use crate::passes::quantize::QuantizePassError;

/// Errors of a recipe run; the step that failed says what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// The recipe file is unreadable or invalid.
    #[error("{}: {reason}", path.display())]
    Recipe {
        /// The recipe.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A text package could not be read or written.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// The data could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Rendering text images failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Downscaling failed.
    #[error(transparent)]
    Downscale(#[from] DownscaleError),
    /// Pruning (structures or vocabulary) failed.
    #[error(transparent)]
    Prune(#[from] PruneError),
    /// Distillation failed.
    #[error(transparent)]
    Distill(#[from] DistillError),
    /// Quantizing failed.
    #[error(transparent)]
    Quantize(#[from] QuantizePassError),
    /// Measuring a step failed.
    #[error(transparent)]
    Measure(#[from] MeasureError),
    /// The report could not be written.
    #[error("cannot write {0}")]
    Write(#[from] FileError),
}
