//! Graphviz drawings of ONNX graphs: a box per node (operator, name, constant shapes, MACs),
//! edges labelled with tensor shapes, written as DOT or rendered to SVG by Graphviz's `dot`.

use std::collections::HashMap;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::onnx::graph::{Graph, dims};
use crate::onnx::inspect::{Macs, node_name, shape_text, short};

/// Errors while writing a drawing.
#[derive(Debug, thiserror::Error)]
pub enum DotError {
    /// The file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// SVG was asked for but Graphviz is not installed.
    #[error(
        "rendering {path} needs Graphviz's `dot` on PATH: install graphviz, or give a .dot file"
    )]
    NoGraphviz {
        /// The SVG file asked for.
        path: PathBuf,
    },
    /// Graphviz failed.
    #[error("graphviz `dot` could not render {path}: {reason}")]
    Render {
        /// The SVG file asked for.
        path: PathBuf,
        /// What `dot` said.
        reason: String,
    },
}

/// The graph as DOT.
///
/// Graph inputs and outputs are ellipses `i0…`, `o0…`; node `k` of the file is the box `nk`,
/// labelled with its operator, name, the shapes of the initializers it reads (initializers are
/// not drawn) and its MACs when `macs` (counted on this graph) has them. Edges carry the shapes
/// tract inferred, else the shapes the file declares.
pub fn to_dot(graph: &Graph, macs: Option<&Macs>) -> String {
    let g = graph.graph();
    let initializers: HashMap<&str, Vec<usize>> = g
        .initializer
        .iter()
        .map(|t| {
            let dims = t.dims.iter().map(|&d| d.max(0) as usize).collect();
            (t.name.as_str(), dims)
        })
        .collect();
    let declared: HashMap<&str, String> = g
        .input
        .iter()
        .chain(&g.output)
        .chain(&g.value_info)
        .map(|v| (v.name.as_str(), dims(v).join("×")))
        .filter(|(_, d)| !d.is_empty())
        .collect();
    let shape = |tensor: &str| {
        macs.and_then(|m| m.shapes.get(tensor))
            .map(|d| shape_text(d))
            .or_else(|| declared.get(tensor).cloned())
    };

    let mut out = String::from(
        "digraph model {\n  rankdir=TB;\n  \
         node [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=10];\n  \
         edge [fontname=\"Helvetica\", fontsize=9];\n",
    );
    let mut producer: HashMap<&str, String> = HashMap::new();
    let inputs = g
        .input
        .iter()
        .filter(|i| !initializers.contains_key(i.name.as_str()));
    for (k, input) in inputs.enumerate() {
        out.push_str(&format!(
            "  i{k} [shape=ellipse, label={}];\n",
            quote(&[&input.name])
        ));
        producer.insert(&input.name, format!("i{k}"));
    }
    for (i, node) in g.node.iter().enumerate() {
        let mut label = vec![node.op_type.clone(), node_name(node, i)];
        let consts: Vec<String> = node
            .input
            .iter()
            .filter_map(|t| initializers.get(t.as_str()))
            .map(|d| shape_text(d))
            .collect();
        if !consts.is_empty() {
            label.push(format!("consts {}", consts.join(", ")));
        }
        if let Some(n) = macs.and_then(|m| m.nodes.get(i)).filter(|n| n.macs > 0) {
            label.push(format!("{}MAC", short(n.macs)));
        }
        out.push_str(&format!("  n{i} [label={}];\n", quote(&label)));
        for output in node.output.iter().filter(|o| !o.is_empty()) {
            producer.insert(output, format!("n{i}"));
        }
    }
    for (k, output) in g.output.iter().enumerate() {
        out.push_str(&format!(
            "  o{k} [shape=ellipse, label={}];\n",
            quote(&[&output.name])
        ));
    }

    let mut edge = |from: &str, to: &str, tensor: &str| {
        let label = shape(tensor).map_or(String::new(), |s| format!(" [label={}]", quote(&[s])));
        out.push_str(&format!("  {from} -> {to}{label};\n"));
    };
    for (i, node) in g.node.iter().enumerate() {
        for tensor in &node.input {
            if let Some(from) = producer.get(tensor.as_str()) {
                edge(from, &format!("n{i}"), tensor);
            }
        }
    }
    for (k, output) in g.output.iter().enumerate() {
        if let Some(from) = producer.get(output.name.as_str()) {
            edge(from, &format!("o{k}"), &output.name);
        }
    }
    out.push_str("}\n");
    out
}

