//! `render-text`: lines of real words in real fonts drawn onto photos, with their true boxes.

use std::io::IsTerminal;
use std::path::PathBuf;

use edgemass_compress::data::{IMAGE_EXTENSIONS, files};

use super::{parse_range, parse_size};

#[derive(clap::Args)]
pub struct RenderText {
    /// Background photos: files or directories of .jpg/.png files.
    #[arg(long, required = true, num_args = 1..)]
    photos: Vec<PathBuf>,
    /// guardian_headlines.csv.bz2: where the words come from.
    #[arg(long)]
    words: PathBuf,
    /// TrueType fonts: files or directories of .ttf files (default: the six fonts of Debian's
    /// fonts-dejavu-core).
    #[arg(long, num_args = 1.., default_values = edgemass_compress::data::render_text::DEJAVU_CORE)]
    fonts: Vec<PathBuf>,
    /// Directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Images to render.
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// Image size, WIDTHxHEIGHT.
    #[arg(long, default_value = "960x960", value_parser = parse_size)]
    size: (u32, u32),
    /// Lines of text per image, MIN..MAX.
    #[arg(long, default_value = "2..6", value_parser = parse_range::<usize>)]
    lines: (usize, usize),
    /// Font pixel size, MIN..MAX.
    #[arg(long, default_value = "20..64", value_parser = parse_range::<f32>)]
    text_px: (f32, f32),
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Runs the command.
pub fn run(args: &RenderText) -> anyhow::Result<String> {
    use edgemass_compress::data::render_text::{self, Options};
    let headlines = edgemass_compress::data::corpus::guardian_headlines(&args.words)?;
    let options = Options {
        photos: files(&args.photos, IMAGE_EXTENSIONS)?,
        fonts: files(&args.fonts, &["ttf", "otf"])?,
        words: render_text::words(&headlines),
        out: args.out.clone(),
        count: args.count,
        width: args.size.0,
        height: args.size.1,
        lines: args.lines,
        text_px: args.text_px,
        seed: args.seed,
        progress: std::io::stderr().is_terminal(),
    };
    let r = render_text::render(&options)?;
    Ok(format!(
        "rendered {} images with {} lines of text from {} photos and {} fonts\nwrote {}",
        r.images,
        r.boxes,
        options.photos.len(),
        options.fonts.len(),
        r.labels.display()
    ))
}
