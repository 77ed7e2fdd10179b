//! `run RECIPE.toml` end to end on a small real teacher: every step is written, measured and
//! reported, and the student's manifest records where it came from.

use std::path::Path;

use edgemass_compress::recipe;
use edgemass_compress::recipe::text::Recipe;

use crate::common::{cached, small_teacher};

fn recipe_text(teacher: &Path) -> String {
    format!(
        r#"
name = "tiny-student"
teacher = "{}"
vocabulary = true

[data]
labelled = "data/rotten_tomatoes_corpus_full.csv.bz2"
unlabelled = "data/guardian_headlines.csv.bz2"
train_limit = 96
unlabelled_limit = 32
test_limit = 60
other = "data/vader/amazonReviewSnippets_GroundTruth.txt"

[prune]
layers = [5]
heads = 4
ffn = 0.25

[distill]
epochs = 1
batch_size = 16
lr = 3e-4
temperature = 2.0
alpha = 0.5

[quantize]
mode = "weights"

[measure]
runs = 3
onnxruntime = false
"#,
        teacher.display()
    )
}

#[test]
fn recipe_round_trip_writes_every_step_and_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = small_teacher(dir.path());
    let path = dir.path().join("tiny.toml");
    std::fs::write(&path, recipe_text(&teacher)).unwrap();
    let recipe = Recipe::load(&path).unwrap();
    let cache = cached("data").parent().unwrap().to_owned();
    let out = dir.path().join("out");
    let outcome = recipe::text::run(&recipe, &cache, &out, true, false).unwrap();

    let names: Vec<&str> = outcome.steps.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        ["teacher", "prune", "vocabulary", "distill", "quantize"]
    );
    let m: Vec<_> = outcome.steps.iter().map(|s| &s.measured).collect();
    for s in &m {
        assert_eq!(s.examples, 60);
        assert!(s.cost.tract_ms > 0.0);
        let other = s
            .other_accuracy
            .expect("every step is scored on the other kind of text");
        let right = other * 60.0;
        assert!(
            (0.0..=1.0).contains(&other) && (right - right.round()).abs() < 1e-9,
            "{other}"
        );
    }
    assert_eq!(m[0].agreement, 1.0);
    let (teacher_macs, student_macs) = (m[0].cost.macs.unwrap(), m[1].cost.macs.unwrap());
    assert!(
        student_macs * 10 < teacher_macs,
        "MACs {teacher_macs} -> {student_macs}"
    );
    assert!(m[1].cost.parameters < m[0].cost.parameters);
    assert!(
        m[2].cost.bytes < m[1].cost.bytes / 2,
        "the vocabulary kept most rows"
    );
    // Measured here: 7.9 MB -> 2.6 MB. The position table (a Slice, not a Gather) and the
    // LayerNorm vectors stay float, which on this tiny student is a third of the file.
    assert!(
        (m[4].cost.bytes as f64) < m[3].cost.bytes as f64 / 2.5,
        "int8 weights: {} -> {} bytes",
        m[3].cost.bytes,
        m[4].cost.bytes
    );
    assert!(
        (m[4].accuracy - m[3].accuracy).abs() <= 0.05,
        "quantization moved accuracy {} -> {}",
        m[3].accuracy,
        m[4].accuracy
    );

    let report = std::fs::read_to_string(&outcome.report).unwrap();
    for row in [
        "| teacher |",
        "| prune |",
        "| distill |",
        "| quantize |",
        "| agreement | accuracy on amazonReviewSnippets_GroundTruth.txt |",
        "## Targets",
        "- Pareto front (no other step at once as good, as fast in tract and as small): ",
        " the size target (speed not measured)",
    ] {
        assert!(report.contains(row), "{row} missing from\n{report}");
    }
    assert!(report.contains("onnxruntime columns are empty"), "{report}");
    let svg = std::fs::read_to_string(&outcome.plot).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("quantize"),
        "{svg:.200}"
    );

    let manifest = std::fs::read_to_string(&outcome.steps[4].manifest).unwrap();
    for key in [
        "teacher_sha256",
        "prune: layers [5]",
        "distill: 1 epochs",
        "quantize: weights",
        "accuracy =",
        "other_accuracy =",
    ] {
        assert!(manifest.contains(key), "{key} missing from\n{manifest}");
    }

    // A recipe without steps only measures, and leaves the measured manifest alone.
    let student = &outcome.steps[4].manifest;
    let measure_only = dir.path().join("measure.toml");
    let text = format!(
        r#"
name = "measure"
teacher = "{}"

[data]
labelled = "data/rotten_tomatoes_corpus_full.csv.bz2"
test_limit = 60

[measure]
runs = 1
onnxruntime = false
"#,
        student.display()
    );
    std::fs::write(&measure_only, text).unwrap();
    let before = std::fs::read(student).unwrap();
    let recipe = Recipe::load(&measure_only).unwrap();
    let alone =
        recipe::text::run(&recipe, &cache, &dir.path().join("measure"), true, false).unwrap();
    assert_eq!(alone.steps.len(), 1);
    assert_eq!(alone.steps[0].measured.accuracy, m[4].accuracy);
    assert_eq!(std::fs::read(student).unwrap(), before);
}

#[test]
fn bad_recipes_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let teacher = dir.path().join("missing.model.toml");
    let text = recipe_text(&teacher);
    for (change, expected) in [
        (
            text.replace("mode = \"weights\"", "mode = \"int4\""),
            "mode `int4` is unknown",
        ),
        (
            text.replace("heads = 4", "heads = 4\nwidth = 2"),
            "unknown field `width`",
        ),
        (
            text.replace("[distill]\nepochs = 1", "[distill]\nepochs = \"one\""),
            "invalid type: string \"one\", expected usize",
        ),
    ] {
        std::fs::write(&path, change).unwrap();
        let e = Recipe::load(&path).unwrap_err().to_string();
        assert!(e.contains(expected) && e.contains("bad.toml"), "{e}");
    }
    std::fs::write(&path, &text).unwrap();
    let recipe = Recipe::load(&path).unwrap();
    let e = recipe::text::run(&recipe, dir.path(), &dir.path().join("out"), true, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.model.toml"), "{e}");
}

#[test]
fn the_shipped_text_recipes_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    let mut loaded = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if edgemass_compress::recipe::detect::is_detect(&text) {
            continue;
        }
        let recipe = Recipe::load(&path).unwrap_or_else(|e| panic!("{e}"));
        if recipe.name == "minilm-sentiment-student" {
            assert_eq!(recipe.vocabulary_min_count, 3);
        }
        loaded.push(recipe.name);
    }
    loaded.sort();
    assert_eq!(
        loaded,
        [
            "minilm-sentiment-accurate",
            "minilm-sentiment-fast",
            "minilm-sentiment-hidden",
            "minilm-sentiment-student"
        ]
    );
}
