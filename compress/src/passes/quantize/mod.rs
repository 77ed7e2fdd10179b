//! Int8 quantization of ONNX weights.
//!
//! `weights` mode stores the weights of MatMul and Gemm (`B`) and Conv (`W`) as int8 with one
//! symmetric scale per output channel, and a DequantizeLinear node (opset 13+; Cast and Mul
//! before) turns them back into f32 in the graph, which tract folds into constants at load (up to
//! 4 MiB of f32 per tensor; a larger one is dequantized on every run): the file shrinks about 4×
//! and the arithmetic stays float. Gather tables (embeddings) get one scale per row and are
//! looked up in int8, then only the rows read are dequantized.
//! `dynamic` mode does the same and runs each MatMul with a 2-D weight the way ONNX Runtime's
//! "dynamic quantization" does: DynamicQuantizeLinear on the activation, MatMulInteger with the
//! int8 weight, then Cast and a rescale by activation scale × per-column weight scale.
//! `dynamic-ops` writes DynamicQuantizeLinear out as elementary nodes, for tract.

pub mod calibrate;
pub mod detect;
mod file;
mod int8;
pub mod nnef;
pub mod static_conv;
pub mod text;

pub use file::{BenchRow, Check, DEFAULT_MIN_COSINE, FileReport, quantize_file};
pub use int8::{Int8Channels, quantize_per_channel};

use std::collections::{HashMap, HashSet};

use tract_onnx::pb::{
    self, AttributeProto, ModelProto, NodeProto, TensorProto, attribute_proto::AttributeType,
    tensor_proto::DataType,
};

use crate::onnx::graph::{int_attr, node_label};

/// Weights with fewer values than this stay float unless [`Options::min_elements`] says otherwise.
pub const DEFAULT_MIN_ELEMENTS: usize = 1024;

/// First opset whose DequantizeLinear takes an `axis` (per-channel scales).
const AXIS_OPSET: i64 = 13;
/// First opset with DynamicQuantizeLinear (MatMulInteger came in 10).
const DYNAMIC_OPSET: i64 = 11;

/// Which quantized form to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(try_from = "String")]
pub enum Mode {
    /// Int8 weights dequantized in the graph; float arithmetic.
    #[default]
    Weights,
    /// Int8 weights, and MatMuls run as MatMulInteger on activations quantized at run time by
    /// DynamicQuantizeLinear (ONNX Runtime fuses the pair).
    Dynamic,
    /// As [`Mode::Dynamic`], with DynamicQuantizeLinear's arithmetic written out as ReduceMin,
    /// ReduceMax, Div, Round, Clip and Cast nodes: the same arithmetic, which tract 0.23 runs
    /// several times faster than its own (scalar) DynamicQuantizeLinear.
    DynamicOps,
}

impl Mode {
    /// Every mode, in the order the command line lists them.
    pub const ALL: [Mode; 3] = [Mode::Weights, Mode::Dynamic, Mode::DynamicOps];

    /// The mode's name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Weights => "weights",
            Mode::Dynamic => "dynamic",
            Mode::DynamicOps => "dynamic-ops",
        }
    }

    /// The mode called `name`, or an error listing the known ones.
    pub fn from_name(name: &str) -> Result<Mode, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
                format!("mode `{name}` is unknown ({})", known.join(", "))
            })
    }

    /// Whether MatMuls become MatMulInteger.
    pub fn is_dynamic(self) -> bool {
        self != Mode::Weights
    }
}

impl TryFrom<String> for Mode {
    type Error = String;

    fn try_from(name: String) -> Result<Mode, String> {
        Mode::from_name(&name)
    }
}

/// What to quantize: the `[quantize]` table of a text recipe and the flags of
/// `edgemass-compress quantize` for an ONNX file or a text package, declared once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// `weights`: int8 weights dequantized in the graph; `dynamic`: also MatMulInteger on
    /// activations quantized at run time (ONNX Runtime's form); `dynamic-ops`: the same with the
    /// activation quantization written out in elementary ops (faster in tract).
    #[arg(long, value_enum, default_value_t = Mode::Weights)]
    pub mode: Mode,
    /// Weights with fewer values stay float.
    #[arg(long, default_value_t = DEFAULT_MIN_ELEMENTS)]
    pub min_elements: usize,
    /// A node (or weight) whose weights stay float; repeatable. A weight shared by several nodes
    /// stays float when any of them is listed.
    #[arg(long = "keep-float", value_name = "NAME")]
    pub keep_float: Vec<String>,
}

default_from_flags!(Options);

impl Options {
    /// Quantizes every supported weight of [`DEFAULT_MIN_ELEMENTS`] values or more.
    pub fn new(mode: Mode) -> Options {
        Options {
            mode,
            ..Options::default()
        }
    }
}

