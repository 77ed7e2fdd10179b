//! Structured pruning of BERT-family encoders: whole layers, attention heads and feed-forward
//! neurons, ranked by weight norm. Every cut removes rows from one matrix together with the
//! matching columns of its consumer, so the result is a smaller dense encoder, not a masked one.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::bert::Encoder;
use crate::bert::weights::{Layer, Linear, Param};
use crate::package::text::TextPackage;
use crate::passes::prune::{Criterion, PruneError};

/// What to keep, absent fields leaving that structure whole: the `[prune]` table of a text
/// recipe and the flags of `edgemass-compress prune` for a text package, declared once.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Positions in the run order of the layers to keep (0,2,4 keeps every other layer of six;
    /// in a recipe, [0, 2, 4]).
    #[arg(long, value_delimiter = ',')]
    pub layers: Option<Vec<usize>>,
    /// Attention heads kept in every layer.
    #[arg(long)]
    pub heads: Option<usize>,
    /// Fraction of feed-forward neurons kept, in (0, 1].
    #[arg(long)]
    pub ffn: Option<f64>,
    /// Rank feed-forward neurons across all layers at once instead of layer by layer, so layers
    /// with more important neurons keep more of them.
    #[arg(long)]
    #[serde(default)]
    pub ffn_global: bool,
    /// Importance measure.
    #[arg(long, value_enum, default_value_t = Criterion::L2)]
    #[serde(default)]
    pub criterion: Criterion,
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(layers) = &self.layers {
            parts.push(format!("layers {layers:?}"));
        }
        if let Some(heads) = self.heads {
            parts.push(format!("{heads} heads per layer"));
        }
        if let Some(ffn) = self.ffn {
            let scope = if self.ffn_global {
                "global"
            } else {
                "per layer"
            };
            parts.push(format!("{:.0} % of FFN neurons ({scope})", ffn * 100.0));
        }
        if parts.is_empty() {
            parts.push("nothing".into());
        }
        write!(f, "{} by {:?} norm", parts.join(", "), self.criterion)
    }
}

/// Prunes the encoder of the `text-classify` package at `manifest` and writes the result as a
/// package named `name` into `out`; returns the new manifest's path.
pub fn prune_package(
    manifest: &Path,
    plan: &Plan,
    out: &Path,
    name: &str,
) -> Result<PathBuf, PruneError> {
    let package = TextPackage::open(manifest)?;
    let model = package.encoder()?;
    let head = model.head.as_ref().ok_or_else(|| {
        PruneError::Plan(format!(
            "{} has no classification head",
            package.model.display()
        ))
    })?;
    let pruned = prune(&model.encoder, plan)?;
    let provenance = package.derived_provenance(format!("prune: {plan}"));
    let c = &pruned.config;
    Ok(package.write_derived(
        out,
        name,
        format!(
            "{} layers, {} heads, FFN {} pruned from {}",
            c.num_layers,
            c.num_heads,
            c.intermediate_size,
            manifest.display()
        ),
        &crate::bert::onnx::classifier(&pruned, model.pooling, head),
        provenance,
    )?)
}

/// Applies `plan` to a copy of `encoder`: layers first, then heads, then feed-forward neurons.
pub fn prune(encoder: &Encoder, plan: &Plan) -> Result<Encoder, PruneError> {
    let mut out = encoder.clone();
    if let Some(keep) = &plan.layers {
        keep_layers(&mut out, keep)?;
    }
    if let Some(heads) = plan.heads {
        let have = out.config.num_heads;
        if heads == 0 || heads > have {
            return Err(PruneError::Plan(format!(
                "heads = {heads}: each layer has {have}, keep between 1 and {have}"
            )));
        }
        let size = out.config.head_size;
        for layer in &mut out.layers {
            keep_heads(layer, heads, size, plan.criterion);
        }
        out.config.num_heads = heads;
    }
    if let Some(fraction) = plan.ffn {
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(PruneError::Plan(format!(
                "ffn = {fraction}: the kept fraction must be in (0, 1]"
            )));
        }
        keep_neurons(&mut out.layers, fraction, plan.ffn_global, plan.criterion);
        out.config.intermediate_size = out.layers[0].ffn_in.weight.shape[0];
    }
    Ok(out)
}

fn keep_layers(encoder: &mut Encoder, keep: &[usize]) -> Result<(), PruneError> {
    let runs = encoder.schedule.len();
    if keep.is_empty() {
        return Err(PruneError::Plan(
            "layers = []: keep at least one layer".into(),
        ));
    }
    if let Some(bad) = keep.iter().find(|&&i| i >= runs) {
        return Err(PruneError::Plan(format!(
            "layers: position {bad} does not exist, the encoder runs {runs} layers (0..{runs})"
        )));
    }
    if keep.windows(2).any(|w| w[0] >= w[1]) {
        return Err(PruneError::Plan(format!(
            "layers = {keep:?}: positions must be strictly increasing"
        )));
    }
    let chosen: Vec<usize> = keep.iter().map(|&i| encoder.schedule[i]).collect();
    let mut distinct: Vec<usize> = chosen.clone();
    distinct.sort_unstable();
    distinct.dedup();
    encoder.schedule = chosen
        .iter()
        .map(|c| distinct.binary_search(c).expect("chosen from distinct"))
        .collect();
    encoder.layers = distinct
        .iter()
        .map(|&i| encoder.layers[i].clone())
        .collect();
    encoder.config.num_layers = encoder.schedule.len();
    Ok(())
}

