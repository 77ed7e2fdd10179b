//! `edgemass run` end to end against a real mosquitto and the embedded broker: events, counts,
//! snapshots, stats, discovery, commands, broker outages, `kill -9`, and bad input.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use regex_lite::Regex;

use crate::common::{certificates, manifest, manifest_variant, photo, root, text_package};
use crate::mqtt::{Agent, Mosquitto, Subscriber, free_port, http_get, wait_for};

const LONG: Duration = Duration::from_secs(120);

/// Options of a test config; `to_toml` writes a complete agent config.
struct Setup {
    port: u16,
    http: Option<u16>,
    outbox: PathBuf,
    cameras: Vec<String>,
    embedded: bool,
    json_logs: bool,
    stats_interval_s: u64,
    text: Option<String>,
}

impl Setup {
    fn new(dir: &Path, port: u16) -> Setup {
        Setup {
            port,
            http: None,
            outbox: dir.join("outbox.sqlite"),
            cameras: vec![],
            embedded: false,
            json_logs: false,
            stats_interval_s: 1,
            text: None,
        }
    }

    fn camera(
        mut self,
        name: &str,
        source: &str,
        path: &Path,
        fps: f64,
        looping: bool,
        extra: &str,
    ) -> Setup {
        self.cameras.push(format!(
            "[[camera]]\nname = \"{name}\"\nsource = \"{source}\"\npath = {:?}\nfps = {fps}\nloop = {looping}\nmodel = {:?}\nthreshold = 0.5\nmin_score = 0.4\nmax_missed = 1\n{extra}\n",
            path.display().to_string(),
            manifest("blazeface-256").display().to_string()
        ));
        self
    }

    fn write(&self, dir: &Path) -> PathBuf {
        let http = self
            .http
            .map_or(String::from("\"\""), |p| format!("\"127.0.0.1:{p}\""));
        let text = format!(
            "[device]\nid = \"testdev\"\n\n[log]\nformat = \"{}\"\n\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nembedded_broker = {}\nstats_interval_s = {}\nkeep_alive_s = 5\n\n[outbox]\npath = {:?}\n\n[http]\nlisten = {http}\n\n{}",
            if self.json_logs { "json" } else { "text" },
            self.port,
            self.embedded,
            self.stats_interval_s,
            self.outbox.display().to_string(),
            self.cameras.join("\n")
        ) + self.text.as_deref().unwrap_or_default();
        let path = dir.join(format!("agent-{}.toml", free_port()));
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// A folder with the two photos that have faces.
fn face_photos(dir: &Path) -> PathBuf {
    let photos = dir.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for name in ["bus.jpg", "zidane.jpg"] {
        std::fs::copy(photo(name), photos.join(name)).unwrap();
    }
    photos
}

#[test]
fn the_first_stats_message_goes_out_as_the_pipeline_starts() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let sub = Subscriber::connect(broker.port, "edgemass/testdev/stats");
    let mut setup = Setup::new(dir.path(), broker.port).camera(
        "door",
        "images",
        &face_photos(dir.path()),
        2.0,
        true,
        "",
    );
    setup.stats_interval_s = 3600;
    let mut agent = Agent::start(&setup.write(dir.path()));
    assert!(
        wait_for(LONG, || !sub.on("edgemass/testdev/stats").is_empty()),
        "no stats within {LONG:?} with an hourly interval: {}",
        agent.stderr()
    );
    let stats = sub.on("edgemass/testdev/stats")[0].json();
    assert_eq!(
        stats["cameras"]["door"]["model"], "blazeface-256",
        "{stats}"
    );
    agent.terminate();
    assert_eq!(agent.wait(LONG), 0, "{}", agent.stderr());
}

#[test]
fn image_folder_run_publishes_events_counts_snapshots_stats_and_discovery() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let sub = Subscriber::connect(broker.port, "#");
    let http = free_port();
    let mut setup = Setup::new(dir.path(), broker.port).camera(
        "door",
        "images",
        &face_photos(dir.path()),
        4.0,
        true,
        "",
    );
    setup.http = Some(http);
    let mut agent = Agent::start(&setup.write(dir.path()));