/// Errors of quantizing a file or a package; nothing is written when one occurs.
#[derive(Debug, thiserror::Error)]
pub enum QuantizePassError {
    /// The model file cannot be loaded.
    #[error(transparent)]
    Graph(#[from] crate::onnx::graph::GraphError),
    /// The package could not be read or written.
    #[error(transparent)]
    Package(#[from] crate::package::PackageError),
    /// The quantizer refused the model.
    #[error("cannot quantize {path}")]
    Refused {
        /// The model file.
        path: std::path::PathBuf,
        /// Why.
        source: QuantizeError,
    },
    /// A calibration image could not be read.
    #[error(transparent)]
    Image(#[from] edgemass::vision::preprocess::ImageError),
    /// Inputs could not be made, or tract failed on a model.
    #[error(transparent)]
    Check(#[from] crate::onnx::tract::CheckError),
    /// The static form could not be built.
    #[error(transparent)]
    Static(#[from] static_conv::StaticError),
    /// Options that cannot work.
    #[error("quantize: {0}")]
    Options(String),
    /// The quantized model drifts too far from the float one.
    #[error(
        "output `{output}`: cosine {cosine:.6} to the float model is below {min_cosine}; \
         keep the nodes that break it float (nothing written)"
    )]
    Broken {
        /// The output.
        output: String,
        /// Its worst cosine similarity.
        cosine: f32,
        /// The threshold.
        min_cosine: f32,
    },
    /// No static form stayed close enough to the float model.
    #[error(
        "no quantized form keeps every output's cosine to the float model at {min_cosine} or \
         more (best {best:.6}), even with the most sensitive convolutions left float; try \
         another calibration method or more calibration images"
    )]
    NoForm {
        /// The threshold.
        min_cosine: f32,
        /// The best form's worst cosine.
        best: f32,
    },
    /// The output file cannot be written.
    #[error(transparent)]
    Write(#[from] crate::FileError),
}

/// Errors of the quantization pass.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    /// The model holds no graph.
    #[error("the model holds no graph")]
    NoGraph,
    /// A keep-float name matches nothing.
    #[error("keep-float `{name}` names no node or weight of the graph")]
    UnknownKeepFloat {
        /// The name given.
        name: String,
    },
    /// A weight has a floating type other than f32.
    #[error(
        "node `{node}`: weight `{weight}` is {dtype}; only FLOAT weights can be quantized \
         (keep the node float)"
    )]
    WeightType {
        /// The consuming node.
        node: String,
        /// The initializer.
        weight: String,
        /// Its ONNX data type.
        dtype: &'static str,
    },
    /// A weight's values live in a separate file.
    #[error("node `{node}`: weight `{weight}` is stored outside the model file")]
    ExternalData {
        /// The consuming node.
        node: String,
        /// The initializer.
        weight: String,
    },
    /// A weight holds a different number of values than its dims say.
    #[error(
        "node `{node}`: weight `{weight}` holds {values} values, its dims {dims:?} say otherwise"
    )]
    WeightSize {
        /// The consuming node.
        node: String,
        /// The initializer.
        weight: String,
        /// Declared dims.
        dims: Vec<i64>,
        /// Values found.
        values: usize,
    },
    /// A weight holds NaN or an infinity.
    #[error("node `{node}`: weight `{weight}` holds a NaN or infinite value")]
    NonFinite {
        /// The consuming node.
        node: String,
        /// The initializer.
        weight: String,
    },
    /// Dynamic mode needs DynamicQuantizeLinear.
    #[error("dynamic mode needs opset {DYNAMIC_OPSET} or later; the model imports opset {opset}")]
    Opset {
        /// The model's default-domain opset.
        opset: i64,
    },
    /// No weight qualified.
    #[error(
        "nothing to quantize: no MatMul, Gemm, Conv or Gather weight of {min_elements} values or \
         more outside keep-float"
    )]
    NothingToQuantize {
        /// The size threshold in force.
        min_elements: usize,
    },
}

/// One weight now stored as int8.
#[derive(Debug, Clone)]
pub struct QuantizedWeight {
    /// The initializer's name.
    pub name: String,
    /// The nodes that consume it (`op #index` for unnamed nodes).
    pub nodes: Vec<String>,
    /// Number of values.
    pub elements: usize,
    /// The per-channel axis.
    pub axis: usize,
    /// How many of its consumers became MatMulInteger.
    pub integer_nodes: usize,
}

/// Why a supported weight stayed float.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// It, or one of its nodes, is in keep-float.
    KeepFloat,
    /// Fewer values than `min_elements`.
    Small,
    /// Its consumers want different channel axes.
    MixedAxes,
    /// It holds integers or booleans.
    NotFloat,
}

/// A supported weight left float.
#[derive(Debug, Clone)]
pub struct Skipped {
    /// The initializer's name.
    pub name: String,
    /// Why.
    pub reason: SkipReason,
}

