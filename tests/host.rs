//! Fallback hosts for tests: `edgemass serve` as a child process on a repository of real models,
//! a faulty host (slow, 500, garbage) on axum inside the test, and raw HTTP requests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing;
use edgemass::fallback::protocol::{self, InferResponse, Tensor, Values};

use crate::common::{cache, manifest, text_package};
use crate::mqtt::{free_port, wait_for};

/// A repository of BlazeFace (from its shipped manifest) and, with `text`, the test's
/// text-classify package; the ONNX files are symlinks into the cache.
pub fn repository(dir: &Path, text: bool) -> PathBuf {
    let repo = dir.join("repo");
    let mut models = vec![(
        "blazeface-256",
        cache().join("blazeface/face_detection_back_256x256_barracuda.onnx"),
        manifest("blazeface-256"),
    )];
    if text {
        let package = text_package();
        let onnx = package.parent().unwrap().join("model.onnx");
        models.push(("minilm-l6-anchors", onnx, package));
    }
    for (name, onnx, manifest) in models {
        let version = repo.join(name).join("1");
        std::fs::create_dir_all(&version).unwrap();
        std::os::unix::fs::symlink(onnx, version.join("model.onnx")).unwrap();
        std::fs::copy(
            &manifest,
            repo.join(name).join(manifest.file_name().unwrap()),
        )
        .unwrap();
    }
    repo
}

/// `edgemass serve` as a child process.
pub struct Serve {
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
}

impl Serve {
    /// Serves `repo` with `extra` arguments and waits until it is ready.
    pub fn start(repo: &Path, extra: &[&str], env: &[(&str, &str)]) -> Serve {
        let port = free_port();
        let mut args = vec![
            "serve".to_owned(),
            "--model-repository".to_owned(),
            repo.display().to_string(),
            "--listen".to_owned(),
            format!("127.0.0.1:{port}"),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let mut serve = Serve {
            child: None,
            port,
            args,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            log: repo.with_file_name(format!("serve-{port}.log")),
        };
        serve.restart();
        serve
    }

    /// Starts it again on the same port (after [`Serve::kill`]).
    pub fn restart(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_edgemass"))
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&self.log).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let (port, https) = (self.port, self.args.iter().any(|a| a == "--tls-cert"));
        assert!(
            wait_for(Duration::from_secs(180), || self
                .log()
                .contains("serving the Open Inference Protocol")
                && (https
                    || get(port, "/v2/health/ready")
                        .is_some_and(|(status, _)| status == 200))),
            "edgemass serve did not get ready: {}",
            self.log()
        );
    }

    /// Kills it (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP response: status, headers with lowercase names, body.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `error` of a protocol error body.
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// Sends raw request bytes on loopback and reads the whole response; `None` when nothing
/// listens.
pub fn exchange(port: u16, request: &[u8]) -> Option<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let _ = stream.write_all(request);
    parse(&read_all(&mut stream))
}

/// `POST path` with a chunked body of `total` zero bytes, written from a thread of its own so
/// that the answer is read even when the host answers before the body is done.
pub fn post_chunked(port: u16, path: &str, headers: &[(&str, String)], total: usize) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        const CHUNK: usize = 64 << 10;
        let chunk = [
            format!("{CHUNK:x}\r\n").as_bytes(),
            &[0; CHUNK][..],
            b"\r\n",
        ]
        .concat();
        let _ = writer.write_all(head.as_bytes());
        for _ in 0..total.div_ceil(CHUNK) {
            if writer.write_all(&chunk).is_err() {
                return;
            }
        }
        let _ = writer.write_all(b"0\r\n\r\n");
    });
    let response = parse(&read_all(&mut stream)).expect("the host answers");
    let _ = stream.shutdown(std::net::Shutdown::Both);
    sender.join().unwrap();
    response
}

/// What arrives until the peer closes, resets or stops sending.
fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = [0; 16 << 10];
    while let Ok(n @ 1..) = stream.read(&mut buf) {
        raw.extend_from_slice(&buf[..n]);
    }
    raw
}

