//! The `edgemass-compress` subcommands, one file each: its arguments and the body that runs it.

mod distill;
mod downscale;
mod eval;
mod export_triton;
mod family;
mod import;
mod inspect;
mod prune;
mod quantize;
mod render_text;
mod run;
mod train_text;
mod tune_decoder;

use std::path::Path;

use clap::Subcommand;

use family::{Flags, Raw};

/// Every subcommand. `prune`, `distill`, `quantize` and `eval` serve both families and read the
/// family from the model; the family-named verbs of earlier releases stay as hidden aliases.
#[derive(Subcommand)]
pub enum Command {
    /// Show parameters, size, operators, inputs, outputs and multiply-accumulates (MACs) of an
    /// ONNX model.
    Inspect(inspect::Args),
    /// Build an ONNX model from a checkpoint in another format.
    #[command(subcommand)]
    Import(import::Import),
    /// Train a Rotten Tomatoes sentiment classifier on a BERT-family checkpoint and write a
    /// text-classify package.
    TrainText(train_text::TrainText),
    /// Draw lines of real words with real fonts onto photos: text detection images whose true
    /// boxes are known exactly (JPEGs and labels.jsonl).
    RenderText(render_text::RenderText),
    /// Remove the least important structures: layers, attention heads and feed-forward neurons of
    /// a text-classify package; convolution channels (with everything tied to them) of a
    /// detection package or an ONNX file.
    #[command(disable_help_flag = true)]
    Prune(Raw),
    /// Run a fully convolutional detector (DBNet) at 1/FACTOR of its input resolution inside:
    /// pooling folded into the first convolution, upsampling into the last transposed one.
    Downscale(downscale::Downscale),
    /// Train a student package to imitate its teacher (knowledge distillation, candle): a
    /// text-classify student on texts, a detection student on its teacher's probability maps
    /// over rendered-text images.
    #[command(disable_help_flag = true)]
    Distill(Raw),
    /// Fit a DBNet package's binarisation threshold and unclip ratio to its own maps on a
    /// rendered-text set (best mAP@0.5), and write them into its manifest.
    TuneDecoder(tune_decoder::TuneDecoder),
    /// Store weights as int8 and check the outputs against the float model in tract: an ONNX file
    /// or a text-classify package (optionally with integer MatMuls), or a detection package with
    /// activation ranges calibrated on images.
    #[command(disable_help_flag = true)]
    Quantize(Raw),
    /// Score a package on what it never saw: a text-classify package on held-out reviews or
    /// human-rated texts, a detection package on a rendered-text set (mAP@0.5) and against its
    /// teacher's boxes.
    #[command(disable_help_flag = true)]
    Eval(Raw),
    /// Write a package as a Triton model repository (NAME/1/model.onnx and NAME/config.pbtxt),
    /// for a GPU host running Triton or for `edgemass serve`.
    ExportTriton(export_triton::ExportTriton),
    /// Run a recipe: prune, distill and quantize a teacher, measuring every step into report.md.
    Run(run::Run),
    /// `prune` on a detection package or an ONNX file.
    #[command(hide = true)]
    PruneConv(prune::Conv),
    /// `distill` of a detection student.
    #[command(hide = true)]
    DistillDetect(distill::Detect),
    /// `quantize` of a detection package.
    #[command(hide = true)]
    QuantizeDetect(quantize::Detect),
    /// `eval` of a text-classify package.
    #[command(hide = true)]
    EvalText(eval::EvalText),
    /// `eval` of a detection package.
    #[command(hide = true)]
    EvalDetect(eval::EvalDetect),
}

/// Runs `command`; the text it returns is printed on stdout.
pub fn run(command: Command) -> anyhow::Result<String> {
    match command {
        Command::Inspect(args) => inspect::run(args),
        Command::Import(import) => import::run(&import),
        Command::TrainText(args) => train_text::run(&args),
        Command::RenderText(args) => render_text::run(&args),
        Command::Prune(raw) => prune::run(raw),
        Command::Downscale(args) => downscale::run(&args),
        Command::Distill(raw) => distill::run(raw),
        Command::TuneDecoder(args) => tune_decoder::run(&args),
        Command::Quantize(raw) => quantize::run(raw),
        Command::Eval(raw) => eval::run(raw),
        Command::ExportTriton(args) => export_triton::run(&args),
        Command::Run(args) => run::run(args),
        Command::PruneConv(args) => args.run(),
        Command::DistillDetect(args) => args.run(),
        Command::QuantizeDetect(args) => args.run(),
        Command::EvalText(args) => args.run(),
        Command::EvalDetect(args) => args.run(),
    }
}

pub(crate) fn parse_size(s: &str) -> Result<(u32, u32), String> {
    s.split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .ok_or_else(|| format!("`{s}` is not WIDTHxHEIGHT"))
}

pub(crate) fn parse_range<T: std::str::FromStr>(s: &str) -> Result<(T, T), String> {
    s.split_once("..")
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .ok_or_else(|| format!("`{s}` is not MIN..MAX"))
}

/// Writes `model` to `path` whole or not at all.
pub(crate) fn write_onnx(path: &Path, model: &tract_onnx::pb::ModelProto) -> anyhow::Result<()> {
    edgemass_compress::write_atomic(path, &prost::Message::encode_to_vec(model))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}
