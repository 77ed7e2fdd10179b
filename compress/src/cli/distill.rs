//! `distill`: a student trained to imitate its teacher (knowledge distillation in candle), by the
//! student's family: a text-classify package on texts, a detection package on rendered-text
//! images.

use std::io::IsTerminal;

use clap::Parser;
use edgemass_compress::passes::distill::{Trained, detect, text};

use super::family::{Family, Flags, Form, Raw, dispatch};

/// `distill` for a text-classify student.
#[derive(Parser)]
pub struct Text {
    #[command(flatten)]
    options: text::Options,
}

/// `distill` for a detection student (`distill-detect`).
#[derive(Parser)]
pub struct Detect {
    #[command(flatten)]
    options: detect::Options,
}

/// Runs `distill` with the flags of the student's family.
pub fn run(raw: Raw) -> anyhow::Result<String> {
    dispatch(
        &raw,
        "distill",
        "student",
        &[
            Form::of::<Text>(&[Family::Text], "text-classify students"),
            Form::of::<Detect>(&[Family::Detect], "detection students"),
        ],
    )
}

impl Flags for Text {
    fn run(mut self) -> anyhow::Result<String> {
        self.options.run.progress = std::io::stderr().is_terminal();
        let r = text::distill(&self.options)?;
        Ok(format!(
            "distilled on {} texts ({} labelled){}: held-out loss {:.4} -> {:.4}, accuracy {:.2} % \
             -> {:.2} %, teacher agreement {:.2} %, {}",
            r.examples,
            r.labelled,
            resumed(&r.trained),
            r.held_out_loss.0,
            r.held_out_loss.1,
            r.accuracy.0 * 100.0,
            r.accuracy.1 * 100.0,
            r.agreement * 100.0,
            ending(&r.trained, String::new())
        ))
    }
}

impl Flags for Detect {
    fn run(mut self) -> anyhow::Result<String> {
        self.options.run.progress = std::io::stderr().is_terminal();
        let r = detect::distill(&self.options)?;
        let fitted = r.decoder.map_or(String::new(), |t| {
            format!(
                "decoder fitted: threshold {:.2}, unclip ratio {:.2} (mAP@0.5 {:.4} -> {:.4} on \
                 training images)\n",
                t.threshold, t.unclip_ratio, t.before, t.after
            )
        });
        Ok(format!(
            "distilled on {} images{}: held-out loss {:.4} -> {:.4} on {} images, {}",
            r.images,
            resumed(&r.trained),
            r.held_out_loss.0,
            r.held_out_loss.1,
            r.held_out,
            ending(&r.trained, fitted)
        ))
    }
}

fn resumed(trained: &Trained) -> String {
    trained
        .resumed_from
        .map_or(String::new(), |s| format!(", resumed at step {s}"))
}

/// The steps and time of a run, then `fitted` and the package it wrote, or how to resume it.
fn ending(trained: &Trained, fitted: String) -> String {
    let last = match &trained.manifest {
        Some(m) => format!("{fitted}wrote {}", m.display()),
        None => "stopped as asked; run the same command again to resume".into(),
    };
    format!("{} steps, {:.0} s\n{last}", trained.steps, trained.seconds)
}
