//! `edgemass serve`: the fallback host, a model repository served over the Open Inference
//! Protocol (KServe v2 REST).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use edgemass::config::Secret;
use edgemass::fallback::serve;
use tokio_util::sync::CancellationToken;

use super::{Usage, on_signal, runtime};

/// Environment variable holding the token `edgemass serve` requires.
const SERVE_TOKEN_ENV: &str = "EDGEMASS_SERVE_TOKEN";

/// `edgemass serve`: a model repository over the Open Inference Protocol.
#[derive(clap::Args)]
pub struct Args {
    /// Triton-style repository: NAME/VERSION/model.onnx, with NAME/config.pbtxt or one
    /// NAME/*.model.toml.
    #[arg(long, value_name = "DIR")]
    model_repository: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Models described by a manifest: most rows per batch (1 turns dynamic batching off).
    #[arg(long, default_value_t = 8)]
    max_batch: usize,
    /// Models described by a manifest: longest a request waits for others to join its batch.
    #[arg(long, default_value_t = 2000, value_name = "MICROSECONDS")]
    max_queue_delay_us: u64,
    /// Requests that may wait per model; more are answered 503.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// Largest request body, in MiB, answered 413 (a larger Content-Length before any of the
    /// body is read, a longer chunked body as soon as it passes the limit).
    #[arg(long, default_value_t = 64)]
    max_body_mib: usize,
    /// Inference threads per model (tract matrix products).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// File holding the bearer token every request but health checks must carry
    /// ($EDGEMASS_SERVE_TOKEN wins over it).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl Args {
    /// Serves the repository until SIGINT or SIGTERM.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if self.max_batch == 0 || self.queue == 0 || self.max_body_mib == 0 {
            return Err(
                Usage("--max-batch, --queue and --max-body-mib must be at least 1".into()).into(),
            );
        }
        if !(1..=64).contains(&self.threads) {
            return Err(Usage("--threads must be between 1 and 64".into()).into());
        }
        let token = match std::env::var(SERVE_TOKEN_ENV) {
            Ok(token) if !token.is_empty() => Some(Secret::new(token)),
            _ => match &self.token_file {
                Some(path) => match std::fs::read_to_string(path) {
                    Ok(text) if !text.trim().is_empty() => {
                        Some(Secret::new(text.trim_end_matches(['\n', '\r'])))
                    }
                    Ok(_) => {
                        return Err(Usage(format!("token file {} is empty", path.display())).into());
                    }
                    Err(e) => {
                        return Err(Usage(format!(
                            "cannot read token file {}: {e}",
                            path.display()
                        ))
                        .into());
                    }
                },
                None => None,
            },
        };
        let settings = serve::Settings {
            repository: self.model_repository,
            listen: self.listen,
            max_body: self.max_body_mib << 20,
            defaults: serve::repository::Defaults {
                max_batch: self.max_batch,
                max_queue_delay: Duration::from_micros(self.max_queue_delay_us),
            },
            queue: self.queue,
            threads: self.threads,
            token,
            tls: self.tls_cert.zip(self.tls_key),
        };
        let models = serve::Models::load(&settings)?;
        runtime()?.block_on(async {
            let listener = tokio::net::TcpListener::bind(settings.listen)
                .await
                .with_context(|| {
                    format!("cannot listen on {} (option `--listen`)", settings.listen)
                })?;
            let stop = CancellationToken::new();
            tokio::spawn(on_signal(stop.clone()));
            serve::serve(&settings, models, listener, stop).await?;
            anyhow::Ok(())
        })?;
        Ok(ExitCode::SUCCESS)
    }
}