/// The quantized model and what was done to it.
#[derive(Debug, Clone)]
pub struct Quantized {
    /// The rewritten model.
    pub model: ModelProto,
    /// Weights now stored as int8, in initializer order.
    pub weights: Vec<QuantizedWeight>,
    /// Supported weights left float.
    pub skipped: Vec<Skipped>,
}

/// How a node reads a quantized weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// As the f32 tensor a DequantizeLinear (or Cast and Mul) rebuilds.
    Dequantized,
    /// As the int8 `B` of a MatMulInteger (dynamic mode).
    MatMulInteger,
    /// Gathering int8 rows and their scales, then Cast and Mul: only the rows looked up are
    /// turned into f32 at run time.
    GatherRows,
}

/// How a node uses one of its inputs when that input can be quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Use {
    axis: usize,
    form: Form,
}

/// Names of the int8 form of one weight in the graph.
#[derive(Debug, Clone, Default)]
struct IntWeight {
    /// The int8 values.
    values: String,
    /// Scales as a 1-D `[channels]` tensor (DequantizeLinear with `axis`, MatMulInteger).
    scale: String,
    /// Scales shaped to broadcast along the axis (`[channels, 1, …]`).
    broadcast_scale: String,
    /// Int8 zeros, `[channels]`, for DequantizeLinear.
    zero_point: String,
}

/// Quantizes `model`'s weights per `options`; the input is left untouched.
///
/// A weight is quantized when every node that uses it as a MatMul/Gemm `B`, Conv `W` or Gather
/// table agrees on the channel axis; its other users (and subgraphs) read the dequantized f32
/// tensor under the weight's old name. Gather tables are looked up in int8 and only the rows
/// read are dequantized: tract does not fold a dequantized tensor over 4 MiB back into a
/// constant, and would otherwise dequantize a whole embedding table on every run.
pub fn quantize(model: &ModelProto, options: &Options) -> Result<Quantized, QuantizeError> {
    let opset = default_opset(model);
    if options.mode.is_dynamic() && opset < DYNAMIC_OPSET {
        return Err(QuantizeError::Opset { opset });
    }
    let mut model = model.clone();
    let graph = model.graph.as_mut().ok_or(QuantizeError::NoGraph)?;
    for name in &options.keep_float {
        let known = graph.node.iter().any(|n| n.name == *name)
            || graph.initializer.iter().any(|t| t.name == *name);
        if !known {
            return Err(QuantizeError::UnknownKeepFloat { name: name.clone() });
        }
    }
    let keep: HashSet<&str> = options.keep_float.iter().map(String::as_str).collect();
    let per_axis_dq = opset >= AXIS_OPSET;
    let mut names = Names::of(graph);
    let mut float_readers = subgraph_inputs(graph);
    float_readers.extend(graph.output.iter().map(|o| o.name.clone()));
    let mut consumers: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
    for (n, node) in graph.node.iter().enumerate() {
        for (slot, input) in node.input.iter().enumerate() {
            consumers.entry(input.as_str()).or_default().push((n, slot));
        }
    }

    let mut weights = Vec::new();
    let mut skipped = Vec::new();
    let mut prologue = Vec::new();
    let mut new_initializers = Vec::new();
    let mut removed = HashSet::new();
    let mut gone = HashSet::new();
    let mut rewrites: HashMap<usize, (Form, IntWeight)> = HashMap::new();
    for init in &graph.initializer {
        let Some(users) = consumers.get(init.name.as_str()) else {
            continue;
        };
        let uses: Vec<(usize, Option<Use>)> = users
            .iter()
            .map(|&(n, slot)| {
                (
                    n,
                    weight_use(&graph.node[n], slot, &init.dims, options.mode),
                )
            })
            .collect();
        let quantizable: Vec<(usize, Use)> = uses
            .iter()
            .filter_map(|&(n, u)| u.map(|u| (n, u)))
            .collect();
        let Some(&(first, Use { axis, .. })) = quantizable.first() else {
            continue;
        };
        let skip = |reason| Skipped {
            name: init.name.clone(),
            reason,
        };
        let node = node_label(&graph.node[first], first);
        let Some((dims, elements)) = weight_dims(&init.dims) else {
            return Err(QuantizeError::WeightSize {
                node,
                weight: init.name.clone(),
                dims: init.dims.clone(),
                values: init.raw_data.len() / 4 + init.float_data.len(),
            });
        };
        if keep.contains(init.name.as_str())
            || users
                .iter()
                .any(|&(n, _)| keep.contains(graph.node[n].name.as_str()))
        {
            skipped.push(skip(SkipReason::KeepFloat));
            continue;
        }
        if elements < options.min_elements {
            skipped.push(skip(SkipReason::Small));
            continue;
        }
        if quantizable.iter().any(|(_, u)| u.axis != axis) {
            skipped.push(skip(SkipReason::MixedAxes));
            continue;
        }
        match DataType::try_from(init.data_type) {
            Ok(DataType::Float) => {}
            Ok(dtype @ (DataType::Double | DataType::Float16 | DataType::Bfloat16)) => {
                return Err(QuantizeError::WeightType {
                    node,
                    weight: init.name.clone(),
                    dtype: dtype.as_str_name(),
                });
            }
            _ => {
                skipped.push(skip(SkipReason::NotFloat));
                continue;
            }
        }
        let data = f32_values(init, elements, &node)?;
        let q = quantize_per_channel(&data, &dims, axis);

        let has = |form| quantizable.iter().any(|(_, u)| u.form == form);
        let needs = Needs {
            float: float_readers.contains(&init.name)
                || uses
                    .iter()
                    .any(|(_, u)| u.is_none_or(|u| u.form == Form::Dequantized)),
            flat_scale: has(Form::MatMulInteger),
            row_scale: has(Form::GatherRows),
            per_axis_dq,
        };
        let int = store_int8(
            &mut names,
            init,
            axis,
            &q,
            needs,
            &mut new_initializers,
            &mut prologue,
        );
        if !needs.float {
            gone.insert(init.name.clone());
        }
        for &(n, u) in &quantizable {
            if u.form != Form::Dequantized {
                rewrites.insert(n, (u.form, int.clone()));
            }
        }
        removed.insert(init.name.clone());
        weights.push(QuantizedWeight {
            name: init.name.clone(),
            nodes: quantizable
                .iter()
                .map(|&(n, _)| node_label(&graph.node[n], n))
                .collect(),
            elements,
            axis,
            integer_nodes: quantizable
                .iter()
                .filter(|(_, u)| u.form == Form::MatMulInteger)
                .count(),
        });
    }
    if weights.is_empty() {
        return Err(QuantizeError::NothingToQuantize {
            min_elements: options.min_elements,
        });
    }

    graph.initializer.retain(|t| !removed.contains(&t.name));
    graph.initializer.extend(new_initializers);
    graph.input.retain(|v| !removed.contains(&v.name));
    graph.value_info.retain(|v| !gone.contains(&v.name));
    let old = std::mem::take(&mut graph.node);
    let mut nodes = prologue;
    let mut activations = Activations::new(options.mode == Mode::DynamicOps);
    for (n, node) in old.into_iter().enumerate() {
        match rewrites.get(&n) {
            Some((Form::MatMulInteger, weight)) => {
                integer_matmul(&mut names, &mut activations, &mut nodes, node, weight)
            }
            Some((Form::GatherRows, weight)) => gather_rows(&mut names, &mut nodes, node, weight),
            _ => nodes.push(node),
        }
    }
    graph.node = nodes;
    graph.initializer.extend(activations.constants);
    Ok(Quantized {
        model,
        weights,
        skipped,
    })
}

