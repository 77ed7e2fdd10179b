//! `run RECIPE.toml` for a detection teacher end to end, at a small input size: images are
//! rendered, every step is written, measured and reported, and the student's manifest records
//! where it came from.

use edgemass_compress::recipe::detect::{DetectRecipe, run};

use crate::common::{cached, text_detector};

#[test]
fn detection_recipe_writes_every_step_and_the_report() {
    let dir = tempfile::tempdir().unwrap();
    text_detector(dir.path(), 320);
    let recipe_path = dir.path().join("small.toml");
    std::fs::write(
        &recipe_path,
        r#"
task = "detect"
name = "small-student"
teacher = "teacher.model.toml"

[data]
backgrounds = "backgrounds"
photos = "photos"
words = "data/guardian_headlines.csv.bz2"
train_images = 8
test_images = 4

[downscale]
factor = 2

[prune]
keep = 0.5

[distill]
epochs = 2
batch_size = 4
crop = 192
lr = 2e-3
temperature = 1.0
alpha = 0.5

[quantize]
method = "entropy"
calibration_images = 2
runs = 2

[measure]
runs = 2
onnxruntime = false
"#,
    )
    .unwrap();
    let recipe = DetectRecipe::load(&recipe_path).unwrap();
    let cache = cached("data").parent().unwrap().to_owned();
    let out = dir.path().join("out");
    let outcome = run(&recipe, &cache, &out, true, false).unwrap();

    let names: Vec<&str> = outcome.steps.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        ["teacher", "downscale", "prune", "distill", "quantize"]
    );
    let teacher = &outcome.steps[0].measured;
    assert!(
        teacher.map > 0.3,
        "the teacher finds rendered text: mAP {}",
        teacher.map
    );
    assert_eq!(
        teacher.agreement,
        Some(1.0),
        "the teacher agrees with itself"
    );
    let pruned = &outcome.steps[2].measured;
    assert!(pruned.cost.macs.unwrap() * 4 < teacher.cost.macs.unwrap());
    assert!(pruned.cost.bytes < teacher.cost.bytes);
    let report = std::fs::read_to_string(&outcome.report).unwrap();
    for needle in [
        "| distill |",
        "| quantize |",
        "## Targets",
        "mAP@0.5: teacher",
        "- Pareto front (no other step at once as good, as fast in tract and as small): ",
        "- no step meets the speed target (not measured)",
    ] {
        assert!(report.contains(needle), "{needle} missing from:\n{report}");
    }
    assert!(report.contains("onnxruntime columns are empty"), "{report}");
    let svg = std::fs::read_to_string(&outcome.plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("distill"));
    let student = &outcome.steps[4].manifest;
    let text = std::fs::read_to_string(student).unwrap();
    for needle in [
        "teacher_sha256",
        "downscale: 1/2",
        "prune-conv: keep 50 %",
        "distill-detect:",
        "quantize:",
        "map50_rendered_text",
    ] {
        assert!(
            text.contains(needle),
            "{needle} missing from {}:\n{text}",
            student.display()
        );
    }
    assert!(out.join("4-quantize/model.qdq.onnx").is_file());
    edgemass::model::Model::from_manifest_path(student).expect("the agent loads the student");
}

#[test]
fn bad_detection_recipes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "task = \"detect\"\nname = \"x\"\nteacher = \"t.toml\"\n[data]\nbackgrounds = \"b\"\nphotos = \"p\"\nwords = \"w\"\ntrain_images = 0\ntest_images = 1\n").unwrap();
    let err = DetectRecipe::load(&path).unwrap_err().to_string();
    assert!(err.contains("at least one training"), "{err}");
    std::fs::write(
        &path,
        "task = \"detect\"\nname = \"x\"\nteacher = \"t.toml\"\n[prune]\nkeep = 0.5\nfoo = 1\n",
    )
    .unwrap();
    let err = DetectRecipe::load(&path).unwrap_err().to_string();
    assert!(err.contains("bad.toml"), "{err}");
}
