//! Which runtime and which form of a network run a model: asked for, or, with `runtime = "auto"`,
//! measured at load time. Every candidate (tract or onnxruntime, the float or the int8 file) runs
//! the model's own input a few times; the fastest whose outputs stay within the package's
//! tolerance of tract's float outputs is kept. A missing or unusable onnxruntime is one line in
//! the log and the model runs on tract.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tract_onnx::prelude::Tensor;

use super::manifest::{Manifest, ManifestError};
use super::precision::{Precision, cpu_has_dotprod};
use super::threads::with_threads;
use super::{Model, ModelError, Outputs};

/// The smallest range an output's deviation is measured against.
const MIN_RANGE: f64 = 1e-2;

/// Timed rounds of the race, after one untimed run of each candidate.
const RUNS: usize = 5;

/// The runtime asked for in a config or on the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeSetting {
    /// Measure tract and onnxruntime at load time and keep the fastest that agrees with tract.
    #[default]
    Auto,
    /// tract only.
    Tract,
    /// onnxruntime (tract when its library cannot be had).
    Onnxruntime,
}

impl RuntimeSetting {
    /// The name used in configs and logs.
    pub fn name(self) -> &'static str {
        match self {
            RuntimeSetting::Auto => "auto",
            RuntimeSetting::Tract => "tract",
            RuntimeSetting::Onnxruntime => "onnxruntime",
        }
    }
}

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The runtime asked for.
    pub runtime: RuntimeSetting,
    /// The form asked for.
    pub precision: Precision,
    /// The onnxruntime library named in the config, if any.
    pub library: Option<PathBuf>,
    /// Inference threads.
    pub threads: usize,
}

/// One runtime and form, as measured at load time.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// `tract` or `onnxruntime`.
    pub runtime: &'static str,
    /// The file's form.
    pub precision: Precision,
    /// Median time of one run on the model's own input.
    pub time: Duration,
    /// The largest difference from tract's float outputs, as a share of each output's range.
    pub deviation: f64,
    /// The largest deviation the package allows this form ([`Manifest::tolerance_of`]).
    pub tolerance: f64,
}

impl Candidate {
    /// Whether this candidate stays within its tolerance.
    pub fn within(&self) -> bool {
        self.deviation <= self.tolerance
    }
}

/// What runs a model and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The runtime kept.
    pub runtime: &'static str,
    /// The form kept.
    pub precision: Precision,
    /// Every candidate measured (none when only one could run).
    pub candidates: Vec<Candidate>,
    /// The package's tolerance for the form kept.
    pub tolerance: f64,
}

impl Choice {
    /// A choice made without measuring.
    pub fn only(runtime: &'static str, precision: Precision, tolerance: f64) -> Choice {
        Choice {
            runtime,
            precision,
            candidates: Vec::new(),
            tolerance,
        }
    }
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.runtime, self.precision.name())?;
        for (i, c) in self.candidates.iter().enumerate() {
            let verdict = if c.within() { "within" } else { "beyond" };
            write!(
                f,
                "{}{} {} {:.1} ms (deviation {:.2e}, {verdict} {})",
                if i == 0 { "; measured: " } else { ", " },
                c.runtime,
                c.precision.name(),
                c.time.as_secs_f64() * 1e3,
                c.deviation,
                c.tolerance
            )?;
        }
        Ok(())
    }
}

/// Whether `message` is logged for the first time in this process.
fn first_time(message: &str) -> bool {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    seen.get_or_insert_with(HashSet::new)
        .insert(message.to_owned())
}

/// Logs `message` as a warning the first time it is seen in this process.
fn warn_once(message: String) {
    if first_time(&message) {
        tracing::warn!("{message}");
    }
}

