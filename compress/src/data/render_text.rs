//! Text detection data with exact ground truth: lines of real words drawn with real fonts onto
//! photos, each line's box taken from the ink the font left.
//!
//! A set is a directory of JPEG images and `labels.jsonl`, one [`Labelled`] per line.

use std::path::{Path, PathBuf};

use ab_glyph::{FontVec, PxScale};
use image::{GrayImage, Luma, Rgb, RgbImage, imageops};
use imageproc::drawing::{draw_text_mut, text_size};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

/// The fonts of Debian's `fonts-dejavu-core`, the default faces.
pub const DEJAVU_CORE: [&str; 6] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf",
];

/// The labels file of a set.
pub const LABELS: &str = "labels.jsonl";

/// Errors while rendering or reading a set.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A photo or font could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An output file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The options cannot make a set.
    #[error("render-text: {0}")]
    Options(String),
    /// A line of the labels file is not a labelled image.
    #[error("{path}:{line}: {reason}")]
    Labels {
        /// The labels file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// One image of a set and its text boxes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Labelled {
    /// The image file, relative to the set's directory.
    pub image: String,
    /// Boxes `[x1, y1, x2, y2]` in pixels, one per line of text.
    pub boxes: Vec<[f32; 4]>,
    /// The text of each line.
    pub texts: Vec<String>,
}

/// How to render a set.
#[derive(Debug, Clone)]
pub struct Options {
    /// Background photos, used in turn.
    pub photos: Vec<PathBuf>,
    /// TrueType fonts, picked at random per line.
    pub fonts: Vec<PathBuf>,
    /// Words the lines are made of.
    pub words: Vec<String>,
    /// Directory to write.
    pub out: PathBuf,
    /// Images to render.
    pub count: usize,
    /// Image size in pixels.
    pub width: u32,
    /// Image size in pixels.
    pub height: u32,
    /// Lines per image, inclusive range.
    pub lines: (usize, usize),
    /// Letter height in pixels (the font's pixel size), inclusive range.
    pub text_px: (f32, f32),
    /// Seed of every random choice.
    pub seed: u64,
    /// Draw a progress bar.
    pub progress: bool,
}

/// What was rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Images written.
    pub images: usize,
    /// Text lines drawn.
    pub boxes: usize,
    /// The labels file.
    pub labels: PathBuf,
}

/// Renders a set into `options.out`.
pub fn render(options: &Options) -> Result<Rendered, RenderError> {
    check(options)?;
    let photos: Vec<RgbImage> = options
        .photos
        .iter()
        .map(|p| {
            image::open(p)
                .map(|i| i.to_rgb8())
                .map_err(|e| RenderError::Read {
                    path: p.clone(),
                    reason: e.to_string(),
                })
        })
        .collect::<Result<_, _>>()?;
    let fonts: Vec<FontVec> = options
        .fonts
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).map_err(|e| RenderError::Read {
                path: p.clone(),
                reason: e.to_string(),
            })?;
            FontVec::try_from_vec(bytes).map_err(|_| RenderError::Read {
                path: p.clone(),
                reason: "not a TrueType or OpenType font".into(),
            })
        })
        .collect::<Result<_, _>>()?;
    let write_error = |path: &Path| {
        let path = path.to_owned();
        move |source| RenderError::Write { path, source }
    };
    std::fs::create_dir_all(&options.out).map_err(write_error(&options.out))?;
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut labels = Vec::new();
    let mut boxes = 0;
    let bar = crate::progress_bar(options.progress, options.count as u64, "render");
    for i in 0..options.count {
        let background = crop(&photos[i % photos.len()], options, &mut rng);
        let (image, lines) = draw_lines(background, &fonts, options, &mut rng);
        let name = format!("{i:05}.jpg");
        let path = options.out.join(&name);
        image
            .save_with_format(&path, image::ImageFormat::Jpeg)
            .map_err(|e| RenderError::Write {
                path: path.clone(),
                source: std::io::Error::other(e),
            })?;
        boxes += lines.len();
        let (texts, boxes): (Vec<String>, Vec<[f32; 4]>) = lines.into_iter().unzip();
        labels.push(Labelled {
            image: name,
            boxes,
            texts,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let path = options.out.join(LABELS);
    let mut text = Vec::new();
    for l in &labels {
        serde_json::to_writer(&mut text, l).expect("labels serialise");
        text.push(b'\n');
    }
    crate::write_atomic(&path, &text).map_err(write_error(&path))?;
    Ok(Rendered {
        images: labels.len(),
        boxes,
        labels: path,
    })
}

/// Reads a set's labels.
pub fn read_labels(dir: &Path) -> Result<Vec<Labelled>, RenderError> {
    let path = dir.join(LABELS);
    let text = std::fs::read_to_string(&path).map_err(|e| RenderError::Read {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| RenderError::Labels {
                path: path.clone(),
                line: i + 1,
                reason: e.to_string(),
            })
        })
        .collect()
}

/// Words of at least two letters from `texts`, each once, in first-seen order.
pub fn words(texts: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    texts
        .iter()
        .flat_map(|t| t.split_whitespace())
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| w.chars().count() >= 2 && w.chars().all(|c| c.is_ascii_alphanumeric()))
        .filter(|w| seen.insert(w.to_string()))
        .map(str::to_owned)
        .collect()
}

