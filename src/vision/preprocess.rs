//! Image decoding and the manifest's preprocessing: resize (letterbox or stretch), channel order,
//! normalisation and layout.

use std::path::{Path, PathBuf};

use image::RgbImage;
use image::imageops::FilterType;
use tract_onnx::prelude::{IntoTensor, Tensor, tract_ndarray};

use super::Transform;
use crate::model::manifest::{ColorOrder, InputSpec, Layout, Resize};

/// Errors while reading an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be opened.
    #[error("cannot read image {path}")]
    Open {
        /// The image path.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The bytes are not a complete image in a supported format.
    #[error("cannot decode image {path}")]
    Decode {
        /// The image path.
        path: PathBuf,
        /// The decoder's failure.
        source: image::ImageError,
    },
    /// A JPEG whose end-of-image marker is missing: decoders fill the rest with grey.
    #[error("image {path} is truncated (JPEG data ends before its end-of-image marker)")]
    Truncated {
        /// The image path.
        path: PathBuf,
    },
}

/// Reads and decodes an image file as 8-bit RGB.
pub fn load_image(path: &Path) -> Result<RgbImage, ImageError> {
    let bytes = std::fs::read(path).map_err(|source| ImageError::Open {
        path: path.to_owned(),
        source,
    })?;
    decode_image(&bytes, path)
}

/// Decodes image bytes as 8-bit RGB; `path` names the image in errors.
pub fn decode_image(bytes: &[u8], path: &Path) -> Result<RgbImage, ImageError> {
    if bytes.starts_with(&[0xFF, 0xD8]) && !jpeg_is_complete(bytes) {
        return Err(ImageError::Truncated {
            path: path.to_owned(),
        });
    }
    let decode_err = |source| ImageError::Decode {
        path: path.to_owned(),
        source,
    };
    let image = image::load_from_memory(bytes).map_err(decode_err)?;
    Ok(image.into_rgb8())
}

/// Whether JPEG data ends with its EOI marker, allowing trailing padding bytes.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let end = bytes
        .iter()
        .rposition(|b| *b != 0x00 && *b != 0x0A && *b != 0x0D && *b != 0x20);
    end.is_some_and(|i| i >= 1 && bytes[i - 1] == 0xFF && bytes[i] == 0xD9)
}

/// Builds the model's input tensor from an image and returns the transform from input pixels
/// back to the image's pixels.
pub fn prepare(image: &RgbImage, spec: &InputSpec) -> (Tensor, Transform) {
    let (data, shape, transform) = input_values(image, spec);
    let tensor = tract_ndarray::Array4::from_shape_vec(shape, data)
        .expect("buffer length is 3·width·height by construction")
        .into_tensor();
    (tensor, transform)
}

/// [`prepare`]'s tensor as row-major values and their shape, for sending elsewhere.
pub fn input_values(image: &RgbImage, spec: &InputSpec) -> (Vec<f32>, [usize; 4], Transform) {
    let (w, h) = image.dimensions();
    let (tw, th) = (spec.width, spec.height);
    let (scale_x, scale_y, nw, nh) = match spec.resize {
        Resize::Stretch | Resize::Bilinear => (tw as f32 / w as f32, th as f32 / h as f32, tw, th),
        Resize::Letterbox => {
            let s = (tw as f32 / w as f32).min(th as f32 / h as f32);
            let nw = ((w as f32 * s).round() as u32).clamp(1, tw);
            let nh = ((h as f32 * s).round() as u32).clamp(1, th);
            (nw as f32 / w as f32, nh as f32 / h as f32, nw, nh)
        }
    };
    let (pad_x, pad_y) = ((tw - nw) / 2, (th - nh) / 2);
    let channel_of = channel_of_fn(spec.color);
    let (tw, th) = (tw as usize, th as usize);
    let mut data = vec![0f32; 3 * tw * th];
    let index = |c: usize, x: usize, y: usize| match spec.layout {
        Layout::Nchw => (c * th + y) * tw + x,
        Layout::Nhwc => (y * tw + x) * 3 + c,
    };
    if spec.resize == Resize::Bilinear {
        bilinear(image, spec, &channel_of, &index, &mut data);
    } else {
        let resized;
        let pixels = if (nw, nh) == (w, h) {
            image
        } else {
            resized = image::imageops::resize(image, nw, nh, FilterType::Triangle);
            &resized
        };
        let lut: [[f32; 256]; 3] = std::array::from_fn(|c| {
            let (mean, std) = (spec.mean[channel_of(c)], spec.std[channel_of(c)]);
            std::array::from_fn(|p| (p as f32 / 255.0 - mean) / std)
        });
        for y in 0..th {
            for x in 0..tw {
                for c in 0..3 {
                    data[index(c, x, y)] = lut[c][spec.pad as usize];
                }
            }
        }
        for (x, y, pixel) in pixels.enumerate_pixels() {
            let (px, py) = (x as usize + pad_x as usize, y as usize + pad_y as usize);
            for c in 0..3 {
                data[index(c, px, py)] = lut[c][pixel[channel_of(c)] as usize];
            }
        }
    }
    let shape = match spec.layout {
        Layout::Nchw => [1, 3, th, tw],
        Layout::Nhwc => [1, th, tw, 3],
    };
    let transform = Transform {
        scale_x,
        scale_y,
        pad_x: pad_x as f32,
        pad_y: pad_y as f32,
        width: w,
        height: h,
    };
    (data, shape, transform)
}

