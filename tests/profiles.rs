//! The board profiles in `firmware-config/`: each loads, and every camera's model loads in the
//! form and at the input size the profile asks for and runs on a real photo (the text-region
//! student must find the bus's lettering).

use edgemass::config::Config;
use edgemass::model::Precision;
use edgemass::vision::detector::Detector;
use edgemass::vision::preprocess::load_image;

use crate::common::{cache, photo, root};

/// What each camera of each profile resolved to: profile, camera, model, precision, input size.
fn resolved() -> Vec<(String, String, String, Precision, [u32; 2])> {
    cache();
    let frame = load_image(&photo("bus.jpg")).unwrap();
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(root().join("firmware-config")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let profile = path.file_stem().unwrap().to_string_lossy().into_owned();
        let config = Config::from_path(&path).unwrap_or_else(|e| panic!("{profile}: {e}"));
        for camera in &config.cameras {
            let manifest = camera
                .manifest()
                .unwrap_or_else(|e| panic!("{profile} {}: {e}", camera.name));
            let size = [manifest.input.width, manifest.input.height];
            let detector = Detector::load(manifest, &camera.load_options(&config.inference))
                .unwrap_or_else(|e| panic!("{profile} {}: {e}", camera.name));
            let precision = detector.model().choice().precision;
            let found = detector.detect(&frame).unwrap();
            let model = detector.model().manifest().name.clone();
            // The lettering on the bus: the student finds it in both forms and at both sizes.
            if model == "ppocr-det-student" {
                assert!(
                    !found.detections.is_empty(),
                    "{profile} {}: no text regions on bus.jpg",
                    camera.name
                );
            }
            // People and vehicles: the COCO SSD finds the bus.
            if model == "ssd-mobilenet-v2-coco" {
                let labels = detector.labels();
                assert!(
                    found.detections.iter().any(|d| labels[d.class] == "bus"),
                    "{profile} {}: no bus on bus.jpg",
                    camera.name
                );
            }
            seen.push((profile.clone(), camera.name.clone(), model, precision, size));
        }
    }
    seen
}

#[test]
fn every_profile_runs_its_cameras_models_in_the_chosen_form() {
    let seen = resolved();
    let find = |profile: &str, camera: &str| {
        seen.iter()
            .find(|s| s.0 == profile && s.1 == camera)
            .unwrap_or_else(|| panic!("{profile} has no camera {camera}: {seen:?}"))
    };
    // The A72 runs the student in float at a reduced size; the A76 and A78AE run its int8 form.
    let pi4 = find("rpi4", "front");
    assert_eq!(
        (pi4.2.as_str(), pi4.3, pi4.4),
        ("ppocr-det-student", Precision::Fp32, [640, 640])
    );
    for (profile, camera) in [("rpi5", "front"), ("jetson-orin-nano", "local")] {
        let s = find(profile, camera);
        assert_eq!(
            (s.2.as_str(), s.3, s.4),
            ("ppocr-det-student", Precision::Int8, [960, 960])
        );
    }
    // The door and sample cameras watch for people and vehicles.
    for (profile, camera) in [
        ("rpi5", "door"),
        ("jetson-orin-nano", "door"),
        ("x86-dev", "sample"),
        ("demo", "street"),
    ] {
        assert_eq!(find(profile, camera).2, "ssd-mobilenet-v2-coco");
    }
    // Packages without an int8 form run in float whatever the profile says of the CPU.
    for s in &seen {
        if s.2 != "ppocr-det-student" {
            assert_eq!(s.3, Precision::Fp32, "{s:?}");
        }
    }
    assert!(seen.len() >= 8, "{seen:?}");
}

#[test]
fn the_jetson_profile_escalates_to_a_local_triton() {
    let config = Config::from_path(&root().join("firmware-config/jetson-orin-nano.toml")).unwrap();
    let host = config
        .fallback
        .expect("the Jetson profile has a fallback host");
    assert_eq!(host.url.as_str(), "http://127.0.0.1:8000");
    let camera = config.cameras.iter().find(|c| c.name == "local").unwrap();
    let escalation = camera
        .fallback
        .as_ref()
        .expect("the student camera escalates");
    assert!(escalation.model.ends_with("models/ppocr-det.model.toml"));
}