/// What the users of one quantized weight read.
#[derive(Debug, Clone, Copy)]
struct Needs {
    /// Some user reads the f32 tensor: rebuild it under the weight's name.
    float: bool,
    /// MatMulInteger users rescale by a `[channels]` scale.
    flat_scale: bool,
    /// Gather users look up row scales from a `[rows, 1]` table.
    row_scale: bool,
    /// DequantizeLinear takes an `axis` (opset 13+).
    per_axis_dq: bool,
}

/// Adds the initializers of the int8 weight `q` of `init` (values, and the scales and zero
/// points its users need) and, when some user reads the f32 tensor, the nodes that rebuild it
/// under the weight's own name.
fn store_int8(
    names: &mut Names,
    init: &TensorProto,
    axis: usize,
    q: &Int8Channels,
    needs: Needs,
    initializers: &mut Vec<TensorProto>,
    prologue: &mut Vec<NodeProto>,
) -> IntWeight {
    let name = &init.name;
    let channels = q.scales.len();
    let scale_bytes: Vec<u8> = q.scales.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut int = IntWeight {
        values: names.fresh(&format!("{name}_quantized")),
        ..IntWeight::default()
    };
    initializers.push(tensor(
        &int.values,
        &init.dims,
        DataType::Int8,
        q.values.iter().map(|&v| v as u8).collect(),
    ));
    let flat = needs.flat_scale || (needs.float && needs.per_axis_dq);
    let broadcast = needs.row_scale || (needs.float && !needs.per_axis_dq);
    let broadcast_dims: Vec<i64> = std::iter::once(channels as i64)
        .chain(std::iter::repeat_n(1, init.dims.len() - axis - 1))
        .collect();
    if flat || (broadcast && broadcast_dims.len() == 1) {
        int.scale = names.fresh(&format!("{name}_scale"));
        initializers.push(tensor(
            &int.scale,
            &[channels as i64],
            DataType::Float,
            scale_bytes.clone(),
        ));
        int.broadcast_scale = int.scale.clone();
    }
    if broadcast && broadcast_dims.len() > 1 {
        int.broadcast_scale = names.fresh(&format!("{name}_channel_scale"));
        initializers.push(tensor(
            &int.broadcast_scale,
            &broadcast_dims,
            DataType::Float,
            scale_bytes,
        ));
    }
    if needs.float && needs.per_axis_dq {
        int.zero_point = names.fresh(&format!("{name}_zero_point"));
        initializers.push(tensor(
            &int.zero_point,
            &[channels as i64],
            DataType::Int8,
            vec![0; channels],
        ));
    }
    if needs.float {
        prologue.extend(dequantize(names, &int, name, axis, needs.per_axis_dq));
    }
    int
}