/// The image channel that feeds tensor channel `c`.
fn channel_of_fn(color: ColorOrder) -> impl Fn(usize) -> usize {
    move |c| match color {
        ColorOrder::Rgb => c,
        ColorOrder::Bgr => 2 - c,
    }
}

/// [`Resize::Bilinear`] into `data` (laid out by `index(channel, x, y)`): each tensor pixel
/// interpolated in f32 from the four image pixels around `destination · in / out`, in
/// TensorFlow's order (along x on both rows, then along y), then normalised.
fn bilinear(
    image: &RgbImage,
    spec: &InputSpec,
    channel_of: &impl Fn(usize) -> usize,
    index: &impl Fn(usize, usize, usize) -> usize,
    data: &mut [f32],
) {
    let (w, h) = image.dimensions();
    let axis = |out: u32, len: u32| -> Vec<(u32, u32, f32)> {
        let scale = len as f32 / out as f32;
        (0..out)
            .map(|d| {
                let source = d as f32 * scale;
                let low = (source.floor() as u32).min(len - 1);
                (low, (low + 1).min(len - 1), source - source.floor())
            })
            .collect()
    };
    let (xs, ys) = (axis(spec.width, w), axis(spec.height, h));
    for (y, &(y0, y1, dy)) in ys.iter().enumerate() {
        for (x, &(x0, x1, dx)) in xs.iter().enumerate() {
            let corners =
                [(x0, y0), (x1, y0), (x0, y1), (x1, y1)].map(|(px, py)| image.get_pixel(px, py));
            for c in 0..3 {
                let [a, b, d, e] = corners.map(|p| f32::from(p[channel_of(c)]));
                let top = a + (b - a) * dx;
                let bottom = d + (e - d) * dx;
                let value = top + (bottom - top) * dy;
                let (mean, std) = (spec.mean[channel_of(c)], spec.std[channel_of(c)]);
                data[index(c, x, y)] = (value / 255.0 - mean) / std;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(layout: Layout, resize: Resize, color: ColorOrder) -> InputSpec {
        InputSpec {
            name: "x".into(),
            layout,
            width: 8,
            height: 8,
            color,
            resize,
            mean: [0.5; 3],
            std: [0.5; 3],
            pad: 0,
        }
    }

    #[test]
    fn letterbox_pads_the_short_side_and_maps_back() {
        let image = RgbImage::from_pixel(16, 8, image::Rgb([255, 0, 0]));
        let (tensor, t) = prepare(
            &image,
            &spec(Layout::Nchw, Resize::Letterbox, ColorOrder::Rgb),
        );
        assert_eq!(tensor.shape(), &[1, 3, 8, 8]);
        assert_eq!((t.scale_x, t.pad_x, t.pad_y), (0.5, 0.0, 2.0));
        let v = tensor.to_plain_array_view::<f32>().unwrap();
        assert_eq!(v[[0, 0, 0, 0]], -1.0, "padding row is black");
        assert_eq!(v[[0, 0, 4, 4]], 1.0, "red channel of the photo");
        assert_eq!(v[[0, 1, 4, 4]], -1.0, "green channel of the photo");
        assert_eq!(t.point([8.0, 6.0]), [16.0, 8.0]);
    }

    #[test]
    fn bgr_nhwc_puts_blue_first_and_channels_last() {
        let image = RgbImage::from_pixel(8, 8, image::Rgb([0, 0, 255]));
        let (tensor, _) = prepare(
            &image,
            &spec(Layout::Nhwc, Resize::Stretch, ColorOrder::Bgr),
        );
        assert_eq!(tensor.shape(), &[1, 8, 8, 3]);
        let v = tensor.to_plain_array_view::<f32>().unwrap();
        assert_eq!([v[[0, 3, 3, 0]], v[[0, 3, 3, 2]]], [1.0, -1.0]);
    }

    #[test]
    fn truncated_jpeg_is_an_error() {
        let mut bytes = Vec::new();
        RgbImage::from_pixel(32, 32, image::Rgb([9, 9, 9]))
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        assert!(decode_image(&bytes, Path::new("ok.jpg")).is_ok());
        let err = decode_image(&bytes[..bytes.len() / 2], Path::new("cut.jpg")).unwrap_err();
        assert!(matches!(err, ImageError::Truncated { .. }), "{err}");
        assert!(decode_image(b"not an image", Path::new("x.png")).is_err());
    }
}
