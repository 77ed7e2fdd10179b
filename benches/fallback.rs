//! Fallback benchmark: the agent's frames/s with no fallback configured, with `edgemass serve` up
//! as its host, and with the host killed (its port refusing connections) while every face is in
//! the band; then `edgemass serve` requests/s from 8 concurrent clients with dynamic batching
//! against without, on YOLOv8n-320 and a MiniLM-L6 text classifier. Prints a Markdown table.
//! Run with `cargo bench --bench fallback` (needs mosquitto, ffmpeg and the model cache).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use edgemass::config::{BreakerConfig, FallbackConfig};
use edgemass::fallback::client::HostClient;
use edgemass::fallback::protocol::{InferRequest, Tensor, Values};
use edgemass::text::TextTokenizer;
use edgemass::vision::preprocess::{input_values, load_image};
use edgemass_compress::bert::weights::{Linear, Param};
use edgemass_compress::bert::{BertConfig, Encoder, Pooling};
use edgemass_compress::package::{Provenance, TextClassifier};

use support::{MODEL, PIPELINE_SECONDS, cache, free_port, mosquitto, pipeline, root};

const CLIENTS: usize = 8;
/// Rounds of the three agent settings.
const ROUNDS: usize = 2;
const SERVE_SECONDS: u64 = 15;

/// `edgemass serve` on `repo`, killed when dropped.
struct Serve {
    child: Child,
    port: u16,
}

