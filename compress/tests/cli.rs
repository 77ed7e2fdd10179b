//! The command's family verbs: `prune`, `distill`, `quantize` and `eval` read the family from the
//! model they are given and take that family's flags; `--help` lists every family's.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{cached, small_teacher, text_detector};

/// Runs edgemass-compress with `args`: whether it succeeded, and what it printed.
fn compress(args: &[&str]) -> (bool, String) {
    let o: Output = Command::new(env!("CARGO_BIN_EXE_edgemass-compress"))
        .args(args)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), said)
}

/// What edgemass-compress printed for `args`, which must succeed.
fn succeeds(args: &[&str]) -> String {
    let (ok, said) = compress(args);
    assert!(ok, "{args:?}: {said}");
    said
}

/// What edgemass-compress printed for `args`, which must fail.
fn fails(args: &[&str]) -> String {
    let (ok, said) = compress(args);
    assert!(!ok, "{args:?} succeeded: {said}");
    said
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn every_family_verb_lists_each_familys_flags_and_asks_for_the_model() {
    for (verb, model_flag, flags) in [
        ("prune", "--model", ["--heads", "--keep"]),
        ("distill", "--student", ["--hidden-weight", "--crop"]),
        ("quantize", "--model", ["--sample", "--calibration"]),
        ("eval", "--model", ["--seed", "--teacher"]),
    ] {
        let help = succeeds(&[verb, "--help"]);
        for flag in flags {
            assert!(help.contains(flag), "{verb} --help lacks {flag}");
        }
        let said = fails(&[verb]);
        assert!(
            said.contains(&format!("{verb} needs {model_flag}")) && said.lines().count() == 1,
            "{said}"
        );
    }
}

#[test]
fn a_flag_of_the_other_family_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let detector = text_detector(dir.path(), 320);
    let student =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/minilm-sentiment-student.model.toml");
    for (model, flag, value) in [(&detector, "--heads", "2"), (&student, "--keep", "0.5")] {
        let said = fails(&[
            "prune",
            "--model",
            path(model),
            flag,
            value,
            "--out",
            path(&dir.path().join("out")),
        ]);
        assert!(
            said.contains(&format!("unexpected argument '{flag}'")),
            "{said}"
        );
    }
    let said = fails(&[
        "eval",
        "--model",
        path(&dir.path().join("absent.model.toml")),
    ]);
    assert!(said.contains("absent.model.toml"), "{said}");
    let said = fails(&["distill", "--student", "model.onnx"]);
    assert!(
        said.contains(
            "model.onnx: distill takes text-classify students or detection students; give a \
             manifest of one"
        ),
        "{said}"
    );
}

#[test]
fn a_text_teacher_goes_through_prune_quantize_and_eval() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = small_teacher(dir.path());
    let pruned = dir.path().join("pruned");
    let said = succeeds(&[
        "prune",
        "--model",
        path(&teacher),
        "--heads",
        "6",
        "--ffn",
        "0.5",
        "--out",
        path(&pruned),
    ]);
    assert!(said.contains("pruned") && said.contains("wrote"), "{said}");
    let int8 = dir.path().join("int8");
    let said = succeeds(&[
        "quantize",
        path(&pruned.join("pruned.model.toml")),
        "--mode",
        "dynamic-ops",
        "--out",
        path(&int8),
    ]);
    assert!(said.contains("quantized (dynamic-ops)"), "{said}");
    let said = succeeds(&[
        "eval",
        "--model",
        path(&int8.join("int8.model.toml")),
        "--data",
        path(&cached("data/rotten_tomatoes_corpus_full.csv.bz2")),
        "--limit",
        "40",
    ]);
    assert!(said.contains("% of 40 held-out texts right"), "{said}");
}

#[test]
fn a_detector_goes_through_prune_and_eval() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = text_detector(dir.path(), 320);
    let pruned = dir.path().join("pruned");
    let said = succeeds(&[
        "prune",
        "--model",
        path(&teacher),
        "--keep",
        "0.75",
        "--out",
        path(&pruned),
    ]);
    assert!(said.contains("channels"), "{said}");
    let said = succeeds(&[
        "eval",
        "--model",
        path(&pruned.join("pruned.model.toml")),
        "--images",
        path(&cached("photos/bus.jpg")),
        "--teacher",
        path(&teacher),
    ]);
    assert!(
        said.contains("against the") && said.contains("boxes of the teacher"),
        "{said}"
    );
}
