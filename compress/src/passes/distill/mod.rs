//! Distillation: a pruned student learns to match its teacher's outputs.
//!
//! Both families take the same [`Run`] (who teaches whom, where the student goes, how the run is
//! checkpointed) and report the same [`Trained`]; their data, settings and measurements differ.

pub mod detect;
pub mod text;

use std::path::{Path, PathBuf};

use crate::train::scaffold::{Checkpoints, RunControl};

/// Errors of the distillation passes.
#[derive(Debug, thiserror::Error)]
pub enum DistillError {
    /// Options that cannot work.
    #[error("distill: {0}")]
    Options(String),
    /// A package could not be read or written.
    #[error(transparent)]
    Package(#[from] crate::package::PackageError),
    /// A text corpus could not be read.
    #[error(transparent)]
    Corpus(#[from] crate::data::corpus::DataError),
    /// A rendered-text set could not be read.
    #[error(transparent)]
    Rendered(#[from] crate::data::render_text::RenderError),
    /// An image could not be read.
    #[error(transparent)]
    Image(#[from] edgemass::vision::preprocess::ImageError),
    /// The teacher could not run.
    #[error(transparent)]
    Model(#[from] edgemass::model::ModelError),
    /// The student's graph cannot be trained.
    #[error(transparent)]
    Graph(#[from] crate::onnx::candle::CandleGraphError),
    /// A cache or checkpoint file could not be used.
    #[error(transparent)]
    File(#[from] crate::FileError),
    /// The student's decoder could not be fitted.
    #[error(transparent)]
    Tune(#[from] crate::eval::tune_decoder::TuneError),
    /// candle failed while training.
    #[error("training failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// What every distillation takes besides its data and settings: the flags `distill` shares
/// between the families.
#[derive(Debug, Clone, clap::Args)]
pub struct Run {
    /// The teacher's manifest.
    #[arg(long)]
    pub teacher: PathBuf,
    /// The student's manifest (same input and labels; e.g. a teacher written by `prune`).
    #[arg(long)]
    pub student: PathBuf,
    /// Package directory to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Package (model) name.
    #[arg(long, default_value = "student")]
    pub name: String,
    /// Directory for the teacher's outputs cache and the checkpoints (default: OUT/work).
    #[arg(long)]
    pub work: Option<PathBuf>,
    /// Seed of the data split and every shuffle and crop.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Checkpoints, resuming and stopping early.
    #[command(flatten)]
    pub control: RunControl,
    /// Draw progress bars.
    #[arg(skip)]
    pub progress: bool,
}

impl Run {
    /// Distilling `student` from `teacher` into `out`, with every other flag's default.
    pub fn new(teacher: &Path, student: &Path, out: &Path) -> Run {
        Run {
            teacher: teacher.to_owned(),
            student: student.to_owned(),
            out: out.to_owned(),
            name: "student".into(),
            work: None,
            seed: 42,
            control: RunControl::default(),
            progress: false,
        }
    }

    /// The directory of the teacher's outputs cache and the checkpoints.
    pub fn work(&self) -> PathBuf {
        self.work.clone().unwrap_or_else(|| self.out.join("work"))
    }

    /// The run's checkpoints for this `teacher` and `student` (their sha256) and the step to go
    /// on from, as [`RunControl::resume`] gives them.
    pub fn resume<E: From<crate::FileError>>(
        &self,
        teacher: &str,
        student: &str,
        load: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<(Checkpoints, usize), E> {
        self.control.resume(&self.work(), teacher, student, load)
    }
}

/// What every distillation run did, besides its family's measurements.
#[derive(Debug, Clone)]
pub struct Trained {
    /// Optimiser steps run in this invocation.
    pub steps: usize,
    /// Step the run resumed from, if it did.
    pub resumed_from: Option<usize>,
    /// Wall time.
    pub seconds: f64,
    /// The written manifest; `None` when the run stopped early at `stop_after`.
    pub manifest: Option<PathBuf>,
}