/// The forms to try for `manifest`: without a race, the rule that tract's int8 pays only on CPUs
/// with dot-product instructions; a race tries both where the package has both.
fn forms(
    manifest: &Manifest,
    options: &Options,
    racing: bool,
) -> Result<Vec<Precision>, ManifestError> {
    let has_int8 = manifest.int8.is_some();
    match options.precision {
        Precision::Int8 if !has_int8 => Err(ManifestError::NoInt8 {
            model: manifest.name.clone(),
        }),
        Precision::Auto if racing && has_int8 => Ok(vec![Precision::Fp32, Precision::Int8]),
        asked => Ok(vec![
            asked
                .resolve(has_int8, cpu_has_dotprod())
                .expect("int8 is present when asked for"),
        ]),
    }
}

/// The onnxruntime library for `options`, or `None` (with a line in the log when it was asked
/// for) when this model runs on tract alone.
#[cfg(feature = "onnxruntime")]
fn onnxruntime_library(manifest: &Manifest, options: &Options) -> Option<PathBuf> {
    if options.runtime == RuntimeSetting::Tract {
        return None;
    }
    static LOOKED_UP: Mutex<Vec<LookUp>> = Mutex::new(Vec::new());
    let key = (options.library.clone(), manifest.cache.clone());
    let mut looked_up = LOOKED_UP.lock().unwrap_or_else(|e| e.into_inner());
    let found = match looked_up.iter().find(|(k, _)| *k == key) {
        Some((_, found)) => found.clone(),
        None => {
            let found = super::library::locate(key.0.as_deref(), &key.1);
            looked_up.push((key, found.clone()));
            found
        }
    };
    match found {
        Ok(found) => {
            tracing::debug!(
                "onnxruntime library {} (from {})",
                found.path.display(),
                found.from
            );
            Some(found.path)
        }
        Err(missing) => {
            let message = format!("{missing}; running on tract");
            // Named, or asked for: a warning. Merely not found for `auto`: a note.
            let asked = options.runtime == RuntimeSetting::Onnxruntime;
            if matches!(missing, super::library::Missing::Named(_)) || asked {
                warn_once(message);
            } else if first_time(&message) {
                tracing::info!("{message}");
            }
            None
        }
    }
}

/// A library search: what the config named and the model cache, and what was found.
#[cfg(feature = "onnxruntime")]
type LookUp = (
    (Option<PathBuf>, PathBuf),
    Result<super::library::Found, super::library::Missing>,
);

#[cfg(not(feature = "onnxruntime"))]
fn onnxruntime_library(_: &Manifest, options: &Options) -> Option<PathBuf> {
    if options.runtime == RuntimeSetting::Onnxruntime {
        warn_once(
            "this build has no onnxruntime (cargo feature `onnxruntime`); running on tract".into(),
        );
    }
    None
}

/// Loads `manifest`'s network in `precision` on `runtime` (`threads` are onnxruntime's; tract's
/// are the caller's pool).
#[cfg_attr(not(feature = "onnxruntime"), allow(unused_variables))]
fn load_one(
    manifest: &Manifest,
    runtime: &'static str,
    precision: Precision,
    library: Option<&PathBuf>,
    threads: usize,
) -> Result<Model, ModelError> {
    let manifest = manifest.clone().with_precision(precision)?;
    match (runtime, library) {
        #[cfg(feature = "onnxruntime")]
        ("onnxruntime", Some(library)) => Model::load_onnxruntime(manifest, library, threads),
        _ => Model::load(manifest),
    }
}