fn check(o: &Options) -> Result<(), RenderError> {
    let bad = |s: &str| Err(RenderError::Options(s.into()));
    if o.photos.is_empty() {
        return bad("no background photos given");
    }
    if o.fonts.is_empty() {
        return bad("no fonts given");
    }
    if o.words.is_empty() {
        return bad("no words to draw");
    }
    if o.width < 64 || o.height < 64 {
        return bad("images must be at least 64x64");
    }
    if o.lines.0 > o.lines.1 || o.lines.1 == 0 {
        return bad("lines must be MIN..=MAX with MAX at least 1");
    }
    if !(o.text_px.0 >= 6.0 && o.text_px.0 <= o.text_px.1 && o.text_px.1 < o.height as f32 / 2.0) {
        return bad("text size must be 6 px or more, MIN <= MAX, and under half the image height");
    }
    Ok(())
}

/// A random part of `photo` (between half and all of it), maybe mirrored, resized to the
/// output size.
fn crop(photo: &RgbImage, o: &Options, rng: &mut StdRng) -> RgbImage {
    let aspect = o.width as f32 / o.height as f32;
    let (pw, ph) = (photo.width() as f32, photo.height() as f32);
    let (full_w, full_h) = if pw / ph > aspect {
        (ph * aspect, ph)
    } else {
        (pw, pw / aspect)
    };
    let scale = rng.random_range(0.5..=1.0f32);
    let (w, h) = ((full_w * scale).max(1.0), (full_h * scale).max(1.0));
    let x = rng.random_range(0.0..=(pw - w).max(0.0));
    let y = rng.random_range(0.0..=(ph - h).max(0.0));
    let part = imageops::crop_imm(photo, x as u32, y as u32, w as u32, h as u32).to_image();
    let mut out = imageops::resize(&part, o.width, o.height, imageops::FilterType::Triangle);
    if rng.random_bool(0.5) {
        imageops::flip_horizontal_in_place(&mut out);
    }
    out
}

/// Draws lines of words on `image` where they do not touch each other; returns each line's text
/// and ink box.
fn draw_lines(
    mut image: RgbImage,
    fonts: &[FontVec],
    o: &Options,
    rng: &mut StdRng,
) -> (RgbImage, Vec<(String, [f32; 4])>) {
    let wanted = rng.random_range(o.lines.0..=o.lines.1);
    let mut placed: Vec<(String, [f32; 4])> = Vec::new();
    let mut attempts = 0;
    while placed.len() < wanted && attempts < wanted * 30 {
        attempts += 1;
        let font = &fonts[rng.random_range(0..fonts.len())];
        let px = (rng.random_range(o.text_px.0.ln()..=o.text_px.1.ln())).exp();
        let text = line_text(&o.words, rng);
        let scale = PxScale::from(px);
        let (w, h) = text_size(scale, font, &text);
        let margin = (px * 0.5) as u32;
        if w + 2 * margin >= image.width() || h + 2 * margin >= image.height() {
            continue;
        }
        let mut mask = GrayImage::new(w + 2 * margin, h + 2 * margin);
        draw_text_mut(
            &mut mask,
            Luma([255]),
            margin as i32,
            margin as i32,
            scale,
            font,
            &text,
        );
        let Some([mx1, my1, mx2, my2]) = ink(&mask) else {
            continue;
        };
        let x = rng.random_range(0..image.width() - mask.width());
        let y = rng.random_range(0..image.height() - mask.height());
        let bbox = [
            (x + mx1) as f32,
            (y + my1) as f32,
            (x + mx2) as f32,
            (y + my2) as f32,
        ];
        let gap = px * 0.4;
        if placed.iter().any(|(_, b)| touches(b, &bbox, gap)) {
            continue;
        }
        paint(&mut image, &mask, x, y, [mx1, my1, mx2, my2], rng);
        placed.push((text, bbox));
    }
    (image, placed)
}

