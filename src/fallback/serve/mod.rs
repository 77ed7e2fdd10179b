//! `edgemass serve`: a host of the Open Inference Protocol (KServe v2 REST) on tract, for sites
//! without a GPU and for tests. It reads a Triton-style model repository, builds each model's
//! plan once, batches requests that arrive together on each model's own inference thread, and
//! answers `/v2/health/live`, `/v2/health/ready`, `/v2/models/NAME[/versions/V]` (metadata and
//! `/ready`), `.../infer` (JSON or binary tensor data) and `/metrics`. Errors are JSON
//! `{"error": "..."}`: 400 for bad requests, 401 without the token, 404 for unknown models,
//! 413 for oversized bodies, 503 when a model's queue is full.

pub mod batcher;
pub mod config;
pub mod fuzz;
pub mod pbtxt;
pub mod repository;
pub mod request;
pub mod runner;
pub mod stats;
pub mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::protocol::{self, HEADER_LENGTH, InferResponse};
use crate::config::Secret;
use crate::model::ModelError;
use batcher::{Job, Policy, Queue};
use config::ModelConfig;
use repository::Defaults;
use runner::Runner;
use stats::ModelStats;

/// Errors that stop `edgemass serve` from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A repository file or directory could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// A model directory, `config.pbtxt` or manifest is not usable.
    #[error("{path}: {reason}")]
    Config {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The repository holds no model directory.
    #[error("model repository {path} holds no model (expected NAME/VERSION/model.onnx)")]
    Empty {
        /// The repository.
        path: PathBuf,
    },
    /// A model could not be loaded.
    #[error("model `{model}`: cannot load {path}")]
    Model {
        /// The model's name.
        model: String,
        /// The ONNX file.
        path: PathBuf,
        /// Why.
        source: ModelError,
    },
    /// The listener could not be bound.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// An inference thread could not be started.
    #[error("cannot start an inference thread")]
    Thread(#[source] std::io::Error),
}

/// How `edgemass serve` runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The model repository.
    pub repository: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest request body in bytes.
    pub max_body: usize,
    /// Batching of models described by a manifest.
    pub defaults: Defaults,
    /// Requests that may wait per model.
    pub queue: usize,
    /// Inference threads per model (tract matrix products).
    pub threads: usize,
    /// Bearer token every request but health checks must carry.
    pub token: Option<Secret>,
    /// HTTPS: PEM certificate chain and private key; `None` serves plain HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// The loaded models, ready to serve.
pub struct Models {
    runners: Vec<(Runner, String)>,
}

impl Models {
    /// Reads the repository and builds every model's plan (blocking: run it off the async
    /// workers).
    pub fn load(settings: &Settings) -> Result<Models, ServeError> {
        let mut runners = Vec::new();
        for entry in repository::scan(&settings.repository, settings.defaults)? {
            let name = entry.config.name.clone();
            let model_err = |source| ServeError::Model {
                model: name.clone(),
                path: entry.path.clone(),
                source,
            };
            let fallback = (entry.derived && entry.config.max_batch_size > 0)
                .then(|| (entry.config.unbatched(), entry.proto.clone()));
            let runner = match (
                Runner::load(entry.config, entry.proto, &entry.path),
                fallback,
            ) {
                (Ok(runner), _) => runner,
                (Err(e), Some((config, proto))) => {
                    tracing::warn!(
                        "model `{name}`: tract cannot plan it with a symbolic batch ({}); serving it with a batch of 1",
                        super::describe(&e)
                    );
                    Runner::load(config, proto, &entry.path).map_err(model_err)?
                }
                (Err(e), None) => return Err(model_err(e)),
            };
            tracing::info!(
                "model `{name}` version {} loaded: max_batch_size {}, {}",
                entry.version,
                runner.config().max_batch_size,
                match runner.config().batching {
                    Some(b) => format!(
                        "dynamic batching (max queue delay {} µs)",
                        b.max_queue_delay.as_micros()
                    ),
                    None => "no dynamic batching".to_owned(),
                }
            );
            runners.push((runner, entry.version));
        }
        Ok(Models { runners })
    }

    /// Names of the loaded models.
    pub fn names(&self) -> Vec<String> {
        self.runners
            .iter()
            .map(|(r, _)| r.config().name.clone())
            .collect()
    }
}

struct Served {
    config: ModelConfig,
    version: String,
    queue: Queue,
    stats: Arc<ModelStats>,
}

struct App {
    models: BTreeMap<String, Served>,
    token: Option<HeaderValue>,
    max_body: usize,
}

/// Serves `models` on `listener` until `stop` is cancelled.
pub async fn serve(
    settings: &Settings,
    models: Models,
    listener: tokio::net::TcpListener,
    stop: CancellationToken,
) -> Result<(), ServeError> {
    let mut served = BTreeMap::new();
    for (runner, version) in models.runners {
        let config = runner.config().clone();
        let stats = Arc::new(ModelStats::default());
        let policy = Policy {
            max_rows: match config.batching {
                Some(_) => config.max_batch_size.max(1),
                None => 1,
            },
            max_queue_delay: config
                .batching
                .map(|b| b.max_queue_delay)
                .unwrap_or_default(),
        };
        let queue = batcher::spawn(
            runner,
            policy,
            settings.queue,
            settings.threads,
            stats.clone(),
        )
        .map_err(ServeError::Thread)?;
        served.insert(
            config.name.clone(),
            Served {
                config,
                version,
                queue,
                stats,
            },
        );
    }
    let token = settings.token.as_ref().and_then(|t| {
        HeaderValue::from_str(&format!("Bearer {}", t.expose()))
            .ok()
            .map(|mut v| {
                v.set_sensitive(true);
                v
            })
    });
    let app = Arc::new(App {
        models: served,
        token,
        max_body: settings.max_body,
    });
    let guarded = Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/models/{name}", get(metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/infer", post(infer))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(metadata_version),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_ready_version),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(infer_version),
        )
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(app.clone(), authorize));
    let router = Router::new()
        .route(
            "/v2/health/live",
            get(|| async { json_response(StatusCode::OK, json!({"live": true})) }),
        )
        .route(
            "/v2/health/ready",
            get(|| async { json_response(StatusCode::OK, json!({"ready": true})) }),
        )
        .merge(guarded)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint".to_owned()) })
        .with_state(app);
    let addr = settings.listen;
    let listen_err = |source| ServeError::Listen { addr, source };
    let local = listener.local_addr().map_err(listen_err)?;
    match &settings.tls {
        Some((cert, key)) => {
            let listener = tls::listen(listener, tls::acceptor(cert, key)?).map_err(listen_err)?;
            tracing::info!("serving the Open Inference Protocol on https://{local}");
            axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        }
        None => {
            tracing::info!("serving the Open Inference Protocol on http://{local}");
            axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        }
    }
    .map_err(listen_err)
}

