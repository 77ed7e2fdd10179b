//! Distillation of a text detector on rendered images: a downscaled, half-pruned student of the
//! real PP-OCRv4 detector learns (held-out loss falls), an interrupted run resumes where it
//! stopped, and the written package loads in the agent.

use edgemass_compress::data::render_text::{self, DEJAVU_CORE};
use edgemass_compress::passes::distill::detect::{Options, distill};
use edgemass_compress::passes::downscale::downscale_package;
use edgemass_compress::passes::prune::conv::{Plan, prune_package};

use crate::common::{cached, text_detector};

fn render(dir: &std::path::Path, photos: &str, count: usize, seed: u64) {
    let headlines = edgemass_compress::data::corpus::guardian_headlines(&cached(
        "data/guardian_headlines.csv.bz2",
    ))
    .unwrap();
    let photos = std::fs::read_dir(cached(photos))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    render_text::render(&render_text::Options {
        photos,
        fonts: DEJAVU_CORE.iter().map(Into::into).collect(),
        words: render_text::words(&headlines),
        out: dir.to_owned(),
        count,
        width: 256,
        height: 256,
        lines: (2, 4),
        text_px: (20.0, 40.0),
        seed,
        progress: false,
    })
    .unwrap();
}

#[test]
fn detector_student_learns_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = text_detector(dir.path(), 256);
    let (train, test) = (dir.path().join("train"), dir.path().join("test"));
    render(&train, "backgrounds", 16, 3);
    render(&test, "photos", 4, 4);
    let half = downscale_package(&teacher, 2, &dir.path().join("half"), "half").unwrap();
    let (_, student) = prune_package(
        &half,
        &[],
        &Plan::uniform(0.5),
        &dir.path().join("pruned"),
        "pruned",
    )
    .unwrap();

    let mut options = Options::new(
        &teacher,
        &student,
        vec![train],
        &test,
        &dir.path().join("out"),
    );
    options.settings.epochs = 6;
    options.settings.batch_size = 4;
    options.settings.crop = 192;
    options.run.control.checkpoint_every = 5;
    options.run.control.stop_after = Some(10);
    let first = distill(&options).unwrap();
    assert!(first.trained.manifest.is_none());
    assert_eq!(first.trained.steps, 10);
    assert!(options.run.work().join("checkpoint.safetensors").is_file());

    options.run.control.stop_after = None;
    let second = distill(&options).unwrap();
    assert_eq!(second.trained.resumed_from, Some(10));
    assert_eq!(second.trained.steps, 6 * 4 - 10);
    assert!(
        second.held_out_loss.1 < second.held_out_loss.0 * 0.8,
        "held-out loss {:?}",
        second.held_out_loss
    );
    assert!(!options.run.work().join("checkpoint.json").exists());
    let manifest = second.trained.manifest.unwrap();
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(
        text.contains("distill-detect: 6 epochs over 16 images"),
        "{text}"
    );
    edgemass::model::Model::from_manifest_path(&manifest).expect("the agent loads the student");
}

#[test]
fn a_face_detector_is_not_a_text_detector_teacher() {
    let dir = tempfile::tempdir().unwrap();
    let face =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/blazeface-256.model.toml");
    let options = Options::new(
        &face,
        &face,
        vec![dir.path().into()],
        dir.path(),
        dir.path(),
    );
    let e = distill(&options).unwrap_err().to_string();
    assert!(e.contains("not a DBNet"), "{e}");
}
