//! The agent with a fallback host: unsure faces and texts checked by `edgemass serve` on the same
//! real models, a host model that does not fit, and faults (killed, slow, 500, garbage) that
//! open the breaker while edge events keep flowing, and close it again once the host is back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::common::{cache, certificates, manifest, photo, text_package};
use crate::host::{FaultyHost, Mode, Serve, repository};
use crate::mqtt::{Agent, Mosquitto, Subscriber, free_port, wait_for};

const LONG: Duration = Duration::from_secs(180);

/// A folder with copies of `names` from the photo cache.
fn photos(dir: &Path, names: &[&str]) -> PathBuf {
    let photos = dir.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for name in names {
        std::fs::copy(photo(name), photos.join(name)).unwrap();
    }
    photos
}

/// A looping BlazeFace camera on `photos`, with `extra` lines (its fallback table).
fn camera(photos: &Path, fps: f64, max_missed: u32, extra: &str) -> String {
    camera_with(&manifest("blazeface-256"), photos, fps, max_missed, extra)
}

/// A looping camera running `model` on `photos`.
fn camera_with(model: &Path, photos: &Path, fps: f64, max_missed: u32, extra: &str) -> String {
    format!(
        "[[camera]]\nname = \"door\"\nsource = \"images\"\npath = {:?}\nfps = {fps}\nloop = true\nmodel = {:?}\nthreshold = 0.5\nmin_score = 0.4\nmax_missed = {max_missed}\n{extra}\n",
        photos.display().to_string(),
        model.display().to_string()
    )
}

/// Escalation of the camera's faces scored in `[low, high)` to BlazeFace on the host.
fn face_fallback(low: f32, high: f32, name: &str) -> String {
    format!(
        "[camera.fallback]\nmodel = {:?}\nlow = {low}\nhigh = {high}\n{name}\n",
        manifest("blazeface-256").display().to_string()
    )
}

/// An agent config: broker on `broker`, `host` lines in `[fallback]`, then `sources`.
fn config(dir: &Path, broker: u16, host: &str, sources: &str) -> PathBuf {
    let text = format!(
        "[device]\nid = \"testdev\"\n\n[mqtt]\nport = {broker}\nstats_interval_s = 1\nkeep_alive_s = 5\ndiscovery = false\nsnapshots = false\n\n[outbox]\npath = {:?}\n\n[http]\nlisten = \"\"\n\n[fallback]\n{host}\n\n{sources}",
        dir.join("outbox.sqlite").display().to_string()
    );
    let path = dir.join(format!("agent-{}.toml", free_port()));
    std::fs::write(&path, text).unwrap();
    path
}

fn events(sub: &Subscriber) -> Vec<Value> {
    sub.on("edgemass/testdev/events")
        .iter()
        .map(|m| m.json())
        .collect()
}

fn host_events(sub: &Subscriber) -> Vec<Value> {
    events(sub)
        .into_iter()
        .filter(|e| e["after"]["source"] == "host")
        .collect()
}

/// The `fallback` object of the latest stats message.
fn host_stats(sub: &Subscriber) -> Value {
    sub.on("edgemass/testdev/stats")
        .last()
        .map(|m| m.json()["fallback"].clone())
        .unwrap_or(Value::Null)
}

fn counter(sub: &Subscriber, key: &str) -> u64 {
    host_stats(sub)[key].as_u64().unwrap_or(0)
}