    assert!(
        wait_for(LONG, || sub.on("edgemass/testdev/stats").len() >= 2),
        "no stats: {}",
        agent.stderr()
    );
    assert!(
        wait_for(LONG, || !sub
            .on("edgemass/testdev/door/face/snapshot")
            .is_empty()),
        "no snapshot"
    );
    let (status, metrics) = http_get(http, "/metrics");
    assert_eq!(status, 200);
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("edgemass_inferred_frames_total{camera=\"door\",model=\"blazeface-256\"}"),
        "{metrics}"
    );
    for (queue, policy) in [
        ("publish", "wait"),
        ("mqtt_in", "wait"),
        ("commands", "wait"),
        ("source_problems", "drop"),
        ("frames/door", "replace"),
        ("outbox", "drop-oldest"),
    ] {
        for metric in ["capacity", "high_water", "dropped_total"] {
            let row = format!("edgemass_queue_{metric}{{queue=\"{queue}\",policy=\"{policy}\"}} ");
            assert!(metrics.contains(&row), "no {row}in {metrics}");
        }
    }
    assert_eq!(http_get(http, "/healthz").0, 200);
    let (status, jpeg) = http_get(http, "/snapshot/door.jpg");
    assert_eq!(status, 200);
    assert!(image::load_from_memory(&jpeg).is_ok());
    assert_eq!(http_get(http, "/snapshot/nope.jpg").0, 404);

    agent.terminate();
    assert_eq!(agent.wait(LONG), 0, "{}", agent.stderr());
    assert!(wait_for(Duration::from_secs(10), || sub
        .on("edgemass/testdev/available")
        .iter()
        .any(|m| m.payload == b"offline")));

    let events: Vec<_> = sub
        .on("edgemass/testdev/events")
        .iter()
        .map(|m| m.json())
        .collect();
    assert!(events.len() >= 4, "{events:?}");
    for e in &events {
        assert!(
            ["new", "update", "end"].contains(&e["type"].as_str().unwrap()),
            "{e}"
        );
        let after = &e["after"];
        assert_eq!(after["camera"], "door");
        assert_eq!(after["label"], "face");
        assert_eq!(after["model"], "blazeface-256");
        assert_eq!(after["source"], "edge");
        assert_eq!(after["box"].as_array().unwrap().len(), 4);
        assert!(after["top_score"].as_f64().unwrap() >= 0.5);
        assert!(e["id"].as_str().unwrap().len() >= 32);
        assert_eq!(e["before"].is_null(), e["type"] == "new", "{e}");
    }
    assert_eq!(
        sub.event_ids("edgemass/testdev/events").len() as u64,
        agent.produced()
    );
    let counts = sub.on("edgemass/testdev/door/face");
    assert!(counts.iter().any(|m| m.payload != b"0"), "{counts:?}");
    assert_eq!(
        counts.last().unwrap().payload,
        b"0",
        "count goes back to 0 when objects end"
    );
    for snap in sub.on("edgemass/testdev/door/face/snapshot") {
        let decoded = image::load_from_memory(&snap.payload).expect("snapshot is a JPEG");
        assert!(decoded.width() >= 720);
    }
    let stats = sub.on("edgemass/testdev/stats").last().unwrap().json();
    assert!(
        stats["cameras"]["door"]["inferred"].as_u64().unwrap() >= 2,
        "{stats}"
    );
    for key in [
        "fps",
        "inference_ms_p50",
        "inference_ms_p95",
        "dropped_frames",
    ] {
        assert!(
            stats["cameras"]["door"][key].is_number(),
            "{key} in {stats}"
        );
    }
    for key in ["uptime_s", "outbox_depth", "memory_rss_mib", "version"] {
        assert!(!stats[key].is_null(), "{key} in {stats}");
    }

    // A subscriber that arrives later gets the retained state: discovery, counts, snapshots.
    let late = Subscriber::connect(broker.port, "#");
    assert!(wait_for(Duration::from_secs(10), || late
        .matching(|t| t.starts_with("homeassistant/"))
        .len()
        == 4));
    assert!(wait_for(Duration::from_secs(10), || late
        .on("edgemass/testdev/door/face/snapshot")
        .len()
        == 1));
    for m in late.matching(|_| true) {
        assert!(m.retain, "{} was not retained", m.topic);
    }
    assert_eq!(late.on("edgemass/testdev/available")[0].payload, b"offline");
    let topic =
        Regex::new(r"^homeassistant/(binary_sensor|sensor)/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/config$")
            .unwrap();
    let discovery = late.matching(|t| t.starts_with("homeassistant/"));
    for m in &discovery {
        assert!(topic.is_match(&m.topic), "{}", m.topic);
        let c = m.json();
        for key in [
            "name",
            "unique_id",
            "state_topic",
            "availability_topic",
            "payload_available",
            "payload_not_available",
        ] {
            assert!(c[key].is_string(), "{key} missing in {c}");
        }
        assert_eq!(c["device"]["identifiers"][0], "edgemass_testdev");
        assert!(
            c["state_topic"]
                .as_str()
                .unwrap()
                .starts_with("edgemass/testdev/")
        );
        if m.topic.contains("/binary_sensor/") {
            assert_eq!(c["device_class"], "occupancy");
            assert!(c["value_template"].as_str().unwrap().contains("'ON'"));
        }
    }
}

#[test]
fn video_run_reads_frames_through_ffmpeg() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("bus.mp4");
    let made = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-loop", "1", "-i"])
        .arg(photo("bus.jpg"))
        .args([
            "-t",
            "2",
            "-r",
            "10",
            "-vf",
            "scale=540:720",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&video)
        .status()
        .expect("ffmpeg is installed (.ci/run installs it)");
    assert!(made.success());
    let broker = Mosquitto::start(dir.path());
    let sub = Subscriber::connect(broker.port, "edgemass/#");
    let setup =
        Setup::new(dir.path(), broker.port).camera("video", "video", &video, 10.0, false, "");
    let mut agent = Agent::start(&setup.write(dir.path()));
    assert_eq!(agent.wait(LONG), 0, "{}", agent.stderr());
    let events: Vec<_> = sub
        .on("edgemass/testdev/events")
        .iter()
        .map(|m| m.json())
        .collect();
    let new: Vec<_> = events.iter().filter(|e| e["type"] == "new").collect();
    assert_eq!(
        new.len(),
        2,
        "two faces tracked across the video's frames: {events:?}"
    );
    assert!(events.iter().filter(|e| e["type"] == "end").count() == 2);
    let frames = new[0]["after"]["frames"].as_u64().unwrap();
    let end = events.iter().find(|e| e["type"] == "end").unwrap();
    assert!(
        end["after"]["frames"].as_u64().unwrap() > frames,
        "the face was seen in many frames: {end}"
    );
}

