//! Text models: tokenizer parity with the Python `tokenizers` library on Rotten Tomatoes reviews,
//! truncation, and the text classifier on a package written by edgemass-compress.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use edgemass::text::{TextClassifier, TextError, TextManifest, TextTokenizer};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::common::{cache, root, text_package};

#[derive(Deserialize)]
struct Fixture {
    tokenizer: String,
    max_length: usize,
    rows: Vec<FixtureRow>,
}

#[derive(Deserialize)]
struct FixtureRow {
    index: usize,
    text_sha256: String,
    ids: Vec<i64>,
}

fn minilm_tokenizer(max_length: usize) -> TextTokenizer {
    TextTokenizer::from_file(&cache().join("minilm-l6/tokenizer.json"), max_length).unwrap()
}

/// The test package's classifier, loaded once for all tests of this file.
fn classifier() -> &'static TextClassifier {
    static CLASSIFIER: OnceLock<TextClassifier> = OnceLock::new();
    CLASSIFIER.get_or_init(|| TextClassifier::from_manifest_path(&text_package()).unwrap())
}

/// Writes a copy of the test package's manifest into `dir` with absolute paths and `edit`
/// applied.
fn package_variant(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let manifest = text_package();
    let package = manifest.parent().unwrap();
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace(
            "\"model.onnx\"",
            &format!("{:?}", package.join("model.onnx").display().to_string()),
        )
        .replace(
            "\"tokenizer.json\"",
            &format!("{:?}", package.join("tokenizer.json").display().to_string()),
        );
    let path = dir.join("variant.model.toml");
    std::fs::write(&path, edit(text)).unwrap();
    path
}

#[test]
fn token_ids_match_the_python_tokenizer_on_1000_reviews() {
    let fixture: Fixture = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/tokenizer_ids.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(fixture.tokenizer, "minilm-l6/tokenizer.json");
    assert_eq!(fixture.rows.len(), 1000);
    let reviews = edgemass_compress::data::corpus::rotten_tomatoes(
        &cache().join("data/rotten_tomatoes_corpus_full.csv.bz2"),
    )
    .unwrap();
    let tokenizer = minilm_tokenizer(fixture.max_length);
    let mut truncated = 0;
    for rows in fixture.rows.chunks(50) {
        let texts: Vec<&str> = rows
            .iter()
            .map(|r| reviews[r.index].text.as_str())
            .collect();
        let batch = tokenizer.encode_batch(&texts).unwrap();
        for (k, (row, text)) in rows.iter().zip(&texts).enumerate() {
            let hash: String = Sha256::digest(text.as_bytes())[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(
                hash, row.text_sha256,
                "review {} is not the text the fixture was made from",
                row.index
            );
            let ids = &batch.ids[k * batch.len..(k + 1) * batch.len];
            let mask = &batch.mask[k * batch.len..(k + 1) * batch.len];
            let real = mask.iter().filter(|m| **m == 1).count();
            assert!(
                mask[..real].iter().all(|m| *m == 1) && ids[real..].iter().all(|id| *id == 0),
                "review {}: padding is not a zero tail",
                row.index
            );
            assert_eq!(
                &ids[..real],
                row.ids.as_slice(),
                "review {}: edgemass ids (left) differ from the Python tokenizer's (right)",
                row.index
            );
            if batch.truncated[k] {
                assert_eq!(row.ids.len(), fixture.max_length, "review {}", row.index);
                truncated += 1;
            }
        }
    }
    let full = fixture
        .rows
        .iter()
        .filter(|r| r.ids.len() == fixture.max_length)
        .count();
    assert!(
        truncated <= full,
        "{truncated} flagged, {full} at max_length"
    );
}

#[test]
fn long_texts_are_cut_at_max_length_and_flagged() {
    let tokenizer = minilm_tokenizer(128);
    let long = "the film goes on and on ".repeat(70);
    assert!(long.split_whitespace().count() >= 400);
    let batch = tokenizer.encode_batch(&[&long, "a short review"]).unwrap();
    assert_eq!(batch.truncated, [true, false]);
    assert_eq!((batch.batch, batch.len), (2, 128));
    assert_eq!(batch.ids.len(), 2 * 128);
    assert!(batch.mask[..128].iter().all(|m| *m == 1));
    assert_eq!(batch.ids[127], 102, "a cut text still ends with [SEP]");
    assert_eq!(batch.mask[128..].iter().sum::<i64>(), 5);

    let short = tokenizer.encode_batch(&["a short review"]).unwrap();
    assert_eq!(
        (short.len, short.truncated.as_slice()),
        (5, [false].as_slice())
    );
}

#[test]
fn clear_reviews_get_the_expected_label() {
    let texts = [
        "an absolutely delightful and heartfelt masterpiece",
        "I loved every minute of this charming, beautifully acted film",
        "a tiresome, lifeless and forgettable movie",
        "the plot is stupid and the acting is terrible",
    ];
    let results = classifier().classify(&texts).unwrap();
    let labels: Vec<&str> = results.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(
        labels,
        ["fresh", "fresh", "rotten", "rotten"],
        "{results:#?}"
    );
    for r in &results {
        assert!(r.score > 0.5 && !r.truncated, "{r:?}");
    }
}

#[test]
fn scores_are_probabilities_in_label_order() {
    let results = classifier()
        .classify(&["a fine film", "not good at all, sadly"])
        .unwrap();
    for r in &results {
        let names: Vec<&str> = r.scores.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(names, ["rotten", "fresh"]);
        let sum: f32 = r.scores.iter().map(|(_, p)| p).sum();
        assert!((sum - 1.0).abs() < 1e-5, "{r:?}");
        let best = r.scores.iter().find(|(l, _)| *l == r.label).unwrap().1;
        assert!(
            r.scores.iter().all(|(_, p)| *p <= best) && best == r.score,
            "{r:?}"
        );
    }
}

#[test]
fn padding_a_batch_does_not_change_the_answers() {
    let long = "a sprawling, ambitious epic that ".repeat(40);
    let texts = [
        "wow",
        "a quietly devastating drama about grief and memory",
        long.as_str(),
        "meh.",
        "the best animated feature in years, funny and wise",
    ];
    let together = classifier().classify(&texts).unwrap();
    assert_eq!(together.len(), texts.len());
    for (text, batched) in texts.iter().zip(&together) {
        let alone = &classifier().classify(&[text]).unwrap()[0];
        assert_eq!(
            (&alone.label, alone.truncated),
            (&batched.label, batched.truncated)
        );
        for ((_, a), (_, b)) in alone.scores.iter().zip(&batched.scores) {
            assert!(
                (a - b).abs() < 1e-5,
                "{text:?}: alone {alone:?}, batched {batched:?}"
            );
        }
    }
    assert!(together[2].truncated);
}

#[test]
fn empty_texts_are_refused_by_position() {
    let err = classifier().classify(&["good", "  ", "bad"]).unwrap_err();
    assert!(matches!(err, TextError::Empty { index: 1 }), "{err:?}");
    assert_eq!(err.to_string(), "text 2 is empty");
    assert!(classifier().classify(&[]).unwrap().is_empty());
}

#[test]
fn the_package_manifest_reads_back() {
    let m = TextManifest::from_path(&text_package()).unwrap();
    assert_eq!(m, *classifier().manifest());
    assert_eq!(m.labels, ["rotten", "fresh"]);
    assert_eq!((m.max_length, m.output.as_str()), (128, "scores"));
    assert!(m.file.is_file() && m.tokenizer.is_file());
    assert_eq!(m.provenance.passes, ["anchor-head"]);
}

#[test]
fn a_wrong_hash_or_output_is_named_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let load = |edit: &dyn Fn(String) -> String| {
        TextClassifier::from_manifest_path(&package_variant(dir.path(), edit))
            .err()
            .unwrap()
            .to_string()
    };
    let err = load(&|t| {
        let line = t
            .lines()
            .find(|l| l.starts_with("sha256"))
            .unwrap()
            .to_owned();
        t.replace(&line, &format!("sha256 = \"{}\"", "0".repeat(64)))
    });
    assert!(
        err.contains("sha256") && err.contains("model.onnx"),
        "{err}"
    );

    let err = load(&|t| t.replace("output = \"scores\"", "output = \"probabilities\""));
    assert!(
        err.contains("`probabilities`") && err.contains("scores"),
        "{err}"
    );

    let err = load(&|t| t.replace("output = \"scores\"", "output = \"logits\""));
    assert!(err.contains("does not hold probabilities"), "{err}");

    let err = load(&|t| {
        t.replace(
            r#"labels = ["rotten", "fresh"]"#,
            r#"labels = ["a", "b", "c"]"#,
        )
    });
    assert!(err.contains("3 labels"), "{err}");
}

