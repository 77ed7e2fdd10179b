//! The HTTP side of the Open Inference Protocol: readiness, model metadata and inference against
//! the host's REST endpoints, over HTTP/1.1 or HTTPS (rustls, ring provider) with an optional
//! bearer token. Every exchange runs under the configured timeout, connecting included.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::FallbackError;
use super::protocol::{self, HEADER_LENGTH, InferRequest, InferResponse, ModelMetadata};
use crate::config::FallbackConfig;

/// Largest answer read from the host.
const MAX_ANSWER: usize = 64 << 20;

/// How much of an error body goes into a message.
const ERROR_EXCERPT: usize = 200;

/// A client of one host.
#[derive(Clone)]
pub struct HostClient {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
    token: Option<HeaderValue>,
    timeout: Duration,
}

impl HostClient {
    /// Sets up the connection pool and TLS (the CA file, or else the system's roots).
    pub fn new(config: &FallbackConfig) -> Result<HostClient, FallbackError> {
        let mut roots = rustls::RootCertStore::empty();
        match &config.ca_file {
            Some(path) => {
                roots.add_parsable_certificates(read_pem(path)?);
            }
            None => {
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|source| FallbackError::Tls { source })?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(config.timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let token = match &config.token {
            Some(token) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| FallbackError::Token)?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(HostClient {
            http: Client::builder(TokioExecutor::new()).build(https),
            base: config.url.clone(),
            token,
            timeout: config.timeout,
        })
    }

    /// The host's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// `GET /v2/health/ready`: Ok when the host says it is ready.
    pub async fn ready(&self) -> Result<(), FallbackError> {
        self.exchange(Method::GET, "/v2/health/ready", None)
            .await
            .map(|_| ())
    }

    /// `GET /v2/models/NAME[/versions/V]`.
    pub async fn metadata(
        &self,
        model: &str,
        version: Option<&str>,
    ) -> Result<ModelMetadata, FallbackError> {
        let answer = self
            .exchange(Method::GET, &model_path(model, version), None)
            .await?;
        serde_json::from_slice(&answer.body).map_err(|source| FallbackError::Protocol {
            url: self.base.clone(),
            source: protocol::ProtocolError::Json { source },
        })
    }

    /// `POST /v2/models/NAME[/versions/V]/infer`, inputs as binary data.
    pub async fn infer(
        &self,
        model: &str,
        version: Option<&str>,
        request: &InferRequest,
    ) -> Result<InferResponse, FallbackError> {
        let body = protocol::encode_request(request, true);
        let path = format!("{}/infer", model_path(model, version));
        let answer = self.exchange(Method::POST, &path, Some(body)).await?;
        protocol::decode_response(&answer.body, answer.header_length).map_err(|source| {
            FallbackError::Protocol {
                url: self.base.clone(),
                source,
            }
        })
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<protocol::Body>,
    ) -> Result<Answer, FallbackError> {
        let url = self.base.clone();
        let exchange = async {
            let mut request = Request::builder()
                .method(method)
                .uri(format!("{}{path}", self.base));
            if let Some(token) = &self.token {
                request = request.header(AUTHORIZATION, token.clone());
            }
            let bytes = match body {
                Some(body) => {
                    if let Some(length) = body.header_length {
                        request = request
                            .header(HEADER_LENGTH, length)
                            .header(CONTENT_TYPE, "application/octet-stream");
                    } else {
                        request = request.header(CONTENT_TYPE, "application/json");
                    }
                    request = request.header(CONTENT_LENGTH, body.bytes.len());
                    Bytes::from(body.bytes)
                }
                None => Bytes::new(),
            };
            let request = request.body(Full::new(bytes)).map_err(connect(&url))?;
            let response = self.http.request(request).await.map_err(connect(&url))?;
            let status = response.status();
            let header_length = response
                .headers()
                .get(HEADER_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<usize>().ok());
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| FallbackError::Connect {
                    url: url.clone(),
                    source: e,
                })?
                .to_bytes();
            if status != StatusCode::OK {
                return Err(FallbackError::Status {
                    url: url.clone(),
                    status: status.as_u16(),
                    message: error_message(&body),
                });
            }
            Ok(Answer {
                body,
                header_length,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| FallbackError::Timeout {
                url: self.base.clone(),
                timeout: self.timeout,
            })?
    }
}

/// A successful answer's body.
struct Answer {
    body: Bytes,
    header_length: Option<usize>,
}

fn connect<E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    url: &str,
) -> impl FnOnce(E) -> FallbackError {
    let url = url.to_owned();
    move |e| FallbackError::Connect {
        url,
        source: e.into(),
    }
}

/// `/v2/models/NAME` or `/v2/models/NAME/versions/V`.
fn model_path(model: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("/v2/models/{model}/versions/{v}"),
        None => format!("/v2/models/{model}"),
    }
}

/// The `error` of a protocol error body, or the start of the body as text.
fn error_message(body: &[u8]) -> String {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body)
        && let Some(serde_json::Value::String(error)) = map.get("error")
    {
        return error.clone();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(ERROR_EXCERPT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None if text.is_empty() => "(empty body)".to_owned(),
        None => text.to_owned(),
    }
}

/// The certificates of a PEM bundle.
fn read_pem(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, FallbackError> {
    use rustls::pki_types::pem::PemObject;
    let bytes = std::fs::read(path).map_err(|source| FallbackError::CaFile {
        path: path.to_owned(),
        source,
    })?;
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(&bytes)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(FallbackError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_protocol() {
        assert_eq!(model_path("yolo", None), "/v2/models/yolo");
        assert_eq!(model_path("yolo", Some("3")), "/v2/models/yolo/versions/3");
    }

    #[test]
    fn error_bodies_give_their_message() {
        assert_eq!(
            error_message(br#"{"error":"unknown model"}"#),
            "unknown model"
        );
        assert_eq!(error_message(b"  oops \n"), "oops");
        assert_eq!(error_message(b""), "(empty body)");
        let long = "x".repeat(500);
        assert_eq!(
            error_message(long.as_bytes()).chars().count(),
            ERROR_EXCERPT + 1
        );
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        assert!(matches!(
            read_pem(&path),
            Err(FallbackError::NoCertificate { .. })
        ));
        let missing = dir.path().join("absent.pem");
        assert!(matches!(
            read_pem(&missing),
            Err(FallbackError::CaFile { .. })
        ));
    }
}
