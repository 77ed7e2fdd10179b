//! Reads the binary PPM (`P6`) frames that `ffmpeg -f image2pipe -c:v ppm` writes, one after
//! another, with the `image` crate's PNM decoder: each frame carries its own width and height,
//! so a stream that changes resolution, or a video that ffmpeg rotates, still yields whole frames
//! of the right size. Reading only; no process handling.

use std::io::{self, BufRead};

use image::codecs::pnm::PnmDecoder;
use image::{DynamicImage, ImageDecoder, ImageError, Limits, RgbImage};

/// The largest frame accepted: 16384 pixels on a side and 256 MiB of pixels (checked before
/// allocating).
pub const MAX_SIDE: u32 = 16_384;
/// The largest pixel buffer accepted, in bytes.
pub const MAX_BYTES: u64 = 256 << 20;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PpmError {
    /// The stream ended cleanly before a new frame began.
    #[error("end of stream")]
    End,
    /// The pipe failed, or ended inside a frame.
    #[error("frame cut short")]
    Io(#[source] io::Error),
    /// Not an 8-bit RGB PPM frame, or one over the size limit.
    #[error("{0}")]
    Frame(String),
}

impl From<ImageError> for PpmError {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::IoError(e) => PpmError::Io(e),
            other => PpmError::Frame(other.to_string()),
        }
    }
}

/// Reads one frame; [`PpmError::End`] when the stream ends between frames.
pub fn read_frame(input: &mut impl BufRead) -> Result<RgbImage, PpmError> {
    if input.fill_buf().map_err(PpmError::Io)?.is_empty() {
        return Err(PpmError::End);
    }
    let mut decoder = PnmDecoder::new(input)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    decoder.set_limits(limits)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 || decoder.total_bytes() > MAX_BYTES {
        return Err(PpmError::Frame(format!(
            "frame size {width}x{height} is out of range (1 to {MAX_SIDE} a side, {MAX_BYTES} bytes)"
        )));
    }
    match DynamicImage::from_decoder(decoder)? {
        DynamicImage::ImageRgb8(image) => Ok(image),
        other => Err(PpmError::Frame(format!(
            "{:?} frame, expected 8-bit RGB",
            other.color()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(header: &str, pixels: usize) -> Vec<u8> {
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend((0..pixels).map(|i| i as u8));
        bytes
    }

    #[test]
    fn frames_of_different_sizes_follow_each_other() {
        let mut stream = frame("P6\n2 1\n255\n", 6);
        stream.extend(frame("P6 # comment\n1 3\n255\n", 9));
        let mut input = stream.as_slice();
        let first = read_frame(&mut input).unwrap();
        assert_eq!(first.dimensions(), (2, 1));
        assert_eq!(first.get_pixel(1, 0).0, [3, 4, 5]);
        let second = read_frame(&mut input).unwrap();
        assert_eq!(second.dimensions(), (1, 3));
        assert!(matches!(read_frame(&mut input), Err(PpmError::End)));
    }

    #[test]
    fn a_cut_frame_is_an_error_not_a_short_image() {
        let stream = frame("P6\n4 4\n255\n", 20);
        let err = read_frame(&mut stream.as_slice()).unwrap_err();
        assert!(matches!(err, PpmError::Io(_)), "{err}");
    }

    #[test]
    fn huge_or_overflowing_sizes_are_refused_before_allocating() {
        for header in [
            "P6\n99999999999 99999999999\n255\n",
            "P6\n18446744073709551615 2\n255\n",
            "P6\n20000 1\n255\n",
            "P6\n16000 16000\n255\n",
            "P6\n0 5\n255\n",
        ] {
            let err = read_frame(&mut header.as_bytes()).unwrap_err();
            assert!(matches!(err, PpmError::Frame(_)), "{header:?}: {err}");
        }
    }

    #[test]
    fn other_formats_are_refused() {
        for header in [
            "P5\n1 1\n255\n",
            "P6\n1 1\n65535\n",
            "P6\nx 1\n255\n",
            "GIF89a",
        ] {
            let err = read_frame(&mut frame(header, 6).as_slice()).unwrap_err();
            assert!(matches!(err, PpmError::Frame(_)), "{header:?}: {err}");
        }
    }
}
