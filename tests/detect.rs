//! Detectors on real photos: tract against onnxruntime reference outputs, and known objects.

use std::path::Path;

use edgemass::model::manifest::DecoderSpec;
use edgemass::model::{Manifest, Model, Options, Precision};
use edgemass::vision::detector::Detector;
use edgemass::vision::preprocess::{load_image, prepare};
use edgemass::vision::scene::scene;
use edgemass::vision::{BBox, Detection};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::{cache, manifest, manifest_variant, photo, root};

/// tract may differ from onnxruntime by `ATOL + RTOL·|reference|` on any output value.
const ATOL: f64 = 2e-3;
const RTOL: f64 = 1e-3;

fn detections(model: &str, image: &str) -> Vec<Detection> {
    let detector = Detector::new(Model::from_manifest_path(&manifest(model)).unwrap()).unwrap();
    detector
        .detect(&load_image(&photo(image)).unwrap())
        .unwrap()
        .detections
}

#[test]
fn tract_matches_onnxruntime_on_reference_photos() {
    let fixtures = root().join("tests/fixtures/ort");
    let mut checked = 0;
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let path = entry.unwrap().path();
        let fixture: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let model =
            Model::from_manifest_path(&manifest(fixture["model"].as_str().unwrap())).unwrap();
        let image = load_image(&photo(fixture["photo"].as_str().unwrap())).unwrap();
        let (tensor, _) = prepare(&image, &model.manifest().input);
        let input_sum: f64 = tensor
            .to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .map(|v| *v as f64)
            .sum();
        let expected_sum = fixture["input"]["sum"].as_f64().unwrap();
        assert!(
            (input_sum - expected_sum).abs() <= 1e-6 * expected_sum.abs().max(1.0),
            "{}: input tensor differs from the one the fixture was made from ({input_sum} vs {expected_sum}); \
             re-run tests/fixtures/ort_reference.py",
            path.display()
        );
        let outputs = model.run(tensor).unwrap();
        for (name, reference) in fixture["outputs"].as_object().unwrap() {
            let actual = outputs
                .get(name)
                .unwrap_or_else(|| panic!("{}: no output {name}", path.display()));
            let shape: Vec<usize> = serde_json::from_value(reference["shape"].clone()).unwrap();
            assert_eq!(
                actual.shape(),
                shape.as_slice(),
                "{}: {name} shape",
                path.display()
            );
            let flat: Vec<f32> = actual.iter().copied().collect();
            let mut worst = 0f64;
            for sample in reference["samples"].as_array().unwrap() {
                let (i, want) = (
                    sample[0].as_u64().unwrap() as usize,
                    sample[1].as_f64().unwrap(),
                );
                let diff = (flat[i] as f64 - want).abs();
                assert!(
                    diff <= ATOL + RTOL * want.abs(),
                    "{}: {name}[{i}] tract {} vs onnxruntime {want}",
                    path.display(),
                    flat[i]
                );
                worst = worst.max(diff);
            }
            let sum: f64 = flat.iter().map(|v| *v as f64).sum();
            let want_sum = reference["sum"].as_f64().unwrap();
            assert!(
                (sum - want_sum).abs() <= 1e-4 * want_sum.abs().max(flat.len() as f64 * 1e-2),
                "{}: {name} sum tract {sum} vs onnxruntime {want_sum}",
                path.display()
            );
            println!(
                "{}: {name} max |tract - ort| over samples = {worst:.2e}",
                path.display()
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 6, "three detectors on two photos each");
}

#[test]
fn blazeface_finds_the_two_faces_on_bus() {
    let found = detections("blazeface-256", "bus.jpg");
    let expected = [
        BBox {
            x1: 260.0,
            y1: 427.0,
            x2: 305.0,
            y2: 488.0,
        },
        BBox {
            x1: 105.0,
            y1: 411.0,
            x2: 150.0,
            y2: 470.0,
        },
    ];
    assert_eq!(found.len(), 2, "{found:?}");
    for (d, want) in found.iter().zip(expected) {
        for (a, b) in d.bbox.to_array().iter().zip(want.to_array()) {
            assert!(
                (a - b).abs() <= 8.0,
                "face {:?} vs expected {want:?}",
                d.bbox
            );
        }
        assert_eq!(d.keypoints.len(), 6);
    }
    assert!(found[0].score > 0.7 && found[1].score > 0.6, "{found:?}");
}

#[test]
fn dbnet_finds_the_lettering_on_bus() {
    let found = detections("ppocr-det", "bus.jpg");
    assert!(found.len() >= 8, "{} text regions: {found:?}", found.len());
    assert!(
        found
            .iter()
            .all(|d| d.bbox.area() > 0.0 && d.bbox.x2 <= 810.0 && d.bbox.y2 <= 1080.0)
    );
}

#[test]
fn yolov8_and_blazeface_agree_on_a_face_in_zidane() {
    let yolo = detections("yolov8n-320", "zidane.jpg");
    let faces = detections("blazeface-256", "zidane.jpg");
    let face_male = 12;
    let yolo_face = yolo
        .iter()
        .find(|d| d.class == face_male)
        .expect("a FACE_MALE from yolov8");
    let best = faces
        .iter()
        .map(|f| f.bbox.iou(&yolo_face.bbox))
        .fold(0.0, f32::max);
    assert!(
        best > 0.5,
        "yolo face {:?} overlaps no blazeface face: {faces:?}",
        yolo_face.bbox
    );
}

#[test]
fn the_coco_ssd_decoded_here_matches_tensorflows_own_post_processor() {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/ssd_reference.json")).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // TensorFlow's post-processor keeps scores from 0.3; the manifest reports from 0.5.
    let path = manifest_variant(dir.path(), "ssd-mobilenet-v2-coco", |t| {
        t.replace("score = 0.5", "score = 0.3")
    });
    let detector = Detector::new(Model::from_manifest_path(&path).unwrap()).unwrap();
    let manifest = detector.model().manifest();
    assert_eq!(manifest.sha256, fixture["graph_sha256"].as_str().unwrap());
    let DecoderSpec::Ssd { columns, .. } = &manifest.decoder else {
        panic!("the manifest's decoder is not ssd");
    };
    let (mut compared, mut worst_score, mut worst_box) = (0, 0f64, 0f64);
    for (name, reference) in fixture["photos"].as_object().unwrap() {
        let found = detector
            .detect(&load_image(&photo(name)).unwrap())
            .unwrap()
            .detections;
        if name == "bus.jpg" {
            let labels: Vec<&str> = found
                .iter()
                .map(|d| detector.labels()[d.class].as_str())
                .collect();
            assert_eq!(labels, ["person", "bus", "person", "person"]);
        }
        let expected = reference["detections"].as_array().unwrap();
        assert_eq!(found.len(), expected.len(), "{name}: {found:?}");
        for (d, e) in found.iter().zip(expected) {
            assert_eq!(
                columns[d.class] as u64,
                e["class_id"].as_u64().unwrap(),
                "{name}"
            );
            let score = e["score"].as_f64().unwrap();
            worst_score = worst_score.max((f64::from(d.score) - score).abs());
            assert!(
                (f64::from(d.score) - score).abs() < 1e-3,
                "{name}: score {} vs {score}",
                d.score
            );
            let b = &d.bbox;
            for (ours, theirs) in [b.x1, b.y1, b.x2, b.y2]
                .iter()
                .zip(e["box"].as_array().unwrap())
            {
                let theirs = theirs.as_f64().unwrap();
                worst_box = worst_box.max((f64::from(*ours) - theirs).abs());
                assert!(
                    (f64::from(*ours) - theirs).abs() < 1.0,
                    "{name}: box {b:?} vs {}",
                    e["box"]
                );
            }
            compared += 1;
        }
    }
    assert_eq!(
        compared, 6,
        "bus.jpg: 3 people and the bus; zidane.jpg: 2 people"
    );
    eprintln!(
        "ssd vs TensorFlow: worst score difference {worst_score:.1e}, worst box edge {worst_box:.1e} px"
    );
}

#[test]
fn a_truncated_tensorflow_graph_fails_in_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let graph = std::fs::read(cache().join("ssd-coco/frozen_inference_graph.pb")).unwrap();
    let cut = dir.path().join("cut.pb");
    std::fs::write(&cut, &graph[..graph.len() / 2]).unwrap();
    // As fetched, with the package's hash: the hash names the file.
    let as_fetched = manifest_variant(dir.path(), "ssd-mobilenet-v2-coco", |t| {
        let file = cache().join("ssd-coco/frozen_inference_graph.pb");
        t.replace(&file.display().to_string(), &cut.display().to_string())
    });
    let err = Model::from_manifest_path(&as_fetched)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with(&format!("{} has sha256 ", cut.display())),
        "{err}"
    );
    // With a hash that matches the cut file: the GraphDef does not decode.
    let hash: String = Sha256::digest(&graph[..graph.len() / 2])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let rehashed = std::fs::read_to_string(&as_fetched).unwrap().replace(
        "2a8d8a89d695842e60d8c6d144181100555563e21acf2fa1e8f561fec5c3c6ad",
        &hash,
    );
    std::fs::write(&as_fetched, rehashed).unwrap();
    let err = Model::from_manifest_path(&as_fetched)
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        err,
        format!(
            "{} does not match its manifest: it is not a readable TensorFlow GraphDef (truncated or corrupt)",
            cut.display()
        )
    );
    assert!(!err.contains('\n'));
}

