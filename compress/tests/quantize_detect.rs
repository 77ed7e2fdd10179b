//! Static int8 for a real convolutional detector: activation ranges calibrated on photos by each
//! method, every form within cosine 0.99 of float on them, the fastest correct one shipped, the
//! portable QDQ form beside it, and bad requests refused with nothing written.

use std::path::PathBuf;

use edgemass_compress::onnx::graph::Graph;
use edgemass_compress::onnx::tract::run;
use edgemass_compress::passes::quantize::QuantizePassError;
use edgemass_compress::passes::quantize::calibrate::Method;
use edgemass_compress::passes::quantize::detect::{Options, Settings, quantize_package};
use tract_onnx::prelude::Tensor;

use crate::common::{cached, text_detector};

fn photos(n: usize) -> Vec<PathBuf> {
    ["photos/bus.jpg", "photos/zidane.jpg", "photos/coffee.png"]
        .iter()
        .take(n)
        .map(|p| cached(p))
        .collect()
}

#[test]
fn calibrated_forms_stay_close_to_float_with_the_sensitive_layers_left_float() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = text_detector(dir.path(), 160);
    for method in [Method::Minmax, Method::Percentile] {
        let out = dir.path().join(method.name());
        let options = Options {
            calibration: photos(2),
            settings: Settings {
                method,
                runs: 1,
                ..Settings::default()
            },
        };
        let r = quantize_package(&teacher, &options, &out, "int8").unwrap();
        let forms: Vec<&str> = r.rows.iter().map(|r| r.form).collect();
        assert_eq!(
            &forms[..4],
            ["float", "weights", "static-qdq", "static-qlinear"]
        );
        let shipped = r.rows.iter().find(|row| row.form == r.chosen).unwrap();
        assert!(
            shipped.cosine >= 0.99,
            "{}: shipped {shipped:?}",
            method.name()
        );
        assert!(
            r.rows[2].cosine >= 0.99,
            "{}: QDQ {:?}",
            method.name(),
            r.rows[2]
        );
        assert!(
            r.convs > 10,
            "{}: {} convolutions quantized",
            method.name(),
            r.convs
        );
        assert!(r.rows[2].bytes < r.rows[0].bytes, "QDQ weights are int8");
        let qdq = Graph::load(&r.qdq).unwrap();
        let ops: Vec<&str> = qdq
            .graph()
            .node
            .iter()
            .map(|n| n.op_type.as_str())
            .collect();
        assert!(ops.contains(&"QuantizeLinear") && ops.contains(&"DequantizeLinear"));
        let x = Tensor::zero::<f32>(&[1, 3, 160, 160]).unwrap();
        assert_eq!(run(&qdq.proto, &[x]).unwrap()[0].shape(), &[1, 1, 160, 160]);
        edgemass::model::Model::from_manifest_path(&r.manifest).expect("the agent loads it");
        let text = std::fs::read_to_string(&r.manifest).unwrap();
        assert!(
            text.contains(&format!("{} activations", method.name())),
            "{text}"
        );
    }
}

#[test]
fn quantizing_without_images_or_with_a_bad_bar_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = text_detector(dir.path(), 128);
    let out = dir.path().join("out");
    let mut options = Options {
        calibration: Vec::new(),
        settings: Settings {
            method: Method::Percentile,
            runs: 1,
            ..Settings::default()
        },
    };
    let e = quantize_package(&teacher, &options, &out, "int8").unwrap_err();
    assert!(e.to_string().contains("no calibration images"), "{e}");
    options.calibration = photos(1);
    options.settings.min_cosine = 1.5;
    let e = quantize_package(&teacher, &options, &out, "int8").unwrap_err();
    assert!(matches!(e, QuantizePassError::Options(_)), "{e}");
    assert!(e.to_string().contains("minimum cosine"), "{e}");
    assert!(!out.exists(), "nothing may be written");
}

/// The COCO SSD, from its frozen TensorFlow graph: its int8 QDQ form, calibrated on photos other
/// than the two it is checked on, is raced by `auto` on onnxruntime, stays within the tolerance
/// the pass wrote for it, and finds on the held-out photos what the float form finds.
#[test]
fn the_tensorflow_ssd_gets_an_int8_form_onnxruntime_runs_with_the_float_detections() {
    use edgemass::model::{Manifest, Model, Options as LoadOptions, Precision};
    use edgemass::vision::detector::Detector;
    use edgemass::vision::preprocess::load_image;

    let dir = tempfile::tempdir().unwrap();
    let ssd = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models/ssd-mobilenet-v2-coco.model.toml");
    let calibration = [
        "astronaut.png",
        "chelsea.png",
        "coffee.png",
        "motorcycle_left.png",
    ]
    .iter()
    .map(|p| cached(&format!("photos/{p}")))
    .collect();
    let options = Options {
        calibration,
        settings: Settings {
            method: Method::Percentile,
            runs: 1,
            ..Settings::default()
        },
    };
    let out = dir.path().join("ssd-int8");
    let r = quantize_package(&ssd, &options, &out, "ssd-int8").unwrap();
    let manifest = Manifest::from_path(&r.manifest).unwrap();
    assert!(manifest.tensorflow.is_none(), "what is written is ONNX");
    assert!(manifest.int8.is_some());
    assert!(r.convs > 20, "{} convolutions quantized", r.convs);
    assert!(0.0 < r.deviation && r.deviation < r.tolerance, "{r:?}");
    assert_eq!(manifest.tolerance_of(Precision::Int8), r.tolerance);

    let library = cached(&format!(
        "onnxruntime/{}/libonnxruntime.so.1.32.0",
        std::env::consts::ARCH
    ));
    let load = LoadOptions {
        library: Some(library.clone()),
        threads: 1,
        ..LoadOptions::default()
    };
    let detector = Detector::load(manifest.clone(), &load).unwrap();
    let choice = detector.model().choice().clone();
    assert_eq!(choice.candidates.len(), 4, "{choice}");
    let ort_int8 = choice
        .candidates
        .iter()
        .find(|c| (c.runtime, c.precision) == ("onnxruntime", Precision::Int8))
        .unwrap();
    assert!(ort_int8.within(), "{choice}");
    let fastest = choice
        .candidates
        .iter()
        .filter(|c| c.within())
        .min_by_key(|c| c.time)
        .unwrap();
    assert_eq!(
        (choice.runtime, choice.precision),
        (fastest.runtime, fastest.precision)
    );

    let float = Detector::new(
        Model::load(manifest.clone().with_precision(Precision::Fp32).unwrap()).unwrap(),
    )
    .unwrap();
    let int8 = Detector::new(
        Model::load_onnxruntime(
            manifest.with_precision(Precision::Int8).unwrap(),
            &library,
            1,
        )
        .unwrap(),
    )
    .unwrap();
    for photo in ["bus.jpg", "zidane.jpg"] {
        let image = load_image(&cached(&format!("photos/{photo}"))).unwrap();
        let expected = float.detect(&image).unwrap().detections;
        let got = int8.detect(&image).unwrap().detections;
        assert!(expected.len() >= 2, "{photo}: {expected:?}");
        assert_eq!(
            expected.len(),
            got.len(),
            "{photo}: {expected:?} vs {got:?}"
        );
        for e in &expected {
            let best = got
                .iter()
                .filter(|g| g.class == e.class)
                .map(|g| g.bbox.iou(&e.bbox))
                .fold(0.0, f32::max);
            assert!(
                best >= 0.8,
                "{photo}: {e:?} has no int8 match (IoU {best}) in {got:?}"
            );
        }
    }
}