type Shared = State<Arc<App>>;

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A refused or failed request: its status and the `error` of its JSON body.
struct Reject {
    status: StatusCode,
    message: String,
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        json_response(self.status, json!({ "error": self.message }))
    }
}

fn error(status: StatusCode, message: String) -> Reject {
    Reject { status, message }
}

async fn authorize(State(app): Shared, request: Request, next: Next) -> Response {
    if let Some(token) = &app.token {
        let given = request.headers().get(header::AUTHORIZATION);
        if !given.is_some_and(|g| same(g.as_bytes(), token.as_bytes())) {
            return error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token".to_owned(),
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// Compares two byte strings in a time that depends only on their lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn server_metadata() -> Response {
    json_response(
        StatusCode::OK,
        json!({
            "name": "edgemass",
            "version": env!("CARGO_PKG_VERSION"),
            "extensions": ["binary_tensor_data"],
        }),
    )
}

/// The served model `name`, version `version` if given.
fn find<'a>(app: &'a App, name: &str, version: Option<&str>) -> Result<&'a Served, Reject> {
    let Some(served) = app.models.get(name) else {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!(
                "unknown model `{name}` (this host serves {:?})",
                app.models.keys().collect::<Vec<_>>()
            ),
        ));
    };
    match version {
        Some(v) if v != served.version => Err(error(
            StatusCode::NOT_FOUND,
            format!(
                "model `{name}` has no version `{v}` loaded (it serves version {})",
                served.version
            ),
        )),
        _ => Ok(served),
    }
}