/// The version of the default (`ai.onnx`) opset the model imports.
fn default_opset(model: &ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .max()
        .unwrap_or(1)
}

/// How `node` uses its input `slot` holding a weight of `dims`, if that use is quantizable.
fn weight_use(node: &NodeProto, slot: usize, dims: &[i64], mode: Mode) -> Option<Use> {
    if !(node.domain.is_empty() || node.domain == "ai.onnx") {
        return None;
    }
    let rank = dims.len();
    let dequantized = |axis| Use {
        axis,
        form: Form::Dequantized,
    };
    match (node.op_type.as_str(), slot) {
        ("MatMul", 1) if rank >= 2 => Some(Use {
            axis: rank - 1,
            form: if mode.is_dynamic() && rank == 2 {
                Form::MatMulInteger
            } else {
                Form::Dequantized
            },
        }),
        ("Gemm", 1) if rank == 2 => {
            Some(dequantized(if int_attr(node, "transB").unwrap_or(0) == 0 {
                1
            } else {
                0
            }))
        }
        ("Conv", 1) if rank >= 3 => Some(dequantized(0)),
        ("Gather", 0) if rank == 2 && int_attr(node, "axis").unwrap_or(0) == 0 => Some(Use {
            axis: 0,
            form: Form::GatherRows,
        }),
        _ => None,
    }
}

/// Dims as sizes and their product, unless one is negative or the product overflows.
fn weight_dims(dims: &[i64]) -> Option<(Vec<usize>, usize)> {
    let dims: Vec<usize> = dims
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<_>>()?;
    let elements = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
    Some((dims, elements))
}

