//! Agent benchmark: pipeline frames/s against bare inference on the same model and frames, the
//! outbox's QoS 1 publish rate to a local mosquitto, and the agent's peak memory. Prints a
//! Markdown table. Run with `cargo bench --bench agent` (needs mosquitto, ffmpeg and the model
//! cache from `python3 models/fetch.py`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use edgemass::config::Config;
use edgemass::model::Model;
use edgemass::publish::client::{self, Outgoing, Settings};
use edgemass::publish::outbox::Outbox;
use edgemass::publish::store::Store;
use edgemass::publish::topics::Topics;
use edgemass::vision::detector::Detector;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use tokio_util::sync::CancellationToken;

const MODEL: &str = "blazeface-256";
const PIPELINE_SECONDS: u64 = 20;
const EVENTS: usize = 2000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cache() -> PathBuf {
    std::env::var_os("EDGEMASS_MODEL_CACHE")
        .map_or_else(|| root().join("models/cache"), PathBuf::from)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn mosquitto(dir: &Path) -> (Child, u16) {
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

/// Frames/s of detect() on the video's own frames, one thread, no pipeline.
fn bare_fps(frame: &image::RgbImage) -> f64 {
    let detector = Detector::new(
        Model::from_manifest_path(&root().join(format!("models/{MODEL}.model.toml"))).unwrap(),
    )
    .unwrap();
    for _ in 0..5 {
        detector.detect(frame).unwrap();
    }
    let runs = 100;
    let t = Instant::now();
    for _ in 0..runs {
        detector.detect(frame).unwrap();
    }
    runs as f64 / t.elapsed().as_secs_f64()
}

/// Runs the agent on a 1280x720 video fed faster than the model can go, and reads its stats.
fn pipeline(dir: &Path, video: &Path, port: u16) -> (f64, u64, f64) {
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[device]\nid = \"bench\"\n[mqtt]\nport = {port}\nstats_interval_s = 5\n[outbox]\npath = {:?}\n[http]\nlisten = \"\"\n\
             [[camera]]\nname = \"cam\"\nsource = \"video\"\npath = {:?}\nfps = 40.0\nloop = true\nmotion_gate = false\nmodel = {:?}\n",
            dir.join("outbox.sqlite").display().to_string(),
            video.display().to_string(),
            root().join(format!("models/{MODEL}.model.toml")).display().to_string()
        ),
    )
    .unwrap();
    let mut options = MqttOptions::new("bench-stats", "127.0.0.1", port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut connection) = Client::new(options, 10);
    client
        .subscribe("edgemass/bench/stats", QoS::AtMostOnce)
        .unwrap();
    let stats = std::thread::spawn(move || {
        let mut all = Vec::new();
        for event in connection.iter() {
            match event {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    all.push(serde_json::from_slice::<serde_json::Value>(&p.payload).unwrap())
                }
                Err(rumqttc::ConnectionError::RequestsDone) | Err(_) => break,
                _ => {}
            }
        }
        all
    });
    let mut agent = Command::new(env!("CARGO_BIN_EXE_edgemass"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(PIPELINE_SECONDS));
    Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status()
        .unwrap();
    agent.wait().unwrap();
    client.disconnect().unwrap();
    let all = stats.join().unwrap();
    let steady: Vec<&serde_json::Value> = all.iter().skip(1).collect();
    let fps = steady
        .iter()
        .map(|s| s["cameras"]["cam"]["fps"].as_f64().unwrap())
        .sum::<f64>()
        / steady.len().max(1) as f64;
    let last = all.last().expect("stats messages");
    let dropped = last["cameras"]["cam"]["dropped_frames"].as_u64().unwrap();
    let peak = last["memory_peak_mib"].as_f64().unwrap();
    (fps, dropped, peak)
}

/// Events/s through the outbox to mosquitto, QoS 1, from first send to last PUBACK.
fn outbox_rate(dir: &Path, port: u16) -> f64 {
    let config = Config::parse(
        &format!("[device]\nid = \"rate\"\n[mqtt]\nport = {port}\ndiscovery = false\n[[camera]]\nname = \"c\"\nsource = \"images\"\npath = \".\"\nmodel = \"m\"\n"),
        dir,
        &[],
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let topics = Topics::new("edgemass", "rate", "homeassistant");
        let store = Store::Disk(Outbox::open(&dir.join("rate.sqlite"), 100_000).unwrap());
        let settings = Settings {
            mqtt: config.mqtt,
            topics: topics.clone(),
            discovery: vec![],
            cameras: vec![],
            text_in: None,
        };
        let (commands, _commands_rx) = tokio::sync::mpsc::channel(1);
        let (handle, task) =
            client::spawn(settings, store, commands, CancellationToken::new()).unwrap();
        while !handle.status().connected.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let payload =
            br#"{"type":"new","after":{"label":"face","score":0.9,"box":[1,2,3,4]}}"#.to_vec();
        let t = Instant::now();
        for i in 0..EVENTS {
            handle
                .send(Outgoing::Event {
                    id: i.to_string(),
                    topic: topics.events(),
                    payload: payload.clone(),
                })
                .await;
        }
        while handle.status().events_acked.load(Ordering::Relaxed) < EVENTS as u64 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let rate = EVENTS as f64 / t.elapsed().as_secs_f64();
        drop(handle);
        let _ = task.await;
        rate
    })
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("bus720.mp4");
    let made = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-loop", "1", "-i"])
        .arg(cache().join("photos/bus.jpg"))
        .args([
            "-t",
            "10",
            "-r",
            "30",
            "-vf",
            "scale=1280:720",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&video)
        .status()
        .unwrap();
    assert!(made.success(), "ffmpeg could not make the benchmark video");
    let frame = image::imageops::resize(
        &image::open(cache().join("photos/bus.jpg"))
            .unwrap()
            .into_rgb8(),
        1280,
        720,
        image::imageops::FilterType::Triangle,
    );
    let (mut broker, port) = mosquitto(dir.path());
    let bare = bare_fps(&frame);
    let (piped, dropped, peak) = pipeline(dir.path(), &video, port);
    let rate = outbox_rate(dir.path(), port);
    let _ = broker.kill();
    println!("| measure | value |");
    println!("|---|---:|");
    println!("| bare inference, {MODEL} on 1280x720 frames (frames/s) | {bare:.1} |");
    println!(
        "| agent pipeline, same model, 1280x720 video offered at 40 fps (frames/s) | {piped:.1} |"
    );
    println!("| pipeline / bare | {:.0} % |", piped / bare * 100.0);
    println!("| frames dropped by the newest-frame slot in {PIPELINE_SECONDS} s | {dropped} |");
    println!("| outbox → mosquitto, QoS 1, {EVENTS} events (events/s) | {rate:.0} |");
    println!("| agent peak RSS (MiB) | {peak:.0} |");
}
