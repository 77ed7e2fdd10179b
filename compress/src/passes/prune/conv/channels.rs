//! Channel dependencies of a convolutional ONNX graph: which channels must be removed together
//! (a residual Add or an attention Mul ties the channels of its inputs into one group; a Concat
//! lays groups side by side; a Split cuts one apart), which weight axes each group runs along,
//! and which groups cannot shrink at all (they reach a graph output, a Reshape, or an operator
//! whose channel semantics are unknown).
//!
//! A *space* is a run of channels that belong together. Every tensor with a channel axis (axis 1,
//! NCHW) is a list of spaces laid end to end. Spaces joined by an element-wise op are merged
//! (union–find); the merged set is a group, pruned as one.

use std::collections::{HashMap, HashSet};

use tract_onnx::pb::{GraphProto, NodeProto};

use crate::onnx::graph::{int_attr, node_label};

/// A space's index.
pub type SpaceId = usize;

/// Where a space's channels are made: indices `offset..offset + size` of `weight`'s `axis`.
#[derive(Debug, Clone, PartialEq)]
pub struct Producer {
    /// The convolution's name.
    pub node: String,
    /// Its weight initializer.
    pub weight: String,
    /// 0 for Conv (output channels lead), 1 for ConvTranspose.
    pub axis: usize,
    /// First index of the space along that axis.
    pub offset: usize,
}

impl Producer {
    /// The convolution `node` whose weight `weight` makes a whole space along `axis`.
    fn whole(node: &str, weight: &str, axis: usize) -> Producer {
        Producer {
            node: node.to_owned(),
            weight: weight.to_owned(),
            axis,
            offset: 0,
        }
    }
}

/// A weight axis made of the channels of `segments`, in order: pruning a segment's channels
/// removes the same indices from this axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    /// The initializer.
    pub weight: String,
    /// The axis along which it follows the channels.
    pub axis: usize,
    /// The spaces laid along the axis.
    pub segments: Vec<SpaceId>,
}

/// An attribute or constant of a node that states a channel count.
#[derive(Debug, Clone, PartialEq)]
pub enum Count {
    /// A depthwise Conv's `group` equals its channel count.
    Group {
        /// Index of the node in the graph.
        node: usize,
        /// The channels of its input.
        segments: Vec<SpaceId>,
    },
    /// A Split along the channel axis: each output's size.
    Split {
        /// Index of the node in the graph.
        node: usize,
        /// The channels of each output, in order.
        outputs: Vec<Vec<SpaceId>>,
    },
}

#[derive(Debug, Clone)]
struct Space {
    parent: SpaceId,
    size: usize,
    blocked: Option<String>,
    producers: Vec<Producer>,
    replaced: bool,
}

/// A group of channels that is pruned as one.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The group's root space.
    pub root: SpaceId,
    /// Channels in the group.
    pub size: usize,
    /// The convolutions whose output channels these are.
    pub producers: Vec<Producer>,
}

/// The channel structure of a graph.
#[derive(Debug, Clone)]
pub struct Channels {
    spaces: Vec<Space>,
    tensors: HashMap<String, Vec<SpaceId>>,
    /// Weight axes that follow channels.
    pub slices: Vec<Slice>,
    /// Channel counts written in nodes.
    pub counts: Vec<Count>,
}

