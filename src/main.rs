//! The `edgemass` command: parses arguments, sets up logging and maps errors to exit codes.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use edgemass::bench::{Latency, peak_rss};
use edgemass::config::{Config, LogConfig, LogFormat};
use edgemass::model::threads::with_threads;
use edgemass::model::{Manifest, Options, Precision, RuntimeSetting, npy};
use edgemass::text::TextClassifier;
use edgemass::vision::annotate;
use edgemass::vision::detector::Detector;
use edgemass::vision::preprocess::load_image;
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "edgemass",
    version = VERSION,
    about = "Run compressed vision and text models on small boards"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent: sources → detections → MQTT events, counts, snapshots and stats.
    Run {
        /// The agent configuration (see `edgemass print-config`).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Seconds to drain queues and flush the outbox at shutdown.
        #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
        grace: f64,
    },
    /// Validate a configuration file (with environment overrides) and print what it resolves to.
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
    },
    /// Print the commented default configuration.
    PrintConfig,
    /// Detect objects in images with a model package.
    Detect {
        /// The model manifest (NAME.model.toml).
        #[arg(long, value_name = "MANIFEST")]
        model: PathBuf,
        /// Images to read (JPEG or PNG).
        #[arg(long, value_name = "FILE", num_args = 1.., required = true)]
        image: Vec<PathBuf>,
        /// One JSON object per detection and line instead of a table.
        #[arg(long)]
        json: bool,
        /// Write the images with boxes drawn: a file for one image, a directory for several.
        #[arg(long, value_name = "OUT")]
        annotate: Option<PathBuf>,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Classify texts with a text model package (task `text-classify`).
    Classify {
        /// The model manifest (NAME.model.toml).
        #[arg(long, value_name = "MANIFEST")]
        model: PathBuf,
        /// One JSON object per text and line instead of `LABEL SCORE  TEXT`; `latency_ms` is the
        /// time taken by the batch the text was classified in.
        #[arg(long)]
        json: bool,
        /// Texts to classify; `-` alone reads one text per non-empty line of stdin. Put `--`
        /// before texts that start with `-`.
        #[arg(value_name = "TEXT", required = true)]
        texts: Vec<String>,
    },
    /// Measure load time, latency, frames/s and peak memory of a model.
    Bench {
        /// The model manifest (NAME.model.toml).
        #[arg(long, value_name = "MANIFEST")]
        model: PathBuf,
        /// Image to run on (default: a mid-grey frame of the input size).
        #[arg(long, value_name = "FILE")]
        image: Option<PathBuf>,
        /// Text models: a file of texts, one per line; each of the first RUNS is timed alone,
        /// then all of them in batches of --batch.
        #[arg(long, value_name = "FILE")]
        texts: Option<PathBuf>,
        /// Text models: texts per batch in the batched pass.
        #[arg(long, default_value_t = 16)]
        batch: usize,
        /// Timed runs.
        #[arg(long, default_value_t = 30)]
        runs: usize,
        /// Untimed warm-up runs.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Inference threads (tract matrix products).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Image models: what runs the model and in which form.
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Serve a model repository over the Open Inference Protocol (KServe v2 REST), as the agent's
    /// fallback host.
    Serve(ServeArgs),
    /// Write the exact input tensor a model gets for an image, as .npy, to replay it elsewhere.
    Tensor {
        /// The model manifest (NAME.model.toml).
        #[arg(long, value_name = "MANIFEST")]
        model: PathBuf,
        /// The image.
        #[arg(long, value_name = "FILE")]
        image: PathBuf,
        /// Output .npy file.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
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

/// Environment variable holding the token `edgemass serve` requires.
const SERVE_TOKEN_ENV: &str = "EDGEMASS_SERVE_TOKEN";

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

/// Exit code of a bad configuration (sysexits `EX_USAGE`).
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = LogConfig {
        format: LogFormat::Text,
        level: "warn".into(),
    };
    let result = match cli.command {
        Command::Run { config, grace } => return run(&config, grace),
        Command::CheckConfig { file } => return check_config(&file),
        Command::PrintConfig => {
            print!("{}", edgemass::config::DEFAULT);
            return ExitCode::SUCCESS;
        }
        Command::Detect {
            model,
            image,
            json,
            annotate,
            load,
        } => {
            init_logging(&quiet);
            detect(&model, &load.options(1), &image, json, annotate.as_deref())
        }
        Command::Classify { model, json, texts } => {
            init_logging(&quiet);
            classify(&model, &texts, json)
        }
        Command::Bench {
            model,
            image,
            texts,
            batch,
            runs,
            warmup,
            json,
            threads,
            load,
        } => {
            init_logging(&quiet);
            let timing = Timing {
                runs,
                warmup,
                threads,
                json,
            };
            with_threads(threads, "bench", || match texts {
                Some(texts) => bench_text(&model, &texts, batch, &timing),
                None => bench(&model, &load.options(threads), image.as_deref(), &timing),
            })
        }
        Command::Tensor { model, image, out } => tensor(&model, &image, &out),
        Command::Serve(args) => return serve(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => fail(&e, ExitCode::FAILURE),
    }
}

/// Prints an error chain on one line and returns `code`.
fn fail(e: &anyhow::Error, code: ExitCode) -> ExitCode {
    eprintln!("edgemass: error: {}", one_line(e));
    code
}

fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// How `detect` and `bench` load an image model.
#[derive(clap::Args, Debug)]
struct LoadArgs {
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
    fn options(&self, threads: usize) -> Options {
        Options {
            runtime: self.runtime,
            precision: self.precision,
            library: self.onnxruntime.clone(),
            threads,
        }
    }
}

fn load_detector(manifest: &Path, options: &Options) -> anyhow::Result<Detector> {
    let detector = Detector::load(Manifest::from_path(manifest)?, options)?;
    tracing::info!(
        "model {} on {}",
        detector.model().manifest().name,
        detector.model().choice()
    );
    Ok(detector)
}

fn detect(
    manifest: &Path,
    options: &Options,
    images: &[PathBuf],
    json: bool,
    annotate_to: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let detector = load_detector(manifest, options)?;
    let labels = detector.labels();
    let name = &detector.model().manifest().name;
    let annotate_dir = match annotate_to {
        Some(out) if images.len() > 1 || out.is_dir() => {
            std::fs::create_dir_all(out)
                .with_context(|| format!("cannot create directory {}", out.display()))?;
            true
        }
        _ => false,
    };
    let mut failed = 0;
    let mut stdout = std::io::stdout().lock();
    for path in images {
        let found = load_image(path)
            .map_err(anyhow::Error::from)
            .and_then(|image| {
                let (w, h) = image.dimensions();
                let found = detector.detect(&image)?;
                if let Some(out) = annotate_to {
                    let target = if annotate_dir {
                        out.join(path.file_name().unwrap_or_default())
                    } else {
                        out.to_owned()
                    };
                    let mut image = image;
                    annotate::draw(&mut image, &found.detections, labels);
                    image
                        .save(&target)
                        .with_context(|| format!("cannot write {}", target.display()))?;
                }
                Ok((format!(" ({w}x{h})"), found))
            });
        let (size, found) = match found {
            Ok(ok) => ok,
            Err(e) => {
                eprintln!("edgemass: error: {}", one_line(&e));
                failed += 1;
                continue;
            }
        };
        if json {
            for d in &found.detections {
                let mut line = json!({
                    "image": path.display().to_string(),
                    "label": labels[d.class],
                    "score": round(d.score, 4),
                    "box": d.bbox.to_array().map(|v| round(v, 1)),
                });
                if !d.keypoints.is_empty() {
                    line["keypoints"] = json!(
                        d.keypoints
                            .iter()
                            .map(|p| p.map(|v| round(v, 1)))
                            .collect::<Vec<_>>()
                    );
                }
                writeln!(stdout, "{line}")?;
            }
        } else {
            writeln!(
                stdout,
                "{}{size}: {} detection(s) by {name} (preprocess {:.1} ms, inference {:.1} ms, decode {:.1} ms)",
                path.display(),
                found.detections.len(),
                found.preprocess.as_secs_f64() * 1e3,
                found.inference.as_secs_f64() * 1e3,
                found.decode.as_secs_f64() * 1e3,
            )?;
            for d in &found.detections {
                let [x1, y1, x2, y2] = d.bbox.to_array();
                writeln!(
                    stdout,
                    "  {:<20} {:.2}  [{x1:.0}, {y1:.0}, {x2:.0}, {y2:.0}]",
                    labels[d.class], d.score
                )?;
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} image(s) could not be processed",
            images.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Texts classified per model run.
const TEXT_BATCH: usize = 16;

fn classify(manifest: &Path, texts: &[String], json: bool) -> anyhow::Result<ExitCode> {
    let from_stdin = matches!(texts, [only] if only == "-");
    if !from_stdin {
        if texts.iter().any(|t| t == "-") {
            bail!("`-` (read texts from stdin) must be the only TEXT");
        }
        if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
            bail!("text {} is empty", i + 1);
        }
    }
    let classifier = TextClassifier::from_manifest_path(manifest)?;
    let mut stdout = std::io::stdout().lock();
    if !from_stdin {
        for chunk in texts.chunks(TEXT_BATCH) {
            write_classified(&classifier, chunk, json, &mut stdout)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut batch = Vec::with_capacity(TEXT_BATCH);
    for (i, line) in std::io::stdin().lock().split(b'\n').enumerate() {
        let line = line.context("cannot read stdin")?;
        let Ok(text) = String::from_utf8(line) else {
            write_classified(&classifier, &batch, json, &mut stdout)?;
            bail!("stdin line {} is not valid UTF-8", i + 1);
        };
        let text = text.strip_suffix('\r').unwrap_or(&text);
        if text.trim().is_empty() {
            continue;
        }
        batch.push(text.to_owned());
        if batch.len() == TEXT_BATCH {
            write_classified(&classifier, &batch, json, &mut stdout)?;
            batch.clear();
        }
    }
    write_classified(&classifier, &batch, json, &mut stdout)?;
    Ok(ExitCode::SUCCESS)
}

/// Times a text classifier on the texts of `file`: one at a time, then in batches.
fn bench_text(
    manifest: &Path,
    file: &Path,
    batch: usize,
    timing: &Timing,
) -> anyhow::Result<ExitCode> {
    let &Timing {
        runs,
        warmup,
        threads,
        json,
    } = timing;
    if runs == 0 || batch == 0 {
        bail!("--runs and --batch must be at least 1");
    }
    let body = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read texts from {}", file.display()))?;
    let texts: Vec<&str> = body.lines().filter(|l| !l.trim().is_empty()).collect();
    if texts.is_empty() {
        bail!("{} holds no texts", file.display());
    }
    let started = Instant::now();
    let classifier = TextClassifier::from_manifest_path(manifest)?;
    let load = started.elapsed();
    for text in texts.iter().cycle().take(warmup) {
        classifier.classify(&[text])?;
    }
    let mut single = Vec::with_capacity(runs);
    for text in texts.iter().cycle().take(runs) {
        let t = Instant::now();
        classifier.classify(&[text])?;
        single.push(t.elapsed());
    }
    let t = Instant::now();
    let mut batches = Vec::new();
    for chunk in texts.chunks(batch) {
        let b = Instant::now();
        classifier.classify(chunk)?;
        batches.push(b.elapsed());
    }
    let batched_per_s = texts.len() as f64 / t.elapsed().as_secs_f64();
    let (Some(one), Some(many)) = (Latency::of(&single), Latency::of(&batches)) else {
        bail!("no runs were timed");
    };
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let name = &classifier.manifest().name;
    if json {
        println!(
            "{}",
            json!({
                "model": name, "texts": texts.len(), "runs": runs, "threads": threads, "batch": batch,
                "load_ms": ms(load), "single_p50_ms": ms(one.p50), "single_p95_ms": ms(one.p95),
                "single_per_s": one.per_second(), "batch_p50_ms": ms(many.p50),
                "batched_per_s": batched_per_s, "peak_rss_mib": peak_rss().map(|b| b as f64 / 1048576.0),
            })
        );
    } else {
        println!("model {name}, {} texts, {threads} thread(s)", texts.len());
        println!("| pass | p50 ms | p95 ms | texts/s |");
        println!("|---|---:|---:|---:|");
        println!(
            "| one text at a time ({runs} runs) | {:.2} | {:.2} | {:.1} |",
            ms(one.p50),
            ms(one.p95),
            one.per_second()
        );
        println!(
            "| batches of {batch} | {:.2} | {:.2} | {batched_per_s:.1} |",
            ms(many.p50),
            ms(many.p95)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Classifies one batch and writes a line per text.
fn write_classified(
    classifier: &TextClassifier,
    texts: &[String],
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let started = Instant::now();
    let results = classifier.classify(&refs)?;
    let latency_ms = (started.elapsed().as_secs_f64() * 1e5).round() / 100.0;
    let manifest = classifier.manifest();
    let width = manifest.labels.iter().map(|l| l.chars().count()).max();
    for (text, result) in texts.iter().zip(&results) {
        if json {
            let scores: serde_json::Map<String, serde_json::Value> = result
                .scores
                .iter()
                .map(|(label, p)| (label.clone(), json!(round(*p, 4))))
                .collect();
            let line = json!({
                "text": text,
                "label": result.label,
                "score": round(result.score, 4),
                "scores": scores,
                "truncated": result.truncated,
                "model": manifest.name,
                "latency_ms": latency_ms,
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(
                out,
                "{:<w$} {:.3}  {}",
                result.label,
                result.score,
                text.replace(['\n', '\r'], " "),
                w = width.unwrap_or(0)
            )?;
        }
    }
    Ok(())
}

fn round(v: f32, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v as f64 * f).round() / f
}

/// How `bench` times a model and prints the result.
struct Timing {
    runs: usize,
    warmup: usize,
    threads: usize,
    json: bool,
}

fn bench(
    manifest: &Path,
    options: &Options,
    image: Option<&Path>,
    timing: &Timing,
) -> anyhow::Result<ExitCode> {
    let &Timing {
        runs,
        warmup,
        threads,
        json,
    } = timing;
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let started = Instant::now();
    let detector = load_detector(manifest, options)?;
    let load = started.elapsed();
    let choice = detector.model().choice();
    let m = detector.model().manifest();
    let frame = match image {
        Some(path) => load_image(path)?,
        None => {
            image::RgbImage::from_pixel(m.input.width, m.input.height, image::Rgb([128, 128, 128]))
        }
    };
    let (tensor, _) = detector.prepare(&frame);
    for _ in 0..warmup {
        detector.model().run(tensor.clone())?;
    }
    let mut inference = Vec::with_capacity(runs);
    let mut end_to_end = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let found = detector.detect(&frame)?;
        end_to_end.push(t.elapsed());
        inference.push(found.inference);
    }
    let (Some(infer), Some(total)) = (Latency::of(&inference), Latency::of(&end_to_end)) else {
        bail!("no runs were timed");
    };
    let rss_mib = peak_rss().map(|b| b as f64 / (1024.0 * 1024.0));
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    if json {
        println!(
            "{}",
            json!({
                "model": m.name, "runtime": choice.runtime, "precision": choice.precision.name(),
                "input": [m.input.width, m.input.height],
                "measured": choice.candidates.iter().map(|c| json!({
                    "runtime": c.runtime, "precision": c.precision.name(),
                    "ms": ms(c.time), "deviation": c.deviation, "tolerance": c.tolerance,
                })).collect::<Vec<_>>(),
                "runs": runs, "threads": threads,
                "load_ms": ms(load), "inference_p50_ms": ms(infer.p50), "inference_p95_ms": ms(infer.p95),
                "end_to_end_p50_ms": ms(total.p50), "end_to_end_p95_ms": ms(total.p95),
                "frames_per_s": total.per_second(), "peak_rss_mib": rss_mib,
            })
        );
    } else {
        println!(
            "model {} ({}x{}) on {choice}; {runs} runs after {warmup} warm-up, {threads} thread(s)",
            m.name, m.input.width, m.input.height
        );
        println!("| stage | p50 ms | p95 ms |");
        println!("|---|---:|---:|");
        println!(
            "| load (and measuring the runtimes), plan and first run | {:.1} | |",
            ms(load)
        );
        println!(
            "| inference | {:.2} | {:.2} |",
            ms(infer.p50),
            ms(infer.p95)
        );
        println!(
            "| image → detections | {:.2} | {:.2} |",
            ms(total.p50),
            ms(total.p95)
        );
        println!("frames/s: {:.1}", total.per_second());
        match rss_mib {
            Some(mib) => println!("peak RSS: {mib:.1} MiB"),
            None => println!("peak RSS: not reported by this system"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn tensor(manifest: &Path, image: &Path, out: &Path) -> anyhow::Result<ExitCode> {
    let manifest = edgemass::model::Manifest::from_path(manifest)?;
    let frame = load_image(image)?;
    let (tensor, _) = edgemass::vision::preprocess::prepare(&frame, &manifest.input);
    let view = tensor.to_plain_array_view::<f32>()?;
    let data: Vec<f32> = view.iter().copied().collect();
    std::fs::write(out, npy::encode_f32(tensor.shape(), &data))
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(ExitCode::SUCCESS)
}

fn init_logging(log: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EDGEMASS_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{},rumqttd=off,rumqttc=warn", log.level))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn check_config(file: &Path) -> ExitCode {
    match Config::from_path(file) {
        Ok(config) => {
            println!("{}: ok", file.display());
            println!("{config:#?}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.into(), ExitCode::from(EXIT_CONFIG)),
    }
}

fn run(file: &Path, grace: f64) -> ExitCode {
    let config = match Config::from_path(file) {
        Ok(config) => config,
        Err(e) => return fail(&e.into(), ExitCode::from(EXIT_CONFIG)),
    };
    if !(grace.is_finite() && grace >= 0.0) {
        return fail(
            &anyhow::anyhow!("--grace must be a number of seconds >= 0"),
            ExitCode::from(EXIT_CONFIG),
        );
    }
    init_logging(&config.log);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&e, ExitCode::FAILURE),
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(on_signal(shutdown.clone()));
        edgemass::pipeline::run(config, shutdown, Duration::from_secs_f64(grace)).await
    });
    match result {
        Ok(summary) => {
            tracing::info!(
                events = summary.events,
                acked = summary.acked,
                pending = summary.pending,
                "stopped: {} event(s) produced, {} acknowledged, {} left in the outbox",
                summary.events,
                summary.acked,
                summary.pending
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.into(), ExitCode::FAILURE),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let usage = |message: &str| fail(&anyhow::anyhow!("{message}"), ExitCode::from(EXIT_CONFIG));
    if args.max_batch == 0 || args.queue == 0 || args.max_body_mib == 0 {
        return usage("--max-batch, --queue and --max-body-mib must be at least 1");
    }
    if !(1..=64).contains(&args.threads) {
        return usage("--threads must be between 1 and 64");
    }
    let token = match std::env::var(SERVE_TOKEN_ENV) {
        Ok(token) if !token.is_empty() => Some(edgemass::config::Secret::new(token)),
        _ => match &args.token_file {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) if !text.trim().is_empty() => Some(edgemass::config::Secret::new(
                    text.trim_end_matches(['\n', '\r']),
                )),
                Ok(_) => return usage(&format!("token file {} is empty", path.display())),
                Err(e) => {
                    return usage(&format!("cannot read token file {}: {e}", path.display()));
                }
            },
            None => None,
        },
    };
    init_logging(&LogConfig {
        format: LogFormat::Text,
        level: "info".into(),
    });
    let settings = edgemass::fallback::serve::Settings {
        repository: args.model_repository,
        listen: args.listen,
        max_body: args.max_body_mib << 20,
        defaults: edgemass::fallback::serve::repository::Defaults {
            max_batch: args.max_batch,
            max_queue_delay: Duration::from_micros(args.max_queue_delay_us),
        },
        queue: args.queue,
        threads: args.threads,
        token,
        tls: args.tls_cert.zip(args.tls_key),
    };
    let models = match edgemass::fallback::serve::Models::load(&settings) {
        Ok(models) => models,
        Err(e) => return fail(&e.into(), ExitCode::FAILURE),
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&e, ExitCode::FAILURE),
    };
    let result: anyhow::Result<()> = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {} (option `--listen`)", settings.listen))?;
        let stop = CancellationToken::new();
        tokio::spawn(on_signal(stop.clone()));
        edgemass::fallback::serve::serve(&settings, models, listener, stop).await?;
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e, ExitCode::FAILURE),
    }
}

/// The async runtime of `run` and `serve`: two workers, inference stays on its own threads.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn on_signal(shutdown: CancellationToken) {
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
