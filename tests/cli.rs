//! The `edgemass` command: output formats, annotation, benchmark, text classification, and
//! one-line errors on bad input.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::common::{cache, manifest, manifest_variant, photo, root, text_package};

fn edgemass(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgemass"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs the binary with `input` on its stdin.
fn edgemass_with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgemass"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Asserts a failed run printed exactly one error line mentioning `needle`.
fn assert_one_line_error(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.iter().all(|l| l.starts_with("edgemass: error:")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
}

#[test]
fn detect_json_gives_one_object_per_face_in_original_pixels() {
    let out = edgemass(&[
        "detect",
        "--model",
        s(&manifest("blazeface-256")),
        "--image",
        s(&photo("bus.jpg")),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert!(line["image"].as_str().unwrap().ends_with("bus.jpg"));
        assert_eq!(line["label"], "face");
        assert!(line["score"].as_f64().unwrap() > 0.5);
        let b: Vec<f64> = serde_json::from_value(line["box"].clone()).unwrap();
        assert!(
            b[0] < b[2] && b[1] < b[3] && b[2] <= 810.0 && b[3] <= 1080.0,
            "{b:?}"
        );
    }
    let first: Vec<f64> = serde_json::from_value(lines[0]["box"].clone()).unwrap();
    assert!(
        (first[0] - 260.0).abs() <= 8.0 && (first[3] - 488.0).abs() <= 8.0,
        "{first:?}"
    );
}

#[test]
fn detect_table_lists_text_regions_for_several_images() {
    let out = edgemass(&[
        "detect",
        "--model",
        s(&manifest("ppocr-det")),
        "--image",
        s(&photo("bus.jpg")),
        s(&photo("zidane.jpg")),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("bus.jpg (810x1080)") && stdout.contains("zidane.jpg (1280x720)"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .filter(|l| l.trim_start().starts_with("text "))
            .count()
            >= 8,
        "{stdout}"
    );
}

#[test]
fn annotate_writes_the_photo_with_boxes() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("bus-faces.png");
    let out = edgemass(&[
        "detect",
        "--model",
        s(&manifest("blazeface-256")),
        "--image",
        s(&photo("bus.jpg")),
        "--annotate",
        s(&out_file),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let drawn = image::open(&out_file).unwrap().into_rgb8();
    let original = image::open(photo("bus.jpg")).unwrap().into_rgb8();
    assert_eq!(drawn.dimensions(), original.dimensions());
    let changed = drawn
        .pixels()
        .zip(original.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert!(changed > 500, "only {changed} pixels differ");

    let several = dir.path().join("several");
    let out = edgemass(&[
        "detect",
        "--model",
        s(&manifest("blazeface-256")),
        "--image",
        s(&photo("bus.jpg")),
        s(&photo("zidane.jpg")),
        "--annotate",
        s(&several),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(several.join("bus.jpg").is_file() && several.join("zidane.jpg").is_file());
}

#[test]
fn bench_prints_latency_throughput_and_memory() {
    let out = edgemass(&[
        "bench",
        "--model",
        s(&manifest("blazeface-256")),
        "--runs",
        "3",
        "--warmup",
        "1",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "load_ms",
        "inference_p50_ms",
        "inference_p95_ms",
        "frames_per_s",
        "peak_rss_mib",
    ] {
        assert!(report[key].as_f64().unwrap() > 0.0, "{key} in {report}");
    }
    let table = edgemass(&[
        "bench",
        "--model",
        s(&manifest("blazeface-256")),
        "--runs",
        "2",
    ]);
    let stdout = String::from_utf8(table.stdout).unwrap();
    assert!(
        stdout.contains("| inference |") && stdout.contains("peak RSS"),
        "{stdout}"
    );
}

#[test]
fn tensor_writes_the_model_input_as_npy() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.npy");
    let run = edgemass(&[
        "tensor",
        "--model",
        s(&manifest("yolov8n-320")),
        "--image",
        s(&photo("bus.jpg")),
        "--out",
        s(&out),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let bytes = std::fs::read(&out).unwrap();
    assert!(bytes.starts_with(b"\x93NUMPY"));
    assert_eq!(bytes.len(), 128 + 3 * 320 * 320 * 4);
}

#[test]
fn missing_corrupt_and_truncated_images_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let model = manifest("blazeface-256");
    let missing = dir.path().join("nope.jpg");
    assert_one_line_error(
        &edgemass(&["detect", "--model", s(&model), "--image", s(&missing)]),
        "nope.jpg",
    );

    let corrupt = dir.path().join("corrupt.jpg");
    std::fs::write(
        &corrupt,
        b"\xff\xd8\xff\xe0 this is not really a jpeg \xff\xd9",
    )
    .unwrap();
    assert_one_line_error(
        &edgemass(&["detect", "--model", s(&model), "--image", s(&corrupt)]),
        "cannot decode image",
    );

    let truncated = dir.path().join("truncated.jpg");
    let bus = std::fs::read(photo("bus.jpg")).unwrap();
    std::fs::write(&truncated, &bus[..bus.len() / 2]).unwrap();
    assert_one_line_error(
        &edgemass(&["detect", "--model", s(&model), "--image", s(&truncated)]),
        "truncated",
    );

    // A good image next to a bad one is still reported, and the run still fails.
    let out = edgemass(&[
        "detect",
        "--model",
        s(&model),
        "--image",
        s(&photo("bus.jpg")),
        s(&truncated),
        "--json",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    assert!(!out.status.success());
}

#[test]
fn bad_models_and_manifests_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let image = photo("bus.jpg");
    let run = |manifest: &Path| edgemass(&["detect", "--model", s(manifest), "--image", s(&image)]);

    assert_one_line_error(
        &run(&dir.path().join("absent.model.toml")),
        "absent.model.toml",
    );

    let wrong_hash = manifest_variant(dir.path(), "blazeface-256", |t| {
        t.replace("427cbbe0", "00000000")
    });
    assert_one_line_error(&run(&wrong_hash), "sha256");

    let onnx = std::fs::read(cache().join("blazeface/face_detection_back_256x256_barracuda.onnx"))
        .unwrap();
    let cut = dir.path().join("cut.onnx");
    std::fs::write(&cut, &onnx[..onnx.len() / 3]).unwrap();
    let cut_hash = sha256_hex(&onnx[..onnx.len() / 3]);
    let truncated = manifest_variant(dir.path(), "blazeface-256", |t| {
        let t = t.replace(
            "427cbbe0fc41448d09e1dc9cfabe2423d997cf2faaeab91fadd09a510b63b8e2",
            &cut_hash,
        );
        let file = t
            .lines()
            .find(|l| l.starts_with("file ="))
            .unwrap()
            .to_owned();
        t.replace(&file, &format!("file = {:?}", cut.display().to_string()))
    });
    assert_one_line_error(&run(&truncated), "not a readable ONNX model");

    let wrong_input = manifest_variant(dir.path(), "blazeface-256", |t| {
        t.replace("layout = \"nhwc\"", "layout = \"nchw\"")
    });
    assert_one_line_error(&run(&wrong_input), "does not match its manifest");

    let wrong_name = manifest_variant(dir.path(), "yolov8n-320", |t| {
        t.replace("name = \"images\"", "name = \"pixels\"")
    });
    assert_one_line_error(&run(&wrong_name), "`pixels`");

    let unknown_decoder = manifest_variant(dir.path(), "yolov8n-320", |t| {
        t.replace("kind = \"yolov8\"", "kind = \"yolov11\"")
    });
    assert_one_line_error(&run(&unknown_decoder), "yolov11");

    let wrong_labels = manifest_variant(dir.path(), "yolov8n-320", |t| {
        t.replace("\"BUTTOCKS_COVERED\",", "")
    });
    assert_one_line_error(&run(&wrong_labels), "do not fit its decoder");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn json_lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn classify_prints_one_label_and_score_per_text() {
    let package = text_package();
    let out = edgemass(&[
        "classify",
        "--model",
        s(&package),
        "a wonderful, heartfelt film",
        "a dull and tedious mess",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("fresh ") && lines[0].ends_with("  a wonderful, heartfelt film"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("rotten ") && lines[1].ends_with("  a dull and tedious mess"),
        "{stdout}"
    );
    let score: f64 = lines[0].split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(score > 0.5 && score <= 1.0, "{stdout}");
}

#[test]
fn the_shipped_sentiment_student_labels_the_readme_texts() {
    let student = root().join("models/minilm-sentiment-student.model.toml");
    let lines = json_lines(&edgemass(&[
        "classify",
        "--model",
        s(&student),
        "--json",
        "a wonderful, moving film",
        "a dull, lifeless mess",
    ]));
    let labels: Vec<&str> = lines.iter().map(|l| l["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["positive", "negative"], "{lines:?}");
    assert_eq!(lines[0]["model"], "minilm-sentiment-student");
}

#[test]
fn classify_json_gives_one_object_per_text() {
    let package = text_package();
    let long = "an overlong film that never ends ".repeat(30);
    let lines = json_lines(&edgemass(&[
        "classify",
        "--model",
        s(&package),
        "--json",
        "a wonderful, heartfelt film",
        &long,
    ]));
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["text"], "a wonderful, heartfelt film");
    assert_eq!(lines[0]["label"], "fresh");
    assert_eq!(lines[0]["model"], "minilm-l6-anchors");
    assert_eq!(lines[0]["truncated"], false);
    assert_eq!(lines[1]["truncated"], true);
    for line in &lines {
        let scores = line["scores"].as_object().unwrap();
        assert_eq!(scores.len(), 2, "{line}");
        let sum: f64 = scores.values().map(|v| v.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-3, "{line}");
        assert_eq!(scores[line["label"].as_str().unwrap()], line["score"]);
        assert!(line["latency_ms"].as_f64().unwrap() > 0.0, "{line}");
    }
}

#[test]
fn classify_reads_one_text_per_stdin_line() {
    let package = text_package();
    let input = "a wonderful, heartfelt film\n\n   \na dull and tedious mess\r\n".repeat(10);
    let lines = json_lines(&edgemass_with_stdin(
        &["classify", "--model", s(&package), "--json", "-"],
        input.as_bytes(),
    ));
    assert_eq!(lines.len(), 20, "two texts per repeat, blank lines skipped");
    for pair in lines.chunks(2) {
        assert_eq!(pair[0]["text"], "a wonderful, heartfelt film");
        assert_eq!(pair[0]["label"], "fresh");
        assert_eq!(pair[1]["text"], "a dull and tedious mess");
        assert_eq!(pair[1]["label"], "rotten");
    }
}

#[test]
fn classify_bad_inputs_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let package = text_package();
    let absent = dir.path().join("absent.model.toml");
    assert_one_line_error(
        &edgemass(&["classify", "--model", s(&absent), "good"]),
        "absent.model.toml",
    );
    assert_one_line_error(
        &edgemass(&["classify", "--model", s(&manifest("yolov8n-320")), "good"]),
        "`task` must be text-classify for a text model, not `detect`",
    );
    assert_one_line_error(
        &edgemass(&["classify", "--model", s(&package), "good", " ", "bad"]),
        "text 2 is empty",
    );
    assert_one_line_error(
        &edgemass(&["classify", "--model", s(&package), "good", "-"]),
        "must be the only TEXT",
    );
    let out = edgemass_with_stdin(
        &["classify", "--model", s(&package), "-"],
        b"fine\nbad \xff\xfe bytes\nfine\n",
    );
    assert_one_line_error(&out, "stdin line 2 is not valid UTF-8");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.lines().count() == 1 && stdout.ends_with("  fine\n"),
        "the line before the bad one is still answered: {stdout}"
    );
}

#[test]
fn text_bench_times_single_and_batched_runs() {
    let dir = tempfile::tempdir().unwrap();
    let texts = dir.path().join("texts.txt");
    std::fs::write(
        &texts,
        "a fine film\n\nthe plot drags on and on\nbrilliant\n",
    )
    .unwrap();
    let package = text_package();
    let out = edgemass(&[
        "bench",
        "--model",
        package.to_str().unwrap(),
        "--texts",
        texts.to_str().unwrap(),
        "--runs",
        "5",
        "--batch",
        "2",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["texts"], 3);
    assert_eq!(report["batch"], 2);
    assert!(report["single_p50_ms"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["batched_per_s"].as_f64().unwrap() > 0.0, "{report}");
}

#[test]
fn version_names_target_features_and_revision() {
    let out = edgemass(&["--version"]);
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(
        line.starts_with(&format!("edgemass {} (", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    assert!(
        line.contains(&format!("{}-", std::env::consts::ARCH)),
        "{line}"
    );
    assert!(line.contains("features: "), "{line}");
    assert!(
        regex_lite::Regex::new(r"git ([0-9a-f]{12}|unknown)")
            .unwrap()
            .is_match(&line),
        "{line}"
    );
}