/// The f32 values of an initializer, checked against its dims and for finiteness.
fn f32_values(init: &TensorProto, elements: usize, node: &str) -> Result<Vec<f32>, QuantizeError> {
    if init.data_location == Some(pb::tensor_proto::DataLocation::External as i32) {
        return Err(QuantizeError::ExternalData {
            node: node.into(),
            weight: init.name.clone(),
        });
    }
    let values: Vec<f32> = if init.raw_data.is_empty() {
        init.float_data.clone()
    } else {
        init.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    if values.len() != elements
        || (!init.raw_data.is_empty() && !init.raw_data.len().is_multiple_of(4))
    {
        return Err(QuantizeError::WeightSize {
            node: node.into(),
            weight: init.name.clone(),
            dims: init.dims.clone(),
            values: values.len(),
        });
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(QuantizeError::NonFinite {
            node: node.into(),
            weight: init.name.clone(),
        });
    }
    Ok(values)
}

/// Nodes that turn the int8 weight back into f32 under the name `output`: one DequantizeLinear
/// with `axis` from opset 13, else Cast and a Mul by a scale shaped to broadcast along `axis`.
fn dequantize(
    names: &mut Names,
    int: &IntWeight,
    output: &str,
    axis: usize,
    per_axis_dq: bool,
) -> Vec<NodeProto> {
    if per_axis_dq {
        return vec![node(
            names.fresh(&format!("{output}_DequantizeLinear")),
            "DequantizeLinear",
            &[&int.values, &int.scale, &int.zero_point],
            output,
            vec![int_attr_proto("axis", axis as i64)],
        )];
    }
    let cast = names.fresh(&format!("{output}_cast"));
    vec![
        node(
            names.fresh(&format!("{output}_Cast")),
            "Cast",
            &[&int.values],
            &cast,
            vec![int_attr_proto("to", DataType::Float as i64)],
        ),
        node(
            names.fresh(&format!("{output}_Mul")),
            "Mul",
            &[&cast, &int.broadcast_scale],
            output,
            vec![],
        ),
    ]
}

/// Replaces MatMul `node` (`Y = X · W`) by
/// `DynamicQuantizeLinear(X) → MatMulInteger(·, Wq) → Cast → × (x_scale · w_scale) = Y`,
/// quantizing each `X` once for all the MatMuls that read it.
///
/// The weights are symmetric, so `b_zero_point` is left out (the spec's default, 0) rather than
/// given as per-column zeros: tract then skips the zero-point corrections, which cost more than
/// the integer product saved.
fn integer_matmul(
    names: &mut Names,
    activations: &mut Activations,
    nodes: &mut Vec<NodeProto>,
    matmul: NodeProto,
    weight: &IntWeight,
) {
    let (x, y) = (&matmul.input[0], &matmul.output[0]);
    let base = if matmul.name.is_empty() {
        y.clone()
    } else {
        matmul.name.clone()
    };
    let [xq, xs, xz] = activations.quantized(names, nodes, x);
    let product = names.fresh(&format!("{y}_int32"));
    nodes.push(node(
        names.fresh(&format!("{base}_MatMulInteger")),
        "MatMulInteger",
        &[&xq, &weight.values, &xz],
        &product,
        vec![],
    ));
    let float = names.fresh(&format!("{y}_float"));
    nodes.push(node(
        names.fresh(&format!("{base}_Cast")),
        "Cast",
        &[&product],
        &float,
        vec![int_attr_proto("to", DataType::Float as i64)],
    ));
    let scale = names.fresh(&format!("{y}_rescale"));
    nodes.push(node(
        names.fresh(&format!("{base}_scale")),
        "Mul",
        &[&xs, &weight.scale],
        &scale,
        vec![],
    ));
    nodes.push(node(
        names.fresh(&format!("{base}_rescale")),
        "Mul",
        &[&float, &scale],
        y,
        vec![],
    ));
}

/// Replaces Gather `node` (`Y = table[ids]`) by a Gather of the int8 rows and one of their
/// scales, then `Cast(rows) × scales = Y`.
fn gather_rows(
    names: &mut Names,
    nodes: &mut Vec<NodeProto>,
    gather: NodeProto,
    weight: &IntWeight,
) {
    let (ids, y) = (&gather.input[1], &gather.output[0]);
    let base = if gather.name.is_empty() {
        y.clone()
    } else {
        gather.name.clone()
    };
    let rows = names.fresh(&format!("{y}_quantized"));
    nodes.push(node(
        names.fresh(&format!("{base}_rows")),
        "Gather",
        &[&weight.values, ids],
        &rows,
        vec![],
    ));
    let scales = names.fresh(&format!("{y}_scale"));
    nodes.push(node(
        names.fresh(&format!("{base}_row_scales")),
        "Gather",
        &[&weight.broadcast_scale, ids],
        &scales,
        vec![],
    ));
    let float = names.fresh(&format!("{y}_float"));
    nodes.push(node(
        names.fresh(&format!("{base}_Cast")),
        "Cast",
        &[&rows],
        &float,
        vec![int_attr_proto("to", DataType::Float as i64)],
    ));
    nodes.push(node(
        names.fresh(&format!("{base}_rescale")),
        "Mul",
        &[&float, &scales],
        y,
        vec![],
    ));
}

/// Activations quantized at run time (uint8, asymmetric, one scale per tensor), each once.
struct Activations {
    /// Write DynamicQuantizeLinear out as elementary nodes.
    spelled_out: bool,
    /// `[quantized, scale, zero point]` per activation name.
    done: HashMap<String, [String; 3]>,
    /// Scalars the spelled-out form reads: 0, 255 and the smallest normal f32.
    scalars: Option<[String; 3]>,
    /// Initializers holding those scalars.
    constants: Vec<TensorProto>,
}

impl Activations {
    fn new(spelled_out: bool) -> Activations {
        Activations {
            spelled_out,
            done: HashMap::new(),
            scalars: None,
            constants: Vec::new(),
        }
    }

    /// The quantized form of `x`, adding the nodes that make it on first use.
    fn quantized(&mut self, names: &mut Names, nodes: &mut Vec<NodeProto>, x: &str) -> [String; 3] {
        if let Some(done) = self.done.get(x) {
            return done.clone();
        }
        let outputs =
            ["quantized", "scale", "zero_point"].map(|p| names.fresh(&format!("{x}_{p}")));
        if self.spelled_out {
            self.spell_out(names, nodes, x, &outputs);
        } else {
            nodes.push(NodeProto {
                name: names.fresh(&format!("{x}_DynamicQuantizeLinear")),
                op_type: "DynamicQuantizeLinear".into(),
                input: vec![x.into()],
                output: outputs.to_vec(),
                ..Default::default()
            });
        }
        self.done.insert(x.into(), outputs.clone());
        outputs
    }

    /// DynamicQuantizeLinear's definition as nodes: the range `[min(x, 0), max(x, 0)]` over 255
    /// gives the scale (kept above zero, so an all-zero `x` quantizes to its zero point), the
    /// zero point is `clip(round(-min / scale), 0, 255)`, and
    /// `q = clip(round(x / scale) + zero point, 0, 255)`, rounding half to even throughout.
    fn spell_out(
        &mut self,
        names: &mut Names,
        nodes: &mut Vec<NodeProto>,
        x: &str,
        [q, scale, zero_point]: &[String; 3],
    ) {
        let [zero, top, tiny] = self
            .scalars
            .get_or_insert_with(|| {
                [("zero", 0.0), ("255", 255.0), ("tiny", f32::MIN_POSITIVE)].map(|(stem, v)| {
                    let name = names.fresh(&format!("dynamic_quantize_{stem}"));
                    self.constants.push(tensor(
                        &name,
                        &[],
                        DataType::Float,
                        f32::to_le_bytes(v).to_vec(),
                    ));
                    name
                })
            })
            .clone();
        let mut step = |op: &str, inputs: &[&str], output: Option<&str>, attrs| {
            let out = match output {
                Some(o) => o.to_string(),
                None => names.fresh(&format!("{x}_{}", op.to_ascii_lowercase())),
            };
            nodes.push(node(
                names.fresh(&format!("{x}_{op}")),
                op,
                inputs,
                &out,
                attrs,
            ));
            out
        };
        let keep_no_dims = || vec![int_attr_proto("keepdims", 0)];
        let to_u8 = || vec![int_attr_proto("to", DataType::Uint8 as i64)];
        let lowest = step("ReduceMin", &[x], None, keep_no_dims());
        let highest = step("ReduceMax", &[x], None, keep_no_dims());
        let lowest = step("Min", &[&lowest, &zero], None, vec![]);
        let highest = step("Max", &[&highest, &zero], None, vec![]);
        let range = step("Sub", &[&highest, &lowest], None, vec![]);
        let step_size = step("Div", &[&range, &top], None, vec![]);
        step("Max", &[&step_size, &tiny], Some(scale), vec![]);
        let offset = step("Div", &[&lowest, scale], None, vec![]);
        let offset = step("Neg", &[&offset], None, vec![]);
        let offset = step("Round", &[&offset], None, vec![]);
        let offset = step("Clip", &[&offset, &zero, &top], None, vec![]);
        step("Cast", &[&offset], Some(zero_point), to_u8());
        let scaled = step("Div", &[x, scale], None, vec![]);
        let scaled = step("Round", &[&scaled], None, vec![]);
        let shifted = step("Add", &[&scaled, &offset], None, vec![]);
        let clipped = step("Clip", &[&shifted, &zero, &top], None, vec![]);
        step("Cast", &[&clipped], Some(q), to_u8());
    }
}

fn node(
    name: String,
    op: &str,
    inputs: &[&str],
    output: &str,
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        name,
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    }
}