fn keep_heads(layer: &mut Layer, heads: usize, size: usize, criterion: Criterion) {
    let have = layer.query.weight.shape[0] / size;
    let scores: Vec<f64> = (0..have)
        .map(|h| {
            let span = h * size..(h + 1) * size;
            let rows: f64 = [&layer.query, &layer.key, &layer.value]
                .iter()
                .map(|l| criterion.norm(span.clone().flat_map(|r| row(&l.weight, r))))
                .sum();
            rows + criterion.norm(
                span.clone()
                    .flat_map(|c| column(&layer.attention_out.weight, c)),
            )
        })
        .collect();
    let kept = top(&scores, heads);
    let dims: Vec<usize> = kept.iter().flat_map(|h| h * size..(h + 1) * size).collect();
    for l in [&mut layer.query, &mut layer.key, &mut layer.value] {
        *l = select_rows(l, &dims);
    }
    layer.attention_out = select_columns(&layer.attention_out, &dims);
}

fn keep_neurons(layers: &mut [Layer], fraction: f64, global: bool, criterion: Criterion) {
    let scores: Vec<Vec<f64>> = layers
        .iter()
        .map(|layer| {
            (0..layer.ffn_in.weight.shape[0])
                .map(|n| {
                    criterion.norm(row(&layer.ffn_in.weight, n))
                        * criterion.norm(column(&layer.ffn_out.weight, n))
                })
                .collect()
        })
        .collect();
    let counts: Vec<usize> = if global {
        let mut all: Vec<f64> = scores.iter().flatten().copied().collect();
        let keep = ((all.len() as f64 * fraction).round() as usize).max(1);
        all.sort_by(|a, b| b.total_cmp(a));
        let threshold = all[keep - 1];
        scores
            .iter()
            .map(|s| s.iter().filter(|&&v| v >= threshold).count().max(1))
            .collect()
    } else {
        scores
            .iter()
            .map(|s| ((s.len() as f64 * fraction).round() as usize).max(1))
            .collect()
    };
    for ((layer, s), count) in layers.iter_mut().zip(&scores).zip(counts) {
        let kept = top(s, count);
        layer.ffn_in = select_rows(&layer.ffn_in, &kept);
        layer.ffn_out = select_columns(&layer.ffn_out, &kept);
    }
}

/// Indices of the `count` highest scores, in ascending index order (ties keep the lower index).
fn top(scores: &[f64], count: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order.truncate(count);
    order.sort_unstable();
    order
}

fn row(w: &Param, r: usize) -> impl Iterator<Item = f32> + '_ {
    let width = w.shape[1];
    w.data[r * width..(r + 1) * width].iter().copied()
}

fn column(w: &Param, c: usize) -> impl Iterator<Item = f32> + '_ {
    w.data.iter().skip(c).step_by(w.shape[1]).copied()
}

/// Keeps output units `rows` (weight rows and bias entries).
fn select_rows(l: &Linear, rows: &[usize]) -> Linear {
    Linear {
        weight: Param {
            shape: vec![rows.len(), l.weight.shape[1]],
            data: rows.iter().flat_map(|&r| row(&l.weight, r)).collect(),
        },
        bias: Param {
            shape: vec![rows.len()],
            data: rows.iter().map(|&r| l.bias.data[r]).collect(),
        },
    }
}

/// Keeps input units `columns` (weight columns; the bias is unchanged).
fn select_columns(l: &Linear, columns: &[usize]) -> Linear {
    let width = l.weight.shape[1];
    Linear {
        weight: Param {
            shape: vec![l.weight.shape[0], columns.len()],
            data: (0..l.weight.shape[0])
                .flat_map(|r| columns.iter().map(move |&c| l.weight.data[r * width + c]))
                .collect(),
        },
        bias: l.bias.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_keeps_the_highest_in_index_order() {
        assert_eq!(top(&[0.1, 3.0, 2.0, 5.0], 2), vec![1, 3]);
        assert_eq!(top(&[1.0, 1.0, 1.0], 2), vec![0, 1]);
    }

    #[test]
    fn rows_and_columns_are_selected() {
        let l = Linear {
            weight: Param {
                shape: vec![3, 2],
                data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            },
            bias: Param {
                shape: vec![3],
                data: vec![7.0, 8.0, 9.0],
            },
        };
        let r = select_rows(&l, &[0, 2]);
        assert_eq!(r.weight.data, vec![1.0, 2.0, 5.0, 6.0]);
        assert_eq!(r.bias.data, vec![7.0, 9.0]);
        let c = select_columns(&l, &[1]);
        assert_eq!(c.weight.shape, vec![3, 1]);
        assert_eq!(c.weight.data, vec![2.0, 4.0, 6.0]);
    }
}
