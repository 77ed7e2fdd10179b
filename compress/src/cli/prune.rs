//! `prune`: the least important structures of a model removed, by its family: layers, attention
//! heads and feed-forward neurons of a text-classify package; convolution channels of a
//! detection package or an ONNX file.

use std::path::PathBuf;

use clap::Parser;
use edgemass_compress::onnx::graph::Graph;
use edgemass_compress::onnx::inspect::{InputShape, short};
use edgemass_compress::passes::prune::{bert, conv};

use super::family::{Family, FamilyHelp, Raw, without_model};
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
    let Some(model) = raw.flag("model") else {
        return without_model(
            &raw,
            "prune",
            "model",
            vec![
                FamilyHelp::of::<Text>("text-classify packages"),
                FamilyHelp::of::<Conv>("detection packages and ONNX files"),
            ],
        );
    };
    match Family::of(&model)? {
        Family::Text => prune_text(&raw.parse("prune")),
        Family::Detect | Family::Onnx => prune_conv(&raw.parse("prune")),
    }
}

fn prune_text(args: &Text) -> anyhow::Result<String> {
    let manifest = bert::prune_package(&args.model, &args.plan, &args.out, &args.name)?;
    Ok(format!(
        "pruned {}\nwrote {}",
        args.plan,
        manifest.display()
    ))
}

/// Runs `prune` on a detection package or an ONNX file.
pub fn prune_conv(args: &Conv) -> anyhow::Result<String> {
    let plan = &args.plan;
    let (pruned, wrote) = if args.model.extension().is_some_and(|e| e == "onnx") {
        let graph = Graph::load(&args.model)?;
        let pruned = conv::prune(&graph.proto, &args.inputs, plan)?;
        write_onnx(&args.out, &pruned.model)?;
        (pruned, args.out.clone())
    } else {
        conv::prune_package(&args.model, &args.inputs, plan, &args.out, &args.name)?
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
