//! What can stop a recipe of either family.

use std::path::PathBuf;

use crate::FileError;
use crate::data::corpus::DataError;
use crate::data::render_text::RenderError;
use crate::eval::measure_detect::MeasureDetectError;
use crate::eval::measure_text::MeasureError;
use crate::package::text::PackageError;
use crate::passes::distill::detect::DistillDetectError;
use crate::passes::distill::text::DistillError;
use crate::passes::downscale::DownscaleError;
use crate::passes::prune::bert::PruneError;
use crate::passes::prune::conv::PruneConvError;
use crate::passes::prune::vocab::VocabError;
use crate::passes::quantize::detect::QuantizeDetectError;
use crate::passes::quantize::text::QuantizeTextError;

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
    /// Pruning a text package failed.
    #[error(transparent)]
    Prune(#[from] PruneError),
    /// Pruning a detector failed.
    #[error(transparent)]
    PruneConv(#[from] PruneConvError),
    /// Vocabulary pruning failed.
    #[error(transparent)]
    Vocabulary(#[from] VocabError),
    /// Distilling a text student failed.
    #[error(transparent)]
    Distill(#[from] DistillError),
    /// Distilling a detection student failed.
    #[error(transparent)]
    DistillDetect(#[from] DistillDetectError),
    /// Quantizing a text package failed.
    #[error(transparent)]
    Quantize(#[from] QuantizeTextError),
    /// Quantizing a detector failed.
    #[error(transparent)]
    QuantizeDetect(#[from] QuantizeDetectError),
    /// Measuring a text step failed.
    #[error(transparent)]
    Measure(#[from] MeasureError),
    /// Measuring a detection step failed.
    #[error(transparent)]
    MeasureDetect(#[from] MeasureDetectError),
    /// The report could not be written.
    #[error("cannot write {0}")]
    Write(#[from] FileError),
}
