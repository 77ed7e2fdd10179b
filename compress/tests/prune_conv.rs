//! `prune-conv` and `downscale` on the real detectors from `models/fetch.py`: pruned graphs run
//! in tract with the original output shapes, pruning channels nothing reads changes nothing, the
//! downscaled graph equals the original on a pooled image, and graphs the pass cannot handle are
//! refused by name.

use std::collections::HashMap;
use std::process::Command;

use edgemass_compress::onnx::graph::{Graph, constants_to_initializers, f32_data, f32_tensor};
use edgemass_compress::onnx::inspect::{InputShape, inspect};
use edgemass_compress::onnx::tract::run;
use edgemass_compress::passes::downscale::downscale;
use edgemass_compress::passes::prune::conv::{Channels, Plan, prune};
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::Tensor;

use crate::common::{cached, max_difference, values};

const DBNET: &str = "ppocr/ch_PP-OCRv4_det_infer.onnx";
const YOLO: &str = "nudenet/320n.onnx";

fn shape(spec: &str) -> Vec<InputShape> {
    vec![spec.parse().unwrap()]
}

/// A deterministic input in [-1, 1).
fn input(dims: &[usize]) -> Tensor {
    let n: usize = dims.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|i| ((i * 7919 % 2000) as f32 / 1000.0) - 1.0)
        .collect();
    Tensor::from_shape(dims, &values).unwrap()
}

fn max_tensor_difference(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.shape(), b.shape());
    max_difference(&values(a), &values(b))
}

#[test]
fn keeping_every_channel_gives_the_same_outputs() {
    let graph = Graph::load(&cached(DBNET)).unwrap();
    let pruned = prune(&graph.proto, &shape("x=1,3,128,128"), &Plan::uniform(1.0)).unwrap();
    assert_eq!(pruned.macs.0, pruned.macs.1);
    let x = input(&[1, 3, 128, 128]);
    let before = run(&graph.proto, std::slice::from_ref(&x)).unwrap();
    let after = run(&pruned.model, &[x]).unwrap();
    assert_eq!(max_tensor_difference(&before[0], &after[0]), 0.0);
}

/// Zeroes, in every prunable group of `model`, the filters making the last quarter of its
/// channels and every consumer's weights reading them; returns the zeroed model.
fn silence_a_quarter(model: &ModelProto, spec: &str) -> ModelProto {
    let mut model = model.clone();
    constants_to_initializers(&mut model);
    let graph = Graph {
        proto: model.clone(),
        bytes: 0,
    };
    let macs = inspect(&graph, &shape(spec)).unwrap().macs.unwrap();
    let channels = Channels::analyse(graph.graph(), &macs.shapes);
    let mut silent: HashMap<usize, Vec<usize>> = HashMap::new();
    for g in channels.groups() {
        let keep = g.size.div_ceil(4) * 3;
        silent.insert(g.root, (keep.min(g.size)..g.size).collect());
    }
    let groups: HashMap<String, i64> = graph
        .graph()
        .node
        .iter()
        .filter(|n| n.op_type.starts_with("Conv"))
        .map(|n| {
            let group = n
                .attribute
                .iter()
                .find(|a| a.name == "group")
                .map_or(1, |a| a.i);
            (n.input[1].clone(), group)
        })
        .collect();
    let g = model.graph.as_mut().unwrap();
    for slice in &channels.slices {
        // Dense (de)convolution weights, on both their input and output axes; a depthwise
        // convolution passes channels through and needs no silencing.
        if groups.get(&slice.weight).is_none_or(|&group| group != 1) {
            continue;
        }
        let t = g
            .initializer
            .iter_mut()
            .find(|t| t.name == slice.weight)
            .unwrap();
        let d: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
        let mut data = f32_data(t).unwrap();
        let (outer, len, inner) = (
            d[..slice.axis].iter().product::<usize>(),
            d[slice.axis],
            d[slice.axis + 1..].iter().product::<usize>(),
        );
        let mut base = 0;
        for &s in &slice.segments {
            if let Some(idx) = silent.get(&channels.root(s)) {
                for &i in idx {
                    for o in 0..outer {
                        let start = (o * len + base + i) * inner;
                        data[start..start + inner].fill(0.0);
                    }
                }
            }
            base += channels.size(s);
        }
        *t = f32_tensor(&slice.weight, &d, &data);
    }
    model
}