#[test]
fn onnxruntime_from_the_fetched_library_finds_what_tract_finds() {
    let library = cache()
        .join("onnxruntime")
        .join(std::env::consts::ARCH)
        .join("libonnxruntime.so.1.32.0");
    let image = load_image(&photo("bus.jpg")).unwrap();
    for name in ["blazeface-256", "yolov8n-320", "ssd-mobilenet-v2-coco"] {
        let spec = Manifest::from_path(&manifest(name)).unwrap();
        let tract = Model::load(spec.clone()).unwrap();
        let ort = Model::load_onnxruntime(spec, &library, 1).unwrap();
        assert_eq!(
            (tract.runtime().name(), ort.runtime().name()),
            ("tract", "onnxruntime")
        );
        let (tensor, _) = prepare(&image, &tract.manifest().input);
        let (a, b) = (tract.run(tensor.clone()).unwrap(), ort.run(tensor).unwrap());
        let mut outputs = 0;
        for ((output, x), (other, y)) in a.iter().zip(b.iter()) {
            assert_eq!((output, x.shape()), (other, y.shape()));
            for (u, v) in x.iter().zip(y) {
                let (u, v) = (f64::from(*u), f64::from(*v));
                assert!(
                    (u - v).abs() <= ATOL + RTOL * v.abs(),
                    "{name} {output}: {u} vs {v}"
                );
            }
            outputs += 1;
        }
        assert!(outputs >= 1, "{name}");
        let found = |model: Model| {
            Detector::new(model)
                .unwrap()
                .detect(&image)
                .unwrap()
                .detections
                .iter()
                .map(|d| (d.class, (d.score * 100.0).round() as i32))
                .collect::<Vec<_>>()
        };
        let with_ort = found(
            Model::load_onnxruntime(Manifest::from_path(&manifest(name)).unwrap(), &library, 2)
                .unwrap(),
        );
        assert_eq!(found(tract), with_ort, "{name}");
        assert!(!with_ort.is_empty(), "{name}");
    }
}