#[test]
fn every_event_arrives_across_three_broker_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(dir.path());
    let sub = Subscriber::connect(broker.port, "edgemass/testdev/events");
    let setup = Setup::new(dir.path(), broker.port).camera(
        "door",
        "images",
        &face_photos(dir.path()),
        10.0,
        true,
        "",
    );
    let mut agent = Agent::start(&setup.write(dir.path()));
    assert!(
        wait_for(LONG, || !sub.on("edgemass/testdev/events").is_empty()),
        "{}",
        agent.stderr()
    );
    for _ in 0..3 {
        broker.stop();
        std::thread::sleep(Duration::from_millis(1500));
        broker.restart();
        std::thread::sleep(Duration::from_millis(1500));
    }
    agent.terminate();
    assert_eq!(agent.wait(LONG), 0, "{}", agent.stderr());
    let produced = agent.produced();
    assert!(produced >= 10, "{produced} events");
    assert!(
        wait_for(
            Duration::from_secs(30),
            || sub.event_ids("edgemass/testdev/events").len() as u64 == produced
        ),
        "received {} of {produced} event ids; agent: {}",
        sub.event_ids("edgemass/testdev/events").len(),
        agent
            .stderr()
            .lines()
            .filter(|l| l.contains("stopped:") || l.contains("mqtt"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn events_pending_at_kill_9_are_delivered_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let setup = Setup::new(dir.path(), port).camera(
        "door",
        "images",
        &face_photos(dir.path()),
        10.0,
        true,
        "",
    );
    let config = setup.write(dir.path());
    let mut agent = Agent::start(&config);
    let pending = || {
        let db = rusqlite::Connection::open(&setup.outbox).ok()?;
        let mut stmt = db.prepare("SELECT id FROM outbox").ok()?;
        let ids: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .ok()?
            .filter_map(Result::ok)
            .collect();
        Some(ids)
    };
    assert!(
        wait_for(LONG, || pending().is_some_and(|ids| ids.len() >= 5)),
        "{}",
        agent.stderr()
    );
    agent.kill();
    let before: Vec<String> = pending().unwrap();
    assert!(before.len() >= 5);

    let broker = Mosquitto::start_on(dir.path(), port);
    let sub = Subscriber::connect(broker.port, "edgemass/testdev/events");
    let mut again = Agent::start(&config);
    let delivered = || {
        let got = sub.event_ids("edgemass/testdev/events");
        before.iter().all(|id| got.contains(id))
    };
    assert!(
        wait_for(LONG, delivered),
        "pending events not delivered; {}",
        again.stderr()
    );
    again.terminate();
    assert_eq!(again.wait(LONG), 0);
}

#[test]
fn bad_commands_sources_images_and_outbox_are_reported_and_the_agent_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let sub = Subscriber::connect(broker.port, "#");
    let photos = face_photos(dir.path());
    std::fs::write(photos.join("broken.jpg"), b"\xff\xd8\xff\xe0 not a jpeg").unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "x").unwrap();
    let mut setup = Setup::new(dir.path(), broker.port)
        .camera("door", "images", &photos, 5.0, true, "")
        .camera(
            "gone",
            "stream",
            Path::new("http://127.0.0.1:9/nothing.mjpg"),
            5.0,
            false,
            "",
        )
        .camera("usb", "camera", Path::new("7"), 5.0, false, "");
    setup.outbox = blocker.join("outbox.sqlite");
    let mut agent = Agent::start(&setup.write(dir.path()));
    assert!(
        wait_for(LONG, || !sub.on("edgemass/testdev/events").is_empty()),
        "{}",
        agent.stderr()
    );

    for (topic, payload) in [
        ("edgemass/testdev/set/door/thresholds", "not json"),
        (
            "edgemass/testdev/set/door/thresholds",
            r#"{"threshold":"high"}"#,
        ),
        ("edgemass/testdev/set/door/enabled", "42"),
        ("edgemass/testdev/set/attic/enabled", "true"),
        ("edgemass/testdev/set/door/reboot", "true"),
    ] {
        sub.publish(topic, payload);
    }
    let errors = || {
        sub.on("edgemass/testdev/error")
            .iter()
            .map(|m| m.json())
            .collect::<Vec<_>>()
    };
    assert!(
        wait_for(LONG, || errors()
            .iter()
            .filter(|e| e["topic"].is_string())
            .count()
            >= 5),
        "{:?}",
        errors()
    );
    let all = errors();
    assert!(all.iter().any(|e| {
        e["error"]
            .as_str()
            .unwrap()
            .contains("unknown camera `attic`")
    }));
    assert!(
        wait_for(LONG, || errors().iter().any(|e| e["camera"] == "gone")),
        "{:?}",
        errors()
    );
    // A V4L2 camera index names its device, opened by ffmpeg; an absent one is reported.
    assert!(
        wait_for(LONG, || errors().iter().any(
            |e| e["camera"] == "usb" && e["error"].as_str().unwrap().contains("camera /dev/video7")
        )),
        "{:?}",
        errors()
    );
    assert!(wait_for(LONG, || errors().iter().any(|e| e["camera"]
        == "door"
        && e["error"].as_str().unwrap().contains("broken.jpg"))));
    assert!(
        agent.stderr().contains("cannot open outbox"),
        "{}",
        agent.stderr()
    );

    let announced = sub
        .matching(|t| t.starts_with("homeassistant/") && t.ends_with("/config"))
        .len();
    sub.publish("homeassistant/status", "online");
    assert!(
        wait_for(LONG, || sub
            .matching(|t| t.starts_with("homeassistant/") && t.ends_with("/config"))
            .len()
            >= announced + 8),
        "discovery is republished when Home Assistant comes online"
    );

    let seen = sub.on("edgemass/testdev/events").len();
    assert!(
        wait_for(LONG, || sub.on("edgemass/testdev/events").len() > seen + 2),
        "events keep flowing"
    );
    sub.publish("edgemass/testdev/set/door/enabled", "false");
    std::thread::sleep(Duration::from_secs(3));
    let stopped = sub.on("edgemass/testdev/events").len();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        sub.on("edgemass/testdev/events").len(),
        stopped,
        "a disabled camera produces no events"
    );
    agent.terminate();
    assert_eq!(agent.wait(LONG), 0, "{}", agent.stderr());
}