#[test]
fn unsure_faces_and_texts_are_checked_by_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let broker = Mosquitto::start(d);
    let serve = Serve::start(&repository(d, true), &[], &[]);
    let sub = Subscriber::connect(broker.port, "#");
    let package = text_package().display().to_string();
    let sources = camera(
        &photos(d, &["bus.jpg"]),
        2.0,
        5,
        &face_fallback(0.5, 0.9, ""),
    ) + &format!(
        "[text]\nmodel = {package:?}\nmqtt = true\n\n[text.fallback]\nmodel = {package:?}\nlow = 0.5\nhigh = 0.8\n"
    );
    let host = format!("url = \"{}\"\nrate_per_s = 50.0\nburst = 50", serve.url());
    let mut agent = Agent::start(&config(d, broker.port, &host, &sources));

    assert!(
        wait_for(LONG, || host_events(&sub).len() >= 2),
        "no host verdicts: {}\n{}",
        agent.stderr(),
        serve.log()
    );
    let texts = [
        "a wonderful, moving film",
        "a dull, tedious mess",
        "the film",
        "it is a movie about a bus",
        "brilliant acting and a beautiful story",
    ];
    for (i, text) in texts.iter().enumerate() {
        sub.publish(
            "edgemass/testdev/text/in",
            serde_json::json!({"id": format!("t{i}"), "text": text}).to_string(),
        );
    }
    let answers = || -> Vec<Value> {
        sub.on("edgemass/testdev/text/out")
            .iter()
            .map(|m| m.json())
            .collect()
    };
    let settled = || {
        let all = answers();
        let unsure = all.iter().filter(|a| a["verified"] == false).count();
        let verified = all.iter().filter(|a| a["verified"] == true).count();
        all.len() >= texts.len() && verified == unsure
    };
    assert!(wait_for(LONG, settled), "texts: {:?}", answers());
    let escalated = answers().iter().filter(|a| a["verified"] == true).count() as u64;
    assert!(escalated >= 1, "no text was in the band: {:?}", answers());
    assert!(
        wait_for(LONG, || counter(&sub, "answers") > escalated),
        "{}",
        host_stats(&sub)
    );
    agent.terminate();
    assert_eq!(agent.wait(LONG), 0, "{}", agent.stderr());

    // Both faces on bus.jpg (0.83 and 0.76) are in the band: `new` says unverified, then the
    // host's `update` carries its verdict. The host runs the same model on the same pixels.
    let all = events(&sub);
    let new: Vec<&Value> = all.iter().filter(|e| e["type"] == "new").collect();
    assert_eq!(new.len(), 2, "{all:?}");
    for e in &new {
        assert_eq!(e["after"]["source"], "edge");
        assert_eq!(e["after"]["verified"], false, "{e}");
    }
    let verdicts = host_events(&sub);
    let updates: Vec<&Value> = verdicts.iter().filter(|e| e["type"] == "update").collect();
    assert_eq!(updates.len(), 2, "{verdicts:?}");
    for e in updates {
        let after = &e["after"];
        assert_eq!(after["verified"], true, "{e}");
        assert_eq!(after["host_label"], "face");
        assert_eq!(after["host_model"], "blazeface-256");
        let (edge, host) = (
            after["score"].as_f64().unwrap(),
            after["host_score"].as_f64().unwrap(),
        );
        assert!((edge - host).abs() < 1e-3, "edge {edge}, host {host}");
        assert_eq!(e["before"]["verified"], false);
        assert_eq!(e["before"]["id"], after["id"]);
    }

    // Texts: the ones scored below 0.8 say `verified: false` and get a second message with the
    // host's verdict; the others get one message without `verified`.
    let all = answers();
    for i in 0..texts.len() {
        let id = format!("t{i}");
        let mine: Vec<&Value> = all.iter().filter(|a| a["id"] == id.as_str()).collect();
        let edge = mine[0];
        let score = edge["score"].as_f64().unwrap();
        if score < 0.8 {
            assert_eq!(mine.len(), 2, "{mine:?}");
            assert_eq!(edge["verified"], false);
            let host = mine[1];
            assert_eq!(host["verified"], true);
            assert_eq!(host["label"], edge["label"], "the edge's answer stays");
            assert_eq!(host["host_label"], edge["label"], "same model on the host");
            assert!((host["host_score"].as_f64().unwrap() - score).abs() < 1e-3);
            assert_eq!(host["host_model"], "minilm-l6-anchors");
            for label in ["rotten", "fresh"] {
                assert!(host["host_scores"][label].is_number(), "{host}");
            }
        } else {
            assert_eq!(mine.len(), 1, "{mine:?}");
            assert!(edge.get("verified").is_none(), "{edge}");
        }
    }

    let stats = host_stats(&sub);
    assert_eq!(stats["breaker"], "closed", "{stats}");
    assert_eq!(stats["errors"], 0, "{stats}");
    assert!(stats["host_ms_p50"].as_f64().unwrap() > 0.0, "{stats}");
    let queues = sub.on("edgemass/testdev/stats").last().unwrap().json()["queues"].clone();
    let answers = &queues["fallback_answers/door"];
    assert_eq!(answers["policy"], "drop", "{queues}");
    assert_eq!(answers["capacity"], 256, "{queues}");
    assert!(answers["high_water"].as_u64().unwrap() >= 1, "{queues}");

    // A host model that does not fit the manifest stops the agent at start, in one line.
    let wrong = camera(
        &d.join("photos"),
        2.0,
        5,
        &face_fallback(0.5, 0.9, "name = \"minilm-l6-anchors\""),
    );
    let mut agent = Agent::start(&config(d, broker.port, &host, &wrong));
    assert_eq!(agent.wait(LONG), 1, "{}", agent.stderr());
    let stderr = agent.stderr();
    let line = stderr
        .lines()
        .find(|l| l.starts_with("edgemass: error:"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        line.contains("host model `minilm-l6-anchors` does not fit")
            && line.contains("no input `input:0`"),
        "{line}"
    );
}

