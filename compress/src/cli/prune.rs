//! `prune`: the least important structures of a model removed, by its family: layers, attention
//! heads and feed-forward neurons of a text-classify package; convolution channels of a
//! detection package or an ONNX file.

use std::path::PathBuf;

use clap::Parser;
use edgemass_compress::onnx::graph::Graph;
use edgemass_compress::onnx::inspect::{InputShape, short};
use edgemass_compress::passes::prune::{bert, conv};

use super::family::{Family, Flags, Form, Raw, dispatch};
use super::write_onnx;

/// `prune` on a text-classify package.
#[derive(Parser)]
pub struct Text {
    /// The package manifest to prune (NAME.model.toml).
    #[arg(long)]
    model: PathBuf,
    /// Package directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Package (model) name.
    #[arg(long, default_value = "pruned")]
    name: String,
    #[command(flatten)]
    plan: bert::Plan,
}

/// `prune` on a detection package or an ONNX file (`prune-conv`).
#[derive(Parser)]
pub struct Conv {
    /// A detection package manifest (NAME.model.toml) or an ONNX file.
    #[arg(long)]
    model: PathBuf,
    /// Package directory to write (for a manifest), or the ONNX file to write.
    #[arg(long)]
    out: PathBuf,
    /// Package (model) name.
    #[arg(long, default_value = "pruned")]
    name: String,
    #[command(flatten)]
    plan: conv::Plan,
    /// Input shape for the analysis, e.g. x=1,3,960,960 (default: a package's input size, or
    /// the file's fixed dims).
    #[arg(long = "input", value_name = "NAME=D1,D2,...")]
    inputs: Vec<InputShape>,
}

/// Runs `prune` with the flags of the model's family.
pub fn run(raw: Raw) -> anyhow::Result<String> {
    dispatch(
        &raw,
        "prune",
        "model",
        &[
            Form::of::<Text>(&[Family::Text], "text-classify packages"),
            Form::of::<Conv>(
                &[Family::Detect, Family::Onnx],
                "detection packages and ONNX files",
            ),
        ],
    )
}

impl Flags for Text {
    fn run(self) -> anyhow::Result<String> {
        let manifest = bert::prune_package(&self.model, &self.plan, &self.out, &self.name)?;
        Ok(format!(
            "pruned {}\nwrote {}",
            self.plan,
            manifest.display()
        ))
    }
}

impl Flags for Conv {
    fn run(self) -> anyhow::Result<String> {
        let plan = &self.plan;
        let (pruned, wrote) = if self.model.extension().is_some_and(|e| e == "onnx") {
            let graph = Graph::load(&self.model)?;
            let pruned = conv::prune(&graph.proto, &self.inputs, plan)?;
            write_onnx(&self.out, &pruned.model)?;
            (pruned, self.out.clone())
        } else {
            conv::prune_package(&self.model, &self.inputs, plan, &self.out, &self.name)?
        };
        let (before, after) = pruned.channels();
        let (macs_before, macs_after) = pruned.macs;
        Ok(format!(
            "pruned {plan}: {} groups, channels {before} -> {after}, MACs {} -> {} ({:.1}x fewer), {} \
         groups fixed\nwrote {}",
            pruned.groups.len(),
            short(macs_before),
            short(macs_after),
            macs_before as f64 / macs_after.max(1) as f64,
            pruned.fixed.len(),
            wrote.display()
        ))
    }
}
