//! What the benchmarks share: paths, a local mosquitto, the 1280x720 benchmark video, and a
//! timed run of `edgemass run` on it that reads the agent's own stats messages.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

/// The model the pipeline runs.
pub const MODEL: &str = "blazeface-256";

/// How long each pipeline run lasts.
pub const PIPELINE_SECONDS: u64 = 20;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn cache() -> PathBuf {
    std::env::var_os("EDGEMASS_MODEL_CACHE")
        .map_or_else(|| root().join("models/cache"), PathBuf::from)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something listens on `port`.
pub fn wait_listening(port: u16, timeout: Duration) {
    let until = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn mosquitto(dir: &Path) -> (Child, u16) {
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
    wait_listening(port, Duration::from_secs(10));
    (child, port)
}

/// A 10 s 1280x720 video of bus.jpg at 30 fps.
pub fn video(dir: &Path) -> PathBuf {
    let video = dir.join("bus720.mp4");
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
    video
}

/// What one pipeline run measured.
pub struct Run {
    /// Mean inferred frames/s over the stats messages after the first.
    pub fps: f64,
    /// The last stats message.
    pub last: serde_json::Value,
}

impl Run {
    /// Frames the newest-frame slot dropped.
    pub fn dropped(&self) -> u64 {
        self.last["cameras"]["cam"]["dropped_frames"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Peak RSS in MiB.
    pub fn peak(&self) -> f64 {
        self.last["memory_peak_mib"].as_f64().unwrap_or(0.0)
    }
}

/// Runs the agent on `video` offered at 40 fps (faster than the model can go) for
/// [`PIPELINE_SECONDS`]; `host` lines go before the camera (e.g. a `[fallback]` table), `camera`
/// lines after its keys (e.g. `[camera.fallback]`).
pub fn pipeline(dir: &Path, video: &Path, port: u16, host: &str, camera: &str) -> Run {
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[device]\nid = \"bench\"\n[mqtt]\nport = {port}\nstats_interval_s = 5\n[outbox]\npath = {:?}\n[http]\nlisten = \"\"\n{host}\n\
             [[camera]]\nname = \"cam\"\nsource = \"video\"\npath = {:?}\nfps = 40.0\nloop = true\nmotion_gate = false\nmodel = {:?}\n{camera}\n",
            dir.join("outbox.sqlite").display().to_string(),
            video.display().to_string(),
            root().join(format!("models/{MODEL}.model.toml")).display().to_string()
        ),
    )
    .unwrap();
    let mut options = MqttOptions::new(format!("bench-stats-{}", free_port()), "127.0.0.1", port);
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
    Run {
        fps,
        last: all.last().expect("stats messages").clone(),
    }
}
