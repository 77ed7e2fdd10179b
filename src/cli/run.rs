//! `edgemass run`: the agent, from its configuration until SIGINT or SIGTERM has drained it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use edgemass::config::Config;
use tokio_util::sync::CancellationToken;

use super::{Usage, on_signal, runtime};

/// `edgemass run`: sources → detections → MQTT events, counts, snapshots and stats.
#[derive(clap::Args)]
pub struct Args {
    /// The agent configuration (see `edgemass print-config`).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Seconds to drain queues and flush the outbox at shutdown.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    grace: f64,
}

impl Args {
    /// Runs the agent on `config` (read from `self.config`) until it is told to stop.
    pub fn run(self, config: Config) -> anyhow::Result<ExitCode> {
        if !(self.grace.is_finite() && self.grace >= 0.0) {
            return Err(Usage("--grace must be a number of seconds >= 0".into()).into());
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let summary = runtime()?.block_on(async {
            let shutdown = CancellationToken::new();
            tokio::spawn(on_signal(shutdown.clone()));
            edgemass::pipeline::run(config, shutdown, Duration::from_secs_f64(self.grace)).await
        })?;
        tracing::info!(
            events = summary.events,
            acked = summary.acked,
            pending = summary.pending,
            "stopped: {} event(s) produced, {} acknowledged, {} left in the outbox",
            summary.events,
            summary.acked,
            summary.pending
        );
        Ok(ExitCode::SUCCESS)
    }
}
