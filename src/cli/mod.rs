//! The `edgemass` subcommands, one file each: its arguments and the body that runs it.

pub mod bench;
pub mod check_config;
pub mod classify;
pub mod detect;
pub mod run;
pub mod serve;
pub mod tensor;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use edgemass::model::{Options, Precision, RuntimeSetting};
use tokio_util::sync::CancellationToken;

/// The command line.
#[derive(Parser)]
#[command(
    name = "edgemass",
    version = VERSION,
    about = "Run compressed vision and text models on small boards"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand.
#[derive(Subcommand)]
pub enum Command {
    /// Run the agent: sources → detections → MQTT events, counts, snapshots and stats.
    Run(run::Args),
    /// Validate a configuration file (with environment overrides) and print what it resolves to.
    CheckConfig(check_config::Args),
    /// Print the commented default configuration.
    PrintConfig,
    /// Detect objects in images with a model package.
    Detect(detect::Args),
    /// Classify texts with a text model package (task `text-classify`).
    Classify(classify::Args),
    /// Measure load time, latency, frames/s and peak memory of a model.
    Bench(bench::Args),
    /// Serve a model repository over the Open Inference Protocol (KServe v2 REST), as the agent's
    /// fallback host.
    Serve(serve::Args),
    /// Write the exact input tensor a model gets for an image, as .npy, to replay it elsewhere.
    Tensor(tensor::Args),
}

/// A mistake in the arguments, answered with exit code 64 like a bad configuration.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// `--version`: the release, the target it was built for, its features and git revision.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("EDGEMASS_TARGET"),
    "; features: ",
    env!("EDGEMASS_FEATURES"),
    "; git ",
    env!("EDGEMASS_GIT_REV"),
    ")"
);

/// An error chain on one line.
pub fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// How `detect` and `bench` load an image model.
#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// Float or int8 form of the model (auto: measured against each other with --runtime auto;
    /// with --runtime tract, int8 when the package has it and the CPU has dot-product
    /// instructions).
    #[arg(long, value_enum, default_value_t = Precision::Auto)]
    precision: Precision,
    /// What runs the model (auto: tract and onnxruntime are measured at load time and the fastest
    /// that agrees with tract's float outputs is kept).
    #[arg(long, value_enum, default_value_t = RuntimeSetting::Auto)]
    runtime: RuntimeSetting,
    /// onnxruntime's shared library (default: $EDGEMASS_ONNXRUNTIME, the model cache, then
    /// python3's onnxruntime package).
    #[arg(long, value_name = "FILE")]
    onnxruntime: Option<PathBuf>,
}

impl LoadArgs {
    /// The load options for `threads` inference threads.
    pub fn options(&self, threads: usize) -> Options {
        Options {
            runtime: self.runtime,
            precision: self.precision,
            library: self.onnxruntime.clone(),
            threads,
        }
    }
}

/// `v` rounded to `digits` decimals, for JSON output.
pub fn round(v: f32, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v as f64 * f).round() / f
}

/// The async runtime of `run` and `serve`: two workers, inference stays on its own threads.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
pub async fn on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot listen for signals");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    shutdown.cancel();
}
