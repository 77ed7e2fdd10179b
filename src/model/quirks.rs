//! Rewrites of a loaded ONNX graph for known tract import quirks. They act on the in-memory
//! protobuf; the file on disk is never touched, so its hash still matches the manifest.

use tract_onnx::pb::{
    self, AttributeProto, ModelProto, TensorProto, attribute_proto::AttributeType,
};

/// Applies every fix and returns a line per node it changed, for the debug log.
pub fn apply(model: &mut ModelProto) -> Vec<String> {
    let mut changed = Vec::new();
    if let Some(graph) = model.graph.as_mut() {
        for node in &mut graph.node {
            if constant_of_shape_value(node) {
                changed.push(format!(
                    "ConstantOfShape `{}`: explicit f32 zero value",
                    node.name
                ));
            }
        }
    }
    changed
}

/// tract types a `ConstantOfShape` without `value` as f64 while ONNX says f32 (seen in the
/// BlazeFace files); give it an explicit f32 zero.
fn constant_of_shape_value(node: &mut pb::NodeProto) -> bool {
    if node.op_type != "ConstantOfShape" || node.attribute.iter().any(|a| a.name == "value") {
        return false;
    }
    node.attribute.push(AttributeProto {
        name: "value".into(),
        r#type: AttributeType::Tensor as i32,
        t: Some(TensorProto {
            dims: vec![1],
            data_type: pb::tensor_proto::DataType::Float as i32,
            float_data: vec![0.0],
            ..Default::default()
        }),
        ..Default::default()
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_of_shape_gets_an_f32_zero_once() {
        let node = pb::NodeProto {
            op_type: "ConstantOfShape".into(),
            ..Default::default()
        };
        let mut model = ModelProto {
            graph: Some(pb::GraphProto {
                node: vec![node],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(apply(&mut model).len(), 1);
        assert!(apply(&mut model).is_empty());
        let value = &model.graph.unwrap().node[0].attribute[0];
        let tensor = value.t.as_ref().unwrap();
        assert_eq!(tensor.data_type, pb::tensor_proto::DataType::Float as i32);
        assert_eq!(tensor.float_data, [0.0]);
    }
}
