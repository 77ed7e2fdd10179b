//! Reads the binary PPM (`P6`) frames that `ffmpeg -f image2pipe -c:v ppm` writes: each frame
//! carries its own width and height, so a stream that changes resolution, or a video that ffmpeg
//! rotates, still yields whole frames of the right size. Reading only; no process handling.

use std::io::{self, Read};

use image::RgbImage;

/// The largest frame accepted: 16384 pixels on a side and 256 MiB of pixels.
pub const MAX_SIDE: u32 = 16_384;
/// The largest pixel buffer accepted, in bytes.
pub const MAX_BYTES: usize = 256 << 20;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PpmError {
    /// The stream ended cleanly before a new frame began.
    #[error("end of stream")]
    End,
    /// The pipe failed, or ended inside a frame.
    #[error("frame cut short")]
    Io(#[from] io::Error),
    /// The header is not that of an 8-bit binary PPM.
    #[error("not a P6 frame header: {0}")]
    Header(String),
    /// The frame's size is zero or over the limits.
    #[error(
        "frame size {width}x{height} is out of range (1 to {MAX_SIDE} a side, {MAX_BYTES} bytes)"
    )]
    Size {
        /// Declared width.
        width: u64,
        /// Declared height.
        height: u64,
    },
}

/// Reads one frame; [`PpmError::End`] when the stream ends between frames.
pub fn read_frame(input: &mut impl Read) -> Result<RgbImage, PpmError> {
    let mut magic = [0u8; 2];
    match input.read(&mut magic[..1])? {
        0 => return Err(PpmError::End),
        _ => input.read_exact(&mut magic[1..])?,
    }
    if &magic != b"P6" {
        return Err(PpmError::Header(format!(
            "starts with {:?}",
            String::from_utf8_lossy(&magic)
        )));
    }
    let width = number(input, "width")?;
    let height = number(input, "height")?;
    let max = number(input, "maximum value")?;
    if max != 255 {
        return Err(PpmError::Header(format!(
            "maximum value {max}, expected 255 (8-bit RGB)"
        )));
    }
    let bytes = width
        .checked_mul(height)
        .and_then(|n| n.checked_mul(3))
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n > 0 && n <= MAX_BYTES);
    let (Some(bytes), Ok(w), Ok(h)) = (bytes, u32::try_from(width), u32::try_from(height)) else {
        return Err(PpmError::Size { width, height });
    };
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(PpmError::Size { width, height });
    }
    let mut pixels = vec![0u8; bytes];
    input.read_exact(&mut pixels)?;
    RgbImage::from_raw(w, h, pixels).ok_or(PpmError::Size { width, height })
}

/// Reads one decimal header field: skips white space and `#` comments before it, and consumes
/// the single white-space byte after it.
fn number(input: &mut impl Read, field: &str) -> Result<u64, PpmError> {
    let mut byte = next(input)?;
    loop {
        if byte == b'#' {
            while byte != b'\n' {
                byte = next(input)?;
            }
        } else if !byte.is_ascii_whitespace() {
            break;
        }
        byte = next(input)?;
    }
    let mut value: u64 = 0;
    let mut digits = 0;
    while byte.is_ascii_digit() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(byte - b'0')))
            .ok_or_else(|| PpmError::Header(format!("{field} is too large")))?;
        digits += 1;
        byte = next(input)?;
    }
    if digits == 0 || !byte.is_ascii_whitespace() {
        return Err(PpmError::Header(format!("{field} is not a number")));
    }
    Ok(value)
}

fn next(input: &mut impl Read) -> Result<u8, PpmError> {
    let mut byte = [0u8; 1];
    input.read_exact(&mut byte)?;
    Ok(byte[0])
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
        assert!(matches!(
            read_frame(&mut stream.as_slice()),
            Err(PpmError::Io(_))
        ));
    }

    #[test]
    fn huge_or_overflowing_sizes_are_refused_before_allocating() {
        for header in [
            "P6\n99999999999 99999999999\n255\n",
            "P6\n18446744073709551615 2\n255\n",
            "P6\n20000 1\n255\n",
            "P6\n0 5\n255\n",
        ] {
            let err = read_frame(&mut header.as_bytes()).unwrap_err();
            assert!(matches!(err, PpmError::Size { .. }), "{header:?}: {err}");
        }
        let err = read_frame(&mut "P6\n999999999999999999999 1\n255\n".as_bytes()).unwrap_err();
        assert!(matches!(err, PpmError::Header(_)), "{err}");
    }

    #[test]
    fn other_formats_are_refused() {
        for header in ["P5\n1 1\n255\n", "P6\n1 1\n65535\n", "P6\nx 1\n255\n"] {
            let err = read_frame(&mut frame(header, 3).as_slice()).unwrap_err();
            assert!(matches!(err, PpmError::Header(_)), "{header:?}: {err}");
        }
    }
}