#[test]
fn a_missing_onnxruntime_library_is_one_line_naming_it() {
    let error = |model: &str| {
        let spec = Manifest::from_path(&manifest(model)).unwrap();
        Model::load_onnxruntime(spec, Path::new("/nonexistent/libonnxruntime.so"), 1)
            .err()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        error("blazeface-256"),
        "onnxruntime library /nonexistent/libonnxruntime.so does not exist"
    );
    // The TensorFlow graph is turned into ONNX before the library is needed.
    assert_eq!(
        error("ssd-mobilenet-v2-coco"),
        "onnxruntime library /nonexistent/libonnxruntime.so does not exist"
    );
}

#[test]
fn auto_measures_both_runtimes_in_both_forms_and_keeps_the_fastest_within_tolerance() {
    let spec = Manifest::from_path(&manifest("ppocr-det-student")).unwrap();
    let options = Options {
        threads: 1,
        ..Options::default()
    };
    let detector = Detector::load(spec, &options).unwrap();
    let choice = detector.model().choice().clone();
    let measured: Vec<(&str, Precision)> = choice
        .candidates
        .iter()
        .map(|c| (c.runtime, c.precision))
        .collect();
    assert_eq!(
        measured,
        [
            ("tract", Precision::Fp32),
            ("tract", Precision::Int8),
            ("onnxruntime", Precision::Fp32),
            ("onnxruntime", Precision::Int8),
        ],
        "{choice}"
    );
    let within: Vec<_> = choice
        .candidates
        .iter()
        .filter(|c| c.deviation <= choice.tolerance)
        .collect();
    let kept = within
        .iter()
        .find(|c| (c.runtime, c.precision) == (choice.runtime, choice.precision))
        .unwrap_or_else(|| panic!("kept a candidate beyond the tolerance: {choice}"));
    assert!(within.iter().all(|c| kept.time <= c.time), "{choice}");
    // Both float forms agree closely; the model kept is the one that runs.
    assert!(choice.candidates[2].deviation < 1e-3, "{choice}");
    assert_eq!(detector.model().runtime().name(), choice.runtime);
    assert_eq!(detector.model().manifest().precision, choice.precision);
    // The start-up picture has a sign of text, so the text detector's map is not empty there.
    let found = detector.detect(&scene()).unwrap();
    assert!(
        !found.detections.is_empty(),
        "no text on the start-up picture"
    );

    // int8 asked for: only the int8 files race.
    let spec = Manifest::from_path(&manifest("ppocr-det-student")).unwrap();
    let options = Options {
        precision: Precision::Int8,
        ..options
    };
    let choice = Detector::load(spec, &options)
        .unwrap()
        .model()
        .choice()
        .clone();
    assert_eq!(choice.precision, Precision::Int8, "{choice}");
    assert!(
        choice
            .candidates
            .iter()
            .all(|c| c.precision == Precision::Int8)
    );
}
