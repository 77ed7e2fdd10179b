//! The ONNX graph of an encoder: embeddings, attention layers, pooling and an optional
//! classification head, with dynamic batch and sequence sizes.

use tract_onnx::pb::{ModelProto, tensor_proto::DataType};

use super::config::Activation;
use super::weights::{Encoder, Linear, Norm, Param};
use crate::onnx::build::{Attr, Dim, GraphBuilder};

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The first (`[CLS]`) token.
    Cls,
    /// The mean over real (unmasked) tokens.
    Mean,
}

/// What the exported graph ends with.
#[derive(Debug, Clone, Copy)]
pub struct Export<'a> {
    /// Pooling of the last hidden states.
    pub pooling: Pooling,
    /// L2-normalise the pooled vector.
    pub normalize: bool,
    /// A classifier on the pooled vector (`weight` `[classes, hidden]`); adds `logits` and
    /// `scores` (softmax) outputs instead of `sentence_embedding`.
    pub head: Option<&'a Linear>,
}

/// Names of the graph's inputs, in order.
pub const INPUTS: [&str; 3] = ["input_ids", "attention_mask", "token_type_ids"];
/// Output of an encoder without a head.
pub const EMBEDDING: &str = "sentence_embedding";
/// Raw class scores of a classifier.
pub const LOGITS: &str = "logits";
/// Softmax of the logits.
pub const SCORES: &str = "scores";
/// The pooled vector a classifier's head reads, named so distillation can ask tract for it.
pub const POOLED: &str = "pooled";

/// Opset the graph is written for (LayerNormalization needs 17).
const OPSET: i64 = 17;

/// The graph of a classifier package: `head` on the pooled vector, no normalisation.
pub fn classifier(encoder: &Encoder, pooling: Pooling, head: &Linear) -> ModelProto {
    to_onnx(
        encoder,
        Export {
            pooling,
            normalize: false,
            head: Some(head),
        },
    )
}

/// Builds the graph; every weight becomes an initializer, shared ALBERT layers only once.
pub fn to_onnx(encoder: &Encoder, export: Export) -> ModelProto {
    let config = &encoder.config;
    let mut g = GraphBuilder::new("encoder");
    let dims = [Dim::Named("batch"), Dim::Named("sequence")];
    let [ids, mask, types] = INPUTS.map(|name| g.input(name, DataType::Int64, &dims));

    let word = param(&mut g, "embeddings.word", &encoder.word);
    let position = param(&mut g, "embeddings.position", &encoder.position);
    let token_type = param(&mut g, "embeddings.token_type", &encoder.token_type);
    let words = g.node("Gather", &[&word, &ids], &[]);
    let kinds = g.node("Gather", &[&token_type, &types], &[]);
    let shape = g.node("Shape", &[&ids], &[]);
    let (one, two) = (g.ints(&[1]), g.ints(&[2]));
    let length = g.node("Slice", &[&shape, &one, &two], &[]);
    let offset = g.ints(&[config.position_offset as i64]);
    let end = g.node("Add", &[&length, &offset], &[]);
    let zero = g.ints(&[0]);
    let positions = g.node("Slice", &[&position, &offset, &end, &zero], &[]);
    let sum = g.node("Add", &[&words, &kinds], &[]);
    let sum = g.node("Add", &[&sum, &positions], &[]);
    let mut x = layer_norm(
        &mut g,
        "embeddings.norm",
        &sum,
        &encoder.embedding_norm,
        config.layer_norm_eps,
    );
    if let Some(projection) = &encoder.projection {
        x = linear(&mut g, "embeddings.projection", &x, projection);
    }

    let mask_f = g.node(
        "Cast",
        &[&mask],
        &[("to", Attr::Int(DataType::Float as i64))],
    );
    let one_f = g.scalar(1.0);
    let masked = g.node("Sub", &[&mask_f, &one_f], &[]);
    let big = g.scalar(10_000.0);
    let bias = g.node("Mul", &[&masked, &big], &[]);
    let bias_axes = g.ints(&[1, 2]);
    let bias = g.node("Unsqueeze", &[&bias, &bias_axes], &[]);

    let layer_names: Vec<String> = (0..encoder.layers.len())
        .map(|i| format!("layer{i}"))
        .collect();
    for &i in &encoder.schedule {
        let weights = LayerNames::add(&mut g, &layer_names[i], &encoder.layers[i]);
        x = layer(&mut g, config, &weights, &x, &bias);
    }

    let mut pooled = match export.pooling {
        Pooling::Cls => {
            let first = g.node("Gather", &[&x, &zero], &[("axis", Attr::Int(1))]);
            g.node("Squeeze", &[&first, &one], &[])
        }
        Pooling::Mean => {
            let axis2 = g.ints(&[2]);
            let weights = g.node("Unsqueeze", &[&mask_f, &axis2], &[]);
            let kept = g.node("Mul", &[&x, &weights], &[]);
            let total = g.node("ReduceSum", &[&kept, &one], &[("keepdims", Attr::Int(0))]);
            let count = g.node(
                "ReduceSum",
                &[&weights, &one],
                &[("keepdims", Attr::Int(0))],
            );
            let floor = g.scalar(1e-9);
            let count = g.node("Max", &[&count, &floor], &[]);
            g.node("Div", &[&total, &count], &[])
        }
    };
    if export.normalize {
        let squares = g.node("Mul", &[&pooled, &pooled], &[]);
        let last = g.ints(&[-1]);
        let sum = g.node(
            "ReduceSum",
            &[&squares, &last],
            &[("keepdims", Attr::Int(1))],
        );
        let norm = g.node("Sqrt", &[&sum], &[]);
        let floor = g.scalar(1e-12);
        let norm = g.node("Max", &[&norm, &floor], &[]);
        pooled = g.node("Div", &[&pooled, &norm], &[]);
    }
    let batch = Dim::Named("batch");
    match export.head {
        None => {
            g.named_node("Identity", &[&pooled], &[], EMBEDDING);
            let width = Dim::Fixed(config.hidden_size as i64);
            g.output(EMBEDDING, DataType::Float, &[batch, width]);
        }
        Some(head) => {
            g.named_node("Identity", &[&pooled], &[], POOLED);
            let logits = linear(&mut g, "head", POOLED, head);
            g.named_node("Identity", &[&logits], &[], LOGITS);
            g.named_node("Softmax", &[LOGITS], &[("axis", Attr::Int(-1))], SCORES);
            let classes = Dim::Fixed(head.bias.data.len() as i64);
            g.output(LOGITS, DataType::Float, &[batch.clone(), classes.clone()]);
            g.output(SCORES, DataType::Float, &[batch, classes]);
        }
    }
    let doc = format!(
        "{:?} encoder, {} layers, hidden {}, imported by edgemass-compress",
        config.family, config.num_layers, config.hidden_size
    );
    g.finish(OPSET, &doc)
}