/// Loads `manifest`'s model as `options` ask; `sample` is an input tensor like the camera's.
pub fn load(manifest: Manifest, options: &Options, sample: &Tensor) -> Result<Model, ModelError> {
    let library = onnxruntime_library(&manifest, options);
    let mut runtimes = Vec::new();
    if options.runtime != RuntimeSetting::Onnxruntime || library.is_none() {
        runtimes.push("tract");
    }
    if library.is_some() {
        runtimes.push("onnxruntime");
    }
    // Without onnxruntime there is no race: tract alone keeps its int8 rule, which holds on
    // boards where measuring at start would cost seconds.
    let racing = options.runtime == RuntimeSetting::Auto && library.is_some();
    let forms = forms(&manifest, options, racing)?;
    let pairs: Vec<(&'static str, Precision)> = runtimes
        .iter()
        .flat_map(|r| forms.iter().map(move |p| (*r, *p)))
        .collect();
    if let [(runtime, precision)] = pairs[..] {
        return match load_one(
            &manifest,
            runtime,
            precision,
            library.as_ref(),
            options.threads,
        ) {
            Ok(model) => Ok(model.with_choice(Choice::only(
                runtime,
                precision,
                manifest.tolerance_of(precision),
            ))),
            Err(e @ ModelError::Onnxruntime { .. }) => {
                warn_once(format!("{e}; running on tract"));
                let model = load_one(&manifest, "tract", precision, None, options.threads)?;
                let tolerance = manifest.tolerance_of(precision);
                Ok(model.with_choice(Choice::only("tract", precision, tolerance)))
            }
            Err(e) => Err(e),
        };
    }
    race(manifest, options, sample, library.as_ref(), pairs)
}

/// Loads and times every pair against tract's float outputs on `sample`; keeps the fastest
/// within tolerance (or, when none is, the closest).
fn race(
    manifest: Manifest,
    options: &Options,
    sample: &Tensor,
    library: Option<&PathBuf>,
    pairs: Vec<(&'static str, Precision)>,
) -> Result<Model, ModelError> {
    let threads = options.threads;
    let reference = load_one(&manifest, "tract", Precision::Fp32, None, threads)?;
    let expected = reference.run(sample.clone())?;
    let mut reference = Some(reference);
    let mut entrants: Vec<((&'static str, Precision), Model)> = Vec::new();
    for (runtime, precision) in pairs {
        let model = if (runtime, precision) == ("tract", Precision::Fp32) {
            reference.take().expect("tract fp32 is raced once")
        } else {
            match load_one(&manifest, runtime, precision, library, threads) {
                Ok(model) => model,
                Err(e @ ModelError::Onnxruntime { .. }) => {
                    warn_once(format!("{e}; running on tract"));
                    continue;
                }
                Err(e) => return Err(e),
            }
        };
        entrants.push(((runtime, precision), model));
    }
    let models: Vec<&Model> = entrants.iter().map(|(_, m)| m).collect();
    let (times, outputs) = with_threads(threads, "edgemass-race", || time_rounds(&models, sample))?;
    let candidates: Vec<Candidate> = entrants
        .iter()
        .zip(times.into_iter().zip(&outputs))
        .map(|(((runtime, precision), _), (time, outputs))| Candidate {
            runtime,
            precision: *precision,
            time,
            deviation: deviation(&expected, outputs),
            tolerance: manifest.tolerance_of(*precision),
        })
        .collect();
    let within = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.within())
        .min_by_key(|(_, c)| c.time);
    let closest = || {
        candidates
            .iter()
            .enumerate()
            .min_by(|(_, a), (_, b)| a.deviation.total_cmp(&b.deviation))
    };
    let Some((best, kept)) = within.or_else(closest) else {
        let model = reference.expect("the reference is kept when nothing was measured");
        return Ok(model.with_choice(Choice::only("tract", Precision::Fp32, manifest.tolerance)));
    };
    let (runtime, precision) = (kept.runtime, kept.precision);
    let (_, model) = entrants.swap_remove(best);
    Ok(model.with_choice(Choice {
        runtime,
        precision,
        candidates,
        tolerance: manifest.tolerance_of(precision),
    }))
}

/// One untimed run of each model (its outputs are returned), then [`RUNS`] rounds in which each
/// runs once, timed; the median time of each. Taking turns spreads a busy spell of the machine
/// over every model rather than onto the one that happened to run during it.
fn time_rounds(
    models: &[&Model],
    sample: &Tensor,
) -> Result<(Vec<Duration>, Vec<Outputs>), ModelError> {
    let outputs = models
        .iter()
        .map(|m| m.run(sample.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut times = vec![Vec::with_capacity(RUNS); models.len()];
    for _ in 0..RUNS {
        for (model, times) in models.iter().zip(&mut times) {
            let started = Instant::now();
            model.run(sample.clone())?;
            times.push(started.elapsed());
        }
    }
    let medians = times
        .into_iter()
        .map(|mut t| {
            t.sort();
            t[RUNS / 2]
        })
        .collect();
    Ok((medians, outputs))
}

/// The largest absolute difference between `a` and `b`, output by output, as a share of the range
/// of `a`'s output (at least [`MIN_RANGE`]); 1 for an output that is missing, of another shape or
/// not a number.
pub fn deviation(a: &Outputs, b: &Outputs) -> f64 {
    a.iter()
        .map(|(name, a)| {
            let Some(b) = b.get(name).filter(|b| b.shape() == a.shape()) else {
                return 1.0;
            };
            let (lo, hi) = a
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
                    (lo.min(*v), hi.max(*v))
                });
            // An output that barely moves on this input (no text in a text detector's map) is
            // held to an absolute bound instead of a share of its tiny range.
            let range = f64::from(hi - lo).max(MIN_RANGE);
            let worst = a
                .iter()
                .zip(b.iter())
                .map(|(x, y)| f64::from((x - y).abs()))
                .try_fold(0.0, |worst: f64, d| (!d.is_nan()).then(|| worst.max(d)));
            worst.map_or(1.0, |worst| worst / range)
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::prelude::tract_ndarray::{ArrayD, IxDyn};

    fn outputs(values: &[f32]) -> Outputs {
        let array = ArrayD::from_shape_vec(IxDyn(&[values.len()]), values.to_vec()).unwrap();
        Outputs::new(vec![("out".into(), array)])
    }

    #[test]
    fn deviation_is_the_worst_difference_over_the_reference_range() {
        let a = outputs(&[0.0, 10.0, 5.0]);
        assert_eq!(deviation(&a, &a), 0.0);
        assert!((deviation(&a, &outputs(&[0.5, 10.0, 4.0])) - 0.1).abs() < 1e-9);
        assert_eq!(deviation(&a, &outputs(&[0.0, 10.0])), 1.0);
        assert_eq!(deviation(&a, &outputs(&[0.0, f32::NAN, 5.0])), 1.0);
        // A flat output: an absolute bound, not a share of nothing.
        let flat = outputs(&[1e-6, 2e-6, 1e-6]);
        assert!(deviation(&flat, &outputs(&[1.5e-6, 1e-6, 1e-6])) < 1e-3);
    }

    #[test]
    fn a_choice_names_what_it_kept_and_what_it_measured() {
        let candidate = |runtime, precision, ms, deviation, tolerance| Candidate {
            runtime,
            precision,
            time: Duration::from_micros(ms),
            deviation,
            tolerance,
        };
        let choice = Choice {
            runtime: "onnxruntime",
            precision: Precision::Int8,
            candidates: vec![
                candidate("tract", Precision::Fp32, 21_500, 0.0, 0.05),
                candidate("onnxruntime", Precision::Fp32, 6_600, 0.2, 0.05),
                candidate("onnxruntime", Precision::Int8, 3_300, 0.2, 0.3),
            ],
            tolerance: 0.3,
        };
        assert_eq!(
            choice.to_string(),
            "onnxruntime int8; measured: tract fp32 21.5 ms (deviation 0.00e0, within 0.05), \
             onnxruntime fp32 6.6 ms (deviation 2.00e-1, beyond 0.05), \
             onnxruntime int8 3.3 ms (deviation 2.00e-1, within 0.3)"
        );
    }
}