#[test]
fn embedded_broker_serves_a_subscriber_with_nothing_installed() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut setup = Setup::new(dir.path(), port).camera(
        "door",
        "images",
        &face_photos(dir.path()),
        5.0,
        true,
        "",
    );
    setup.embedded = true;
    setup.json_logs = true;
    let mut agent = Agent::start(&setup.write(dir.path()));
    let sub = Subscriber::connect(port, "edgemass/#");
    assert!(
        wait_for(LONG, || sub.on("edgemass/testdev/events").len() >= 2),
        "{}",
        agent.stderr()
    );
    assert!(
        sub.on("edgemass/testdev/available")
            .iter()
            .any(|m| m.payload == b"online")
    );
    agent.terminate();
    assert_eq!(agent.wait(LONG), 0, "{}", agent.stderr());
    let logs: Vec<serde_json::Value> = agent
        .stderr()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON log line"))
        .collect();
    assert!(
        logs.iter().any(|l| l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("stopped:"))),
        "{logs:?}"
    );
}

#[test]
fn a_coco_camera_counts_its_groups_and_announces_entities_per_group() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut setup = Setup::new(dir.path(), port);
    setup.cameras.push(format!(
        "[[camera]]\nname = \"street\"\nsource = \"images\"\npath = {:?}\nfps = 4.0\nloop = true\nmodel = {:?}\nthreshold = 0.5\n",
        face_photos(dir.path()).display().to_string(),
        manifest("ssd-mobilenet-v2-coco").display().to_string()
    ));
    setup.embedded = true;
    let mut agent = Agent::start(&setup.write(dir.path()));
    let sub = Subscriber::connect(port, "#");
    // bus.jpg (first of the two photos): three people and the bus.
    let counts = |topic: &str| -> Vec<String> {
        sub.on(topic)
            .iter()
            .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
            .collect()
    };
    assert!(
        wait_for(LONG, || counts("edgemass/testdev/street/vehicle")
            .contains(&"1".to_owned())),
        "{}",
        agent.stderr()
    );
    assert!(
        wait_for(LONG, || counts("edgemass/testdev/street/people")
            .contains(&"3".to_owned())),
        "{:?}",
        counts("edgemass/testdev/street/people")
    );
    assert!(counts("edgemass/testdev/street/person").contains(&"3".to_owned()));
    assert!(counts("edgemass/testdev/street/bus").contains(&"1".to_owned()));
    assert!(counts("edgemass/testdev/street/animal").is_empty());
    // Entities: occupancy and count per group, plus the camera's two speed sensors.
    assert!(wait_for(LONG, || sub
        .matching(|t| t.starts_with("homeassistant/"))
        .len()
        >= 8));
    let discovery = sub.matching(|t| t.starts_with("homeassistant/"));
    let names: BTreeSet<String> = discovery
        .iter()
        .map(|m| m.json()["name"].as_str().unwrap().to_owned())
        .collect();
    for group in ["people", "vehicle", "animal"] {
        assert!(
            names.contains(&format!("street {group} count")),
            "{names:?}"
        );
    }
    assert!(!names.iter().any(|n| n.contains("person")), "{names:?}");
    assert_eq!(discovery.len(), 8, "{names:?}");
    agent.terminate();
    assert_eq!(agent.wait(LONG), 0, "{}", agent.stderr());
}