/// Initializer names of one distinct layer.
struct LayerNames {
    query: (String, String),
    key: (String, String),
    value: (String, String),
    attention_out: (String, String),
    attention_norm: (String, String),
    ffn_in: (String, String),
    ffn_out: (String, String),
    ffn_norm: (String, String),
}

impl LayerNames {
    fn add(g: &mut GraphBuilder, name: &str, layer: &super::weights::Layer) -> LayerNames {
        let mut lin = |part: &str, l: &Linear| linear_weights(g, &format!("{name}.{part}"), l);
        let query = lin("query", &layer.query);
        let key = lin("key", &layer.key);
        let value = lin("value", &layer.value);
        let attention_out = lin("attention_out", &layer.attention_out);
        let ffn_in = lin("ffn_in", &layer.ffn_in);
        let ffn_out = lin("ffn_out", &layer.ffn_out);
        LayerNames {
            query,
            key,
            value,
            attention_out,
            ffn_in,
            ffn_out,
            attention_norm: norm_weights(
                g,
                &format!("{name}.attention_norm"),
                &layer.attention_norm,
            ),
            ffn_norm: norm_weights(g, &format!("{name}.ffn_norm"), &layer.ffn_norm),
        }
    }
}

fn layer(
    g: &mut GraphBuilder,
    config: &super::config::BertConfig,
    w: &LayerNames,
    x: &str,
    bias: &str,
) -> String {
    let heads = g.ints(&[0, 0, config.num_heads as i64, config.head_size as i64]);
    let split = |g: &mut GraphBuilder, (weight, b): &(String, String), perm: Vec<i64>| {
        let projected = g.linear(x, weight, b);
        let shaped = g.node("Reshape", &[&projected, &heads], &[]);
        g.node("Transpose", &[&shaped], &[("perm", Attr::Ints(perm))])
    };
    let q = split(g, &w.query, vec![0, 2, 1, 3]);
    let k = split(g, &w.key, vec![0, 2, 3, 1]);
    let v = split(g, &w.value, vec![0, 2, 1, 3]);
    let scores = g.node("MatMul", &[&q, &k], &[]);
    let scale = g.scalar(1.0 / (config.head_size as f32).sqrt());
    let scores = g.node("Mul", &[&scores, &scale], &[]);
    let scores = g.node("Add", &[&scores, bias], &[]);
    let probs = g.node("Softmax", &[&scores], &[("axis", Attr::Int(-1))]);
    let context = g.node("MatMul", &[&probs, &v], &[]);
    let context = g.node(
        "Transpose",
        &[&context],
        &[("perm", Attr::Ints(vec![0, 2, 1, 3]))],
    );
    let merged = g.ints(&[0, 0, config.attention_width() as i64]);
    let context = g.node("Reshape", &[&context, &merged], &[]);
    let attended = g.linear(&context, &w.attention_out.0, &w.attention_out.1);
    let residual = g.node("Add", &[&attended, x], &[]);
    let eps = config.layer_norm_eps;
    let a = norm_node(g, &residual, &w.attention_norm, eps);
    let expanded = g.linear(&a, &w.ffn_in.0, &w.ffn_in.1);
    let activated = activation(g, &expanded, config.activation);
    let contracted = g.linear(&activated, &w.ffn_out.0, &w.ffn_out.1);
    let residual = g.node("Add", &[&contracted, &a], &[]);
    norm_node(g, &residual, &w.ffn_norm, eps)
}