async fn metadata(State(app): Shared, Path(name): Path<String>) -> Response {
    describe(&app, &name, None)
}

async fn metadata_version(
    State(app): Shared,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    describe(&app, &name, Some(&version))
}

fn describe(app: &App, name: &str, version: Option<&str>) -> Response {
    match find(app, name, version) {
        Ok(served) => json_response(
            StatusCode::OK,
            serde_json::to_value(served.config.metadata(&served.version)).unwrap_or_default(),
        ),
        Err(reject) => reject.into_response(),
    }
}

async fn model_ready(State(app): Shared, Path(name): Path<String>) -> Response {
    ready(&app, &name, None)
}

async fn model_ready_version(
    State(app): Shared,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    ready(&app, &name, Some(&version))
}

fn ready(app: &App, name: &str, version: Option<&str>) -> Response {
    match find(app, name, version) {
        Ok(_) => json_response(StatusCode::OK, json!({ "name": name, "ready": true })),
        Err(reject) => reject.into_response(),
    }
}

async fn metrics(State(app): Shared) -> Response {
    let rows = app
        .models
        .iter()
        .map(|(name, served)| (name.as_str(), served.stats.as_ref()));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        stats::prometheus(rows),
    )
        .into_response()
}

async fn infer(
    State(app): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run_infer(&app, &name, None, &headers, body).await
}

async fn infer_version(
    State(app): Shared,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run_infer(&app, &name, Some(&version), &headers, body).await
}

async fn run_infer(
    app: &App,
    name: &str,
    version: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let served = match find(app, name, version) {
        Ok(served) => served,
        Err(reject) => return reject.into_response(),
    };
    let started = tokio::time::Instant::now();
    served.stats.requests.fetch_add(1, Ordering::Relaxed);
    let result = answer(app, served, headers, body).await;
    match result {
        Ok(response) => {
            served.stats.successes.fetch_add(1, Ordering::Relaxed);
            served.stats.request.record(started.elapsed());
            response
        }
        Err(reject) => {
            served.stats.failures.fetch_add(1, Ordering::Relaxed);
            reject.into_response()
        }
    }
}

async fn answer(
    app: &App,
    served: &Served,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Reject> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {} bytes", app.max_body),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > app.max_body) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, app.max_body)
        .await
        .map_err(|e| {
            if e.into_inner()
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                too_large()
            } else {
                error(
                    StatusCode::BAD_REQUEST,
                    "cannot read the request body".to_owned(),
                )
            }
        })?;
    let request = request::read(
        &served.config,
        &bytes,
        headers.get(HEADER_LENGTH).map(HeaderValue::as_bytes),
    )
    .map_err(|message| error(StatusCode::BAD_REQUEST, message))?;
    let config = &served.config;
    let (reply, answer) = oneshot::channel();
    let job = Job {
        inputs: request.inputs,
        rows: request.rows,
        queued: tokio::time::Instant::now(),
        reply,
    };
    if served.queue.try_submit(job).is_err() {
        served.stats.queue_full.fetch_add(1, Ordering::Relaxed);
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("model `{}` has too many requests waiting", config.name),
        ));
    }
    let outputs = match answer.await {
        Ok(Ok(outputs)) => outputs,
        Ok(Err(e)) => {
            return Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("inference failed: {e}"),
            ));
        }
        Err(_) => {
            return Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the model stopped before answering".to_owned(),
            ));
        }
    };
    let outputs = outputs
        .into_iter()
        .filter(|t| request.outputs.is_empty() || request.outputs.contains(&t.name))
        .collect();
    let response = InferResponse {
        model_name: config.name.clone(),
        model_version: Some(served.version.clone()),
        id: request.id,
        outputs,
    };
    let body = protocol::encode_response(&response, request.binary_outputs);
    let mut http = Response::new(Body::from(body.bytes));
    let headers = http.headers_mut();
    match body.header_length {
        Some(length) => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(HEADER_LENGTH, HeaderValue::from(length));
        }
        None => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
    }
    Ok(http)
}