#[test]
fn demo_config_runs_the_sample_photos_and_texts_and_prints_events() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent =
        Agent::start_logging_in(&root().join("firmware-config/demo.toml"), dir.path(), &[]);
    let sub = Subscriber::connect(18830, "edgemass/edgemass-demo/#");
    let events = |agent: &Agent| -> Vec<serde_json::Value> {
        agent
            .stdout()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let verdict = |events: &[serde_json::Value], id: &str| {
        events
            .iter()
            .find(|e| e["id"] == id && e.get("scores").is_some())
            .map(|e| e["label"].as_str().unwrap().to_owned())
    };
    // The shipped student on the demo's lines, printed beside the cameras' events.
    assert!(
        wait_for(LONG, || verdict(&events(&agent), "file:6").is_some()),
        "{}\n{}",
        agent.stdout(),
        agent.stderr()
    );
    let printed = events(&agent);
    assert_eq!(verdict(&printed, "file:1").unwrap(), "positive");
    assert_eq!(verdict(&printed, "file:2").unwrap(), "negative");
    // A text sent to the demo's topic, as the README shows with mosquitto_pub.
    sub.publish(
        "edgemass/edgemass-demo/text/in",
        r#"{"id": "readme", "text": "a wonderful, moving film"}"#,
    );
    let out = "edgemass/edgemass-demo/text/out";
    assert!(
        wait_for(LONG, || sub
            .on(out)
            .iter()
            .any(|m| m.json()["id"] == "readme")),
        "{}",
        agent.stderr()
    );
    let reply = sub
        .on(out)
        .into_iter()
        .map(|m| m.json())
        .find(|r| r["id"] == "readme")
        .unwrap();
    assert_eq!(reply["label"], "positive", "{reply}");
    assert_eq!(reply["model"], "minilm-sentiment-student", "{reply}");
    assert_eq!(reply["source"], "mqtt", "{reply}");
    // The cameras: faces, text regions, and the COCO SSD's people, bus and motorcycle.
    assert!(
        wait_for(LONG, || {
            let printed = events(&agent);
            let seen = |camera: &str, label: &str| {
                printed
                    .iter()
                    .any(|e| e["after"]["camera"] == camera && e["after"]["label"] == label)
            };
            seen("faces", "face")
                && seen("text", "text")
                && ["person", "bus", "motorcycle"]
                    .iter()
                    .all(|label| seen("street", label))
        }),
        "{}",
        agent.stdout()
    );
    // The photos are read once; the agent stays up for texts and says so.
    assert!(
        wait_for(LONG, || agent.stderr().contains(
            "every camera has ended; still classifying texts from MQTT"
        )),
        "{}",
        agent.stderr()
    );
    agent.terminate();
    assert_eq!(agent.wait(LONG), 0, "{}", agent.stderr());
    assert!(
        agent.stderr().contains("0 left in the outbox"),
        "{}",
        agent.stderr()
    );
}

#[test]
fn bad_config_exits_64_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new(dir.path(), 1883)
        .camera("door", "images", dir.path(), 0.0, false, "")
        .write(dir.path());
    for cmd in ["run", "check-config"] {
        let mut args = vec![cmd];
        if cmd == "run" {
            args.push("--config");
        }
        let out = Command::new(env!("CARGO_BIN_EXE_edgemass"))
            .args(&args)
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("camera[0].fps"), "{stderr}");
    }
    let printed = Command::new(env!("CARGO_BIN_EXE_edgemass"))
        .arg("print-config")
        .output()
        .unwrap();
    let default = dir.path().join("default.toml");
    std::fs::write(&default, &printed.stdout).unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_edgemass"))
        .arg("check-config")
        .arg(&default)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

/// `edgemass run` on `config`, expected to refuse to start: its one-line error.
fn start_error(config: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_edgemass"))
        .args(["run", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "started anyway: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    errors[0].to_owned()
}

#[test]
fn startup_errors_name_the_port_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let photos = face_photos(dir.path());

    let mut http =
        Setup::new(dir.path(), free_port()).camera("door", "images", &photos, 5.0, false, "");
    http.embedded = true;
    http.http = Some(port);
    let error = start_error(&http.write(dir.path()));
    assert!(
        error.contains(&format!("127.0.0.1:{port}")) && error.contains("`http.listen`"),
        "{error}"
    );

    let mut broker = Setup::new(dir.path(), port).camera("door", "images", &photos, 5.0, false, "");
    broker.embedded = true;
    let error = start_error(&broker.write(dir.path()));
    assert!(
        error.contains(&format!("127.0.0.1:{port}")) && error.contains("`mqtt.port`"),
        "{error}"
    );

    let absent = dir.path().join("no-such-model.onnx");
    let variant = manifest_variant(dir.path(), "blazeface-256", |t| {
        let file = t
            .lines()
            .find(|l| l.starts_with("file ="))
            .unwrap()
            .to_owned();
        t.replace(&file, &format!("file = {:?}", absent.display().to_string()))
    });
    let mut missing =
        Setup::new(dir.path(), free_port()).camera("door", "images", &photos, 5.0, false, "");
    missing.embedded = true;
    let config = missing.write(dir.path());
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("{:?}", manifest("blazeface-256").display().to_string()),
        &format!("{:?}", variant.display().to_string()),
    );
    std::fs::write(&config, text).unwrap();
    let error = start_error(&config);
    assert!(
        error.contains("no-such-model.onnx") && error.contains(&variant.display().to_string()),
        "{error}"
    );

    let config = dir.path().join("unknown-key.toml");
    let text = std::fs::read_to_string(http.write(dir.path()))
        .unwrap()
        .replace("[outbox]\n", "[outbox]\nretention = 3\n");
    std::fs::write(&config, text).unwrap();
    let error = start_error(&config);
    let line = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("retention"))
        .unwrap()
        + 1;
    assert!(
        error.contains("retention") && error.contains(&format!("line {line}")),
        "{error}"
    );
    drop(taken);
}

