//! Detectors on real photos: tract against onnxruntime reference outputs, and known objects.

use edgemass::model::Model;
use edgemass::vision::detector::Detector;
use edgemass::vision::preprocess::{load_image, prepare};
use edgemass::vision::{BBox, Detection};
use serde_json::Value;

use crate::common::{manifest, photo, root};

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