/// A DOT string whose lines are `lines`.
fn quote<S: AsRef<str>>(lines: &[S]) -> String {
    let escaped: Vec<String> = lines
        .iter()
        .map(|l| {
            l.as_ref()
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', " ")
        })
        .collect();
    format!("\"{}\"", escaped.join("\\n"))
}

/// Writes `dot` to `path`, or the SVG Graphviz renders from it when `path` ends in `.svg`.
pub fn write(path: &Path, dot: &str) -> Result<(), DotError> {
    let write_error = |source| DotError::Write {
        path: path.to_owned(),
        source,
    };
    let svg = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    if !svg {
        return crate::write_atomic(path, dot.as_bytes()).map_err(write_error);
    }
    let mut source = tempfile::NamedTempFile::new().map_err(write_error)?;
    source.write_all(dot.as_bytes()).map_err(write_error)?;
    let output = Command::new("dot")
        .arg("-Tsvg")
        .arg("-o")
        .arg(path)
        .arg(source.path())
        .output();
    let render_error = |reason: String| DotError::Render {
        path: path.to_owned(),
        reason,
    };
    match output {
        Err(e) if e.kind() == ErrorKind::NotFound => Err(DotError::NoGraphviz {
            path: path.to_owned(),
        }),
        Err(e) => Err(render_error(e.to_string())),
        Ok(o) if !o.status.success() => {
            let stderr = String::from_utf8_lossy(&o.stderr);
            let first = stderr.lines().find(|l| !l.trim().is_empty());
            Err(render_error(
                first.map_or_else(|| o.status.to_string(), str::to_owned),
            ))
        }
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::pb;

    fn value(name: &str) -> pb::ValueInfoProto {
        pb::ValueInfoProto {
            name: name.into(),
            ..Default::default()
        }
    }

    /// `x → Conv(w) → Relu → y`, with `w` an initializer.
    fn tiny() -> Graph {
        let node = |op: &str, name: &str, inputs: &[&str], output: &str| pb::NodeProto {
            op_type: op.into(),
            name: name.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        };
        Graph {
            proto: pb::ModelProto {
                graph: Some(pb::GraphProto {
                    node: vec![
                        node("Conv", "conv \"1\"", &["x", "w"], "h"),
                        node("Relu", "", &["h"], "y"),
                    ],
                    initializer: vec![pb::TensorProto {
                        name: "w".into(),
                        dims: vec![8, 3, 3, 3],
                        ..Default::default()
                    }],
                    input: vec![value("x")],
                    output: vec![value("y")],
                    ..Default::default()
                }),
                ..Default::default()
            },
            bytes: 0,
        }
    }

    #[test]
    fn initializers_are_summarised_in_the_label_not_drawn() {
        let dot = to_dot(&tiny(), None);
        assert!(dot.starts_with("digraph model {\n"), "{dot}");
        assert!(dot.ends_with("}\n"), "{dot}");
        assert!(
            dot.contains(r#"  n0 [label="Conv\nconv \"1\"\nconsts 8×3×3×3"];"#),
            "{dot}"
        );
        assert!(dot.contains(r#"  n1 [label="Relu\ny"];"#), "{dot}");
        for edge in ["i0 -> n0;", "n0 -> n1;", "n1 -> o0;"] {
            assert!(dot.contains(edge), "{edge} missing from {dot}");
        }
        assert!(!dot.contains("\"w\""), "{dot}");
    }

    #[test]
    fn labels_escape_quotes_and_backslashes() {
        assert_eq!(quote(&["a\"b", "c\\d"]), r#""a\"b\nc\\d""#);
    }
}
