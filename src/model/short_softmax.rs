//! tract 0.23 pays a fixed cost per softmax row (three kernel calls, or a strided view when the
//! axis is not the last), which swamps the arithmetic when rows are short. YOLOv8's DFL head takes
//! 33,600 softmaxes of 16 values per frame: 13.7 of the 22.5 ms a pruned YOLOv8n-320 spends in
//! tract. Before optimisation, softmaxes over at most [`SHORT_ROW`] values are rewritten as
//! max-reduce, subtract, exp, sum-reduce, divide, which tract runs as a few whole-tensor passes;
//! longer rows (attention over 64 tokens) keep tract's own kernel, which is faster there.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::math;
use tract_onnx::tract_core::ops::nn::{Reduce, Reducer, Softmax, SoftmaxKind};

/// The longest row that is split.
pub const SHORT_ROW: usize = 32;

/// Types and optimises `model` like `into_optimized`, with short softmaxes split first.
pub fn into_optimized(model: InferenceModel) -> TractResult<TypedModel> {
    let mut typed = model.into_typed()?;
    split(&mut typed)?;
    typed.into_optimized()
}

/// Rewrites every float softmax of `model` over at most [`SHORT_ROW`] values; returns how many.
pub fn split(model: &mut TypedModel) -> TractResult<usize> {
    let mut short = Vec::new();
    for node in model.nodes() {
        let Some(op) = node.op_as::<Softmax>() else {
            continue;
        };
        let fact = model.outlet_fact(node.inputs[0])?;
        let row = fact
            .shape
            .as_concrete()
            .map(|dims| -> usize { op.axes.iter().map(|&a| dims[a]).product() });
        if op.kind == SoftmaxKind::Softmax
            && op.quant_output_dt.is_none()
            && fact.datum_type == f32::datum_type()
            && row.is_some_and(|r| r <= SHORT_ROW)
        {
            short.push((node.id, op.axes.clone()));
        }
    }
    for (id, mut axes) in short.iter().cloned() {
        axes.sort_unstable();
        let node = model.node(id);
        let name = &node.name;
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, node.inputs[0])?;
        let reduce = |reducer| Reduce {
            axes: axes.clone(),
            reducer,
        };
        let max = patch.wire_node(format!("{name}.max"), reduce(Reducer::Max), &[x])?[0];
        let shifted = patch.wire_node(format!("{name}.shifted"), math::sub(), &[x, max])?[0];
        let exp = patch.wire_node(format!("{name}.exp"), math::exp(), &[shifted])?[0];
        let sum = patch.wire_node(format!("{name}.sum"), reduce(Reducer::Sum), &[exp])?[0];
        let out = patch.wire_node(format!("{name}.div"), math::div(), &[exp, sum])?[0];
        patch.shunt_outside(model, id.into(), out)?;
        patch.apply(model)?;
    }
    Ok(short.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn softmax_model(shape: &[usize], axis: usize) -> TypedModel {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact(shape)).unwrap();
        let op = Softmax::new(tvec![axis], None, SoftmaxKind::Softmax);
        let y = model.wire_node("softmax", op, &[x]).unwrap();
        model.select_output_outlets(&y).unwrap();
        model
    }

    /// Optimises `model`, checks whether a Softmax op is left in the plan, and runs it.
    fn run(model: TypedModel, input: &Tensor) -> (bool, Tensor) {
        let optimized = model.into_optimized().unwrap();
        let kept = optimized.nodes().iter().any(|n| n.op_is::<Softmax>());
        let plan = optimized.into_runnable().unwrap();
        let out = plan.run(tvec![input.clone().into()]).unwrap();
        (kept, out[0].clone().into_tensor())
    }

    #[test]
    fn a_short_softmax_on_an_inner_axis_is_split_and_gives_the_same_values() {
        let shape = [1, 16, 4, 30];
        let values: Vec<f32> = (0..1920)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let input = Tensor::from_shape(&shape, &values).unwrap();
        let (kept, reference) = run(softmax_model(&shape, 1), &input);
        assert!(kept);
        let mut split_model = softmax_model(&shape, 1);
        assert_eq!(split(&mut split_model).unwrap(), 1);
        let (kept, split_out) = run(split_model, &input);
        assert!(!kept);
        reference
            .close_enough(
                &split_out,
                tract_onnx::tract_core::internal::Approximation::Close,
            )
            .unwrap();
        let sums = split_out
            .to_plain_array_view::<f32>()
            .unwrap()
            .sum_axis(tract_ndarray::Axis(1));
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5), "{sums:?}");
    }

    #[test]
    fn a_long_softmax_keeps_tracts_kernel() {
        let mut model = softmax_model(&[1, 12, 64, 64], 3);
        assert_eq!(split(&mut model).unwrap(), 0);
        assert_eq!(
            model
                .nodes()
                .iter()
                .filter(|n| n.op_is::<Softmax>())
                .count(),
            1
        );
    }
}
