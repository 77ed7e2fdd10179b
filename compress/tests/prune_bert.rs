//! Structured pruning of the real all-MiniLM-L6-v2 encoder: the ONNX round trip is lossless,
//! removing structures whose weights are zero changes nothing, and a heavily pruned encoder still
//! runs in tract with the right shapes.

use edgemass_compress::bert::{self, BertConfig, Encoder, Export, Pooling, from_onnx};
use edgemass_compress::passes::prune::Criterion;
use edgemass_compress::passes::prune::bert::{Plan, prune};
use tract_onnx::prelude::*;

use crate::common::{cached, max_difference, values};

fn minilm() -> Encoder {
    let config = BertConfig::from_path(&cached("minilm-l6/config.json")).unwrap();
    Encoder::from_safetensors(&cached("minilm-l6/model.safetensors"), config).unwrap()
}

const EXPORT: Export = Export {
    pooling: Pooling::Mean,
    normalize: false,
    head: None,
};

/// Sentence embeddings of two fixed token sequences (the second padded) in tract.
fn embed(encoder: &Encoder) -> Vec<f32> {
    let plan = tract_onnx::onnx()
        .model_for_proto_model(&bert::onnx::to_onnx(encoder, EXPORT))
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let ids = [
        101, 2023, 3185, 2001, 6429, 999, 102, 101, 4997, 1012, 102, 0, 0, 0,
    ];
    let mask = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0];
    let column = |v: &[i64]| -> TValue { Tensor::from_shape(&[2, 7], v).unwrap().into() };
    let out = plan
        .run(tvec![column(&ids), column(&mask), column(&[0; 14])])
        .unwrap();
    assert_eq!(out[0].shape(), &[2, 384]);
    values(&out[0])
}

#[test]
fn onnx_round_trip_recovers_the_encoder() {
    let encoder = minilm();
    let model = bert::onnx::to_onnx(&encoder, EXPORT);
    let back = from_onnx::read(&model, std::path::Path::new("minilm.onnx")).unwrap();
    assert_eq!(back.pooling, Pooling::Mean);
    assert!(back.head.is_none());
    assert_eq!(back.encoder, encoder);
}

#[test]
fn removing_zeroed_heads_and_neurons_changes_nothing() {
    let mut zeroed = minilm();
    let size = zeroed.config.head_size;
    let dead_head = 3;
    let dead_neurons = [0, 17, 700, 1535];
    for layer in &mut zeroed.layers {
        for r in dead_head * size..(dead_head + 1) * size {
            for l in [&mut layer.query, &mut layer.key, &mut layer.value] {
                l.weight.data[r * 384..(r + 1) * 384].fill(0.0);
                l.bias.data[r] = 0.0;
            }
            for o in 0..384 {
                layer.attention_out.weight.data[o * 384 + r] = 0.0;
            }
        }
        for &n in &dead_neurons {
            layer.ffn_in.weight.data[n * 384..(n + 1) * 384].fill(0.0);
            layer.ffn_in.bias.data[n] = 0.0;
            for o in 0..384 {
                layer.ffn_out.weight.data[o * 1536 + n] = 0.0;
            }
        }
    }
    for criterion in [Criterion::L1, Criterion::L2] {
        let plan = Plan {
            heads: Some(11),
            ffn: Some(1532.0 / 1536.0),
            criterion,
            ..Plan::default()
        };
        let pruned = prune(&zeroed, &plan).unwrap();
        assert_eq!(pruned.config.num_heads, 11);
        for layer in &pruned.layers {
            assert_eq!(layer.query.weight.shape, vec![11 * size, 384]);
            assert_eq!(layer.attention_out.weight.shape, vec![384, 11 * size]);
            assert_eq!(layer.ffn_in.weight.shape, vec![1532, 384]);
            assert_eq!(layer.ffn_out.weight.shape, vec![384, 1532]);
            assert!(
                layer
                    .ffn_in
                    .weight
                    .data
                    .chunks(384)
                    .all(|row| row.iter().any(|&v| v != 0.0)),
                "{criterion:?}: a zeroed neuron survived"
            );
        }
        let difference = max_difference(&embed(&zeroed), &embed(&pruned));
        assert!(
            difference < 1e-4,
            "{criterion:?}: outputs differ by {difference}"
        );
    }
}

#[test]
fn a_small_student_runs_and_global_ranking_varies_widths() {
    let encoder = minilm();
    let plan = Plan {
        layers: Some(vec![0, 2, 4]),
        heads: Some(6),
        ffn: Some(0.25),
        ffn_global: true,
        criterion: Criterion::L2,
    };
    let student = prune(&encoder, &plan).unwrap();
    assert_eq!(student.config.num_layers, 3);
    assert_eq!(student.layers.len(), 3);
    assert_eq!(student.schedule, vec![0, 1, 2]);
    let heads_only = prune(
        &encoder,
        &Plan {
            heads: Some(6),
            ..Plan::default()
        },
    )
    .unwrap();
    assert_eq!(
        student.layers[1].query, heads_only.layers[2].query,
        "the teacher's layer 2 became layer 1"
    );
    assert_eq!(student.layers[1].ffn_norm, encoder.layers[2].ffn_norm);
    let widths: Vec<usize> = student
        .layers
        .iter()
        .map(|l| l.ffn_in.weight.shape[0])
        .collect();
    let total: usize = widths.iter().sum();
    assert!(
        (total as i64 - 1152).abs() <= 3,
        "kept {total} of 4608 neurons"
    );
    assert!(
        widths.iter().any(|&w| w != 384),
        "global ranking kept equal widths {widths:?}"
    );
    let embedding = embed(&student);
    assert!(embedding.iter().all(|v| v.is_finite()));
}

#[test]
fn impossible_plans_are_refused_with_the_reason() {
    let encoder = minilm();
    let error = |plan: Plan| prune(&encoder, &plan).unwrap_err().to_string();
    let e = error(Plan {
        layers: Some(vec![0, 6]),
        ..Plan::default()
    });
    assert!(
        e.contains("position 6 does not exist") && e.contains("runs 6 layers"),
        "{e}"
    );
    let e = error(Plan {
        layers: Some(vec![2, 1]),
        ..Plan::default()
    });
    assert!(e.contains("strictly increasing"), "{e}");
    let e = error(Plan {
        heads: Some(13),
        ..Plan::default()
    });
    assert!(e.contains("heads = 13") && e.contains("has 12"), "{e}");
    let e = error(Plan {
        ffn: Some(0.0),
        ..Plan::default()
    });
    assert!(e.contains("(0, 1]"), "{e}");
}
