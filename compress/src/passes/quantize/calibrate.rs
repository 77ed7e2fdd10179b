//! Activation ranges from a calibration set: the float model runs in tract with the tensors of
//! interest as extra outputs, twice (once for each tensor's extremes, once for a histogram
//! between them), and each tensor's range is chosen by one of three methods.

use std::collections::HashMap;

use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::Tensor;

use crate::onnx::tract::{CheckError, run};

/// Bins of the calibration histograms.
const BINS: usize = 2048;

/// Levels the entropy method quantizes a candidate range into (8 bits, one sign).
const LEVELS: usize = 128;

/// How a tensor's quantization range is chosen from what it held on the calibration set.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The smallest and largest value seen.
    Minmax,
    /// The 0.01st and 99.99th percentiles (outliers clipped).
    Percentile,
    /// The clipping threshold of |x| whose 128-level histogram loses the least information
    /// (smallest KL divergence from the full histogram), as TensorRT calibrates.
    Entropy,
}

impl Method {
    /// The method's name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Method::Minmax => "minmax",
            Method::Percentile => "percentile",
            Method::Entropy => "entropy",
        }
    }
}

/// What one tensor held over the calibration set.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Smallest value.
    pub min: f32,
    /// Largest value.
    pub max: f32,
    /// Counts of values in [`BINS`] equal bins over `[min, max]`.
    pub histogram: Vec<u64>,
}

impl Stats {
    /// The quantization range `[lo, hi]` by `method`; always contains 0.
    pub fn range(&self, method: Method) -> (f32, f32) {
        let (lo, hi) = match method {
            Method::Minmax => (self.min, self.max),
            Method::Percentile => (self.quantile(1e-4), self.quantile(1.0 - 1e-4)),
            Method::Entropy => {
                let t = self.entropy_threshold();
                (self.min.max(-t), self.max.min(t))
            }
        };
        (lo.min(0.0), hi.max(0.0))
    }

    fn width(&self) -> f32 {
        (self.max - self.min).max(f32::MIN_POSITIVE) / BINS as f32
    }

    /// The value below which a fraction `q` of the values lie.
    fn quantile(&self, q: f64) -> f32 {
        let total: u64 = self.histogram.iter().sum();
        let target = (q * total as f64).ceil() as u64;
        let mut seen = 0;
        for (i, &c) in self.histogram.iter().enumerate() {
            seen += c;
            if seen >= target {
                return self.min + self.width() * (i + 1) as f32;
            }
        }
        self.max
    }

    /// The |x| threshold minimising KL(P ‖ Q) between the clipped magnitude histogram P and its
    /// [`LEVELS`]-level quantization Q.
    fn entropy_threshold(&self) -> f32 {
        let top = self.min.abs().max(self.max.abs());
        if top == 0.0 {
            return 0.0;
        }
        let step = top / BINS as f32;
        let mut magnitude = vec![0f64; BINS];
        for (i, &c) in self.histogram.iter().enumerate() {
            let centre = self.min + self.width() * (i as f32 + 0.5);
            let bin = ((centre.abs() / step) as usize).min(BINS - 1);
            magnitude[bin] += c as f64;
        }
        let mut best = (f64::INFINITY, BINS);
        for end in (LEVELS..=BINS).step_by(16) {
            let mut p: Vec<f64> = magnitude[..end].to_vec();
            p[end - 1] += magnitude[end..].iter().sum::<f64>();
            let q = expand(&quantize_bins(&p, LEVELS), &p);
            let kl = divergence(&p, &q);
            if kl < best.0 {
                best = (kl, end);
            }
        }
        step * best.1 as f32
    }
}

/// Sums `p` into `levels` groups of (nearly) equal width.
fn quantize_bins(p: &[f64], levels: usize) -> Vec<(usize, usize, f64)> {
    (0..levels)
        .map(|l| {
            let (start, end) = (l * p.len() / levels, (l + 1) * p.len() / levels);
            (start, end, p[start..end].iter().sum())
        })
        .collect()
}

/// Spreads each group's mass evenly over its non-empty bins of `p`.
fn expand(groups: &[(usize, usize, f64)], p: &[f64]) -> Vec<f64> {
    let mut q = vec![0.0; p.len()];
    for &(start, end, mass) in groups {
        let used = p[start..end].iter().filter(|&&v| v > 0.0).count();
        if used == 0 {
            continue;
        }
        for i in start..end {
            if p[i] > 0.0 {
                q[i] = mass / used as f64;
            }
        }
    }
    q
}

fn divergence(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    p.iter()
        .zip(q)
        .filter(|(a, _)| **a > 0.0)
        .map(|(a, b)| {
            let (a, b) = (a / sp, (b / sq).max(1e-12));
            a * (a / b).ln()
        })
        .sum()
}

/// Statistics of the `tensors` of `model` over the `samples` (each one set of inputs).
pub fn collect(
    model: &ModelProto,
    tensors: &[String],
    samples: &[Vec<Tensor>],
) -> Result<HashMap<String, Stats>, CheckError> {
    let mut probe = model.clone();
    let graph = probe.graph.as_mut().expect("a model with a graph");
    let first_extra = graph.output.len();
    for t in tensors {
        graph.output.push(tract_onnx::pb::ValueInfoProto {
            name: t.clone(),
            ..Default::default()
        });
    }
    let mut stats: Vec<Stats> = tensors
        .iter()
        .map(|_| Stats {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            histogram: vec![0; BINS],
        })
        .collect();
    for pass in 0..2 {
        for inputs in samples {
            let outputs = run(&probe, inputs)?;
            for (s, out) in stats.iter_mut().zip(&outputs[first_extra..]) {
                let view = out
                    .to_plain_array_view::<f32>()
                    .map_err(|e| CheckError::Tract {
                        model: "calibration".into(),
                        stage: "read an activation of",
                        source: e.into(),
                    })?;
                if pass == 0 {
                    for &v in view.iter().filter(|v| v.is_finite()) {
                        s.min = s.min.min(v);
                        s.max = s.max.max(v);
                    }
                } else {
                    let width = s.width();
                    for &v in view.iter().filter(|v| v.is_finite()) {
                        let bin = (((v - s.min) / width) as usize).min(BINS - 1);
                        s.histogram[bin] += 1;
                    }
                }
            }
        }
    }
    Ok(tensors.iter().cloned().zip(stats).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(values: &[f32]) -> Stats {
        let (min, max) = values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let mut s = Stats {
            min,
            max,
            histogram: vec![0; BINS],
        };
        let width = s.width();
        for &v in values {
            s.histogram[(((v - min) / width) as usize).min(BINS - 1)] += 1;
        }
        s
    }

    #[test]
    fn minmax_spans_everything_and_includes_zero() {
        let s = stats(&[1.0, 2.0, 3.0]);
        assert_eq!(s.range(Method::Minmax), (0.0, 3.0));
    }

    #[test]
    fn percentile_and_entropy_clip_a_lone_outlier() {
        let mut values: Vec<f32> = (0..100_000).map(|i| (i % 1000) as f32 / 1000.0).collect();
        values.push(50.0);
        let s = stats(&values);
        let (_, hi) = s.range(Method::Minmax);
        assert_eq!(hi, 50.0);
        let (_, hi) = s.range(Method::Percentile);
        assert!(hi < 1.1, "percentile {hi}");
        let (_, hi) = s.range(Method::Entropy);
        assert!(hi < 5.0 && hi > 0.9, "entropy {hi}");
    }
}
