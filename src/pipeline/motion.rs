//! Motion gate: skips inference on static scenes.

use image::{GrayImage, RgbImage, imageops};

/// Thumbnail width the frames are compared at.
const THUMB_WIDTH: u32 = 64;
/// Thumbnail height the frames are compared at.
const THUMB_HEIGHT: u32 = 48;

/// Decides whether a frame differs enough from the last inferred one to be worth inference.
#[derive(Debug)]
pub struct MotionGate {
    min_changed: f32,
    pixel_delta: u8,
    max_skip: u32,
    /// Size of the last frame that passed and its greyscale thumbnail.
    last: Option<((u32, u32), GrayImage)>,
    /// Frames skipped since the last one that passed.
    skipped: u32,
}

impl MotionGate {
    /// `min_changed`: fraction (0..1) of cells that must change; `pixel_delta`: grey-level change
    /// (0..255) that counts as a change; `max_skip`: after this many skipped frames in a row, let
    /// one through anyway (keeps trackers alive).
    ///
    /// A zero in any of them lets every frame through.
    pub fn new(min_changed: f32, pixel_delta: u8, max_skip: u32) -> MotionGate {
        MotionGate {
            min_changed,
            pixel_delta,
            max_skip,
            last: None,
            skipped: 0,
        }
    }

    /// True when the frame should go to inference. The first frame always passes, and so does a
    /// frame of a different size. Otherwise a 64×48 greyscale thumbnail of `frame` is compared
    /// with the one stored at the last frame that passed; the new one is stored when it passes.
    pub fn should_infer(&mut self, frame: &RgbImage) -> bool {
        let size = frame.dimensions();
        let thumb = thumbnail(frame);
        let moved = match &self.last {
            Some((last_size, last)) if *last_size == size => self.changed(last, &thumb),
            _ => true,
        };
        if !moved && self.skipped < self.max_skip {
            self.skipped += 1;
            return false;
        }
        self.skipped = 0;
        self.last = Some((size, thumb));
        true
    }

    /// Whether enough cells differ by at least `pixel_delta` between two same-size thumbnails.
    fn changed(&self, last: &GrayImage, thumb: &GrayImage) -> bool {
        let total = thumb.as_raw().len();
        if total == 0 {
            return false;
        }
        let changed = last
            .as_raw()
            .iter()
            .zip(thumb.as_raw())
            .filter(|(a, b)| a.abs_diff(**b) >= self.pixel_delta)
            .count();
        changed as f32 / total as f32 >= self.min_changed
    }
}

/// A greyscale thumbnail of at most 64×48, never larger than the frame.
fn thumbnail(frame: &RgbImage) -> GrayImage {
    let (width, height) = frame.dimensions();
    let small = imageops::thumbnail(frame, width.min(THUMB_WIDTH), height.min(THUMB_HEIGHT));
    imageops::grayscale(&small)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn scene() -> RgbImage {
        RgbImage::from_fn(640, 480, |x, y| {
            let v = ((x / 8 + y / 8) % 200) as u8 + 20;
            Rgb([v, v / 2, 255 - v])
        })
    }

    fn with_square(mut frame: RgbImage, x0: u32, y0: u32, side: u32) -> RgbImage {
        for y in y0..y0 + side {
            for x in x0..x0 + side {
                frame.put_pixel(x, y, Rgb([255, 255, 255]));
            }
        }
        frame
    }

    fn gate() -> MotionGate {
        MotionGate::new(0.01, 20, 100)
    }

    #[test]
    fn first_frame_passes_and_identical_frames_are_skipped() {
        let mut gate = gate();
        let frame = scene();
        assert!(gate.should_infer(&frame));
        for _ in 0..10 {
            assert!(!gate.should_infer(&frame));
        }
    }

    #[test]
    fn added_object_passes() {
        let mut gate = gate();
        assert!(gate.should_infer(&scene()));
        assert!(gate.should_infer(&with_square(scene(), 100, 100, 80)));
        assert!(!gate.should_infer(&with_square(scene(), 100, 100, 80)));
    }

    #[test]
    fn moved_object_passes() {
        let mut gate = gate();
        assert!(gate.should_infer(&with_square(scene(), 100, 100, 80)));
        assert!(gate.should_infer(&with_square(scene(), 300, 200, 80)));
    }

    #[test]
    fn noise_below_pixel_delta_is_skipped() {
        let mut gate = gate();
        let frame = scene();
        assert!(gate.should_infer(&frame));
        let mut noisy = frame.clone();
        for (i, p) in noisy.pixels_mut().enumerate() {
            let d = (i * 7919 % 21) as i16 - 10;
            for c in p.0.iter_mut() {
                *c = (*c as i16 + d).clamp(0, 255) as u8;
            }
        }
        assert_ne!(noisy, frame);
        assert!(!gate.should_infer(&noisy));
    }

    #[test]
    fn slow_drift_is_measured_against_the_last_frame_that_passed() {
        let mut gate = MotionGate::new(0.5, 20, 100);
        assert!(gate.should_infer(&RgbImage::from_pixel(64, 48, Rgb([100, 100, 100]))));
        let mut passed = 0;
        for step in 1..=5u8 {
            let v = 100 + step * 10;
            if gate.should_infer(&RgbImage::from_pixel(64, 48, Rgb([v, v, v]))) {
                passed += 1;
            }
        }
        // 110 skipped, 120 passes (delta 20 from 100), 130 skipped, 140 passes.
        assert_eq!(passed, 2);
    }

    #[test]
    fn max_skip_lets_one_frame_through() {
        let mut gate = MotionGate::new(0.01, 20, 3);
        let frame = scene();
        assert!(gate.should_infer(&frame));
        let passes: Vec<bool> = (0..8).map(|_| gate.should_infer(&frame)).collect();
        assert_eq!(
            passes,
            [false, false, false, true, false, false, false, true]
        );
    }

    #[test]
    fn different_frame_size_passes() {
        let mut gate = gate();
        assert!(gate.should_infer(&scene()));
        let small = imageops::resize(&scene(), 320, 240, imageops::FilterType::Triangle);
        assert!(gate.should_infer(&small));
        assert!(!gate.should_infer(&small));
    }

    #[test]
    fn tiny_and_empty_frames_do_not_panic() {
        let mut gate = gate();
        assert!(gate.should_infer(&RgbImage::new(3, 2)));
        assert!(!gate.should_infer(&RgbImage::new(3, 2)));
        assert!(gate.should_infer(&RgbImage::new(0, 0)));
        assert!(!gate.should_infer(&RgbImage::new(0, 0)));
    }

    #[test]
    fn zero_thresholds_let_every_frame_through() {
        let frame = scene();
        for mut gate in [
            MotionGate::new(0.0, 20, 100),
            MotionGate::new(0.01, 0, 100),
            MotionGate::new(0.01, 20, 0),
        ] {
            assert!((0..3).all(|_| gate.should_infer(&frame)));
        }
    }
}
