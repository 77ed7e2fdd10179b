//! Static int8 for a real convolutional detector: activation ranges calibrated on photos by each
//! method, every form within cosine 0.99 of float on them, the fastest correct one shipped, the
//! portable QDQ form beside it, and bad requests refused with nothing written.

use std::path::PathBuf;

use edgemass_compress::graph::Graph;
use edgemass_compress::quantize::calibrate::Method;
use edgemass_compress::quantize::run;
use edgemass_compress::quantize_detect::{Options, QuantizeDetectError, quantize_package};
use tract_onnx::prelude::Tensor;

mod common;

use common::{cached, text_detector};

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
            method,
            keep_float: Vec::new(),
            min_cosine: 0.99,
            runs: 1,
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
        method: Method::Percentile,
        keep_float: Vec::new(),
        min_cosine: 0.99,
        runs: 1,
    };
    let e = quantize_package(&teacher, &options, &out, "int8").unwrap_err();
    assert!(e.to_string().contains("no calibration images"), "{e}");
    options.calibration = photos(1);
    options.min_cosine = 1.5;
    let e = quantize_package(&teacher, &options, &out, "int8").unwrap_err();
    assert!(matches!(e, QuantizeDetectError::Options(_)), "{e}");
    assert!(e.to_string().contains("minimum cosine"), "{e}");
    assert!(!out.exists(), "nothing may be written");
}
