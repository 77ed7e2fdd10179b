//! The `edgemass-compress` command: parses the arguments, runs the subcommand (`cli/`) and turns
//! its result into output and an exit code.

mod cli;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "edgemass-compress",
    version,
    about = "Compress ONNX teachers into students for edgemass"
)]
struct Cli {
    #[command(subcommand)]
    command: cli::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = cli::run(cli.command);
    match result {
        Ok(text) => {
            // A closed pipe (`| head`) is not an error of ours.
            let _ = writeln!(std::io::stdout(), "{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edgemass-compress: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