impl Channels {
    /// Works out the channel structure of `graph`, whose weights are initializers, given the
    /// shape of every tensor (`shapes`, by name, from tract at fixed input shapes).
    pub fn analyse(graph: &GraphProto, shapes: &HashMap<String, Vec<usize>>) -> Channels {
        let mut c = Channels {
            spaces: Vec::new(),
            tensors: HashMap::new(),
            slices: Vec::new(),
            counts: Vec::new(),
        };
        let constants: HashMap<&str, &[i64]> = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t.dims.as_slice()))
            .collect();
        let initializers: HashSet<&str> = constants.keys().copied().collect();
        for input in graph
            .input
            .iter()
            .filter(|i| !initializers.contains(i.name.as_str()))
        {
            if let Some(channels) = channel_count(shapes, &input.name) {
                let s = c.fresh(channels, vec![]);
                c.block(s, "it is a graph input");
                c.tensors.insert(input.name.clone(), vec![s]);
            }
        }
        let analysis = Analysis {
            shapes,
            constants: &constants,
        };
        for (index, node) in graph.node.iter().enumerate() {
            analysis.node(&mut c, index, node);
        }
        for output in &graph.output {
            c.block_tensor(&output.name, "it is a graph output");
        }
        c
    }

    /// Every group that can shrink: not blocked, made by at least one convolution.
    pub fn groups(&self) -> Vec<Group> {
        let mut groups: Vec<Group> = Vec::new();
        for (id, space) in self.spaces.iter().enumerate() {
            if space.replaced || space.parent != id || space.blocked.is_some() {
                continue;
            }
            if space.producers.is_empty() {
                continue;
            }
            groups.push(Group {
                root: id,
                size: space.size,
                producers: space.producers.clone(),
            });
        }
        groups
    }

    /// Groups that cannot shrink, each with its size and why (for reports).
    pub fn blocked(&self) -> Vec<(usize, String)> {
        self.spaces
            .iter()
            .enumerate()
            .filter(|(id, s)| !s.replaced && s.parent == *id && !s.producers.is_empty())
            .filter_map(|(_, s)| Some((s.size, s.blocked.clone()?)))
            .collect()
    }

    /// The group a space belongs to.
    pub fn root(&self, mut space: SpaceId) -> SpaceId {
        while self.spaces[space].parent != space {
            space = self.spaces[space].parent;
        }
        space
    }

    /// Channels in a space.
    pub fn size(&self, space: SpaceId) -> usize {
        self.spaces[space].size
    }

    fn fresh(&mut self, size: usize, producers: Vec<Producer>) -> SpaceId {
        let id = self.spaces.len();
        self.spaces.push(Space {
            parent: id,
            size,
            blocked: None,
            producers,
            replaced: false,
        });
        id
    }

    fn block(&mut self, space: SpaceId, reason: &str) {
        let root = self.root(space);
        self.spaces[root]
            .blocked
            .get_or_insert_with(|| reason.to_owned());
    }

    fn block_all(&mut self, segments: &[SpaceId], reason: &str) {
        for &s in segments {
            self.block(s, reason);
        }
    }

    fn block_tensor(&mut self, tensor: &str, reason: &str) {
        if let Some(segments) = self.tensors.get(tensor).cloned() {
            self.block_all(&segments, reason);
        }
    }

    fn union(&mut self, a: SpaceId, b: SpaceId, reason: &str) {
        let (ra, rb) = (self.root(a), self.root(b));
        if ra == rb {
            return;
        }
        if self.spaces[ra].size != self.spaces[rb].size {
            self.block(ra, reason);
            self.block(rb, reason);
            return;
        }
        self.spaces[rb].parent = ra;
        let moved = std::mem::take(&mut self.spaces[rb].producers);
        self.spaces[ra].producers.extend(moved);
        if let Some(why) = self.spaces[rb].blocked.take() {
            self.spaces[ra].blocked.get_or_insert(why);
        }
    }

    /// Ties two channel lists element-wise; lists cut differently cannot be pruned.
    fn join(&mut self, a: &[SpaceId], b: &[SpaceId], node: &str) {
        let sizes = |c: &Channels, s: &[SpaceId]| s.iter().map(|&x| c.size(x)).collect::<Vec<_>>();
        if sizes(self, a) == sizes(self, b) {
            let reason = format!("`{node}` joins channels of different sizes");
            for (&x, &y) in a.iter().zip(b) {
                self.union(x, y, &reason);
            }
        } else {
            let reason = format!("`{node}` joins channel runs that are cut differently");
            self.block_all(a, &reason);
            self.block_all(b, &reason);
        }
    }

    fn slice(&mut self, weight: &str, axis: usize, segments: Vec<SpaceId>, node: &str) {
        let roots = |c: &Channels, s: &[SpaceId]| s.iter().map(|&x| c.root(x)).collect::<Vec<_>>();
        if let Some(existing) = self
            .slices
            .iter()
            .find(|s| s.weight == weight && s.axis == axis)
            .cloned()
        {
            if roots(self, &existing.segments) != roots(self, &segments) {
                let reason = format!("weight `{weight}` is shared by `{node}` and another node");
                self.block_all(&existing.segments, &reason);
                self.block_all(&segments, &reason);
            }
            return;
        }
        self.slices.push(Slice {
            weight: weight.to_owned(),
            axis,
            segments,
        });
    }

    /// Cuts `segments` at channel `at`, splitting the space the cut falls in when it can;
    /// `None` when the cut would divide a group that is already tied to others.
    fn cut(&mut self, segments: &[SpaceId], at: usize) -> Option<(Vec<SpaceId>, Vec<SpaceId>)> {
        let mut start = 0;
        for (i, &s) in segments.iter().enumerate() {
            let size = self.size(s);
            if at == start {
                return Some((segments[..i].to_vec(), segments[i..].to_vec()));
            }
            if at < start + size {
                let (first, second) = self.split(s, at - start)?;
                let mut left = segments[..i].to_vec();
                left.push(first);
                let mut right = vec![second];
                right.extend_from_slice(&segments[i + 1..]);
                return Some((left, right));
            }
            start += size;
        }
        (at == start).then(|| (segments.to_vec(), vec![]))
    }

    /// Replaces a space that no other space is tied to by two spaces of `at` and the rest of
    /// its channels, everywhere it appears.
    fn split(&mut self, space: SpaceId, at: usize) -> Option<(SpaceId, SpaceId)> {
        let tied = (0..self.spaces.len()).any(|j| j != space && self.spaces[j].parent == space);
        if tied || self.spaces[space].parent != space {
            return None;
        }
        let old = self.spaces[space].clone();
        let shifted = old
            .producers
            .iter()
            .map(|p| Producer {
                offset: p.offset + at,
                ..p.clone()
            })
            .collect();
        let first = self.fresh(at, old.producers.clone());
        let second = self.fresh(old.size - at, shifted);
        for s in [first, second] {
            self.spaces[s].blocked = old.blocked.clone();
        }
        self.spaces[space].replaced = true;
        let replace = |list: &mut Vec<SpaceId>| {
            if list.contains(&space) {
                *list = list
                    .iter()
                    .flat_map(|&x| {
                        if x == space {
                            vec![first, second]
                        } else {
                            vec![x]
                        }
                    })
                    .collect();
            }
        };
        for list in self.tensors.values_mut() {
            replace(list);
        }
        for slice in &mut self.slices {
            replace(&mut slice.segments);
        }
        for count in &mut self.counts {
            match count {
                Count::Group { segments, .. } => replace(segments),
                Count::Split { outputs, .. } => outputs.iter_mut().for_each(replace),
            }
        }
        Some((first, second))
    }
}