fn activation(g: &mut GraphBuilder, x: &str, kind: Activation) -> String {
    let half = g.scalar(0.5);
    let one = g.scalar(1.0);
    match kind {
        Activation::Relu => g.node("Relu", &[x], &[]),
        Activation::Gelu => {
            let inv_sqrt2 = g.scalar(std::f32::consts::FRAC_1_SQRT_2);
            let scaled = g.node("Mul", &[x, &inv_sqrt2], &[]);
            let erf = g.node("Erf", &[&scaled], &[]);
            let shifted = g.node("Add", &[&erf, &one], &[]);
            let gated = g.node("Mul", &[x, &shifted], &[]);
            g.node("Mul", &[&gated, &half], &[])
        }
        Activation::GeluTanh => {
            let cube = g.node("Mul", &[x, x], &[]);
            let cube = g.node("Mul", &[&cube, x], &[]);
            let c = g.scalar(0.044715);
            let cube = g.node("Mul", &[&cube, &c], &[]);
            let inner = g.node("Add", &[x, &cube], &[]);
            let k = g.scalar((2.0 / std::f32::consts::PI).sqrt());
            let inner = g.node("Mul", &[&inner, &k], &[]);
            let tanh = g.node("Tanh", &[&inner], &[]);
            let shifted = g.node("Add", &[&tanh, &one], &[]);
            let gated = g.node("Mul", &[x, &shifted], &[]);
            g.node("Mul", &[&gated, &half], &[])
        }
    }
}

fn param(g: &mut GraphBuilder, name: &str, p: &Param) -> String {
    g.weight(name, &p.shape, &p.data)
}

/// Adds a linear layer's weight transposed to `[in, out]` (so the graph does `x · W`) and bias.
fn linear_weights(g: &mut GraphBuilder, name: &str, l: &Linear) -> (String, String) {
    let (out, inp) = (l.weight.shape[0], l.weight.shape[1]);
    let mut transposed = vec![0.0; out * inp];
    for o in 0..out {
        for i in 0..inp {
            transposed[i * out + o] = l.weight.data[o * inp + i];
        }
    }
    let weight = g.weight(&format!("{name}.weight"), &[inp, out], &transposed);
    let bias = param(g, &format!("{name}.bias"), &l.bias);
    (weight, bias)
}

fn norm_weights(g: &mut GraphBuilder, name: &str, n: &Norm) -> (String, String) {
    (
        param(g, &format!("{name}.weight"), &n.weight),
        param(g, &format!("{name}.bias"), &n.bias),
    )
}

fn linear(g: &mut GraphBuilder, name: &str, x: &str, l: &Linear) -> String {
    let (w, b) = linear_weights(g, name, l);
    g.linear(x, &w, &b)
}

fn norm_node(g: &mut GraphBuilder, x: &str, (w, b): &(String, String), eps: f32) -> String {
    g.node(
        "LayerNormalization",
        &[x, w, b],
        &[("axis", Attr::Int(-1)), ("epsilon", Attr::Float(eps))],
    )
}

fn layer_norm(g: &mut GraphBuilder, name: &str, x: &str, n: &Norm, eps: f32) -> String {
    let weights = norm_weights(g, name, n);
    norm_node(g, x, &weights, eps)
}
