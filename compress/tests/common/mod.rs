//! Paths into the model cache filled by `models/fetch.py`, shared by the compress tests.

use edgemass_compress::train;
use std::path::PathBuf;

/// A file in the model cache (`$EDGEMASS_MODEL_CACHE` or `models/cache`); fails the test with the
/// command to run when it is missing.
pub fn cached(path: &str) -> PathBuf {
    let cache = std::env::var_os("EDGEMASS_MODEL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/cache"));
    let file = cache.join(path);
    assert!(
        file.exists(),
        "{} missing: run `python3 models/fetch.py` first",
        file.display()
    );
    file
}

/// A small sentiment teacher: MiniLM-L6 frozen, a linear head trained on 400 reviews, packaged in
/// `dir/teacher`. Returns its manifest. (Not every test file uses it.)
pub fn small_teacher(dir: &std::path::Path) -> PathBuf {
    let data = cached("data/rotten_tomatoes_corpus_full.csv.bz2");
    let mut options = train::text::Options::new(&cached("minilm-l6"), &data, &dir.join("teacher"));
    options.name = "teacher".into();
    options.train_limit = Some(400);
    options.test_limit = Some(50);
    train::text::train(&options).unwrap().manifest
}

/// The PP-OCRv4 text detector's manifest at a `side`×`side` input, written into `dir`. Returns
/// its path. (Not every test file uses it.)
pub fn text_detector(dir: &std::path::Path, side: u32) -> PathBuf {
    let model = cached("ppocr/ch_PP-OCRv4_det_infer.onnx");
    let manifest = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/ppocr-det.model.toml"
    ))
    .unwrap()
    .replace(
        "{cache}/ppocr/ch_PP-OCRv4_det_infer.onnx",
        model.to_str().unwrap(),
    )
    .replace("width = 960", &format!("width = {side}"))
    .replace("height = 960", &format!("height = {side}"));
    let path = dir.join("teacher.model.toml");
    std::fs::write(&path, manifest).unwrap();
    path
}

/// The reference of `fixtures/minilm-l6-similarity.json` (made by `fixtures/bert_reference.py`):
/// sentences, embedding heads and cosine similarities.
pub fn minilm_fixture() -> serde_json::Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm-l6-similarity.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The sentences of the MiniLM fixture.
pub fn fixture_sentences(fixture: &serde_json::Value) -> Vec<&str> {
    fixture["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

/// all-MiniLM-L6-v2 from the cache as `import bert` writes it: mean pooling, L2-normalised.
pub fn minilm_sentence_encoder() -> tract_onnx::pb::ModelProto {
    use edgemass_compress::bert::{self, Export, Pooling};
    let config = bert::BertConfig::from_path(&cached("minilm-l6/config.json")).unwrap();
    let encoder =
        bert::Encoder::from_safetensors(&cached("minilm-l6/model.safetensors"), config).unwrap();
    let export = Export {
        pooling: Pooling::Mean,
        normalize: true,
        head: None,
    };
    bert::onnx::to_onnx(&encoder, export)
}

/// `sentences` through the tokenizer at `tokenizer`, padded to the longest: input ids, attention
/// mask and token type ids, each `[sentences, longest]`.
pub fn encoder_inputs(
    tokenizer: &std::path::Path,
    sentences: &[&str],
) -> Vec<tract_onnx::prelude::Tensor> {
    let mut tokenizer = tokenizers::Tokenizer::from_file(tokenizer).unwrap();
    tokenizer.with_padding(Some(tokenizers::PaddingParams::default()));
    let encodings = tokenizer.encode_batch(sentences.to_vec(), true).unwrap();
    let (batch, len) = (encodings.len(), encodings[0].len());
    let column = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| {
        let values: Vec<i64> = encodings
            .iter()
            .flat_map(|e| f(e).iter().map(|&v| v as i64))
            .collect();
        tract_onnx::prelude::Tensor::from_shape(&[batch, len], &values).unwrap()
    };
    vec![
        column(&|e| e.get_ids()),
        column(&|e| e.get_attention_mask()),
        column(&|e| e.get_type_ids()),
    ]
}

/// The values of an f32 tensor, in order.
pub fn values(t: &tract_onnx::prelude::Tensor) -> Vec<f32> {
    t.to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

/// The largest absolute difference between two equally long lists.
pub fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