fn int_attr_proto(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

fn tensor(name: &str, dims: &[i64], dtype: DataType, raw_data: Vec<u8>) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: dtype as i32,
        raw_data,
        ..Default::default()
    }
}

/// Every value name read inside a subgraph (If, Loop, Scan bodies), at any depth.
fn subgraph_inputs(graph: &pb::GraphProto) -> HashSet<String> {
    let mut found = HashSet::new();
    let mut stack: Vec<&pb::GraphProto> = graph
        .node
        .iter()
        .flat_map(|n| &n.attribute)
        .flat_map(|a| a.g.iter().chain(&a.graphs))
        .collect();
    while let Some(g) = stack.pop() {
        for n in &g.node {
            found.extend(n.input.iter().cloned());
            stack.extend(n.attribute.iter().flat_map(|a| a.g.iter().chain(&a.graphs)));
        }
    }
    found
}

/// Names already used in a graph (values and nodes, subgraphs included), to make new ones unique.
struct Names(HashSet<String>);

impl Names {
    fn of(graph: &pb::GraphProto) -> Names {
        let mut used = HashSet::new();
        let mut stack = vec![graph];
        while let Some(g) = stack.pop() {
            used.extend(g.initializer.iter().map(|t| t.name.clone()));
            used.extend(g.input.iter().chain(&g.output).map(|v| v.name.clone()));
            for n in &g.node {
                used.insert(n.name.clone());
                used.extend(n.input.iter().chain(&n.output).cloned());
                stack.extend(n.attribute.iter().flat_map(|a| a.g.iter().chain(&a.graphs)));
            }
        }
        Names(used)
    }

    /// `stem`, or `stem_2`, `stem_3`, … whichever is unused first; marks it used.
    fn fresh(&mut self, stem: &str) -> String {
        let mut name = stem.to_string();
        let mut k = 1;
        while self.0.contains(&name) {
            k += 1;
            name = format!("{stem}_{k}");
        }
        self.0.insert(name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::build::{Dim, GraphBuilder};

    /// `x [1, 3, 8, 8]` through a 3×3 Conv with 16 filters and a MatMul by `[8, 8]`.
    fn conv_model(opset: i64) -> ModelProto {
        let mut g = GraphBuilder::new("conv");
        let x = g.input(
            "x",
            DataType::Float,
            &[Dim::Fixed(1), Dim::Fixed(3), Dim::Fixed(8), Dim::Fixed(8)],
        );
        let w: Vec<f32> = (0..16 * 27).map(|i| (i % 7) as f32 - 3.0).collect();
        let w = g.weight("filters", &[16, 3, 3, 3], &w);
        let y = g.node("Conv", &[&x, &w], &[]);
        let m: Vec<f32> = (0..64).map(|i| i as f32 / 64.0).collect();
        let m = g.weight("mix", &[8, 8], &m);
        g.named_node("MatMul", &[&y, &m], &[], "out");
        g.output("out", DataType::Float, &[]);
        g.finish(opset, "conv")
    }

    fn ops(model: &ModelProto) -> Vec<&str> {
        let graph = model.graph.as_ref().unwrap();
        graph.node.iter().map(|n| n.op_type.as_str()).collect()
    }

    fn initializer<'a>(model: &'a ModelProto, name: &str) -> &'a TensorProto {
        let graph = model.graph.as_ref().unwrap();
        graph.initializer.iter().find(|t| t.name == name).unwrap()
    }

