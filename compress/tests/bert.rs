//! `import bert` on the real all-MiniLM-L6-v2 checkpoint, run with tract, against the numpy
//! reference in `fixtures/minilm-l6-similarity.json` (made by `fixtures/bert_reference.py`).

use std::path::{Path, PathBuf};

use edgemass_compress::bert::{self, Export, Pooling};
use tract_onnx::prelude::*;

use crate::common::{
    cached, encoder_inputs, fixture_sentences, minilm_fixture, minilm_sentence_encoder, values,
};

/// Runs an encoder ONNX file on `sentences` (padded to the longest) and returns one row per
/// sentence of the named output.
fn run(model: &Path, tokenizer: &Path, sentences: &[&str]) -> Vec<Vec<f32>> {
    let inputs: TVec<TValue> = encoder_inputs(tokenizer, sentences)
        .into_iter()
        .map(TValue::from)
        .collect();
    let plan = tract_onnx::onnx()
        .model_for_path(model)
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let out = plan.run(inputs).unwrap();
    let view = out[0].to_plain_array_view::<f32>().unwrap();
    view.outer_iter()
        .map(|row| row.iter().copied().collect())
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn imported_minilm_matches_the_numpy_reference_in_tract() {
    let fixture = minilm_fixture();
    let sentences = fixture_sentences(&fixture);
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("model.onnx");
    bert::write_onnx(&minilm_sentence_encoder(), &onnx).unwrap();

    let embeddings = run(&onnx, &cached("minilm-l6/tokenizer.json"), &sentences);
    let mut worst = 0f32;
    for (i, a) in embeddings.iter().enumerate() {
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-5,
            "sentence {i} is not L2-normalised: {norm}"
        );
        for (k, expected) in fixture["embedding_head"][i]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            worst = worst.max((a[k] - expected.as_f64().unwrap() as f32).abs());
        }
        for (j, b) in embeddings.iter().enumerate() {
            let expected = fixture["cosine"][i][j].as_f64().unwrap() as f32;
            let got = cosine(a, b);
            assert!(
                (got - expected).abs() < 1e-4,
                "cosine({i}, {j}) = {got}, reference {expected}"
            );
        }
    }
    assert!(
        worst < 1e-4,
        "embedding values differ from the reference by {worst}"
    );
}