impl Serve {
    fn start(repo: &Path, args: &[&str]) -> Serve {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_edgemass"))
            .args(["serve", "--model-repository"])
            .arg(repo)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut serve = Serve { child, port };
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = serve.child.try_wait() {
                panic!("edgemass serve exited ({status}) before listening");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        serve
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A repository of one model: `DIR/repo-NAME/NAME/1/model.onnx` and its manifest.
fn repository(dir: &Path, name: &str, onnx: &Path, manifest: &Path) -> PathBuf {
    let repo = dir.join(format!("repo-{name}"));
    let version = repo.join(name).join("1");
    std::fs::create_dir_all(&version).unwrap();
    std::os::unix::fs::symlink(onnx, version.join("model.onnx")).unwrap();
    std::fs::copy(manifest, repo.join(name).join(format!("{name}.model.toml"))).unwrap();
    repo
}

/// A rotten/fresh package on the cached MiniLM-L6 encoder with an all-zero head: the same work
/// as a trained one.
fn text_package(dir: &Path) -> PathBuf {
    let minilm = cache().join("minilm-l6");
    let config = BertConfig::from_path(&minilm.join("config.json")).unwrap();
    let encoder = Encoder::from_safetensors(&minilm.join("model.safetensors"), config).unwrap();
    let head = Linear {
        weight: Param {
            shape: vec![2, 384],
            data: vec![0.0; 768],
        },
        bias: Param {
            shape: vec![2],
            data: vec![0.0; 2],
        },
    };
    TextClassifier {
        name: "minilm-l6-bench",
        description: "MiniLM-L6 with a zero head (benchmark only)".into(),
        model: &edgemass_compress::bert::onnx::classifier(&encoder, Pooling::Mean, &head),
        labels: vec!["rotten".into(), "fresh".into()],
        tokenizer: &minilm.join("tokenizer.json"),
        max_length: 128,
        provenance: Provenance::default(),
    }
    .write(&dir.join("text-package"))
    .unwrap()
}

/// Requests/s of `CLIENTS` clients each sending `request` back to back for `SERVE_SECONDS`.
fn requests_per_second(port: u16, model: &str, request: InferRequest) -> f64 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = FallbackConfig {
        url: format!("http://127.0.0.1:{port}"),
        token: None,
        ca_file: None,
        timeout: Duration::from_secs(60),
        max_in_flight: CLIENTS,
        rate_per_s: 1e9,
        burst: 1,
        breaker: BreakerConfig {
            failures: 1,
            open_for: Duration::from_secs(1),
            probes: 1,
        },
    };
    runtime.block_on(async {
        let client = Arc::new(HostClient::new(&config).unwrap());
        client.infer(model, None, &request).await.unwrap();
        let done = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + Duration::from_secs(SERVE_SECONDS);
        let request = Arc::new(request);
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (client, done, request) = (client.clone(), done.clone(), request.clone());
                let model = model.to_owned();
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        client.infer(&model, None, &request).await.unwrap();
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for client in clients {
            client.await.unwrap();
        }
        done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
    })
}

/// Requests/s without batching and with dynamic batching of up to 8 rows.
fn batching(repo: &Path, model: &str, request: &InferRequest) -> (f64, f64) {
    let alone = {
        let serve = Serve::start(repo, &["--max-batch", "1"]);
        requests_per_second(serve.port, model, request.clone())
    };
    let batched = {
        let serve = Serve::start(repo, &["--max-batch", "8", "--max-queue-delay-us", "2000"]);
        requests_per_second(serve.port, model, request.clone())
    };
    (alone, batched)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let video = support::video(d);
    let (mut broker, port) = mosquitto(d);
    let face_manifest = root().join(format!("models/{MODEL}.model.toml"));
    let face_repo = repository(
        d,
        MODEL,
        &cache().join("blazeface/face_detection_back_256x256_barracuda.onnx"),
        &face_manifest,
    );
    let camera = format!(
        "[camera.fallback]\nmodel = {:?}\nlow = 0.3\nhigh = 1.0\n",
        face_manifest.display().to_string()
    );

    // Interleaved rounds, so that load from elsewhere on the machine falls on every setting.
    let mut runs: [Vec<support::Run>; 3] = Default::default();
    for _ in 0..ROUNDS {
        runs[0].push(pipeline(d, &video, port, "", ""));
        let serve = Serve::start(&face_repo, &[]);
        let host = format!(
            "[fallback]\nurl = \"http://127.0.0.1:{}\"\nrate_per_s = 10.0",
            serve.port
        );
        runs[1].push(pipeline(d, &video, port, &host, &camera));
        drop(serve);
        runs[2].push(pipeline(d, &video, port, &host, &camera));
    }
    let _ = broker.kill();

    let yolo_manifest = root().join("models/yolov8n-320.model.toml");
    let yolo = edgemass::model::Manifest::from_path(&yolo_manifest).unwrap();
    let (data, shape, _) = input_values(
        &load_image(&cache().join("photos/bus.jpg")).unwrap(),
        &yolo.input,
    );
    let image_request = InferRequest {
        inputs: vec![Tensor {
            name: yolo.input.name.clone(),
            shape: shape.to_vec(),
            values: Values::Fp32(data),
        }],
        binary_outputs: true,
        ..InferRequest::default()
    };
    let yolo_repo = repository(d, "yolov8n-320", &yolo.file, &yolo_manifest);
    let (yolo_alone, yolo_batched) = batching(&yolo_repo, "yolov8n-320", &image_request);

    let package = text_package(d);
    let tokenizer =
        TextTokenizer::from_file(&package.parent().unwrap().join("tokenizer.json"), 128).unwrap();
    let text = "a quiet, moving film about a bus driver and the people he meets on the way";
    let batch = tokenizer.encode_batch(&[text]).unwrap();
    let column = |name: &str, values: &[i64]| Tensor {
        name: name.into(),
        shape: vec![1, batch.len],
        values: Values::Int64(values.to_vec()),
    };
    let text_request = InferRequest {
        inputs: vec![
            column("input_ids", &batch.ids),
            column("attention_mask", &batch.mask),
            column("token_type_ids", &batch.types),
        ],
        outputs: vec!["scores".into()],
        ..InferRequest::default()
    };
    let text_repo = repository(
        d,
        "minilm-l6-bench",
        &package.parent().unwrap().join("model.onnx"),
        &package,
    );
    let (text_alone, text_batched) = batching(&text_repo, "minilm-l6-bench", &text_request);

    let fps = |runs: &[support::Run]| runs.iter().map(|r| r.fps).sum::<f64>() / runs.len() as f64;
    let each = |runs: &[support::Run], f: &dyn Fn(&support::Run) -> String| {
        runs.iter().map(f).collect::<Vec<_>>().join(", ")
    };
    let rate = |r: &support::Run| format!("{:.1}", r.fps);
    let requests = |r: &support::Run| r.last["fallback"]["escalations"].to_string();
    let [none, up, killed] = &runs;
    println!("| measure | value |");
    println!("|---|---:|");
    println!(
        "| agent, {MODEL} on a 1280x720 video offered at 40 fps, no fallback (frames/s; runs {}) | {:.1} |",
        each(none, &rate),
        fps(none)
    );
    println!(
        "| same, every face in the band, `edgemass serve` up (frames/s; runs {}; requests {}) | {:.1} |",
        each(up, &rate),
        each(up, &requests),
        fps(up)
    );
    println!(
        "| same, host killed (frames/s; runs {}; requests {}; breaker {}) | {:.1} |",
        each(killed, &rate),
        each(killed, &requests),
        each(killed, &|r| r.last["fallback"]["breaker"].to_string()),
        fps(killed)
    );
    println!(
        "| host killed / no fallback | {:.0} % |",
        fps(killed) / fps(none) * 100.0
    );
    let last = |runs: &[support::Run]| -> (u64, f64) {
        let run = &runs[ROUNDS - 1];
        (run.dropped(), run.peak())
    };
    println!(
        "| frames dropped by the slot, last runs: no fallback / host up / host killed | {} / {} / {} |",
        last(none).0,
        last(up).0,
        last(killed).0
    );
    println!(
        "| agent peak RSS, last runs: no fallback / host up / host killed (MiB) | {:.0} / {:.0} / {:.0} |",
        last(none).1,
        last(up).1,
        last(killed).1
    );
    println!("| pipeline runs | {PIPELINE_SECONDS} s each |");
    for (name, alone, batched) in [
        ("yolov8n-320, bus.jpg", yolo_alone, yolo_batched),
        ("MiniLM-L6 classifier, one text", text_alone, text_batched),
    ] {
        println!("| serve {name}, {CLIENTS} clients, no batching (requests/s) | {alone:.1} |");
        println!(
            "| serve {name}, {CLIENTS} clients, dynamic batching ≤ 8, 2 ms delay (requests/s) | {batched:.1} |"
        );
        println!("| batching / none | {:.2}x |", batched / alone);
    }
}
