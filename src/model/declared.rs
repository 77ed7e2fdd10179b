//! What an ONNX graph declares before tract sees it: its real inputs (initializers aside) and
//! their dimensions, so a mismatch can be reported in the caller's terms.

use tract_onnx::pb;

/// One declared dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A symbolic size with a name, e.g. `batch`.
    Named(String),
    /// Neither.
    Unknown,
}

impl Dim {
    /// The size, when fixed.
    pub fn fixed(&self) -> Option<usize> {
        match self {
            Dim::Fixed(n) => Some(*n),
            _ => None,
        }
    }
}

/// The graph's inputs that are not initializers, in order.
pub fn inputs(graph: &pb::GraphProto) -> Vec<&pb::ValueInfoProto> {
    let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    graph
        .input
        .iter()
        .filter(|i| !initializers.contains(&i.name.as_str()))
        .collect()
}

/// The declared dimensions of a tensor value; `None` when it declares no shape.
pub fn dims(value: &pb::ValueInfoProto) -> Option<Vec<Dim>> {
    use pb::tensor_shape_proto::dimension::Value;
    let Some(pb::type_proto::Value::TensorType(tensor)) = value.r#type.as_ref()?.value.as_ref()
    else {
        return None;
    };
    Some(
        tensor
            .shape
            .as_ref()?
            .dim
            .iter()
            .map(|d| match &d.value {
                Some(Value::DimValue(v)) if *v > 0 => Dim::Fixed(*v as usize),
                Some(Value::DimParam(p)) if !p.is_empty() => Dim::Named(p.clone()),
                _ => Dim::Unknown,
            })
            .collect(),
    )
}

/// The ONNX element type of a tensor value.
pub fn elem_type(value: &pb::ValueInfoProto) -> Option<i32> {
    let pb::type_proto::Value::TensorType(tensor) = value.r#type.as_ref()?.value.as_ref()?;
    Some(tensor.elem_type)
}
