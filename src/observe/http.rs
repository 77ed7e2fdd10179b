//! The small HTTP listener: `/metrics` (Prometheus), `/healthz`, `/snapshot/CAMERA.jpg`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use super::stats::Registry;
use crate::vision::annotate;
use crate::vision::jpeg;

/// Serves on `listener` until `stop` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    labels: Arc<Vec<(String, Vec<String>)>>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!("http: serving /metrics, /healthz and /snapshot/CAMERA.jpg on {addr}");
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/snapshot/{file}", get(snapshot))
        .with_state((registry, labels));
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

type AppState = (Arc<Registry>, Arc<Vec<(String, Vec<String>)>>);

async fn metrics(State((registry, _)): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        registry.prometheus(),
    )
        .into_response()
}

async fn healthz(State((registry, _)): State<AppState>) -> Response {
    let connected = registry.publisher.connected.load(Ordering::Relaxed);
    let body = serde_json::json!({ "status": "ok", "mqtt_connected": connected, "uptime_s": registry.started.elapsed().as_secs() });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn snapshot(
    State((registry, labels)): State<AppState>,
    Path(file): Path<String>,
) -> Response {
    let Some(name) = file.strip_suffix(".jpg") else {
        return (StatusCode::NOT_FOUND, "expected /snapshot/CAMERA.jpg\n").into_response();
    };
    let Some(camera) = registry.cameras.iter().find(|c| c.name == name) else {
        return (StatusCode::NOT_FOUND, format!("no camera `{name}`\n")).into_response();
    };
    let latest = camera.worker.latest.lock().ok().and_then(|l| l.clone());
    let Some(latest) = latest else {
        return (
            StatusCode::NOT_FOUND,
            format!("camera `{name}` has no frame yet\n"),
        )
            .into_response();
    };
    let names = labels
        .iter()
        .find(|(c, _)| c == name)
        .map(|(_, l)| l.clone())
        .unwrap_or_default();
    let jpeg = tokio::task::spawn_blocking(move || {
        let mut image = latest.frame.clone();
        annotate::draw(&mut image, &latest.detections, &names);
        jpeg::encode(&image)
    })
    .await;
    match jpeg {
        Ok(Ok(bytes)) => ([(header::CONTENT_TYPE, "image/jpeg")], bytes).into_response(),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode snapshot\n",
        )
            .into_response(),
    }
}
