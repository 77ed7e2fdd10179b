//! Draws detections onto an image: a box per detection with its label and score, and keypoints.

use font8x8::{BASIC_FONTS, UnicodeFonts};
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_circle_mut, draw_filled_rect_mut, draw_hollow_rect_mut};
use imageproc::rect::Rect;

use super::Detection;

const PALETTE: [[u8; 3]; 6] = [
    [255, 56, 56],
    [44, 153, 168],
    [255, 178, 29],
    [72, 249, 10],
    [146, 204, 23],
    [207, 210, 49],
];

/// Draws every detection on `image`, labelled with `labels[class]` and the score.
pub fn draw(image: &mut RgbImage, detections: &[Detection], labels: &[String]) {
    let thickness = (image.width().max(image.height()) / 400).max(2) as i32;
    let scale = (image.width().max(image.height()) / 640).clamp(1, 4);
    for d in detections {
        let color = Rgb(PALETTE[d.class % PALETTE.len()]);
        let (x, y) = (d.bbox.x1.round() as i32, d.bbox.y1.round() as i32);
        let (w, h) = (
            (d.bbox.x2 - d.bbox.x1).round() as i32,
            (d.bbox.y2 - d.bbox.y1).round() as i32,
        );
        for t in 0..thickness {
            let (rw, rh) = (w - 2 * t, h - 2 * t);
            if rw > 0 && rh > 0 {
                draw_hollow_rect_mut(
                    image,
                    Rect::at(x + t, y + t).of_size(rw as u32, rh as u32),
                    color,
                );
            }
        }
        for [kx, ky] in &d.keypoints {
            draw_filled_circle_mut(
                image,
                (kx.round() as i32, ky.round() as i32),
                thickness,
                color,
            );
        }
        let label = labels.get(d.class).map_or("?", String::as_str);
        let text = format!("{label} {:.2}", d.score);
        let glyph = 8 * scale;
        let text_y = if y >= glyph as i32 + 2 {
            y - glyph as i32 - 2
        } else {
            y
        };
        let width = glyph * text.chars().count() as u32 + 4;
        draw_filled_rect_mut(image, Rect::at(x, text_y).of_size(width, glyph + 2), color);
        draw_text(image, x + 2, text_y + 1, scale, &text);
    }
}

/// Draws `text` in white with the 8×8 bitmap font, each dot `scale` pixels wide.
fn draw_text(image: &mut RgbImage, x: i32, y: i32, scale: u32, text: &str) {
    let white = Rgb([255, 255, 255]);
    for (i, c) in text.chars().enumerate() {
        let Some(rows) = BASIC_FONTS.get(c).or_else(|| BASIC_FONTS.get('?')) else {
            continue;
        };
        let origin_x = x + (i as u32 * 8 * scale) as i32;
        for (row, bits) in rows.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    let px = origin_x + (col * scale) as i32;
                    let py = y + (row as u32 * scale) as i32;
                    draw_filled_rect_mut(image, Rect::at(px, py).of_size(scale, scale), white);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::BBox;

    #[test]
    fn boxes_and_labels_change_pixels_inside_the_image_only() {
        let mut image = RgbImage::new(100, 60);
        let d = Detection {
            class: 0,
            score: 0.9,
            bbox: BBox {
                x1: 20.0,
                y1: 30.0,
                x2: 90.0,
                y2: 80.0,
            },
            keypoints: vec![[50.0, 40.0]],
        };
        draw(&mut image, &[d], &["face".into()]);
        assert_eq!(image.get_pixel(20, 45), &Rgb(PALETTE[0]), "left edge");
        assert_eq!(image.get_pixel(50, 40), &Rgb(PALETTE[0]), "keypoint");
        assert_eq!(image.get_pixel(5, 5), &Rgb([0, 0, 0]), "untouched corner");
        let white = image
            .pixels()
            .filter(|p| **p == Rgb([255, 255, 255]))
            .count();
        assert!(white > 20, "label text drawn: {white} white pixels");
    }
}
