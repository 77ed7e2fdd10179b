//! The candle evaluator of convolutional graphs against tract on the real text detector, and a
//! training step through it written back into the ONNX file.

use candle_core::{Device, Tensor as CandleTensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use edgemass_compress::onnx::candle::{CandleGraph, CandleGraphError};
use edgemass_compress::onnx::graph::Graph;
use edgemass_compress::onnx::inspect::InputShape;
use edgemass_compress::onnx::tract::run;
use edgemass_compress::passes::downscale::downscale;
use edgemass_compress::passes::prune::conv::{Plan, prune};
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::Tensor;

use crate::common::{cached, max_difference, values};

const SIDE: usize = 128;

fn image() -> Vec<f32> {
    (0..3 * SIDE * SIDE)
        .map(|i| ((i * 7919 % 2000) as f32 / 1000.0) - 1.0)
        .collect()
}

/// tract's and candle's outputs of `model` on the same image.
fn both(model: &ModelProto, graph: &CandleGraph) -> (Vec<f32>, Vec<f32>) {
    let x = image();
    let tract = run(
        model,
        &[Tensor::from_shape(&[1, 3, SIDE, SIDE], &x).unwrap()],
    )
    .unwrap();
    let tract = values(&tract[0]);
    let input = CandleTensor::from_vec(x, (1, 3, SIDE, SIDE), &Device::Cpu).unwrap();
    let output = model.graph.as_ref().unwrap().output[0].name.clone();
    let candle = graph.forward(&input, &[&output]).unwrap()[0]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    (tract, candle)
}

#[test]
fn candle_runs_the_text_detector_like_tract() {
    let teacher = Graph::load(&cached("ppocr/ch_PP-OCRv4_det_infer.onnx")).unwrap();
    let graph = CandleGraph::new(&teacher.proto, &Device::Cpu).unwrap();
    let (tract, candle) = both(&teacher.proto, &graph);
    let diff = max_difference(&tract, &candle);
    assert!(diff < 1e-4, "teacher: candle and tract differ by {diff}");

    let shape: InputShape = format!("x=1,3,{SIDE},{SIDE}").parse().unwrap();
    let student = downscale(&teacher.proto, 2).unwrap();
    let student = prune(&student, &[shape], &Plan::uniform(0.5))
        .unwrap()
        .model;
    let graph = CandleGraph::new(&student, &Device::Cpu).unwrap();
    let (tract, candle) = both(&student, &graph);
    let diff = max_difference(&tract, &candle);
    assert!(diff < 1e-4, "student: candle and tract differ by {diff}");
}

#[test]
fn a_training_step_is_written_back_into_the_onnx_file() {
    let teacher = Graph::load(&cached("ppocr/ch_PP-OCRv4_det_infer.onnx")).unwrap();
    let graph = CandleGraph::new(&teacher.proto, &Device::Cpu).unwrap();
    let input = CandleTensor::from_vec(image(), (1, 3, SIDE, SIDE), &Device::Cpu).unwrap();
    let output = "sigmoid_0.tmp_0";
    let mean = |g: &CandleGraph| -> f32 {
        g.forward(&input, &[output]).unwrap()[0]
            .mean_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    let before = mean(&graph);
    let mut optimizer = AdamW::new(
        graph.vars(),
        ParamsAdamW {
            lr: 1e-3,
            ..Default::default()
        },
    )
    .unwrap();
    for _ in 0..3 {
        let map = &graph.forward(&input, &[output]).unwrap()[0];
        optimizer.backward_step(&map.mean_all().unwrap()).unwrap();
    }
    let after = mean(&graph);
    assert!(
        after < before,
        "minimising the mean map: {before} -> {after}"
    );

    let mut trained = teacher.proto.clone();
    graph.write_back(&mut trained).unwrap();
    let (tract, candle) = both(&trained, &graph);
    let diff = max_difference(&tract, &candle);
    assert!(
        diff < 1e-4,
        "written-back weights: tract and candle differ by {diff}"
    );
    let (original, _) = both(&teacher.proto, &graph);
    let average = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    assert!(
        average(&tract) < average(&original),
        "tract on the written file sees the lower mean: {} vs {}",
        average(&tract),
        average(&original)
    );
}

#[test]
fn operators_the_evaluator_lacks_are_named() {
    let yolo = Graph::load(&cached("nudenet/320n.onnx")).unwrap();
    let err = CandleGraph::new(&yolo.proto, &Device::Cpu)
        .err()
        .expect("YOLOv8's head has Reshape and Split");
    assert!(matches!(err, CandleGraphError::Unsupported { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("is not supported"), "{text}");
}
