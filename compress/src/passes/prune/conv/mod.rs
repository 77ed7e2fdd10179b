//! Structured pruning of convolutional ONNX graphs: output channels of convolutions are removed
//! together with every consumer's input channels, BatchNormalization and per-channel constants,
//! depthwise convolutions, and every channel a residual Add, an attention Mul, a Concat or a
//! Split ties to them ([`channels`] works the groups out). Channels are ranked by the L1 or L2
//! norm of the filters that make them; the result is a smaller dense graph, checked in tract to
//! give outputs of the original shapes before it is returned.

pub mod channels;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tract_onnx::pb::{self, ModelProto};

use crate::onnx::graph::{Graph, constants_to_initializers, f32_data, f32_tensor, i64_tensor};
use crate::onnx::inspect::{self, InputShape};
use crate::onnx::tract::run;
use crate::package;
use crate::package::detect::DetectPackage;
use crate::passes::prune::{Criterion, PruneError};
pub use channels::{Channels, Count, Group, Producer, SpaceId};

/// Default rounding of kept channel counts: AVX2 and NEON kernels work on 8 (4) lanes.
pub const DEFAULT_MULTIPLE: usize = 8;

/// What to keep: the `[prune]` table of a detection recipe and the flags of
/// `edgemass-compress prune` for a detection package or an ONNX file, declared once.
#[derive(Debug, Clone, PartialEq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Fraction of the channels of every prunable group to keep, in (0, 1].
    #[arg(long)]
    pub keep: f64,
    /// Rank channels of all groups at once (each group's norms scaled by its largest), so groups
    /// with more important channels keep more of them; `keep` is then the overall fraction.
    #[arg(long)]
    #[serde(default)]
    pub global: bool,
    /// Importance measure.
    #[arg(long, value_enum, default_value_t = Criterion::L2)]
    #[serde(default)]
    pub criterion: Criterion,
    /// Kept channel counts are rounded up to a multiple of this.
    #[arg(long, default_value_t = DEFAULT_MULTIPLE)]
    #[serde(default = "default_multiple")]
    pub multiple: usize,
    /// No group keeps fewer channels than this (or all it has, if fewer).
    #[arg(long, default_value_t = DEFAULT_MULTIPLE)]
    #[serde(default = "default_multiple")]
    pub min_channels: usize,
    /// A different fraction for the groups a convolution makes, NODE=FRACTION (NODE: part of its
    /// name; repeatable; the first match wins over `keep`).
    #[arg(long = "layer", value_name = "NODE=FRACTION")]
    #[serde(default)]
    pub layers: Vec<LayerKeep>,
}

fn default_multiple() -> usize {
    DEFAULT_MULTIPLE
}

/// A fraction for the groups made by matching convolutions.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerKeep {
    /// Part of a convolution's name.
    pub node: String,
    /// Fraction of its group's channels to keep, in (0, 1].
    pub keep: f64,
}

impl std::str::FromStr for LayerKeep {
    type Err = String;

    /// Reads `NODE=FRACTION`.
    fn from_str(spec: &str) -> Result<LayerKeep, String> {
        spec.split_once('=')
            .and_then(|(node, keep)| {
                Some(LayerKeep {
                    node: node.into(),
                    keep: keep.parse().ok()?,
                })
            })
            .ok_or_else(|| format!("`{spec}` is not NODE=FRACTION"))
    }
}

impl Plan {
    /// Keeps `keep` of every group, ranked by L2 norm, rounded to [`DEFAULT_MULTIPLE`].
    pub fn uniform(keep: f64) -> Plan {
        Plan {
            keep,
            global: false,
            criterion: Criterion::L2,
            multiple: DEFAULT_MULTIPLE,
            min_channels: DEFAULT_MULTIPLE,
            layers: Vec::new(),
        }
    }

