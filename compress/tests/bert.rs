//! `import bert` on the real all-MiniLM-L6-v2 checkpoint, run with tract, against the numpy
//! reference in `fixtures/minilm-l6-similarity.json` (made by `fixtures/bert_reference.py`).

use std::path::{Path, PathBuf};

use edgemass_compress::bert::{self, Export, Pooling};
use tokenizers::{PaddingParams, Tokenizer};
use tract_onnx::prelude::*;

fn cached(path: &str) -> PathBuf {
    let cache = std::env::var_os("EDGEMASS_MODEL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/cache"));
    let file = cache.join(path);
    assert!(
        file.is_file(),
        "{} missing: run `python3 models/fetch.py` first",
        file.display()
    );
    file
}

/// Runs an encoder ONNX file on `sentences` (padded to the longest) and returns one row per
/// sentence of the named output.
fn run(model: &Path, tokenizer: &Path, sentences: &[&str]) -> Vec<Vec<f32>> {
    let mut tokenizer = Tokenizer::from_file(tokenizer).unwrap();
    tokenizer.with_padding(Some(PaddingParams::default()));
    let encodings = tokenizer.encode_batch(sentences.to_vec(), true).unwrap();
    let (batch, len) = (encodings.len(), encodings[0].len());
    let column = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| {
        let values: Vec<i64> = encodings
            .iter()
            .flat_map(|e| f(e).iter().map(|&v| v as i64))
            .collect();
        Tensor::from_shape(&[batch, len], &values).unwrap()
    };
    let inputs = tvec![
        column(&|e| e.get_ids()).into(),
        column(&|e| e.get_attention_mask()).into(),
        column(&|e| e.get_type_ids()).into(),
    ];
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
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm-l6-similarity.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let sentences: Vec<&str> = fixture["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();

    let config = bert::BertConfig::from_path(&cached("minilm-l6/config.json")).unwrap();
    let encoder =
        bert::Encoder::from_safetensors(&cached("minilm-l6/model.safetensors"), config).unwrap();
    let export = Export {
        pooling: Pooling::Mean,
        normalize: true,
        head: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("model.onnx");
    bert::write_onnx(&bert::onnx::to_onnx(&encoder, export), &onnx).unwrap();

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