/// Read-only facts the per-node rules need.
struct Analysis<'a> {
    shapes: &'a HashMap<String, Vec<usize>>,
    constants: &'a HashMap<&'a str, &'a [i64]>,
}

/// Operators that keep every channel where it is, looking at one data input.
const PER_CHANNEL: &[&str] = &[
    "Relu",
    "Sigmoid",
    "Tanh",
    "Clip",
    "HardSigmoid",
    "HardSwish",
    "LeakyRelu",
    "Elu",
    "Selu",
    "Softplus",
    "Softsign",
    "Gelu",
    "Mish",
    "Identity",
    "Dropout",
    "Abs",
    "Neg",
    "Exp",
    "Sqrt",
    "Erf",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Resize",
    "Upsample",
];

/// Element-wise operators on two inputs that broadcast.
const ELEMENTWISE: &[&str] = &["Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "PRelu"];

impl Analysis<'_> {
    fn node(&self, c: &mut Channels, index: usize, node: &NodeProto) {
        let name = node_label(node, index);
        let op = node.op_type.as_str();
        match op {
            "Conv" => self.conv(c, index, node, &name),
            "ConvTranspose" => self.conv_transpose(c, node, &name),
            "BatchNormalization" | "InstanceNormalization" => self.normalization(c, node, &name),
            "Concat" => self.concat(c, node, &name),
            "Split" => self.split(c, index, node, &name),
            _ if PER_CHANNEL.contains(&op) => self.per_channel(c, node, &name),
            _ if ELEMENTWISE.contains(&op) => self.elementwise(c, node, &name),
            _ => self.opaque(c, node, &format!("`{name}` ({op}) reads it")),
        }
    }

    fn is_constant(&self, name: &str) -> bool {
        self.constants.contains_key(name)
    }

    fn rank(&self, name: &str) -> Option<usize> {
        self.shapes.get(name).map(Vec::len)
    }

    /// Blocks every channel the node reads; its outputs carry no channel structure.
    fn opaque(&self, c: &mut Channels, node: &NodeProto, reason: &str) {
        for input in &node.input {
            c.block_tensor(input, reason);
        }
    }

    /// An output whose channels are new and cannot shrink.
    fn fixed_output(&self, c: &mut Channels, tensor: &str, reason: &str) {
        if let Some(channels) = channel_count(self.shapes, tensor) {
            let s = c.fresh(channels, vec![]);
            c.block(s, reason);
            c.tensors.insert(tensor.to_owned(), vec![s]);
        }
    }

    fn conv(&self, c: &mut Channels, index: usize, node: &NodeProto, name: &str) {
        let (Some(x), Some(w), Some(out)) =
            (node.input.first(), node.input.get(1), node.output.first())
        else {
            return;
        };
        let Some(dims) = self.constants.get(w.as_str()) else {
            self.opaque(
                c,
                node,
                &format!("`{name}` takes its weight from another node"),
            );
            self.fixed_output(c, out, "its convolution's weight is computed");
            return;
        };
        let bias = node.input.get(2).filter(|b| self.is_constant(b));
        let group = int_attr(node, "group").unwrap_or(1) as usize;
        let input = c.tensors.get(x).cloned();
        let (m, per_group) = (dims[0] as usize, dims[1] as usize);
        let in_channels = per_group * group;
        if let Some(segments) = &input {
            let total: usize = segments.iter().map(|&s| c.size(s)).sum();
            if total != in_channels {
                c.block_all(
                    segments,
                    &format!("`{name}` reads a channel count it does not declare"),
                );
                self.fixed_output(c, out, "its convolution's input is not understood");
                return;
            }
        }
        if group == 1 {
            if let Some(segments) = input {
                c.slice(w, 1, segments, name);
            }
            let s = c.fresh(m, vec![Producer::whole(name, w, 0)]);
            c.slice(w, 0, vec![s], name);
            if let Some(b) = bias {
                c.slice(b, 0, vec![s], name);
            }
            c.tensors.insert(out.clone(), vec![s]);
        } else if per_group == 1 && m == group {
            let Some(segments) = input else {
                self.fixed_output(c, out, "it is a depthwise convolution of fixed channels");
                return;
            };
            c.slice(w, 0, segments.clone(), name);
            if let Some(b) = bias {
                c.slice(b, 0, segments.clone(), name);
            }
            c.counts.push(Count::Group {
                node: index,
                segments: segments.clone(),
            });
            c.tensors.insert(out.clone(), segments);
        } else {
            let reason = format!("`{name}` is a grouped convolution");
            if let Some(segments) = input {
                c.block_all(&segments, &reason);
            }
            self.fixed_output(c, out, &reason);
        }
    }

    fn conv_transpose(&self, c: &mut Channels, node: &NodeProto, name: &str) {
        let (Some(x), Some(w), Some(out)) =
            (node.input.first(), node.input.get(1), node.output.first())
        else {
            return;
        };
        let group = int_attr(node, "group").unwrap_or(1);
        let Some(dims) = self.constants.get(w.as_str()).filter(|_| group == 1) else {
            let reason = format!("`{name}` is a grouped or computed transposed convolution");
            self.opaque(c, node, &reason);
            self.fixed_output(c, out, &reason);
            return;
        };
        if let Some(segments) = c.tensors.get(x).cloned() {
            c.slice(w, 0, segments, name);
        }
        let s = c.fresh(dims[1] as usize, vec![Producer::whole(name, w, 1)]);
        c.slice(w, 1, vec![s], name);
        if let Some(b) = node.input.get(2).filter(|b| self.is_constant(b)) {
            c.slice(b, 0, vec![s], name);
        }
        c.tensors.insert(out.clone(), vec![s]);
    }

    fn normalization(&self, c: &mut Channels, node: &NodeProto, name: &str) {
        let (Some(x), Some(out)) = (node.input.first(), node.output.first()) else {
            return;
        };
        let Some(segments) = c.tensors.get(x).cloned() else {
            return;
        };
        if node.output.len() > 1 || !node.input[1..].iter().all(|p| self.is_constant(p)) {
            c.block_all(
                &segments,
                &format!("`{name}` is a training-mode normalization"),
            );
            return;
        }
        for param in &node.input[1..] {
            c.slice(param, 0, segments.clone(), name);
        }
        c.tensors.insert(out.clone(), segments);
    }

    fn per_channel(&self, c: &mut Channels, node: &NodeProto, name: &str) {
        let (Some(x), Some(out)) = (node.input.first(), node.output.first()) else {
            return;
        };
        let Some(segments) = c.tensors.get(x).cloned() else {
            return;
        };
        let rest_constant = node.input[1..]
            .iter()
            .all(|i| i.is_empty() || self.is_constant(i));
        let resize_by_size =
            matches!(node.op_type.as_str(), "Resize" | "Upsample") && self.resizes_channels(node);
        if !rest_constant || resize_by_size {
            c.block_all(
                &segments,
                &format!("`{name}` ({}) may change channels", node.op_type),
            );
            return;
        }
        c.tensors.insert(out.clone(), segments);
    }

    /// Whether a Resize names output sizes (which state the channel count) or scales channels.
    fn resizes_channels(&self, node: &NodeProto) -> bool {
        let sizes = node.input.get(3).is_some_and(|s| !s.is_empty());
        let out = node.output.first().and_then(|o| self.shapes.get(o));
        let x = node.input.first().and_then(|i| self.shapes.get(i));
        sizes || out.zip(x).is_none_or(|(o, x)| o.get(1) != x.get(1))
    }

    fn elementwise(&self, c: &mut Channels, node: &NodeProto, name: &str) {
        let Some(out) = node.output.first() else {
            return;
        };
        let Some(rank) = self.rank(out) else {
            self.opaque(c, node, &format!("`{name}` has no known shape"));
            return;
        };
        let mut result: Option<Vec<SpaceId>> = None;
        let mut activations = Vec::new();
        for input in &node.input {
            if self.is_constant(input) {
                continue;
            }
            match c.tensors.get(input).cloned() {
                Some(segments) => activations.push((input.clone(), segments)),
                None if channel_count(self.shapes, input).is_some_and(|n| n > 1) => {
                    self.opaque(
                        c,
                        node,
                        &format!("`{name}` mixes in a tensor of fixed channels"),
                    );
                    return;
                }
                None => {}
            }
        }
        for (input, segments) in &activations {
            if channel_count(self.shapes, input) == Some(1) && activations.len() > 1 {
                continue;
            }
            match &result {
                None => result = Some(segments.clone()),
                Some(first) => {
                    let first = first.clone();
                    c.join(&first, segments, name);
                }
            }
        }
        let Some(segments) = result else {
            return;
        };
        for input in node.input.iter().filter(|i| self.is_constant(i)) {
            let dims = self.constants[input.as_str()];
            let Some(axis) = (1 + dims.len()).checked_sub(rank) else {
                continue;
            };
            let channels: usize = segments.iter().map(|&s| c.size(s)).sum();
            match dims[axis] as usize {
                1 => {}
                n if n == channels => c.slice(input, axis, segments.clone(), name),
                _ => c.block_all(&segments, &format!("`{name}` broadcasts an odd constant")),
            }
        }
        c.tensors.insert(out.clone(), segments);
    }

    fn concat(&self, c: &mut Channels, node: &NodeProto, name: &str) {
        let Some(out) = node.output.first() else {
            return;
        };
        let (Some(rank), Some(axis)) = (self.rank(out), int_attr(node, "axis")) else {
            self.opaque(c, node, &format!("`{name}` has no known shape"));
            return;
        };
        let inputs: Option<Vec<Vec<SpaceId>>> = node
            .input
            .iter()
            .map(|i| c.tensors.get(i).cloned())
            .collect();
        let Some(inputs) = inputs else {
            self.opaque(
                c,
                node,
                &format!("`{name}` concatenates tensors of fixed channels"),
            );
            return;
        };
        if normalize_axis(axis, rank) == Some(1) {
            c.tensors.insert(out.clone(), inputs.concat());
        } else {
            for other in &inputs[1..] {
                c.join(&inputs[0], other, name);
            }
            c.tensors.insert(out.clone(), inputs[0].clone());
        }
    }

    fn split(&self, c: &mut Channels, index: usize, node: &NodeProto, name: &str) {
        let Some(x) = node.input.first() else {
            return;
        };
        let Some(segments) = c.tensors.get(x).cloned() else {
            return;
        };
        let rank = self.rank(x).unwrap_or(0);
        let axis = normalize_axis(int_attr(node, "axis").unwrap_or(0), rank);
        if axis != Some(1) {
            for out in &node.output {
                c.tensors.insert(out.clone(), segments.clone());
            }
            return;
        }
        let sizes: Option<Vec<usize>> = node
            .output
            .iter()
            .map(|o| self.shapes.get(o).and_then(|s| s.get(1).copied()))
            .collect();
        let computed_split = node
            .input
            .get(1)
            .is_some_and(|s| !s.is_empty() && !self.is_constant(s));
        let Some(sizes) = sizes.filter(|_| !computed_split) else {
            c.block_all(
                &segments,
                &format!("`{name}` splits channels by a computed size"),
            );
            return;
        };
        let mut rest = segments.clone();
        let mut outputs = Vec::with_capacity(sizes.len());
        for size in sizes {
            match c.cut(&rest, size) {
                Some((head, tail)) => {
                    outputs.push(head);
                    rest = tail;
                }
                None => {
                    let current = c.tensors.get(x).cloned().unwrap_or(segments);
                    c.block_all(&current, &format!("`{name}` cuts a group tied to others"));
                    return;
                }
            }
        }
        for (out, segments) in node.output.iter().zip(&outputs) {
            c.tensors.insert(out.clone(), segments.clone());
        }
        c.counts.push(Count::Split {
            node: index,
            outputs,
        });
    }
}

/// The channel count (dim 1) of a tensor of rank 3 or more.
fn channel_count(shapes: &HashMap<String, Vec<usize>>, tensor: &str) -> Option<usize> {
    shapes.get(tensor).filter(|s| s.len() >= 3).map(|s| s[1])
}

fn normalize_axis(axis: i64, rank: usize) -> Option<usize> {
    let axis = if axis < 0 { axis + rank as i64 } else { axis };
    (0..rank as i64).contains(&axis).then_some(axis as usize)
}