#[test]
fn commands_and_texts_sent_while_the_agent_is_away_are_handled_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let mut setup = Setup::new(dir.path(), broker.port).camera(
        "door",
        "images",
        &face_photos(dir.path()),
        2.0,
        true,
        "",
    );
    setup.text = Some(format!(
        "[text]\nmodel = {:?}\n",
        text_package().display().to_string()
    ));
    let config = setup.write(dir.path());
    let sub = Subscriber::connect(broker.port, "edgemass/testdev/#");
    let mut agent = Agent::start(&config);
    assert!(
        wait_for(LONG, || !sub.on("edgemass/testdev/stats").is_empty()),
        "{}",
        agent.stderr()
    );
    agent.kill();

    sub.publish("edgemass/testdev/set/door/enabled", "false");
    sub.publish(
        "edgemass/testdev/text/in",
        r#"{"id": "while-away", "text": "an absolute delight from start to finish"}"#,
    );
    std::thread::sleep(Duration::from_secs(1));
    let mut again = Agent::start(&config);
    let answers = || {
        sub.on("edgemass/testdev/text/out")
            .iter()
            .filter(|m| m.json()["id"] == "while-away")
            .count()
    };
    assert!(
        wait_for(LONG, || answers() >= 1),
        "the text sent while the agent was away was not classified: {}",
        again.stderr()
    );
    assert!(
        wait_for(LONG, || again.stderr().contains("command: Enable")),
        "{}",
        again.stderr()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(answers(), 1);
    assert_eq!(again.stderr().matches("command: Enable").count(), 1);
    again.terminate();
    assert_eq!(again.wait(LONG), 0, "{}", again.stderr());
}

/// A mosquitto on a free port of loopback that takes only the user `agent` with `password`,
/// configured further by `extra` (lines of mosquitto.conf, `{dir}` standing for `dir`); returns
/// it and its port.
fn locked_broker(dir: &Path, password: &str, extra: &str) -> (std::process::Child, u16) {
    let passwd = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(dir.join("passwd"))
        .args(["agent", password])
        .status()
        .unwrap();
    assert!(passwd.success());
    // mosquitto started as root drops to its own user, which must read the test key and passwords.
    for file in ["server.key", "passwd"] {
        if dir.join(file).exists() {
            std::fs::set_permissions(
                dir.join(file),
                std::os::unix::fs::PermissionsExt::from_mode(0o644),
            )
            .unwrap();
        }
    }
    let port = free_port();
    let conf = dir.join("locked.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}/passwd\n{}",
            dir.display(),
            extra.replace("{dir}", &dir.display().to_string())
        ),
    )
    .unwrap();
    let broker = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    (broker, port)
}

#[test]
fn tls_with_a_password_from_the_environment_reaches_a_locked_broker() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d);
    let (mut broker, port) = locked_broker(
        d,
        "s3cret-pw",
        "cafile {dir}/ca.pem\ncertfile {dir}/server.pem\nkeyfile {dir}/server.key\n",
    );

    let setup = Setup::new(d, port).camera("door", "images", &face_photos(d), 5.0, false, "");
    let config = setup.write(d);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "embedded_broker = false",
        &format!(
            "embedded_broker = false\ntls = true\nca_file = {:?}\nusername = \"agent\"",
            d.join("ca.pem").display().to_string()
        ),
    );
    std::fs::write(&config, text).unwrap();
    let mut agent = Agent::start_with_env(&config, &[("EDGEMASS_MQTT_PASSWORD", "s3cret-pw")]);
    assert_eq!(agent.wait(LONG), 0, "{}", agent.stderr());
    let stderr = agent.stderr();
    let _ = broker.kill();
    let _ = broker.wait();
    assert!(stderr.contains("mqtt: connected"), "{stderr}");
    assert!(stderr.contains("0 left in the outbox"), "{stderr}");
    assert!(agent.produced() >= 4, "{stderr}");
    assert!(
        !stderr.contains("s3cret-pw"),
        "the password leaked into the log"
    );
}

