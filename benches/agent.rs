//! Agent benchmark: pipeline frames/s against bare inference on the same model and frames, the
//! outbox's QoS 1 publish rate to a local mosquitto, and the agent's peak memory. Prints a
//! Markdown table. Run with `cargo bench --bench agent` (needs mosquitto, ffmpeg and the model
//! cache from `python3 models/fetch.py`).

mod support;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use edgemass::config::Config;
use edgemass::model::Model;
use edgemass::publish::client::{self, Outgoing, Settings};
use edgemass::publish::outbox::Outbox;
use edgemass::publish::store::Store;
use edgemass::publish::topics::Topics;
use edgemass::queue::{self, Policy, QueueStats};
use edgemass::vision::detector::Detector;
use tokio_util::sync::CancellationToken;

use support::{MODEL, PIPELINE_SECONDS, cache, mosquitto, pipeline, root};

const EVENTS: usize = 2000;

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
            capacity: 256,
        };
        let (commands, _commands_rx) = queue::channel(QueueStats::new("commands", 1, Policy::Wait));
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
    let video = support::video(dir.path());
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
    let run = pipeline(dir.path(), &video, port, "", "");
    let (piped, dropped, peak) = (run.fps, run.dropped(), run.peak());
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
