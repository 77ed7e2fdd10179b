//! `quantize` on real models — all-MiniLM-L6 imported from its checkpoint (MatMuls and an
//! embedding table) and YOLOv8n (convolutions) — checked against the float models in tract;
//! tract's MatMulInteger path against exact integer arithmetic; refusals that write nothing.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use edgemass_compress::onnx::build::{Dim, GraphBuilder};
use edgemass_compress::onnx::tract;
use edgemass_compress::onnx::tract::{OutputCheck, SampleSpec};
use edgemass_compress::passes::quantize::{self, Mode, Options, QuantizeError, SkipReason};
use prost::Message;
use tract_onnx::pb::{ModelProto, tensor_proto::DataType};
use tract_onnx::prelude::*;

use crate::common::{
    cached, encoder_inputs, fixture_sentences, minilm_fixture, minilm_sentence_encoder, values,
};

/// all-MiniLM-L6-v2 as `import bert` writes it (mean pooling, L2-normalised), built once per run.
fn minilm() -> &'static ModelProto {
    static MODEL: OnceLock<ModelProto> = OnceLock::new();
    MODEL.get_or_init(minilm_sentence_encoder)
}

/// The 11 sentences of `fixtures/minilm-l6-similarity.json` tokenized and padded to the
/// longest, and 64 random tokens.
fn minilm_samples(model: &ModelProto) -> Vec<Vec<Tensor>> {
    let fixture = minilm_fixture();
    let sentences = fixture_sentences(&fixture);
    let sentences = encoder_inputs(&cached("minilm-l6/tokenizer.json"), &sentences);
    let specs: Vec<SampleSpec> = [
        "input_ids=1x64:1000..30522",
        "attention_mask=1x64:1..2",
        "token_type_ids=1x64:0..1",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    vec![sentences, tract::sample_inputs(model, &specs).unwrap()]
}

fn count_ops(model: &ModelProto, op: &str) -> usize {
    model
        .graph
        .iter()
        .flat_map(|g| &g.node)
        .filter(|n| n.op_type == op)
        .count()
}

fn shrink(float: &ModelProto, quantized: &ModelProto) -> f64 {
    float.encoded_len() as f64 / quantized.encoded_len() as f64
}

fn show(what: &str, ratio: f64, checks: &[OutputCheck]) {
    for c in checks {
        eprintln!(
            "{what}: {ratio:.2}x smaller, {}: max |error| {:.3e} of max |value| {:.3e}, cosine {:.6}",
            c.name, c.max_abs_error, c.max_abs_reference, c.cosine
        );
    }
}

/// Compares a quantized MiniLM with the float one on the fixture sentences and on random tokens,
/// prints both and checks them against `(min cosine, max |error|)` bounds for each.
fn check_minilm(what: &str, quantized: &ModelProto, bounds: [(f32, f32); 2]) {
    let float = minilm();
    let ratio = shrink(float, quantized);
    assert!(ratio >= 3.5, "{what}: only {ratio:.2}x smaller");
    for (sample, (min_cosine, max_error)) in minilm_samples(float).iter().zip(bounds) {
        let checks = tract::compare(float, quantized, std::slice::from_ref(sample)).unwrap();
        show(what, ratio, &checks);
        let c = &checks[0];
        assert_eq!(c.name, "sentence_embedding");
        assert!(c.cosine >= min_cosine, "{what}: cosine {}", c.cosine);
        assert!(
            c.max_abs_error <= max_error,
            "{what}: max |error| {}",
            c.max_abs_error
        );
    }
}

#[test]
fn weights_mode_shrinks_minilm_four_times_and_keeps_its_embeddings() {
    let float = minilm();
    let q = quantize::quantize(float, &Options::new(Mode::Weights)).unwrap();
    // 6 layers × 6 linear weights, and the word-embedding table. Position embeddings are read by
    // Slice (not a quantizable use); the 2×384 token-type table is under 1024 values.
    assert_eq!(q.weights.len(), 37);
    assert_eq!(count_ops(&q.model, "DequantizeLinear"), 36);
    // The table is looked up in int8, with a second Gather for the row scales.
    assert_eq!(
        count_ops(&q.model, "Gather"),
        count_ops(float, "Gather") + 1
    );
    assert_eq!(count_ops(&q.model, "MatMulInteger"), 0);
    assert!(
        q.skipped
            .iter()
            .any(|s| s.name == "embeddings.token_type" && s.reason == SkipReason::Small)
    );
    // Measured: sentences cosine 0.99957, max |error| 6.4e-3; random tokens 0.99878, 7.9e-3.
    check_minilm("weights", &q.model, [(0.999, 0.02), (0.997, 0.02)]);
}

#[test]
fn dynamic_modes_run_minilm_matmuls_as_integer_products() {
    let float = minilm();
    for mode in [Mode::Dynamic, Mode::DynamicOps] {
        let q = quantize::quantize(float, &Options::new(mode)).unwrap();
        assert_eq!(count_ops(&q.model, "MatMulInteger"), 36);
        assert_eq!(count_ops(&q.model, "DequantizeLinear"), 0);
        // Query, key and value read the same activation, so each layer quantizes 4 activations.
        let quantizers = match mode {
            Mode::Dynamic => count_ops(&q.model, "DynamicQuantizeLinear"),
            _ => count_ops(&q.model, "ReduceMin"),
        };
        assert_eq!(quantizers, 24, "{mode:?}");
        // Measured: sentences cosine 0.9928, max |error| 2.6e-2; random tokens 0.9887, 2.7e-2.
        check_minilm(mode.name(), &q.model, [(0.985, 0.06), (0.975, 0.06)]);
    }
}

#[test]
fn yolov8n_convolutions_are_quantized_per_filter() {
    let file = cached("nudenet/320n.onnx");
    let float = ModelProto::decode(std::fs::read(file).unwrap().as_slice()).unwrap();
    let q = quantize::quantize(&float, &Options::new(Mode::Weights)).unwrap();
    assert!(q.weights.iter().all(|w| w.axis == 0));
    assert!(q.weights.len() > 50, "{} conv weights", q.weights.len());
    let ratio = shrink(&float, &q.model);
    assert!(ratio >= 3.5, "only {ratio:.2}x smaller");
    let sample =
        tract::sample_inputs(&float, &["images=1x3x320x320:0..1".parse().unwrap()]).unwrap();
    let checks = tract::compare(&float, &q.model, std::slice::from_ref(&sample)).unwrap();
    show("yolov8n weights", ratio, &checks);
    // output0 is [1, 22, 2100]: 4 box rows in pixels, then 18 class-score rows in [0, 1].
    let scores = |model: &ModelProto| -> Vec<f32> {
        let out = tract::run(model, &sample).unwrap();
        let view = out[0].to_plain_array_view::<f32>().unwrap();
        view.iter().skip(4 * 2100).copied().collect()
    };
    let score_error = scores(&float)
        .iter()
        .zip(scores(&q.model))
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!("yolov8n weights: class scores max |error| {score_error:.3e}");
    // Measured on this noise image: cosine 0.999990 (boxes off by up to 5.3 px), scores 7.6e-4.
    assert!(checks[0].cosine >= 0.9999, "cosine {}", checks[0].cosine);
    assert!(score_error < 0.01, "class scores off by {score_error}");
}

/// `n` fixed pseudo-random weights in [-0.3, 0.3).
fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 0.6
        })
        .collect()
}