    fn check(&self) -> Result<(), PruneError> {
        let fraction = |v: f64| v > 0.0 && v <= 1.0;
        if !fraction(self.keep) {
            return Err(PruneError::Plan(format!(
                "keep must be in (0, 1], not {}",
                self.keep
            )));
        }
        if let Some(l) = self.layers.iter().find(|l| !fraction(l.keep)) {
            return Err(PruneError::Plan(format!(
                "layer `{}`: keep must be in (0, 1], not {}",
                l.node, l.keep
            )));
        }
        if self.multiple == 0 || self.min_channels == 0 {
            return Err(PruneError::Plan(
                "multiple and min_channels must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "keep {:.0} % of channels{} by {:?}, multiples of {}",
            self.keep * 100.0,
            if self.global { " (global)" } else { "" },
            self.criterion,
            self.multiple
        )?;
        for l in &self.layers {
            write!(f, ", `{}` {:.0} %", l.node, l.keep * 100.0)?;
        }
        Ok(())
    }
}

/// One group's channels before and after.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupChange {
    /// The first convolution making the group.
    pub node: String,
    /// How many convolutions make it (more than one: a residual or attention group).
    pub producers: usize,
    /// Channels before.
    pub before: usize,
    /// Channels kept.
    pub after: usize,
}

/// A pruned graph and what changed.
#[derive(Debug, Clone)]
pub struct Pruned {
    /// The smaller graph, weights as initializers.
    pub model: ModelProto,
    /// Every prunable group, in graph order.
    pub groups: Vec<GroupChange>,
    /// Groups that could not shrink: their size and why.
    pub fixed: Vec<(usize, String)>,
    /// MACs before and after at the given input shapes.
    pub macs: (u64, u64),
}

impl Pruned {
    /// Channels before and after, over all prunable groups.
    pub fn channels(&self) -> (usize, usize) {
        self.groups
            .iter()
            .fold((0, 0), |(b, a), g| (b + g.before, a + g.after))
    }
}

/// Prunes `model` by `plan`, with tensor shapes taken at the `inputs` shapes (symbolic batch
/// dims default to 1; other symbolic dims must be given).
pub fn prune(model: &ModelProto, inputs: &[InputShape], plan: &Plan) -> Result<Pruned, PruneError> {
    plan.check()?;
    let mut proto = model.clone();
    constants_to_initializers(&mut proto);
    let graph = Graph { proto, bytes: 0 };
    let macs = inspect::inspect(&graph, inputs)?.macs?;
    let channels = Channels::analyse(graph.graph(), &macs.shapes);
    let groups = channels.groups();
    if groups.is_empty() {
        let mut fixed = channels.blocked();
        fixed.sort_by_key(|(size, _)| std::cmp::Reverse(*size));
        let reasons: Vec<String> = fixed
            .iter()
            .take(3)
            .map(|(size, why)| format!("{size} channels fixed because {why}"))
            .collect();
        return Err(PruneError::Nothing {
            reasons: reasons.join("; "),
        });
    }
    let weights: HashMap<&str, &pb::TensorProto> = graph
        .graph()
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let mut importance = Vec::with_capacity(groups.len());
    for group in &groups {
        importance.push(group_importance(group, &weights, plan.criterion)?);
    }
    let counts = kept_counts(&groups, &importance, plan);
    let mut kept: HashMap<SpaceId, Vec<usize>> = HashMap::new();
    for ((group, scores), &count) in groups.iter().zip(&importance).zip(&counts) {
        kept.insert(group.root, strongest(scores, count));
    }
    let mut proto = graph.proto.clone();
    rewrite(&mut proto, &channels, &kept)?;
    let pruned_graph = Graph { proto, bytes: 0 };
    let after = inspect::inspect(&pruned_graph, inputs)?.macs?;
    check_outputs(&graph, &pruned_graph, &macs)?;
    let changes = groups
        .iter()
        .zip(&counts)
        .map(|(g, &after)| GroupChange {
            node: g.producers[0].node.clone(),
            producers: g.producers.len(),
            before: g.size,
            after,
        })
        .collect();
    Ok(Pruned {
        model: pruned_graph.proto,
        groups: changes,
        fixed: channels.blocked(),
        macs: (macs.total, after.total),
    })
}

/// Prunes the detection package at `manifest` into a package named `name` in `out`; shapes are
/// taken at the package's own input size unless `inputs` say otherwise. Returns what changed
/// and the new manifest.
pub fn prune_package(
    manifest: &Path,
    inputs: &[InputShape],
    plan: &Plan,
    out: &Path,
    name: &str,
) -> Result<(Pruned, PathBuf), PruneError> {
    let package = DetectPackage::open(manifest)?;
    let shapes = if inputs.is_empty() {
        vec![package::detect::package_input(&package.manifest)]
    } else {
        inputs.to_vec()
    };
    let pruned = prune(&package.graph()?.proto, &shapes, plan)?;
    let (before, after) = pruned.channels();
    let provenance = package.derived_provenance(format!(
        "prune-conv: {plan}; channels {before} -> {after}, MACs {} -> {}",
        pruned.macs.0, pruned.macs.1
    ));
    let path = package.write_derived(
        out,
        name,
        format!("{} pruned ({plan})", package.manifest.name),
        &pruned.model,
        None,
        &provenance,
    )?;
    Ok((pruned, path))
}

/// Runs the pruned graph in tract on zeros of the input shapes and checks every output has the
/// shape the original's has.
fn check_outputs(original: &Graph, pruned: &Graph, macs: &inspect::Macs) -> Result<(), PruneError> {
    let inputs: Vec<tract_onnx::prelude::Tensor> = macs
        .inputs
        .iter()
        .map(|(_, dims)| {
            tract_onnx::prelude::Tensor::zero::<f32>(dims).expect("shapes from tract are valid")
        })
        .collect();
    let outputs = run(&pruned.proto, &inputs)?;
    for (output, got) in original.graph().output.iter().zip(outputs) {
        let Some(want) = macs.shapes.get(&output.name) else {
            continue;
        };
        if got.shape() != want.as_slice() {
            return Err(PruneError::OutputShape {
                output: output.name.clone(),
                got: got.shape().to_vec(),
                want: want.clone(),
            });
        }
    }
    Ok(())
}

/// Per-channel importance of a group: the norm of each channel's filter, summed over the
/// convolutions that make the group.
fn group_importance(
    group: &Group,
    weights: &HashMap<&str, &pb::TensorProto>,
    criterion: Criterion,
) -> Result<Vec<f64>, PruneError> {
    let mut scores = vec![0.0; group.size];
    for p in &group.producers {
        let bad = || PruneError::Weight {
            node: p.node.clone(),
            weight: p.weight.clone(),
        };
        let tensor = weights.get(p.weight.as_str()).ok_or_else(bad)?;
        let data = f32_data(tensor).ok_or_else(bad)?;
        let dims: Vec<usize> = tensor.dims.iter().map(|&d| d as usize).collect();
        let (outer, axis_len, inner) = split_dims(&dims, p.axis);
        for (i, score) in scores.iter_mut().enumerate() {
            let c = p.offset + i;
            let values = (0..outer).flat_map(|o| {
                let start = (o * axis_len + c) * inner;
                data[start..start + inner].iter().copied()
            });
            *score += criterion.norm(values);
        }
    }
    Ok(scores)
}

/// How many channels each group keeps.
fn kept_counts(groups: &[Group], importance: &[Vec<f64>], plan: &Plan) -> Vec<usize> {
    let fraction = |g: &Group| {
        plan.layers
            .iter()
            .find(|l| g.producers.iter().any(|p| p.node.contains(&l.node)))
            .map(|l| l.keep)
    };
    let threshold = plan.global.then(|| {
        let mut all: Vec<f64> = importance.iter().flat_map(|s| scaled(s)).collect();
        all.sort_by(|a, b| b.total_cmp(a));
        let n = ((all.len() as f64 * plan.keep).ceil() as usize).clamp(1, all.len());
        all[n - 1]
    });
    groups
        .iter()
        .zip(importance)
        .map(|(g, scores)| {
            let wanted = match (fraction(g), threshold) {
                (Some(keep), _) => (g.size as f64 * keep).ceil() as usize,
                (None, Some(t)) => scaled(scores).filter(|&s| s >= t).count(),
                (None, None) => (g.size as f64 * plan.keep).ceil() as usize,
            };
            let rounded = wanted.div_ceil(plan.multiple) * plan.multiple;
            rounded.max(plan.min_channels).min(g.size)
        })
        .collect()
}

fn scaled(scores: &[f64]) -> impl Iterator<Item = f64> + '_ {
    let top = scores.iter().copied().fold(0.0, f64::max);
    scores
        .iter()
        .map(move |&s| if top > 0.0 { s / top } else { 0.0 })
}

