//! The one training loop scaffold every candle pass shares: AdamW with a warm-up schedule, a
//! progress bar, and checkpoints that let a stopped run (`stop_after`, Ctrl-C, a crash) resume at
//! its step when it is started again with the same teacher and student.

use std::path::{Path, PathBuf};

use candle_core::Tensor;
use candle_core::Var;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::FileError;

/// How the learning rate falls after the warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decay {
    /// Straight down to nearly 0 at the last step.
    Linear,
    /// Half a cosine wave down to 0 at the last step.
    Cosine,
}

/// Learning rate by step: a linear warm-up from 0 to `peak` over `warmup` steps, then `decay`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// The rate at the end of the warm-up.
    pub peak: f64,
    /// Steps of the warm-up (at least 1).
    pub warmup: usize,
    /// Steps of the whole run.
    pub total: usize,
    /// The fall after the warm-up.
    pub decay: Decay,
}

impl Schedule {
    /// A schedule over `total` steps whose warm-up is `1 / warmup_divisor` of them (at least one).
    pub fn new(peak: f64, total: usize, warmup_divisor: usize, decay: Decay) -> Schedule {
        Schedule {
            peak,
            warmup: (total / warmup_divisor).max(1),
            total,
            decay,
        }
    }

    /// The rate at `step`, counted from 1.
    pub fn at(&self, step: usize) -> f64 {
        let (warmup, total) = (self.warmup, self.total);
        if step <= warmup {
            return self.peak * step as f64 / warmup as f64;
        }
        match self.decay {
            Decay::Linear => {
                self.peak * (total + 1).saturating_sub(step) as f64 / (total + 1 - warmup) as f64
            }
            Decay::Cosine => {
                let done = (step - warmup) as f64 / total.saturating_sub(warmup).max(1) as f64;
                self.peak * 0.5 * (1.0 + (std::f64::consts::PI * done).cos())
            }
        }
    }
}

/// Steps between checkpoints when nothing else is asked for.
pub const DEFAULT_CHECKPOINT_EVERY: usize = 100;

/// When a training run writes checkpoints, whether it resumes from one and when it stops early:
/// the same flags for every training command.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct RunControl {
    /// Steps between checkpoints (0: none).
    #[arg(long, default_value_t = DEFAULT_CHECKPOINT_EVERY)]
    pub checkpoint_every: usize,
    /// Start over instead of resuming from a checkpoint in the work directory.
    #[arg(long)]
    pub restart: bool,
    /// Stop after this many steps in total and keep the checkpoint; run again to resume.
    #[arg(long)]
    pub stop_after: Option<usize>,
}

default_from_flags!(RunControl);

impl RunControl {
    /// The checkpoints of a run in `work` that trains `student` against `teacher` (their sha256),
    /// and the step to go on from: the checkpoint's, loaded by `load` (see
    /// [`Checkpoints::resume`]), or 0 without one or when told to restart.
    pub fn resume<E: From<FileError>>(
        &self,
        work: &Path,
        teacher: &str,
        student: &str,
        load: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<(Checkpoints, usize), E> {
        let checkpoints = Checkpoints::new(
            work,
            self.checkpoint_every,
            self.stop_after,
            teacher,
            student,
        );
        let start = if self.restart {
            0
        } else {
            checkpoints.resume(load)?
        };
        Ok((checkpoints, start))
    }
}

/// Where a run keeps its checkpoint and when it writes one.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    weights: PathBuf,
    state: PathBuf,
    every: usize,
    stop_after: Option<usize>,
    made_from: State,
}

/// What a checkpoint records beside the weights: its step and the teacher and student it was
/// trained from (by sha256), so a checkpoint of another pair is never resumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct State {
    step: usize,
    teacher: String,
    student: String,
}

impl Checkpoints {
    /// Checkpoints in `work` (`checkpoint.safetensors` and `checkpoint.json`) every `every` steps
    /// (0: none) and at `stop_after`, for the run that trains `student` against `teacher`
    /// (their sha256).
    pub fn new(
        work: &Path,
        every: usize,
        stop_after: Option<usize>,
        teacher: &str,
        student: &str,
    ) -> Checkpoints {
        Checkpoints {
            weights: work.join("checkpoint.safetensors"),
            state: work.join("checkpoint.json"),
            every,
            stop_after,
            made_from: State {
                step: 0,
                teacher: teacher.to_owned(),
                student: student.to_owned(),
            },
        }
    }