/// `x [batch, rows, k] · w1 [k, n] → y`.
fn one_matmul(batch: usize, rows: usize, k: usize, n: usize) -> ModelProto {
    let fixed = |dims: &[usize]| {
        dims.iter()
            .map(|&d| Dim::Fixed(d as i64))
            .collect::<Vec<_>>()
    };
    let mut g = GraphBuilder::new("one");
    let x = g.input("x", DataType::Float, &fixed(&[batch, rows, k]));
    let w1 = g.weight("w1", &[k, n], &weights(k * n, 1));
    g.named_node("MatMul", &[&x, &w1], &[], "y");
    g.output("y", DataType::Float, &fixed(&[batch, rows, n]));
    g.finish(17, "one")
}

/// `x [2, 5, 16] · w1 [16, 24] → h` (node `MatMul_0`), `h · w2 [24, 8] → y` (`MatMul_1`).
fn two_matmuls(opset: i64) -> ModelProto {
    let fixed = |dims: &[i64]| dims.iter().map(|&d| Dim::Fixed(d)).collect::<Vec<_>>();
    let mut g = GraphBuilder::new("two");
    let x = g.input("x", DataType::Float, &fixed(&[2, 5, 16]));
    let w1 = g.weight("w1", &[16, 24], &weights(16 * 24, 1));
    let h = g.node("MatMul", &[&x, &w1], &[]);
    let w2 = g.weight("w2", &[24, 8], &weights(24 * 8, 2));
    g.named_node("MatMul", &[&h, &w2], &[], "y");
    g.output("y", DataType::Float, &fixed(&[2, 5, 8]));
    g.finish(opset, "two")
}