#[test]
fn a_broker_refusing_the_password_is_said_once_while_the_agent_retries() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mut broker, port) = locked_broker(d, "right-pw", "");

    let setup = Setup::new(d, port).camera("door", "images", &face_photos(d), 5.0, false, "");
    let config = setup.write(d);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "embedded_broker = false",
        "embedded_broker = false\nusername = \"agent\"",
    );
    std::fs::write(&config, text).unwrap();
    let agent = Agent::start_with_env(
        &config,
        &[
            ("EDGEMASS_MQTT_PASSWORD", "wrong-pw"),
            ("EDGEMASS_LOG", "info,edgemass::publish::client=debug"),
        ],
    );
    assert!(
        wait_for(LONG, || agent
            .stderr()
            .matches("refused the connection again")
            .count()
            >= 3),
        "{}",
        agent.stderr()
    );
    let mut agent = agent;
    agent.terminate();
    assert_eq!(agent.wait(LONG), 0, "{}", agent.stderr());
    let _ = broker.kill();
    let _ = broker.wait();
    let stderr = agent.stderr();
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("refused the connection:"))
        .collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(
        said[0].contains("ERROR")
            && (said[0].contains("not authorized")
                || said[0].contains("bad user name or password"))
            && said[0].contains("`mqtt.username`")
            && !said[0].contains("wrong-pw"),
        "{}",
        said[0]
    );
    let retry_lines = stderr
        .lines()
        .filter(|l| l.contains("not connected to") && l.contains("INFO"))
        .count();
    assert_eq!(retry_lines, 1, "{stderr}");
    assert!(stderr.contains("left in the outbox"), "{stderr}");
}

