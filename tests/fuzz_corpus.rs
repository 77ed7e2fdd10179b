//! Every file under `fuzz/corpus/` (what the fuzz runs of `fuzz/run.sh` kept) and `fuzz/seeds/`
//! (the hand-written requests and configs they start from) replayed through the fuzz targets'
//! entry points on stable, so an ordinary `cargo test` keeps checking them.

use std::path::PathBuf;

use edgemass::fallback::serve::fuzz;

/// Files of `fuzz/KIND/TARGET`, sorted.
fn files(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Runs every corpus and seed file of `target` through `entry` (a panic fails the test); returns
/// the names of the files it accepted.
fn replay(target: &str, entry: fn(&[u8]) -> bool) -> Vec<String> {
    let corpus = files("corpus", target);
    assert!(
        corpus.len() >= 100,
        "fuzz/corpus/{target} holds {} files: run fuzz/run.sh {target}",
        corpus.len()
    );
    let files = [corpus, files("seeds", target)].concat();
    let mut accepted = Vec::new();
    for file in &files {
        let data = std::fs::read(file).unwrap();
        if entry(&data) {
            accepted.push(file.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    eprintln!(
        "{target}: {} corpus and seed files replayed, {} accepted",
        files.len(),
        accepted.len()
    );
    accepted
}

#[test]
fn every_infer_json_corpus_file_is_answered_without_a_panic() {
    let accepted = replay("infer_json", |data| fuzz::infer_json(data).is_ok());
    for seed in ["seed-valid-request", "seed-batch-of-two"] {
        assert!(accepted.iter().any(|f| f == seed), "{seed} is refused");
    }
}

#[test]
fn every_infer_binary_corpus_file_is_answered_without_a_panic() {
    let accepted = replay("infer_binary", |data| fuzz::infer_binary(data).is_ok());
    for seed in ["seed-valid-request", "seed-binary-and-json"] {
        assert!(accepted.iter().any(|f| f == seed), "{seed} is refused");
    }
}

#[test]
fn every_config_pbtxt_corpus_file_is_read_without_a_panic() {
    let accepted = replay("config_pbtxt", |data| fuzz::config_pbtxt(data).is_ok());
    for seed in ["seed-bert", "seed-fuzz-model"] {
        assert!(accepted.iter().any(|f| f == seed), "{seed} is refused");
    }
}