fn initializer<'a>(model: &'a ModelProto, name: &str) -> &'a tract_onnx::pb::TensorProto {
    model
        .graph
        .as_ref()
        .unwrap()
        .initializer
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no initializer {name}"))
}

#[test]
fn tract_matmul_integer_matches_exact_integer_arithmetic() {
    for mode in [Mode::Dynamic, Mode::DynamicOps] {
        matmul_integer_is_exact(mode);
    }
}

fn matmul_integer_is_exact(mode: Mode) {
    // MiniLM's feed-forward output shape: 64 tokens × 1536 → 384, in a batch of 2.
    let (batch, rows, k, n) = (2, 64, 1536, 384);
    let float = one_matmul(batch, rows, k, n);
    let q = quantize::quantize(&float, &Options::new(mode)).unwrap();
    assert_eq!(count_ops(&q.model, "MatMulInteger"), 1);
    let inputs = tract::sample_inputs(&float, &[]).unwrap();
    let got = tract::run(&q.model, &inputs).unwrap();
    let got = values(&got[0]);

    // DynamicQuantizeLinear and MatMulInteger as the ONNX spec defines them.
    let x = values(&inputs[0]);
    let (lo, hi) = x
        .iter()
        .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let x_scale = (hi - lo) / 255.0;
    let x_zero = (-lo / x_scale).round_ties_even().clamp(0.0, 255.0) as i32;
    let xq: Vec<i32> = x
        .iter()
        .map(|v| ((v / x_scale).round_ties_even() as i32 + x_zero).clamp(0, 255) - x_zero)
        .collect();
    let wq: Vec<i32> = initializer(&q.model, "w1_quantized")
        .raw_data
        .iter()
        .map(|&b| b as i8 as i32)
        .collect();
    let w_scale: Vec<f32> = initializer(&q.model, "w1_scale")
        .raw_data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let mut worst = 0f32;
    for r in 0..batch * rows {
        let mut acc = vec![0i32; n];
        for i in 0..k {
            let a = xq[r * k + i];
            for (c, sum) in acc.iter_mut().enumerate() {
                *sum += a * wq[i * n + c];
            }
        }
        for c in 0..n {
            let expected = acc[c] as f32 * (x_scale * w_scale[c]);
            worst = worst.max((got[r * n + c] - expected).abs());
        }
    }
    let unit = x_scale * w_scale.iter().copied().fold(0f32, f32::max);
    assert!(
        worst <= unit * 1e-3,
        "{mode:?}: tract differs from integer arithmetic by {worst} (one step {unit})"
    );
}