/// Alternating photos with `max_missed = 1`: every frame ends its faces and starts new ones,
/// so requests keep going to the host.
fn busy_camera(d: &Path) -> String {
    camera(
        &photos(d, &["bus.jpg", "zidane.jpg"]),
        2.0,
        1,
        &face_fallback(0.3, 1.0, ""),
    )
}

const IMPATIENT: &str =
    "timeout_ms = 1500\nfailures_to_open = 2\nopen_s = 1.0\nrate_per_s = 50.0\nburst = 50";

/// Waits until the breaker has opened once more than `opened`, then until `more` further edge
/// events and inferred frames arrive while it is not closed.
fn opens_and_edge_keeps_going(sub: &Subscriber, agent: &Agent, opened: u64, what: &str) {
    assert!(
        wait_for(LONG, || counter(sub, "breaker_opened") > opened),
        "{what}: the breaker did not open: {}\n{}",
        host_stats(sub),
        agent.stderr()
    );
    let seen = events(sub).len();
    let inferred = |s: &Subscriber| {
        s.on("edgemass/testdev/stats")
            .last()
            .and_then(|m| m.json()["cameras"]["door"]["inferred"].as_u64())
            .unwrap_or(0)
    };
    let frames = inferred(sub);
    assert!(
        wait_for(LONG, || events(sub).len() >= seen + 4
            && inferred(sub) >= frames + 4),
        "{what}: edge events stopped while the host was down"
    );
}

/// Waits until the breaker is closed again and the host answered more than `answers` times.
fn closes_again(sub: &Subscriber, answers: u64, what: &str) {
    assert!(
        wait_for(LONG, || host_stats(sub)["breaker"] == "closed"
            && counter(sub, "answers") > answers),
        "{what}: the breaker did not close: {}",
        host_stats(sub)
    );
}

#[test]
fn a_slow_failing_or_garbled_host_opens_the_breaker_and_edge_events_keep_flowing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let broker = Mosquitto::start(d);
    let host = FaultyHost::start(Mode::Answer);
    let sub = Subscriber::connect(broker.port, "#");
    let settings = format!("url = \"{}\"\n{IMPATIENT}", host.url());
    let mut agent = Agent::start(&config(d, broker.port, &settings, &busy_camera(d)));
    assert!(
        wait_for(LONG, || counter(&sub, "answers") >= 2),
        "no answers: {}",
        agent.stderr()
    );
    for mode in [Mode::Slow, Mode::Fail, Mode::Garbage] {
        let what = format!("{mode:?}");
        host.set(mode);
        opens_and_edge_keeps_going(&sub, &agent, counter(&sub, "breaker_opened"), &what);
        let answers = counter(&sub, "answers");
        host.set(Mode::Answer);
        closes_again(&sub, answers, &what);
    }
    let stats = host_stats(&sub);
    assert!(stats["timeouts"].as_u64().unwrap() >= 2, "{stats}");
    assert!(stats["errors"].as_u64().unwrap() >= 4, "{stats}");
    assert!(stats["breaker_opened"].as_u64().unwrap() >= 3, "{stats}");
    // The host found no face: its verdicts say so, the edge's events stand.
    let verdict = host_events(&sub)
        .pop()
        .unwrap_or_else(|| panic!("no host verdict: {stats}\n{:?}", events(&sub)));
    assert_eq!(verdict["after"]["host_score"], 0.0, "{verdict}");
    agent.terminate();
    assert_eq!(agent.wait(LONG), 0, "{}", agent.stderr());
}

#[test]
fn a_killed_host_opens_the_breaker_and_its_restart_closes_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let broker = Mosquitto::start(d);
    let mut serve = Serve::start(&repository(d, false), &[], &[]);
    let sub = Subscriber::connect(broker.port, "#");
    let settings = format!("url = \"{}\"\n{IMPATIENT}", serve.url());
    let mut agent = Agent::start(&config(d, broker.port, &settings, &busy_camera(d)));
    assert!(
        wait_for(LONG, || !host_events(&sub).is_empty()),
        "no host verdicts: {}",
        agent.stderr()
    );
    serve.kill();
    opens_and_edge_keeps_going(&sub, &agent, 0, "killed");
    let verdicts = host_events(&sub).len();
    let answers = counter(&sub, "answers");
    serve.restart();
    closes_again(&sub, answers, "restarted");
    assert!(
        wait_for(LONG, || host_events(&sub).len() > verdicts),
        "no verdicts after the restart"
    );
    assert!(counter(&sub, "errors") >= 2, "{}", host_stats(&sub));
    agent.terminate();
    assert_eq!(agent.wait(LONG), 0, "{}", agent.stderr());
}

