//! The GPU-host fallback: results the edge model is unsure about (scores in a source's band) go
//! to a host running the full-size teacher over the Open Inference Protocol (KServe v2 REST), so
//! the host can be NVIDIA Triton, KServe or `edgemass serve`. Requests never hold up the
//! pipeline: they are refused at once when too many are out, when the rate budget is spent or
//! when the circuit breaker is open, and each one has a timeout. `serve` is the project's own
//! host of the same protocol on tract.

pub mod breaker;
pub mod budget;
pub mod check;
pub mod client;
pub mod host;
pub mod protocol;
pub mod serve;
pub mod stats;
pub mod text;
pub mod vision;

use std::path::PathBuf;
use std::time::Duration;

use crate::vision::decode::DecodeError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors talking to the host or making sense of its answers. None holds the bearer token.
#[derive(Debug, thiserror::Error)]
pub enum FallbackError {
    /// The CA bundle could not be read.
    #[error("cannot read CA file {path}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The CA bundle holds no usable certificate.
    #[error("CA file {path} holds no certificate")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// TLS could not be set up.
    #[error("cannot set up TLS")]
    Tls {
        /// What rustls reported.
        source: rustls::Error,
    },
    /// The bearer token cannot go into an HTTP header.
    #[error("the fallback token holds characters an HTTP header cannot carry")]
    Token,
    /// The connection failed or broke.
    #[error("cannot reach the host at {url}")]
    Connect {
        /// The host's base URL.
        url: String,
        /// What the HTTP client reported.
        source: BoxError,
    },
    /// The host took too long.
    #[error("the host at {url} gave no answer within {} ms", .timeout.as_millis())]
    Timeout {
        /// The host's base URL.
        url: String,
        /// The time allowed.
        timeout: Duration,
    },
    /// The host answered with an error status.
    #[error("the host at {url} answered {status}: {message}")]
    Status {
        /// The host's base URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// The error the host gave, or the start of its body.
        message: String,
    },
    /// The host's answer does not follow the protocol.
    #[error("the host at {url} sent a malformed answer")]
    Protocol {
        /// The host's base URL.
        url: String,
        /// What is wrong with it.
        source: protocol::ProtocolError,
    },
    /// The host model's inputs or outputs are not what its manifest says.
    #[error("host model `{model}` does not fit {manifest}: {reason}")]
    Mismatch {
        /// The model's name on the host.
        model: String,
        /// The manifest it was checked against.
        manifest: PathBuf,
        /// What differs.
        reason: String,
    },
    /// The manifest of the host's model could not be loaded.
    #[error("cannot load the host model's manifest {path}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// Why.
        source: BoxError,
    },
    /// A request could not be made from the input.
    #[error("cannot make a request for host model `{model}`")]
    Build {
        /// The model's name on the host.
        model: String,
        /// Why.
        source: BoxError,
    },
    /// The host's outputs do not fit the manifest's decoder.
    #[error("the answer of host model `{model}` does not fit its decoder")]
    Decode {
        /// The model's name on the host.
        model: String,
        /// What did not fit.
        source: DecodeError,
    },
    /// The host's answer lacks what the manifest says it gives.
    #[error("the answer of host model `{model}` {reason}")]
    Answer {
        /// The model's name on the host.
        model: String,
        /// What is missing or wrong.
        reason: String,
    },
}

impl FallbackError {
    /// A failure to load the manifest at `path`.
    fn manifest<E: Into<BoxError>>(path: &std::path::Path) -> impl FnOnce(E) -> FallbackError {
        let path = path.to_owned();
        move |e| FallbackError::Manifest {
            path,
            source: e.into(),
        }
    }

    /// Whether this error means the host is misconfigured for this agent (a fit or manifest
    /// problem) rather than unreachable or slow.
    pub fn is_mismatch(&self) -> bool {
        matches!(
            self,
            FallbackError::Mismatch { .. } | FallbackError::Manifest { .. }
        )
    }
}

/// An error and its sources on one line, `outer: inner: ...`.
pub fn describe(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        line.push_str(": ");
        line.push_str(&e.to_string());
        source = e.source();
    }
    line
}