fn parse(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(Response {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

/// `GET path`: status and body.
pub fn get(port: u16, path: &str) -> Option<(u16, Vec<u8>)> {
    exchange(
        port,
        format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes(),
    )
    .map(|r| (r.status, r.body))
}

/// `POST path` with `headers` and `body`.
pub fn post(port: u16, path: &str, headers: &[(&str, String)], body: &[u8]) -> Response {
    let mut request = format!(
        "POST {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    exchange(port, &bytes).expect("the host answers")
}

/// Posts an inference request, binary inputs when `binary`.
pub fn infer(
    port: u16,
    model: &str,
    request: &protocol::InferRequest,
    binary: bool,
    extra: &[(&str, String)],
) -> Response {
    let body = protocol::encode_request(request, binary);
    let mut headers = extra.to_vec();
    if let Some(length) = body.header_length {
        headers.push((protocol::HEADER_LENGTH, length.to_string()));
    }
    post(
        port,
        &format!("/v2/models/{model}/infer"),
        &headers,
        &body.bytes,
    )
}

/// What the faulty host does with inference requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// A valid BlazeFace answer that finds no face.
    Answer,
    /// The same answer after 5 s, longer than the agent waits.
    Slow,
    /// 500 with an error body.
    Fail,
    /// 200 with a body that is not the protocol.
    Garbage,
}

/// A host that passes the agent's readiness check for BlazeFace, then answers as told.
pub struct FaultyHost {
    pub port: u16,
    mode: Arc<AtomicU8>,
    _runtime: tokio::runtime::Runtime,
}

/// The metadata `edgemass serve` gives for BlazeFace.
const BLAZEFACE_METADATA: &str = r#"{"name":"blazeface-256","versions":["1"],"platform":"onnxruntime_onnx",
"inputs":[{"name":"input:0","datatype":"FP32","shape":[1,256,256,3]}],
"outputs":[{"name":"Identity:0","datatype":"FP32","shape":[1,512,1]},{"name":"Identity_1:0","datatype":"FP32","shape":[1,384,1]},
{"name":"Identity_2:0","datatype":"FP32","shape":[1,512,16]},{"name":"Identity_3:0","datatype":"FP32","shape":[1,384,16]}]}"#;

impl FaultyHost {
    pub fn start(mode: Mode) -> FaultyHost {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(mode as u8));
        let now = mode.clone();
        let app = Router::new()
            .route(
                "/v2/health/ready",
                routing::get(|| async { "{\"ready\":true}" }),
            )
            .route(
                "/v2/models/blazeface-256",
                routing::get(|| async { BLAZEFACE_METADATA }),
            )
            .route(
                "/v2/models/blazeface-256/infer",
                routing::post(move |_body: axum::body::Bytes| {
                    let mode = now.load(Ordering::Relaxed);
                    async move { answer(mode).await }
                }),
            );
        runtime.spawn(async move { axum::serve(listener, app).await });
        FaultyHost {
            port,
            mode,
            _runtime: runtime,
        }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

async fn answer(mode: u8) -> (axum::http::StatusCode, Vec<u8>) {
    use axum::http::StatusCode;
    if mode == Mode::Fail as u8 {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            br#"{"error":"out of GPU memory"}"#.to_vec(),
        );
    }
    if mode == Mode::Garbage as u8 {
        return (StatusCode::OK, b"<html>proxy error</html>".to_vec());
    }
    if mode == Mode::Slow as u8 {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let tensor = |name: &str, shape: Vec<usize>, value: f32| Tensor {
        name: name.into(),
        values: Values::Fp32(vec![value; shape.iter().product()]),
        shape,
    };
    let response = InferResponse {
        model_name: "blazeface-256".into(),
        model_version: Some("1".into()),
        id: None,
        outputs: vec![
            tensor("Identity:0", vec![1, 512, 1], -10.0),
            tensor("Identity_1:0", vec![1, 384, 1], -10.0),
            tensor("Identity_2:0", vec![1, 512, 16], 0.0),
            tensor("Identity_3:0", vec![1, 384, 16], 0.0),
        ],
    };
    (
        StatusCode::OK,
        protocol::encode_response(&response, false).bytes,
    )
}
