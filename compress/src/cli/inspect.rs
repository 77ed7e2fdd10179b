//! `inspect`: parameters, size, operators, MACs, a drawing and a profile of an ONNX model.

use std::path::{Path, PathBuf};

use edgemass_compress::onnx::graph::Graph;
use edgemass_compress::onnx::inspect::{self, InputShape};

/// Show parameters, size, operators, inputs, outputs and multiply-accumulates (MACs) of an ONNX
/// model.
#[derive(clap::Args)]
pub struct Args {
    /// The ONNX file.
    model: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Fix an input's shape for counting MACs, e.g. images=1,3,320,320 (repeatable; symbolic
    /// batch dims default to 1, other symbolic dims must be given).
    #[arg(long = "input", value_name = "NAME=D1,D2,...")]
    inputs: Vec<InputShape>,
    /// How many nodes to list by MACs.
    #[arg(long, default_value_t = 15)]
    top: usize,
    /// Draw the graph into FILE: Graphviz DOT, or SVG when FILE ends in .svg (needs
    /// graphviz's `dot` on PATH).
    #[arg(long, value_name = "FILE")]
    dot: Option<PathBuf>,
    /// Also time every node in tract over RUNS runs (one thread) and show where the time goes.
    #[arg(long, value_name = "RUNS", conflicts_with = "json")]
    profile: Option<usize>,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<String> {
    let Args {
        model,
        json,
        inputs,
        top,
        dot,
        profile,
    } = args;
    let text = inspect_model(&model, &inputs, top, dot.as_deref(), json)?;
    let Some(runs) = profile else {
        return Ok(text);
    };
    let p = edgemass_compress::onnx::profile::profile(&Graph::load(&model)?, &inputs, runs)?;
    Ok(format!("{text}{}", p.to_text(top)))
}

fn inspect_model(
    model: &Path,
    inputs: &[InputShape],
    top: usize,
    dot: Option<&Path>,
    json: bool,
) -> anyhow::Result<String> {
    let graph = Graph::load(model)?;
    let report = inspect::inspect(&graph, inputs)?;
    if let Some(path) = dot {
        let drawing = edgemass_compress::onnx::dot::to_dot(&graph, report.macs.as_ref().ok());
        edgemass_compress::onnx::dot::write(path, &drawing)?;
    }
    if json {
        return Ok(report.to_json(top).to_string());
    }
    let mut text = report.to_text(top);
    if let Some(path) = dot {
        text.push_str(&format!("drawing     {}\n", path.display()));
    }
    Ok(text)
}
