//! The command's family verbs: `prune`, `distill`, `quantize` and `eval` read the family from the
//! model they are given and take that family's flags; `--help` lists every family's.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{cached, small_teacher, text_detector};

fn compress(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgemass-compress"))
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
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
        let help = compress(&[verb, "--help"]);
        assert!(help.status.success(), "{verb}: {}", text(&help));
        for flag in flags {
            assert!(text(&help).contains(flag), "{verb} --help lacks {flag}");
        }
        let bare = compress(&[verb]);
        assert!(!bare.status.success());
        let said = text(&bare);
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
        let o = compress(&[
            "prune",
            "--model",
            path(model),
            flag,
            value,
            "--out",
            path(&dir.path().join("out")),
        ]);
        assert!(!o.status.success());
        assert!(
            text(&o).contains(&format!("unexpected argument '{flag}'")),
            "{}",
            text(&o)
        );
    }
    let o = compress(&[
        "eval",
        "--model",
        path(&dir.path().join("absent.model.toml")),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("absent.model.toml"), "{}", text(&o));
}

#[test]
fn a_text_teacher_goes_through_prune_quantize_and_eval() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = small_teacher(dir.path());
    let pruned = dir.path().join("pruned");
    let o = compress(&[
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
    assert!(o.status.success(), "{}", text(&o));
    let int8 = dir.path().join("int8");
    let o = compress(&[
        "quantize",
        path(&pruned.join("pruned.model.toml")),
        "--mode",
        "dynamic-ops",
        "--out",
        path(&int8),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("quantized (dynamic-ops)"), "{}", text(&o));
    let o = compress(&[
        "eval",
        "--model",
        path(&int8.join("int8.model.toml")),
        "--data",
        path(&cached("data/rotten_tomatoes_corpus_full.csv.bz2")),
        "--limit",
        "40",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("% of 40 held-out texts right"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_detector_goes_through_prune_and_eval() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = text_detector(dir.path(), 320);
    let pruned = dir.path().join("pruned");
    let o = compress(&[
        "prune",
        "--model",
        path(&teacher),
        "--keep",
        "0.75",
        "--out",
        path(&pruned),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("channels"), "{}", text(&o));
    let o = compress(&[
        "eval",
        "--model",
        path(&pruned.join("pruned.model.toml")),
        "--images",
        path(&cached("photos/bus.jpg")),
        "--teacher",
        path(&teacher),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("against the") && text(&o).contains("boxes of the teacher"),
        "{}",
        text(&o)
    );
}