/// Indices of the `count` highest scores, ascending (ties keep the lower index).
fn strongest(scores: &[f64], count: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order.truncate(count);
    order.sort_unstable();
    order
}

fn split_dims(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        dims[..axis].iter().product(),
        dims[axis],
        dims[axis + 1..].iter().product(),
    )
}

/// Positions kept along an axis made of `segments`.
fn kept_along(
    channels: &Channels,
    kept: &HashMap<SpaceId, Vec<usize>>,
    segments: &[SpaceId],
) -> Vec<usize> {
    let mut out = Vec::new();
    let mut base = 0;
    for &s in segments {
        let size = channels.size(s);
        match kept.get(&channels.root(s)) {
            Some(indices) => out.extend(indices.iter().map(|i| base + i)),
            None => out.extend(base..base + size),
        }
        base += size;
    }
    out
}

/// Cuts every weight axis that follows channels and rewrites the channel counts nodes state.
fn rewrite(
    proto: &mut ModelProto,
    channels: &Channels,
    kept: &HashMap<SpaceId, Vec<usize>>,
) -> Result<(), PruneError> {
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(0, |o| o.version);
    let graph = proto.graph.as_mut().expect("checked in Graph::load");
    let mut cuts: HashMap<&str, Vec<(usize, Vec<usize>)>> = HashMap::new();
    for slice in &channels.slices {
        let along = kept_along(channels, kept, &slice.segments);
        cuts.entry(slice.weight.as_str())
            .or_default()
            .push((slice.axis, along));
    }
    for tensor in &mut graph.initializer {
        let Some(axes) = cuts.get(tensor.name.as_str()) else {
            continue;
        };
        let bad = || PruneError::Weight {
            node: "(initializer)".into(),
            weight: tensor.name.clone(),
        };
        let mut data = f32_data(tensor).ok_or_else(bad)?;
        let mut dims: Vec<usize> = tensor.dims.iter().map(|&d| d as usize).collect();
        for (axis, indices) in axes {
            if indices.len() == dims[*axis] {
                continue;
            }
            data = take(&data, &dims, *axis, indices);
            dims[*axis] = indices.len();
        }
        *tensor = f32_tensor(&tensor.name, &dims, &data);
    }
    let mut new_initializers = Vec::new();
    let mut replaced = Vec::new();
    for count in &channels.counts {
        match count {
            Count::Group { node, segments } => {
                let n = kept_along(channels, kept, segments).len() as i64;
                if let Some(a) = graph.node[*node]
                    .attribute
                    .iter_mut()
                    .find(|a| a.name == "group")
                {
                    a.i = n;
                }
            }
            Count::Split { node, outputs } => {
                let sizes: Vec<i64> = outputs
                    .iter()
                    .map(|o| kept_along(channels, kept, o).len() as i64)
                    .collect();
                let node = &mut graph.node[*node];
                node.attribute
                    .retain(|a| a.name != "split" && a.name != "num_outputs");
                if opset >= 13 {
                    let name = format!("{}_pruned_split", crate::onnx::graph::node_label(node, 0));
                    new_initializers.push(i64_tensor(&name, &[sizes.len()], &sizes));
                    node.input.resize(2, String::new());
                    replaced.push(std::mem::replace(&mut node.input[1], name));
                } else {
                    node.attribute.push(pb::AttributeProto {
                        name: "split".into(),
                        r#type: pb::attribute_proto::AttributeType::Ints as i32,
                        ints: sizes,
                        ..Default::default()
                    });
                }
            }
        }
    }
    graph.initializer.extend(new_initializers);
    // The old split sizes no node reads any more would be dead weight (onnxruntime warns).
    let read: HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .collect();
    let orphans: HashSet<String> = replaced
        .into_iter()
        .filter(|r| !r.is_empty() && !read.contains(r.as_str()))
        .collect();
    graph.initializer.retain(|t| !orphans.contains(&t.name));
    graph.value_info.clear();
    Ok(())
}

