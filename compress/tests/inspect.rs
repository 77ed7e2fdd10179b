//! `inspect` on the real models from `models/fetch.py`.

use std::path::Path;
use std::process::{Command, Output};

use edgemass_compress::onnx::graph::Graph;
use edgemass_compress::onnx::inspect::{InputShape, InspectError, Macs, inspect};

use crate::common::cached;

/// Runs `edgemass-compress inspect` with `args`.
fn run(args: &[&str], model: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgemass-compress"))
        .arg("inspect")
        .arg(model)
        .args(args)
        .output()
        .unwrap()
}

/// MACs of the model in the cache at `path` with inputs fixed by `specs`.
fn macs(path: &str, specs: &[&str]) -> Macs {
    let given: Vec<InputShape> = specs.iter().map(|s| s.parse().unwrap()).collect();
    let graph = Graph::load(&cached(path)).unwrap();
    inspect(&graph, &given).unwrap().macs.unwrap()
}

/// Asserts `got` is within 1 % of `expected`.
fn assert_close(got: u64, expected: f64, what: &str) {
    let error = (got as f64 - expected).abs() / expected;
    assert!(
        error < 0.01,
        "{what}: {got} MACs, expected about {expected:.0} ({:.2} % off)",
        error * 100.0
    );
}

#[test]
fn yolov8n_summary_counts_its_convolutions_and_weights() {
    let graph = edgemass_compress::onnx::graph::Graph::load(&cached("nudenet/320n.onnx")).unwrap();
    let summary = edgemass_compress::onnx::inspect::summarize(&graph);
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

// Reference totals: /work/shared/MODELS.md (onnxruntime table) gives GFLOP as Conv/MatMul MACs × 2,
// counted from the ONNX files outside tract: YOLOv8n 320 2.03, DBNet 1088×800 9.78, MiniLM-L6 64
// tokens 1.40, BlazeFace 256 0.38. An onnx shape-inference count (Conv, ConvTranspose, MatMul,
// Gemm) gives 1,012,627,200 / 4,891,487,744 / 698,351,616 / 188,749,824 MACs.

#[test]
fn yolov8n_at_320_counts_one_gmac_of_convolutions() {
    let m = macs("nudenet/320n.onnx", &["images=1,3,320,320"]);
    assert_close(m.total, 2.03e9 / 2.0, "YOLOv8n 320");
    assert_eq!(m.flops(), 2 * m.total);
    assert_eq!(m.by_op.keys().collect::<Vec<_>>(), ["Conv"]);
    assert_eq!(m.nodes.len(), 323, "one row per ONNX node");
    let top = m.top(4);
    assert!(top.windows(2).all(|w| w[0].macs >= w[1].macs));
    assert_eq!(top[0].op, "Conv");
    assert_eq!(top[0].shape.as_deref(), Some(&[1, 64, 40, 40][..]));
    assert_eq!(m.shapes["output0"], [1, 22, 2100]);
}

#[test]
fn dbnet_at_1088_by_800_counts_its_transposed_convolutions() {
    let m = macs("ppocr/ch_PP-OCRv4_det_infer.onnx", &["x=1,3,1088,800"]);
    assert_close(m.total, 9.78e9 / 2.0, "DBNet 1088×800");
    assert!(m.by_op["ConvTranspose"] > 100_000_000, "{:?}", m.by_op);
}

#[test]
fn blazeface_needs_no_input_shapes() {
    let graph = Graph::load(&cached(
        "blazeface/face_detection_back_256x256_barracuda.onnx",
    ))
    .unwrap();
    let m = inspect(&graph, &[]).unwrap().macs.unwrap();
    assert_close(m.total, 0.38e9 / 2.0, "BlazeFace 256");
}

#[test]
fn minilm_l6_at_64_tokens_counts_its_matmuls_in_text_and_json() {
    let config =
        edgemass_compress::bert::BertConfig::from_path(&cached("minilm-l6/config.json")).unwrap();
    let encoder = edgemass_compress::bert::Encoder::from_safetensors(
        &cached("minilm-l6/model.safetensors"),
        config,
    )
    .unwrap();
    let export = edgemass_compress::bert::Export {
        pooling: edgemass_compress::bert::Pooling::Mean,
        normalize: false,
        head: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("model.onnx");
    edgemass_compress::bert::write_onnx(
        &edgemass_compress::bert::onnx::to_onnx(&encoder, export),
        &onnx,
    )
    .unwrap();

    let inputs = [
        "--input",
        "input_ids=1,64",
        "--input",
        "attention_mask=1,64",
        "--input",
        "token_type_ids=1,64",
    ];
    let out = run(
        &[&inputs[..], &["--json", "--top", "5"][..]].concat(),
        &onnx,
    );
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let total = report["macs"].as_u64().unwrap();
    assert_close(total, 1.40e9 / 2.0, "MiniLM-L6 64 tokens");
    assert_eq!(report["flops"].as_u64(), Some(2 * total));
    assert_eq!(report["macs_by_op"]["MatMul"].as_u64(), Some(total));
    let nodes = report["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 5);
    assert_eq!(nodes[0]["op"], "MatMul");
    assert_eq!(nodes[0]["macs"].as_u64(), Some(64 * 384 * 1536));
    assert!(report["macs_error"].is_null());
    assert_eq!(
        edgemass_compress::onnx::inspect::text_macs(&Graph::load(&onnx).unwrap(), 64),
        Some(total)
    );

    let text = run(&inputs, &onnx);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("macs        698.35 MMAC = 1.40 GFLOP"),
        "{stdout}"
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains("MMAC  MatMul"))
            .count(),
        15
    );
}

#[test]
fn open_dims_leave_macs_unknown_but_the_summary_prints() {
    let model = cached("nudenet/320n.onnx");
    let out = run(&[], &model);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let why: Vec<&str> = stdout.lines().filter(|l| l.starts_with("macs")).collect();
    assert_eq!(
        why,
        [
            "macs        unknown: input `images` dim 2 (`height`) is not fixed: give it with --input images=1,3,HEIGHT,WIDTH"
        ]
    );
    assert!(stdout.contains("parameters  3009250"), "{stdout}");

    let json = run(&["--json"], &model);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(report["macs"].is_null());
    assert!(
        report["macs_error"].as_str().unwrap().contains("`height`"),
        "{report}"
    );
}

#[test]
fn bad_input_shapes_are_one_line_errors() {
    let model = cached("nudenet/320n.onnx");
    for (spec, expected) in [
        (
            "imgs=1,3,320,320",
            "the model has no input `imgs` (its inputs: images)",
        ),
        (
            "images=1,3,320",
            "input `images` is declared with 4 dims [batch, 3, height, width], but 3 are given",
        ),
        (
            "images=1,4,320,320",
            "input `images` dim 1 is fixed at 3 by the model, but 4 is given",
        ),
    ] {
        let out = run(&["--input", spec], &model);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{spec}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{spec}: {stderr}");
        assert!(stderr.contains(expected), "{spec}: {stderr}");
    }
    let graph = Graph::load(&model).unwrap();
    let twice = ["images=1,3,32,32", "images=1,3,64,64"].map(|s| s.parse().unwrap());
    assert_eq!(
        inspect(&graph, &twice).unwrap_err(),
        InspectError::Duplicate {
            name: "images".into()
        }
    );

    let malformed = run(&["--input", "images=1,3,x,320"], &model);
    let stderr = String::from_utf8_lossy(&malformed.stderr);
    assert_eq!(malformed.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not NAME=D1,D2,…"), "{stderr}");
}

#[test]
fn dot_drawing_has_a_box_per_node_and_svg_needs_graphviz() {
    let model = cached("nudenet/320n.onnx");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("yolo.dot");
    let out = run(
        &[
            "--input",
            "images=1,3,320,320",
            "--dot",
            path.to_str().unwrap(),
        ],
        &model,
    );
    assert!(out.status.success(), "{out:?}");
    let dot = std::fs::read_to_string(&path).unwrap();
    assert!(dot.starts_with("digraph "), "{}", &dot[..100]);
    assert_eq!(dot.trim_end().lines().last(), Some("}"));

    let mut boxes = std::collections::HashSet::new();
    let mut ends = vec![];
    for line in dot.lines().map(str::trim) {
        let Some((id, rest)) = line.split_once(' ') else {
            continue;
        };
        if let Some(to) = rest.strip_prefix("-> ") {
            let to = to.split([' ', ';']).next().unwrap();
            ends.extend([id.to_string(), to.to_string()]);
        } else if rest.starts_with('[') && !["node", "edge"].contains(&id) {
            assert!(boxes.insert(id.to_string()), "{id} declared twice");
        }
    }
    let nodes = boxes.iter().filter(|id| id.starts_with('n')).count();
    assert_eq!(nodes, 323, "one box per ONNX node");
    assert_eq!(boxes.len(), 323 + 2, "plus the input and the output");
    assert!(
        ends.iter().all(|e| boxes.contains(e)),
        "edge to an undeclared node"
    );
    assert!(
        dot.contains(r#"n0 [label="Conv\n/model.0/conv/Conv\nconsts 16×3×3×3, 16\n11.06 MMAC"];"#),
        "{}",
        &dot[..600]
    );
    assert!(dot.contains(r#"i0 -> n0 [label="1×3×320×320"];"#));

    let svg = dir.path().join("yolo.svg");
    let out = run(&["--dot", svg.to_str().unwrap()], &model);
    let graphviz = Command::new("dot").arg("-V").output().is_ok();
    if graphviz {
        assert!(out.status.success(), "{out:?}");
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("<svg"), "{}", &text[..200]);
        assert_eq!(text.matches("class=\"node\"").count(), 325);
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr.contains("install graphviz"), "{stderr}");
    }
}