/// Prunes exactly the silenced quarter of every group and checks the outputs did not move.
fn assert_silent_channels_prune_exactly(path: &str, spec: &str, dims: &[usize]) -> usize {
    let silenced = silence_a_quarter(&Graph::load(&cached(path)).unwrap().proto, spec);
    let mut plan = Plan::uniform(0.75);
    plan.multiple = 1;
    plan.min_channels = 1;
    let pruned = prune(&silenced, &shape(spec), &plan).unwrap();
    let (before, after) = pruned.channels();
    assert!(
        after < before * 4 / 5,
        "{path}: {before} -> {after} channels"
    );
    assert!(
        pruned.macs.1 < pruned.macs.0 * 7 / 10,
        "{path}: {:?}",
        pruned.macs
    );
    let x = input(dims);
    let want = run(&silenced, std::slice::from_ref(&x)).unwrap();
    let got = run(&pruned.model, &[x]).unwrap();
    let diff = max_tensor_difference(&want[0], &got[0]);
    assert!(diff < 1e-4, "{path}: outputs moved by {diff}");
    pruned.groups.iter().filter(|g| g.producers > 1).count()
}

#[test]
fn pruning_channels_nothing_reads_leaves_the_outputs_unchanged() {
    let joined = assert_silent_channels_prune_exactly(DBNET, "x=1,3,160,160", &[1, 3, 160, 160]);
    assert!(
        joined >= 2,
        "DBNet's residual and attention groups: {joined}"
    );
    let joined =
        assert_silent_channels_prune_exactly(YOLO, "images=1,3,160,160", &[1, 3, 160, 160]);
    assert!(joined >= 2, "YOLOv8's bottleneck residual groups: {joined}");
}

#[test]
fn yolov8_prunes_through_split_and_concat_into_a_valid_graph() {
    let graph = Graph::load(&cached(YOLO)).unwrap();
    let pruned = prune(
        &graph.proto,
        &shape("images=1,3,320,320"),
        &Plan::uniform(0.5),
    )
    .unwrap();
    let split_groups = pruned.groups.iter().filter(|g| g.before < 16).count();
    assert!(pruned.groups.len() > 30, "{} groups", pruned.groups.len());
    assert!(split_groups < pruned.groups.len());
    assert!(
        pruned.macs.1 * 5 < pruned.macs.0 * 2,
        "MACs {:?} should fall well below half",
        pruned.macs
    );
    let x = input(&[1, 3, 320, 320]);
    let out = run(&pruned.model, &[x]).unwrap();
    assert_eq!(out[0].shape(), &[1, 22, 2100]);
    let g = pruned.model.graph.as_ref().unwrap();
    let read: Vec<&str> = g
        .node
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .collect();
    let unread: Vec<&str> = g
        .initializer
        .iter()
        .map(|t| t.name.as_str())
        .filter(|name| !read.contains(name))
        .collect();
    assert!(unread.is_empty(), "initializers no node reads: {unread:?}");
}

#[test]
fn downscaled_graph_equals_the_original_on_the_pooled_image() {
    let graph = Graph::load(&cached(DBNET)).unwrap();
    let smaller = downscale(&graph.proto, 2).unwrap();
    let x = input(&[1, 3, 128, 128]);
    let full = values(&x);
    let mut pooled = vec![0f32; 3 * 64 * 64];
    for c in 0..3 {
        for y in 0..64 {
            for xx in 0..64 {
                let at =
                    |dy: usize, dx: usize| full[c * 128 * 128 + (2 * y + dy) * 128 + 2 * xx + dx];
                pooled[c * 64 * 64 + y * 64 + xx] =
                    (at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4.0;
            }
        }
    }
    let pooled = Tensor::from_shape(&[1, 3, 64, 64], &pooled).unwrap();
    let want = run(&graph.proto, &[pooled]).unwrap();
    let got = run(&smaller, &[x]).unwrap();
    assert_eq!(got[0].shape(), &[1, 1, 64, 64]);
    let diff = max_tensor_difference(&want[0], &got[0]);
    assert!(diff < 1e-5, "{diff}");
}

#[test]
fn graphs_the_passes_cannot_handle_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pruned.onnx");
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_edgemass-compress"))
            .args(args)
            .output()
            .unwrap()
    };
    let model = cached(DBNET);
    let model = model.to_str().unwrap();
    let o = cli(&[
        "prune-conv",
        "--model",
        model,
        "--keep",
        "0.5",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("is not fixed: give it with --input x="),
        "{err}"
    );
    assert!(!out.exists(), "nothing may be written on error");

    let o = cli(&[
        "prune-conv",
        "--model",
        model,
        "--keep",
        "1.5",
        "--input",
        "x=1,3,64,64",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("keep must be in (0, 1]"));

    let blazeface = cached("blazeface/face_detection_back_256x256_barracuda.onnx");
    let o = cli(&[
        "downscale",
        "--model",
        blazeface.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("downscale: input `input:0`"), "{err}");
    assert!(!out.exists());
}