/// The elements of `data` (shape `dims`) at `indices` along `axis`.
fn take(data: &[f32], dims: &[usize], axis: usize, indices: &[usize]) -> Vec<f32> {
    let (outer, axis_len, inner) = split_dims(dims, axis);
    let mut out = Vec::with_capacity(outer * indices.len() * inner);
    for o in 0..outer {
        for &i in indices {
            let start = (o * axis_len + i) * inner;
            out.extend_from_slice(&data[start..start + inner]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_picks_along_any_axis() {
        let data: Vec<f32> = (0..24).map(|v| v as f32).collect();
        assert_eq!(
            take(&data, &[2, 3, 4], 1, &[0, 2]),
            [
                0., 1., 2., 3., 8., 9., 10., 11., 12., 13., 14., 15., 20., 21., 22., 23.
            ]
        );
        assert_eq!(
            take(&data, &[2, 3, 4], 2, &[3]),
            [3., 7., 11., 15., 19., 23.]
        );
        assert_eq!(take(&data, &[2, 3, 4], 0, &[1]), data[12..].to_vec());
    }

    #[test]
    fn strongest_keeps_the_highest_in_order() {
        assert_eq!(strongest(&[0.1, 0.9, 0.5, 0.9], 2), [1, 3]);
        assert_eq!(strongest(&[3.0, 1.0, 2.0], 3), [0, 1, 2]);
    }
}
