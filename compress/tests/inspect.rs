//! `inspect` on the real models from `models/fetch.py`.

use std::process::Command;

mod common;

use common::cached;

#[test]
fn yolov8n_summary_counts_its_convolutions_and_weights() {
    let graph = edgemass_compress::graph::Graph::load(&cached("nudenet/320n.onnx")).unwrap();
    let summary = edgemass_compress::inspect::summarize(&graph);
    assert_eq!(summary.bytes, 12_150_158);
    assert_eq!(summary.ops["Conv"], 64);
    // YOLOv8n has about 3.0 M parameters; the file stores them as f32.
    assert!(
        (2_900_000..3_200_000).contains(&summary.parameters),
        "{}",
        summary.parameters
    );
    assert!(summary.parameters * 4 <= summary.bytes);
    assert_eq!(
        summary.inputs,
        [(
            "images".to_string(),
            vec!["batch".into(), "3".into(), "height".into(), "width".into()]
        )]
    );
    assert_eq!(summary.outputs[0].0, "output0");
}

#[test]
fn inspect_command_prints_json_and_rejects_non_onnx_files() {
    let bin = env!("CARGO_BIN_EXE_edgemass-compress");
    let out = Command::new(bin)
        .args(["inspect", "--json"])
        .arg(cached(
            "blazeface/face_detection_back_256x256_barracuda.onnx",
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["inputs"][0]["name"], "input:0");
    assert_eq!(report["outputs"].as_array().unwrap().len(), 4);

    let bad = Command::new(bin)
        .arg("inspect")
        .arg(cached("photos/bus.jpg"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not a readable ONNX model"), "{stderr}");
}