#[test]
fn the_agent_runs_a_compressed_student() {
    use edgemass_compress::passes::prune::bert::{Plan, prune_package};
    use edgemass_compress::passes::prune::vocab::prune_vocabulary;

    let dir = tempfile::tempdir().unwrap();
    let plan = Plan {
        layers: Some(vec![0, 1, 2, 3]),
        ..Plan::default()
    };
    let pruned =
        prune_package(&text_package(), &plan, &dir.path().join("pruned"), "pruned").unwrap();
    let reviews = edgemass_compress::data::corpus::rotten_tomatoes(
        &cache().join("data/rotten_tomatoes_corpus_full.csv.bz2"),
    )
    .unwrap();
    let texts: Vec<&str> = reviews.iter().take(3000).map(|e| e.text.as_str()).collect();
    let kept = prune_vocabulary(&pruned, &texts, 1, &dir.path().join("vocab"), "vocab").unwrap();
    let student = TextClassifier::from_manifest_path(&kept.manifest).unwrap();
    let float = TextClassifier::from_manifest_path(&pruned).unwrap();
    let sample: Vec<&str> = texts.iter().step_by(100).copied().collect();
    let (a, b) = (
        float.classify(&sample).unwrap(),
        student.classify(&sample).unwrap(),
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.label, y.label, "{x:?} vs {y:?}");
        assert!((x.score - y.score).abs() < 1e-4, "{x:?} vs {y:?}");
    }
    assert_eq!(student.manifest().name, "vocab");

    let options = edgemass_compress::passes::quantize::Options::new(
        edgemass_compress::passes::quantize::Mode::Weights,
    );
    let int8 = edgemass_compress::passes::quantize::text::quantize_package(
        &kept.manifest,
        &options,
        &dir.path().join("int8"),
        "int8",
    )
    .unwrap();
    let int8 = TextClassifier::from_manifest_path(&int8).unwrap();
    let c = int8.classify(&sample).unwrap();
    let same = b.iter().zip(&c).filter(|(x, y)| x.label == y.label).count();
    // Measured here: 30 of 30, scores within 0.003.
    assert!(
        same >= 27,
        "{same} of {} labels kept after int8",
        sample.len()
    );
    for (x, y) in b.iter().zip(&c) {
        assert!((x.score - y.score).abs() < 0.1, "{x:?} vs {y:?}");
    }
}