#[test]
fn texts_from_mqtt_and_a_file_are_classified_in_batches_and_bad_ones_reported() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let lines = dir.path().join("texts.txt");
    let mut body = b"a wonderful, moving film with a brilliant cast\n\n".to_vec();
    body.extend_from_slice(b"caf\xe9 in latin-1 is not UTF-8\n");
    body.extend_from_slice(b"a dull, tedious mess that wastes everyone's time\r\n");
    std::fs::write(&lines, body).unwrap();
    let mut setup = Setup::new(dir.path(), broker.port);
    setup.text = Some(format!(
        "[text]\nmodel = {:?}\nfile = {:?}\nmax_batch = 8\nqueue = 16\n",
        text_package().display().to_string(),
        lines.display().to_string()
    ));
    let config = setup.write(dir.path());
    let sub = Subscriber::connect(broker.port, "edgemass/testdev/#");
    let agent = Agent::start(&config);
    let out = "edgemass/testdev/text/out";
    let errors = "edgemass/testdev/error";
    assert!(
        wait_for(LONG, || sub.on(out).len() >= 2),
        "file texts not classified: {}",
        agent.stderr()
    );
    let input = "edgemass/testdev/text/in";
    sub.publish(
        input,
        r#"{"id": "j1", "text": "an absolute delight from start to finish"}"#,
    );
    sub.publish(input, "boring, badly acted and far too long");
    sub.publish(input, r#"{"text": "#);
    sub.publish(input, b"\xff\xfe".to_vec());
    sub.publish(input, "   ");
    sub.publish(input, "long ".repeat(4000));
    for i in 0..60 {
        sub.publish(
            input,
            format!(r#"{{"id": "burst-{i}", "text": "review number {i} was fine"}}"#),
        );
    }
    let expected = 2 + 2 + 1 + 60;
    assert!(
        wait_for(LONG, || sub.on(out).len() >= expected),
        "{} of {expected} results: {}",
        sub.on(out).len(),
        agent.stderr()
    );
    let results: Vec<serde_json::Value> = sub.on(out).iter().map(|m| m.json()).collect();
    let by_id = |id: &str| {
        results
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no result for {id}: {results:?}"))
    };
    assert_eq!(by_id("file:1")["label"], "fresh");
    assert_eq!(by_id("file:4")["label"], "rotten");
    assert_eq!(by_id("file:1")["source"], "file");
    let j1 = by_id("j1");
    assert_eq!(j1["label"], "fresh");
    assert_eq!(j1["model"], "minilm-l6-anchors");
    assert_eq!(j1["source"], "mqtt");
    assert_eq!(j1["truncated"], false);
    let total: f64 = j1["scores"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((total - 1.0).abs() < 1e-3, "{j1}");
    assert!(j1["latency_ms"].as_f64().unwrap() >= j1["inference_ms"].as_f64().unwrap());
    let plain = results
        .iter()
        .find(|r| r["id"].as_str().unwrap().len() == 36 && r["truncated"] == false)
        .expect("plain-text result with a generated id");
    assert_eq!(plain["label"], "rotten");
    assert!(
        results.iter().any(|r| r["truncated"] == true),
        "the 20 kB text is not flagged: {results:?}"
    );
    let burst: BTreeSet<String> = results
        .iter()
        .filter_map(|r| {
            r["id"]
                .as_str()
                .filter(|id| id.starts_with("burst-"))
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(burst.len(), 60, "burst texts lost");
    assert!(
        results.iter().any(|r| r["batch"].as_u64().unwrap() > 1),
        "texts waiting together were not batched"
    );
    assert!(
        wait_for(LONG, || sub.on(errors).len() >= 4),
        "{:?}",
        sub.on(errors)
    );
    let rejected: Vec<serde_json::Value> = sub.on(errors).iter().map(|m| m.json()).collect();
    let says = |needle: &str| {
        rejected
            .iter()
            .any(|e| e["error"].as_str().unwrap().contains(needle))
    };
    assert!(says("line 3: payload is not valid UTF-8"), "{rejected:?}");
    assert!(says("malformed JSON"), "{rejected:?}");
    assert!(says("not valid UTF-8 (byte 0)"), "{rejected:?}");
    assert!(says("text is empty"), "{rejected:?}");
    assert!(
        wait_for(LONG, || sub
            .on("edgemass/testdev/stats")
            .last()
            .is_some_and(
                |m| m.json()["text"]["classified"].as_u64() >= Some(expected as u64)
            )),
        "stats do not count the texts"
    );
}

/// One agent run over the face photos, once each: its first stats message, its `new` events as
/// (label, box rounded to pixels, score), the `/metrics` text seen while it ran, and its stderr.
fn runtime_run(
    extra: &str,
    env: &[(&str, &str)],
) -> (serde_json::Value, Vec<String>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let sub = Subscriber::connect(broker.port, "edgemass/testdev/#");
    let photos = face_photos(dir.path());
    let http = free_port();
    let mut setup = Setup::new(dir.path(), broker.port)
        .camera("door", "images", &photos, 0.5, false, extra)
        .camera("yard", "images", &photos, 0.5, false, extra);
    setup.http = Some(http);
    let mut agent = Agent::start_with_env(&setup.write(dir.path()), env);
    let mut metrics = String::new();
    assert!(
        wait_for(LONG, || {
            if std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
                return false;
            }
            metrics = String::from_utf8(http_get(http, "/metrics").1).unwrap_or_default();
            metrics.contains("edgemass_runtime_info{camera=\"yard\"")
        }),
        "no runtime in /metrics: {}",
        agent.stderr()
    );
    assert_eq!(agent.wait(LONG), 0, "{}", agent.stderr());
    assert!(wait_for(
        Duration::from_secs(10),
        || sub.event_ids("edgemass/testdev/events").len() as u64 == agent.produced()
    ));
    let stats = sub.on("edgemass/testdev/stats")[0].json();
    let mut found: Vec<String> = sub
        .on("edgemass/testdev/events")
        .iter()
        .map(|m| m.json())
        .filter(|e| e["type"] == "new" && e["after"]["camera"] == "door")
        .map(|e| {
            let b: Vec<i64> = e["after"]["box"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap().round() as i64)
                .collect();
            format!(
                "{} {b:?} {:.2}",
                e["after"]["label"],
                e["after"]["top_score"].as_f64().unwrap()
            )
        })
        .collect();
    found.sort();
    (stats, found, metrics, agent.stderr())
}

#[test]
fn runtime_auto_keeps_onnxruntime_with_tracts_detections_and_a_missing_library_is_one_line() {
    let (tract, on_tract, _, _) = runtime_run("runtime = \"tract\"", &[]);
    assert_eq!(
        tract["cameras"]["door"]["runtime"]["runtime"], "tract",
        "{tract}"
    );
    assert!(!on_tract.is_empty(), "no faces found on tract");

    // The fetched library is in the model cache beside the manifests.
    let (auto, on_auto, metrics, stderr) = runtime_run("", &[]);
    let runtime = &auto["cameras"]["door"]["runtime"];
    assert_eq!(runtime["runtime"], "onnxruntime", "{stderr}\n{auto}");
    let measured: Vec<String> = runtime["measured"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["runtime"].as_str().unwrap(),
                c["precision"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(measured, ["tract fp32", "onnxruntime fp32"], "{runtime}");
    assert!(
        runtime["measured"][1]["deviation"].as_f64().unwrap() < 1e-3,
        "{runtime}"
    );
    assert!(
        metrics.contains(
            "edgemass_runtime_info{camera=\"door\",model=\"blazeface-256\",runtime=\"onnxruntime\",precision=\"fp32\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("edgemass_runtime_candidate_ms{camera=\"door\",model=\"blazeface-256\",runtime=\"tract\",precision=\"fp32\"}"),
        "{metrics}"
    );
    assert!(
        stderr.contains("on onnxruntime fp32; measured: tract fp32"),
        "{stderr}"
    );
    assert_eq!(on_auto, on_tract);

    let (fallen, on_fallen, metrics, stderr) = runtime_run(
        "",
        &[("EDGEMASS_ONNXRUNTIME", "/nowhere/libonnxruntime.so")],
    );
    assert_eq!(
        fallen["cameras"]["yard"]["runtime"]["runtime"], "tract",
        "{fallen}"
    );
    assert!(
        metrics.contains("runtime=\"tract\",precision=\"fp32\"} 1"),
        "{metrics}"
    );
    let said = "onnxruntime library /nowhere/libonnxruntime.so (from $EDGEMASS_ONNXRUNTIME) does not exist; running on tract";
    assert_eq!(stderr.matches(said).count(), 1, "{stderr}");
    assert_eq!(on_fallen, on_tract);
}