#[test]
fn keep_float_and_size_threshold_leave_weights_float() {
    let float = two_matmuls(17);
    let mut options = Options::new(Mode::Weights);
    options.min_elements = 200;
    let q = quantize::quantize(&float, &options).unwrap();
    // w1 has 384 values, w2 only 192.
    assert_eq!(q.weights.len(), 1);
    assert_eq!(q.weights[0].name, "w1");
    assert_eq!(
        initializer(&q.model, "w1_quantized").data_type,
        DataType::Int8 as i32
    );
    assert_eq!(
        initializer(&q.model, "w2").data_type,
        DataType::Float as i32
    );

    options.min_elements = 0;
    options.keep_float = vec!["MatMul_0".into()];
    let q = quantize::quantize(&float, &options).unwrap();
    assert_eq!(q.weights.len(), 1);
    assert_eq!(q.weights[0].name, "w2");
    assert_eq!(
        initializer(&q.model, "w1").data_type,
        DataType::Float as i32
    );
    assert_eq!(q.skipped[0].reason, SkipReason::KeepFloat);
}

#[test]
fn every_form_runs_in_tract_close_to_float_at_opsets_12_and_17() {
    for (opset, modes) in [
        (12, &[Mode::Weights, Mode::Dynamic][..]),
        (17, &Mode::ALL[..]),
    ] {
        let float = two_matmuls(opset);
        let inputs = tract::sample_inputs(&float, &[]).unwrap();
        for &mode in modes {
            let mut options = Options::new(mode);
            options.min_elements = 0;
            let q = quantize::quantize(&float, &options).unwrap();
            let checks = tract::compare(&float, &q.model, std::slice::from_ref(&inputs)).unwrap();
            assert!(
                checks[0].cosine > 0.999,
                "opset {opset}, {mode:?}: cosine {}",
                checks[0].cosine
            );
        }
    }
}

#[test]
fn a_float64_weight_is_refused_naming_node_and_weight() {
    let mut model = two_matmuls(17);
    let w1 = model
        .graph
        .as_mut()
        .unwrap()
        .initializer
        .iter_mut()
        .find(|t| t.name == "w1")
        .unwrap();
    w1.data_type = DataType::Double as i32;
    w1.raw_data = vec![0; 16 * 24 * 8];
    let mut options = Options::new(Mode::Weights);
    options.min_elements = 0;
    let err = quantize::quantize(&model, &options).unwrap_err();
    assert!(matches!(err, QuantizeError::WeightType { .. }), "{err:?}");
    let message = err.to_string();
    for part in ["MatMul_0", "`w1`", "DOUBLE"] {
        assert!(message.contains(part), "{message}");
    }

    options.keep_float = vec!["MatMul_0".into()];
    let q = quantize::quantize(&model, &options).unwrap();
    assert_eq!(q.weights[0].name, "w2");
}

fn run_cli(dir: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_edgemass-compress"))
        .arg("quantize")
        .arg(dir.join("tiny.onnx"))
        .arg("--out")
        .arg(dir.join("out.onnx"))
        .args(["--min-elements", "0"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn quantize_command_writes_only_checked_models() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tiny.onnx"),
        two_matmuls(17).encode_to_vec(),
    )
    .unwrap();
    let out = dir.path().join("out.onnx");

    let unknown = run_cli(dir.path(), &["--keep-float", "MatMul_9"]);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("keep-float `MatMul_9`"), "{stderr}");
    assert!(!out.exists());

    let strict = run_cli(dir.path(), &["--mode", "dynamic", "--min-cosine", "1.01"]);
    assert!(!strict.status.success());
    let stderr = String::from_utf8_lossy(&strict.stderr);
    assert!(
        stderr.contains("output `y`") && stderr.contains("nothing written"),
        "{stderr}"
    );
    assert!(!out.exists());

    let ok = run_cli(dir.path(), &["--mode", "dynamic", "--bench", "3"]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for part in [
        "bytes:",
        "output y:",
        "cosine",
        "float",
        "weights",
        "dynamic",
    ] {
        assert!(stdout.contains(part), "{stdout}");
    }
    let written = edgemass_compress::onnx::graph::Graph::load(&out).unwrap();
    assert_eq!(count_ops(&written.proto, "MatMulInteger"), 2);
}