    /// The step to go on from: that of the checkpoint in the work directory when there is one
    /// for this teacher and student (its weights handed to `load`), else 0.
    pub fn resume<E: From<FileError>>(
        &self,
        load: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<usize, E> {
        if !self.state.is_file() {
            return Ok(0);
        }
        let text =
            std::fs::read_to_string(&self.state).map_err(|e| FileError::new(&self.state, e))?;
        let state: State =
            serde_json::from_str(&text).map_err(|e| FileError::new(&self.state, e))?;
        if state.teacher != self.made_from.teacher || state.student != self.made_from.student {
            return Ok(0);
        }
        load(&self.weights)?;
        Ok(state.step)
    }

    /// After `step`: writes a checkpoint when one is due (its weights by `save`); true when the
    /// run stops here.
    pub fn after_step<E: From<FileError>>(
        &self,
        step: usize,
        save: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<bool, E> {
        let stop = self.stop_after == Some(step);
        if stop || (self.every > 0 && step.is_multiple_of(self.every)) {
            save(&self.weights)?;
            let state = State {
                step,
                ..self.made_from.clone()
            };
            let text = serde_json::to_string(&state).expect("plain fields");
            crate::write_atomic(&self.state, text.as_bytes())
                .map_err(|e| FileError::new(&self.state, e))?;
        }
        Ok(stop)
    }

    /// Removes the checkpoint once the run has finished.
    pub fn remove(&self) -> Result<(), FileError> {
        for done in [&self.weights, &self.state] {
            if done.exists() {
                std::fs::remove_file(done).map_err(|e| FileError::new(done, e))?;
            }
        }
        Ok(())
    }
}

/// One training run's optimiser, schedule and progress bar.
pub struct Trainer {
    optimizer: AdamW,
    schedule: Schedule,
    bar: ProgressBar,
    step: usize,
}

impl Trainer {
    /// AdamW over `vars` with `weight_decay`, its rate set by `schedule` at every step, and a
    /// progress bar labelled `label` (hidden unless `progress`) that starts at `start`.
    pub fn new(
        vars: Vec<Var>,
        schedule: Schedule,
        weight_decay: f64,
        progress: bool,
        label: &str,
        start: usize,
    ) -> candle_core::Result<Trainer> {
        let optimizer = AdamW::new(
            vars,
            ParamsAdamW {
                lr: schedule.peak,
                weight_decay,
                ..Default::default()
            },
        )?;
        let bar = crate::progress_bar(progress, schedule.total as u64, label);
        bar.set_position(start.min(schedule.total) as u64);
        Ok(Trainer {
            optimizer,
            schedule,
            bar,
            step: 0,
        })
    }

    /// Counts the next step and returns it (from 1).
    pub fn next_step(&mut self) -> usize {
        self.step += 1;
        self.step
    }

    /// The steps counted so far.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// One optimiser step on `loss` at the scheduled rate; returns the loss.
    pub fn backward_step(&mut self, loss: &Tensor) -> candle_core::Result<f32> {
        self.optimizer
            .set_learning_rate(self.schedule.at(self.step));
        self.optimizer.backward_step(loss)?;
        let value = loss.to_scalar::<f32>()?;
        self.bar.set_message(format!("loss {value:.4}"));
        self.bar.inc(1);
        Ok(value)
    }

    /// Clears the progress bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_climbs_through_the_warm_up_and_falls_to_the_end() {
        let linear = Schedule::new(1.0, 100, 10, Decay::Linear);
        assert_eq!(linear.warmup, 10);
        assert_eq!(linear.at(5), 0.5);
        assert_eq!(linear.at(10), 1.0);
        assert!(linear.at(11) < 1.0 && linear.at(11) > 0.98);
        assert!(linear.at(100) > 0.0 && linear.at(100) < 0.02);
        let cosine = Schedule::new(1.0, 100, 20, Decay::Cosine);
        assert_eq!(cosine.at(5), 1.0);
        assert!((cosine.at(100)).abs() < 1e-12);
        assert!((cosine.at(52) - 0.5).abs() < 0.02);
    }

    #[test]
    fn a_checkpoint_resumes_only_its_own_teacher_and_student() {
        let dir = tempfile::tempdir().unwrap();
        let save = |path: &Path| {
            std::fs::write(path, b"w").map_err(|e| FileError {
                path: path.to_owned(),
                reason: e.to_string(),
            })
        };
        let ours = Checkpoints::new(dir.path(), 3, Some(5), "t", "s");
        assert!(!ours.after_step(2, save).unwrap());
        assert!(!ours.after_step(3, save).unwrap());
        assert!(ours.after_step(5, save).unwrap());
        let mut loaded = None;
        let step = ours
            .resume(|p: &Path| {
                loaded = Some(std::fs::read(p).unwrap());
                Ok::<_, FileError>(())
            })
            .unwrap();
        assert_eq!((step, loaded.as_deref()), (5, Some(&b"w"[..])));
        let other = Checkpoints::new(dir.path(), 3, None, "t", "another student");
        let step = other
            .resume(|_: &Path| -> Result<(), FileError> { panic!("loaded another's weights") })
            .unwrap();
        assert_eq!(step, 0);
        ours.remove().unwrap();
        assert_eq!(ours.resume(|_: &Path| Ok::<_, FileError>(())).unwrap(), 0);
    }
}
