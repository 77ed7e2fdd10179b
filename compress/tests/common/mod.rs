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
