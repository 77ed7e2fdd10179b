//! `import bert`: an ONNX encoder built from a safetensors checkpoint.

use std::path::{Path, PathBuf};

use edgemass_compress::bert;

/// What to import.
#[derive(clap::Subcommand)]
pub enum Import {
    /// A BERT, RoBERTa or ALBERT encoder from safetensors weights and its config.json.
    Bert(ImportBert),
}

#[derive(clap::Args)]
pub struct ImportBert {
    /// The safetensors checkpoint.
    #[arg(long)]
    weights: PathBuf,
    /// The model's config.json (default: beside the weights).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output directory: receives model.onnx and a copy of tokenizer.json when one is beside the
    /// weights.
    #[arg(long)]
    out: PathBuf,
    /// Sentence pooling (default: from pooling_config.json beside the weights, else mean).
    #[arg(long, value_enum)]
    pooling: Option<PoolingArg>,
    /// L2-normalise the sentence embedding (sentence-transformers' Normalize module).
    #[arg(long)]
    normalize: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PoolingArg {
    Mean,
    Cls,
}
/// Runs the command.
pub fn run(import: &Import) -> anyhow::Result<String> {
    match import {
        Import::Bert(args) => Ok(import_bert(args)?),
    }
}

fn import_bert(args: &ImportBert) -> Result<String, bert::BertError> {
    let dir = args.weights.parent().unwrap_or(Path::new("."));
    let config_path = args
        .config
        .clone()
        .unwrap_or_else(|| dir.join("config.json"));
    let config = bert::BertConfig::from_path(&config_path)?;
    let pooling = match args.pooling {
        Some(PoolingArg::Mean) => bert::Pooling::Mean,
        Some(PoolingArg::Cls) => bert::Pooling::Cls,
        None if dir.join("pooling_config.json").is_file() => {
            bert::pooling_from_config(&dir.join("pooling_config.json"))?
        }
        None => bert::Pooling::Mean,
    };
    let encoder = bert::Encoder::from_safetensors(&args.weights, config)?;
    let model = bert::onnx::to_onnx(
        &encoder,
        bert::Export {
            pooling,
            normalize: args.normalize,
            head: None,
        },
    );
    std::fs::create_dir_all(&args.out).map_err(|source| bert::BertError::Write {
        path: args.out.clone(),
        source,
    })?;
    let onnx = args.out.join("model.onnx");
    let bytes = bert::write_onnx(&model, &onnx)?;
    let tokenizer = dir.join("tokenizer.json");
    if tokenizer.is_file() {
        let copy = args.out.join("tokenizer.json");
        std::fs::copy(&tokenizer, &copy)
            .map_err(|source| bert::BertError::Write { path: copy, source })?;
    }
    let c = &encoder.config;
    Ok(format!(
        "{:?} encoder: {} layers, hidden {}, {} heads, {pooling:?} pooling{} -> {} ({bytes} bytes)",
        c.family,
        c.num_layers,
        c.hidden_size,
        c.num_heads,
        if args.normalize {
            ", L2-normalised"
        } else {
            ""
        },
        onnx.display()
    ))
}