fn line_text(words: &[String], rng: &mut StdRng) -> String {
    let n = rng.random_range(1..=4);
    let line: Vec<&str> = (0..n)
        .map(|_| words[rng.random_range(0..words.len())].as_str())
        .collect();
    let line = line.join(" ");
    match rng.random_range(0..4) {
        0 => line.to_uppercase(),
        _ => line,
    }
}

/// The box `[x1, y1, x2, y2)` of the pixels a glyph covered at least a quarter of.
fn ink(mask: &GrayImage) -> Option<[u32; 4]> {
    let mut b: Option<[u32; 4]> = None;
    for (x, y, p) in mask.enumerate_pixels() {
        if p.0[0] < 64 {
            continue;
        }
        b = Some(match b {
            None => [x, y, x + 1, y + 1],
            Some([x1, y1, x2, y2]) => [x1.min(x), y1.min(y), x2.max(x + 1), y2.max(y + 1)],
        });
    }
    b
}

fn touches(a: &[f32; 4], b: &[f32; 4], gap: f32) -> bool {
    a[0] - gap < b[2] && b[0] - gap < a[2] && a[1] - gap < b[3] && b[1] - gap < a[3]
}

/// Blends the mask onto the image in a colour that stands out from what is under the text,
/// sometimes on a plain plate like a sign's.
fn paint(image: &mut RgbImage, mask: &GrayImage, x: u32, y: u32, ink: [u32; 4], rng: &mut StdRng) {
    let [x1, y1, x2, y2] = ink;
    let mut sum = 0.0;
    for yy in y1..y2 {
        for xx in x1..x2 {
            let p = image.get_pixel(x + xx, y + yy).0;
            sum += 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
        }
    }
    let mut light_under = sum / ((x2 - x1) * (y2 - y1)) as f32 > 128.0;
    if rng.random_bool(0.3) {
        let plate = tone(!light_under, rng);
        let pad = ((y2 - y1) / 4).max(2);
        for yy in y1.saturating_sub(pad)..(y2 + pad).min(mask.height()) {
            for xx in x1.saturating_sub(pad)..(x2 + pad).min(mask.width()) {
                image.put_pixel(x + xx, y + yy, Rgb(plate));
            }
        }
        light_under = !light_under;
    }
    let colour = tone(!light_under, rng);
    for (mx, my, a) in mask.enumerate_pixels() {
        let alpha = a.0[0] as f32 / 255.0;
        if alpha == 0.0 {
            continue;
        }
        let p = image.get_pixel_mut(x + mx, y + my);
        for (channel, &ink) in p.0.iter_mut().zip(&colour) {
            *channel = (*channel as f32 * (1.0 - alpha) + ink as f32 * alpha).round() as u8;
        }
    }
}

/// A random light (luminance well above the middle) or dark colour.
fn tone(light: bool, rng: &mut StdRng) -> [u8; 3] {
    let (lo, hi) = if light { (190u8, 255u8) } else { (0u8, 70u8) };
    [0, 1, 2].map(|_| rng.random_range(lo..=hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_distinct_alphanumeric_tokens() {
        let texts = vec![
            "Brexit: the 'deal' is done, again".to_string(),
            "the deal".into(),
        ];
        assert_eq!(
            words(&texts),
            ["Brexit", "the", "deal", "is", "done", "again"]
        );
    }

    #[test]
    fn ink_is_the_covered_box() {
        let mut m = GrayImage::new(10, 10);
        m.put_pixel(2, 3, Luma([200]));
        m.put_pixel(6, 7, Luma([100]));
        m.put_pixel(9, 9, Luma([10]));
        assert_eq!(ink(&m), Some([2, 3, 7, 8]));
        assert_eq!(ink(&GrayImage::new(4, 4)), None);
    }
}
