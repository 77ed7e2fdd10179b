//! The `edgemass-compress` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use edgemass_compress::graph::Graph;
use edgemass_compress::inspect::summarize;

#[derive(Parser)]
#[command(
    name = "edgemass-compress",
    version,
    about = "Compress ONNX teachers into students for edgemass"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show parameters, size, operators, inputs and outputs of an ONNX model.
    Inspect {
        /// The ONNX file.
        model: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect { model, json } => Graph::load(&model).map(|g| {
            let summary = summarize(&g);
            if json {
                summary.to_json().to_string()
            } else {
                summary.to_text()
            }
        }),
    };
    match result {
        Ok(text) => {
            println!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let e = anyhow::Error::from(e);
            eprintln!("edgemass-compress: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
