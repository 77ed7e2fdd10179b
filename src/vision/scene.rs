//! A made-up camera picture — sky, ground, lit boxes and discs, sensor noise — that a model's
//! runtimes are measured and compared on at load time, before any frame has arrived. It is
//! drawn from a fixed seed, so every start compares on the same pixels.

use image::{Rgb, RgbImage};

/// Width and height of the scene; models resize it like a camera frame.
const SIZE: (u32, u32) = (640, 480);

/// The scene.
pub fn scene() -> RgbImage {
    let (width, height) = SIZE;
    let horizon = height * 2 / 5;
    let mut image = RgbImage::from_fn(width, height, |_, y| {
        if y < horizon {
            let t = y as f32 / horizon as f32;
            Rgb([
                lerp(110.0, 200.0, t),
                lerp(150.0, 215.0, t),
                lerp(220.0, 235.0, t),
            ])
        } else {
            let t = (y - horizon) as f32 / (height - horizon) as f32;
            Rgb([
                lerp(120.0, 70.0, t),
                lerp(115.0, 80.0, t),
                lerp(100.0, 60.0, t),
            ])
        }
    });
    let mut random = Lcg(0x5eed_2026);
    for _ in 0..12 {
        let colour = Rgb([random.byte(), random.byte(), random.byte()]);
        let (w, h) = (40 + random.below(160), 40 + random.below(200));
        let (x, y) = (
            random.below(width - w),
            horizon / 2 + random.below(height - h - horizon / 2),
        );
        let disc = random.below(2) == 0;
        for py in y..y + h {
            for px in x..x + w {
                let (dx, dy) = (
                    (px - x) as f32 / w as f32 - 0.5,
                    (py - y) as f32 / h as f32 - 0.5,
                );
                if !disc || dx * dx + dy * dy <= 0.25 {
                    let shade = 1.0 - 0.5 * dy;
                    let Rgb([r, g, b]) = colour;
                    image.put_pixel(px, py, Rgb([dim(r, shade), dim(g, shade), dim(b, shade)]));
                }
            }
        }
    }
    // A sign with lines of dark strokes, so that text detectors have something to find.
    let (sign_x, sign_y) = (width * 3 / 5, height / 12);
    for py in sign_y..sign_y + 90 {
        for px in sign_x..sign_x + 200 {
            let (dx, dy) = (px - sign_x, py - sign_y);
            let line = dy / 22;
            let in_stroke = (6..18).contains(&(dy % 22)) && (10..190).contains(&dx) && line < 4;
            let glyph = (dx / 3 + line * 5) % 7 < 2 || (dy % 22 == 11 && dx % 14 < 10);
            let ink = in_stroke && glyph && (dx / 28 + line) % 5 != 4;
            let value = if ink { 25 } else { 235 };
            image.put_pixel(px, py, Rgb([value, value, value]));
        }
    }
    for pixel in image.pixels_mut() {
        let noise = random.below(17) as i16 - 8;
        for channel in pixel.0.iter_mut() {
            *channel = (*channel as i16 + noise).clamp(0, 255) as u8;
        }
    }
    image
}

fn lerp(a: f32, b: f32, t: f32) -> u8 {
    (a + (b - a) * t).round() as u8
}

fn dim(value: u8, shade: f32) -> u8 {
    (value as f32 * shade).round().clamp(0.0, 255.0) as u8
}

/// A linear congruential generator (Knuth's MMIX constants): enough for a fixed picture.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }

    fn byte(&mut self) -> u8 {
        (self.next() >> 24) as u8
    }

    fn below(&mut self, n: u32) -> u32 {
        self.next() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scene_is_the_same_every_time_and_not_flat() {
        let (a, b) = (scene(), scene());
        assert_eq!(a, b);
        let distinct: std::collections::HashSet<_> = a.pixels().map(|p| p.0).collect();
        assert!(distinct.len() > 1000, "{} colours", distinct.len());
    }
}