#[test]
fn the_host_is_reached_over_https_with_a_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d);
    let broker = Mosquitto::start(d);
    let (cert, key) = (d.join("server.pem"), d.join("server.key"));
    let serve = Serve::start(
        &repository(d, false),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[("EDGEMASS_SERVE_TOKEN", "gpu-t0ken")],
    );
    let sub = Subscriber::connect(broker.port, "#");
    let host = format!(
        "url = \"https://127.0.0.1:{}\"\nca_file = {:?}",
        serve.port,
        d.join("ca.pem").display().to_string()
    );
    let sources = camera(
        &photos(d, &["bus.jpg"]),
        2.0,
        5,
        &face_fallback(0.5, 0.9, ""),
    );
    let config = config(d, broker.port, &host, &sources);

    let mut refused = Agent::start_with_env(&config, &[("EDGEMASS_FALLBACK_TOKEN", "wrong")]);
    assert!(
        wait_for(LONG, || refused
            .stderr()
            .contains("answered 401: missing or wrong bearer token")),
        "{}",
        refused.stderr()
    );
    refused.terminate();
    assert_eq!(refused.wait(LONG), 0, "{}", refused.stderr());
    assert!(host_events(&sub).is_empty());

    let mut agent = Agent::start_with_env(&config, &[("EDGEMASS_FALLBACK_TOKEN", "gpu-t0ken")]);
    assert!(
        wait_for(LONG, || host_events(&sub).len() >= 2),
        "no host verdicts over https: {}\n{}",
        agent.stderr(),
        serve.log()
    );
    agent.terminate();
    assert_eq!(agent.wait(LONG), 0, "{}", agent.stderr());
    assert!(
        !agent.stderr().contains("gpu-t0ken"),
        "the token is never logged"
    );
}

/// The PP-OCR 0°/180° text orientation classifier: a `classify` model for crops of text.
const ORIENTATION: &str = r#"
name = "ppocr-cls"
task = "classify"
file = "FILE"
sha256 = "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"
labels = ["0", "180"]

[input]
name = "x"
layout = "nchw"
width = 192
height = 48
resize = "stretch"
mean = [0.5, 0.5, 0.5]
std = [0.5, 0.5, 0.5]

[decoder]
kind = "softmax"
output = "save_infer_model/scale_0.tmp_1"
"#;

#[test]
fn a_classifier_on_the_host_judges_each_unsure_objects_crop() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let onnx = cache().join("ppocr/ch_ppocr_mobile_v2.0_cls_infer.onnx");
    let version = d.join("repo/ppocr-cls/1");
    std::fs::create_dir_all(&version).unwrap();
    std::os::unix::fs::symlink(&onnx, version.join("model.onnx")).unwrap();
    let classifier = d.join("repo/ppocr-cls/ppocr-cls.model.toml");
    std::fs::write(
        &classifier,
        ORIENTATION.replace("FILE", onnx.to_str().unwrap()),
    )
    .unwrap();
    let broker = Mosquitto::start(d);
    let serve = Serve::start(&d.join("repo"), &[], &[]);
    let sub = Subscriber::connect(broker.port, "#");
    let host = format!(
        "url = \"{}\"\nrate_per_s = 50.0\nburst = 50\nmax_in_flight = 16",
        serve.url()
    );
    let escalation = format!(
        "[camera.fallback]\nmodel = {:?}\nlow = 0.5\nhigh = 1.0\n",
        classifier.display().to_string()
    );
    let sources = camera_with(
        &manifest("ppocr-det"),
        &photos(d, &["bus.jpg"]),
        1.0,
        5,
        &escalation,
    );
    let mut agent = Agent::start(&config(d, broker.port, &host, &sources));
    assert!(
        wait_for(LONG, || host_events(&sub).len() >= 3),
        "no verdicts on crops: {}\n{}\n{:?}",
        host_stats(&sub),
        agent.stderr(),
        events(&sub)
    );
    agent.terminate();
    assert_eq!(agent.wait(LONG), 0, "{}", agent.stderr());
    let verdicts = host_events(&sub);
    let mut ids = std::collections::BTreeSet::new();
    for e in &verdicts {
        let after = &e["after"];
        assert_eq!(after["label"], "text");
        assert_eq!(after["host_model"], "ppocr-cls");
        assert!(
            ["0", "180"].contains(&after["host_label"].as_str().unwrap()),
            "{e}"
        );
        let score = after["host_score"].as_f64().unwrap();
        assert!((0.5..=1.0).contains(&score), "{e}");
        ids.insert(after["id"].as_str().unwrap().to_owned());
    }
    assert!(ids.len() >= 3, "one verdict per text region: {verdicts:?}");
    assert_eq!(host_stats(&sub)["errors"], 0);
}
