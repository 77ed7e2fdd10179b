//! JPEG encoding of frames, for the retained snapshots and `/snapshot/CAMERA.jpg`.

use std::io::Cursor;

use image::RgbImage;
use image::codecs::jpeg::JpegEncoder;

/// Encodes an image as JPEG (quality 80).
pub fn encode(image: &RgbImage) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Cursor::new(Vec::new());
    JpegEncoder::new_with_quality(&mut out, 80).encode_image(image)?;
    Ok(out.into_inner())
}
