//! `inspect`: what a model is made of — parameters, bytes, operator histogram, inputs, outputs.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::graph::{Graph, dims};

/// A model's structure in numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// File size in bytes.
    pub bytes: u64,
    /// Number of weight values in initializers.
    pub parameters: u64,
    /// Nodes per operator type.
    pub ops: BTreeMap<String, usize>,
    /// Graph inputs (initializers excluded) with their declared dimensions.
    pub inputs: Vec<(String, Vec<String>)>,
    /// Graph outputs with their declared dimensions.
    pub outputs: Vec<(String, Vec<String>)>,
    /// ONNX opset of the default domain.
    pub opset: i64,
}

/// Summarises a loaded graph.
pub fn summarize(model: &Graph) -> Summary {
    let graph = model.graph();
    let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let parameters = graph
        .initializer
        .iter()
        .map(|t| t.dims.iter().product::<i64>().max(0) as u64)
        .sum();
    let mut ops = BTreeMap::new();
    for node in &graph.node {
        *ops.entry(node.op_type.clone()).or_insert(0) += 1;
    }
    let opset = model
        .proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(0, |o| o.version);
    Summary {
        bytes: model.bytes,
        parameters,
        ops,
        inputs: graph
            .input
            .iter()
            .filter(|i| !initializers.contains(&i.name.as_str()))
            .map(|i| (i.name.clone(), dims(i)))
            .collect(),
        outputs: graph
            .output
            .iter()
            .map(|o| (o.name.clone(), dims(o)))
            .collect(),
        opset,
    }
}

impl Summary {
    /// The summary as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "bytes": self.bytes,
            "parameters": self.parameters,
            "opset": self.opset,
            "ops": self.ops,
            "inputs": self.inputs.iter().map(|(n, d)| json!({"name": n, "dims": d})).collect::<Vec<_>>(),
            "outputs": self.outputs.iter().map(|(n, d)| json!({"name": n, "dims": d})).collect::<Vec<_>>(),
        })
    }

    /// The summary as a human-readable report.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "bytes       {}\nparameters  {}\nopset       {}\nnodes       {}\n",
            self.bytes,
            self.parameters,
            self.opset,
            self.ops.values().sum::<usize>()
        );
        for (kind, list) in [("input ", &self.inputs), ("output", &self.outputs)] {
            for (name, dims) in list {
                out.push_str(&format!("{kind}      {name} [{}]\n", dims.join(", ")));
            }
        }
        let mut ops: Vec<_> = self.ops.iter().collect();
        ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        out.push_str("operators\n");
        for (op, n) in ops {
            out.push_str(&format!("  {op:<24} {n}\n"));
        }
        out
    }
}