/// Writes a small random checkpoint in the Hugging Face layout of `family` and its config.
fn tiny_checkpoint(dir: &Path, family: &str) -> (PathBuf, PathBuf) {
    let (h, e, f, layers, vocab, positions) = (32usize, 16usize, 64usize, 2usize, 50usize, 40usize);
    let mut tensors: Vec<(String, Vec<usize>)> = Vec::new();
    let (prefix, emb) = match family {
        "albert" => ("albert.", e),
        "roberta" => ("roberta.", h),
        _ => ("", h),
    };
    let mut add =
        |name: String, shape: Vec<usize>| tensors.push((format!("{prefix}{name}"), shape));
    add("embeddings.word_embeddings.weight".into(), vec![vocab, emb]);
    add(
        "embeddings.position_embeddings.weight".into(),
        vec![positions, emb],
    );
    add(
        "embeddings.token_type_embeddings.weight".into(),
        vec![if family == "roberta" { 1 } else { 2 }, emb],
    );
    add("embeddings.LayerNorm.weight".into(), vec![emb]);
    add("embeddings.LayerNorm.bias".into(), vec![emb]);
    let linear = |add: &mut dyn FnMut(String, Vec<usize>), name: String, out: usize, inp: usize| {
        add(format!("{name}.weight"), vec![out, inp]);
        add(format!("{name}.bias"), vec![out]);
    };
    if family == "albert" {
        linear(&mut add, "encoder.embedding_hidden_mapping_in".into(), h, e);
        let p = "encoder.albert_layer_groups.0.albert_layers.0";
        for part in ["query", "key", "value", "dense"] {
            linear(&mut add, format!("{p}.attention.{part}"), h, h);
        }
        linear(&mut add, format!("{p}.attention.LayerNorm"), h, 0);
        linear(&mut add, format!("{p}.ffn"), f, h);
        linear(&mut add, format!("{p}.ffn_output"), h, f);
        linear(&mut add, format!("{p}.full_layer_layer_norm"), h, 0);
    } else {
        for i in 0..layers {
            let p = format!("encoder.layer.{i}");
            for part in [
                "attention.self.query",
                "attention.self.key",
                "attention.self.value",
                "attention.output.dense",
            ] {
                linear(&mut add, format!("{p}.{part}"), h, h);
            }
            linear(&mut add, format!("{p}.attention.output.LayerNorm"), h, 0);
            linear(&mut add, format!("{p}.intermediate.dense"), f, h);
            linear(&mut add, format!("{p}.output.dense"), h, f);
            linear(&mut add, format!("{p}.output.LayerNorm"), h, 0);
        }
    }
    // LayerNorm "weights" were added as [h, 0]; they are really [h] scale vectors.
    let mut seed = 12345u64;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 0.4
    };
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, shape)| {
            let shape: Vec<usize> = shape.into_iter().filter(|&d| d != 0).collect();
            let n: usize = shape.iter().product();
            let is_scale =
                name.ends_with("LayerNorm.weight") || name.ends_with("layer_norm.weight");
            let bytes = (0..n)
                .flat_map(|_| (if is_scale { 1.0 + next() } else { next() }).to_le_bytes())
                .collect();
            (name, shape, bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = data
        .iter()
        .map(|(name, shape, bytes)| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .unwrap(),
            )
        })
        .collect();
    let weights = dir.join(format!("{family}.safetensors"));
    safetensors::serialize_to_file(views, None, &weights).unwrap();
    let config = dir.join(format!("{family}.json"));
    std::fs::write(
        &config,
        format!(
            r#"{{"model_type":"{family}","vocab_size":{vocab},"hidden_size":{h},"embedding_size":{e},
               "num_hidden_layers":{layers},"num_attention_heads":4,"intermediate_size":{f},
               "max_position_embeddings":{positions},"type_vocab_size":{},"pad_token_id":1,
               "hidden_act":"{}","layer_norm_eps":1e-5}}"#,
            if family == "roberta" { 1 } else { 2 },
            if family == "albert" { "gelu_new" } else { "gelu" }
        ),
    )
    .unwrap();
    (weights, config)
}

#[test]
fn onnx_export_and_candle_network_agree_for_bert_roberta_and_albert() {
    use candle_core::Device;
    use edgemass_compress::bert::net::{self, Net};
    use edgemass_compress::bert::weights::Linear;

    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<Vec<u32>> = vec![vec![0, 5, 9, 17, 3, 2], vec![0, 44, 8, 2, 1, 1]];
    let mask: Vec<Vec<u32>> = vec![vec![1; 6], vec![1, 1, 1, 1, 0, 0]];
    let types: Vec<Vec<u32>> = vec![vec![0; 6]; 2];
    for family in ["bert", "roberta", "albert"] {
        let (weights, config_path) = tiny_checkpoint(dir.path(), family);
        let config = bert::BertConfig::from_path(&config_path).unwrap();
        let encoder = bert::Encoder::from_safetensors(&weights, config).unwrap();
        assert_eq!(encoder.schedule.len(), 2, "{family}");
        assert_eq!(encoder.layers.len(), if family == "albert" { 1 } else { 2 });

        let export = Export {
            pooling: Pooling::Mean,
            normalize: false,
            head: None,
        };
        let plan = tract_onnx::onnx()
            .model_for_proto_model(&bert::onnx::to_onnx(&encoder, export))
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let column = |rows: &[Vec<u32>]| -> TValue {
            let v: Vec<i64> = rows.iter().flatten().map(|&x| x as i64).collect();
            Tensor::from_shape(&[2, 6], &v).unwrap().into()
        };
        let out = plan
            .run(tvec![column(&ids), column(&mask), column(&types)])
            .unwrap();
        let tract = values(&out[0]);

        let head = Linear::zeros(2, 32);
        let net = Net::new(&encoder, &head, Pooling::Mean, &Device::Cpu).unwrap();
        let batch = net::batch(&ids, &mask, &types, &Device::Cpu).unwrap();
        let candle: Vec<f32> = net
            .embed(&batch, false)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(tract.len(), 64, "{family}");
        let worst = tract
            .iter()
            .zip(&candle)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "{family}: tract and candle differ by {worst}");
    }
}