    #[test]
    fn opset_13_dequantizes_along_the_channel_axis() {
        let mut options = Options::new(Mode::Weights);
        options.min_elements = 0;
        let q = quantize(&conv_model(13), &options).unwrap();
        assert_eq!(
            ops(&q.model),
            ["DequantizeLinear", "DequantizeLinear", "Conv", "MatMul"]
        );
        let graph = q.model.graph.as_ref().unwrap();
        let axes: Vec<i64> = graph.node[..2].iter().map(|n| n.attribute[0].i).collect();
        assert_eq!(axes, [0, 1]);
        assert_eq!(graph.node[0].output, ["filters"]);
        assert_eq!(
            initializer(&q.model, "filters_quantized").dims,
            [16, 3, 3, 3]
        );
        assert_eq!(initializer(&q.model, "filters_scale").dims, [16]);
        assert_eq!(initializer(&q.model, "mix_zero_point").dims, [8]);
        assert!(!graph.initializer.iter().any(|t| t.name == "filters"));
    }

    #[test]
    fn before_opset_13_cast_and_mul_broadcast_the_scales() {
        let mut options = Options::new(Mode::Weights);
        options.min_elements = 0;
        let q = quantize(&conv_model(12), &options).unwrap();
        assert_eq!(
            ops(&q.model),
            ["Cast", "Mul", "Cast", "Mul", "Conv", "MatMul"]
        );
        assert_eq!(
            initializer(&q.model, "filters_channel_scale").dims,
            [16, 1, 1, 1]
        );
        assert_eq!(initializer(&q.model, "mix_scale").dims, [8]);
        let graph = q.model.graph.as_ref().unwrap();
        assert!(
            !graph
                .initializer
                .iter()
                .any(|t| t.name.ends_with("zero_point"))
        );
    }

    #[test]
    fn dynamic_mode_needs_opset_11() {
        let err = quantize(&conv_model(10), &Options::new(Mode::Dynamic)).unwrap_err();
        assert!(matches!(err, QuantizeError::Opset { opset: 10 }), "{err}");
    }

    #[test]
    fn initializers_declared_as_inputs_stop_being_inputs() {
        let mut model = conv_model(13);
        let graph = model.graph.as_mut().unwrap();
        let declared = graph.input[0].clone();
        graph.input.push(pb::ValueInfoProto {
            name: "filters".into(),
            ..declared
        });
        let mut options = Options::new(Mode::Weights);
        options.min_elements = 0;
        let q = quantize(&model, &options).unwrap();
        let inputs: Vec<&str> = q
            .model
            .graph
            .as_ref()
            .unwrap()
            .input
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(inputs, ["x"]);
    }

    #[test]
    fn corrupt_weights_are_refused() {
        let mut model = conv_model(13);
        let graph = model.graph.as_mut().unwrap();
        graph.initializer[0].raw_data.truncate(100);
        let mut options = Options::new(Mode::Weights);
        options.min_elements = 0;
        let err = quantize(&model, &options).unwrap_err().to_string();
        assert!(err.contains("`filters` holds 25 values"), "{err}");

        let mut model = conv_model(13);
        let graph = model.graph.as_mut().unwrap();
        graph.initializer[0].raw_data[..4].copy_from_slice(&f32::NAN.to_le_bytes());
        let err = quantize(&model, &options).unwrap_err().to_string();
        assert!(err.contains("NaN"), "{err}");

        assert_eq!(weight_dims(&[2, -1]), None);
        assert_eq!(weight_dims(&[i64::MAX, i64::MAX]), None);
        assert_eq!(weight_dims(&[2, 3]), Some((vec![2, 3], 6)));
    }

    #[test]
    fn fresh_names_avoid_every_name_in_use() {
        let model = conv_model(13);
        let mut names = Names::of(model.graph.as_ref().unwrap());
        assert_eq!(names.fresh("filters"), "filters_2");
        assert_eq!(names.fresh("filters"), "filters_3");
        assert_eq!(names.fresh("Conv_0"), "Conv_0_2");
        assert_eq!(names.fresh("new"), "new");
    }
}
