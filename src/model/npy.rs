//! f32 tensors as NumPy `.npy` files, so the exact input edgemass feeds a model can be replayed
//! in another runtime (onnxruntime in the fixture, benchmark and evaluation scripts), and that
//! runtime's outputs read back.

/// Encodes `data` with `shape` as a little-endian f32 `.npy` (format version 1.0).
pub fn encode_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let trailing = if shape.len() == 1 { "," } else { "" };
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}{trailing}), }}",
        dims.join(", ")
    );
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Decodes a little-endian f32, C-order `.npy` (versions 1 to 3) into its shape and values;
/// `None` for anything else.
pub fn decode_f32(bytes: &[u8]) -> Option<(Vec<usize>, Vec<f32>)> {
    let rest = bytes.strip_prefix(b"\x93NUMPY")?;
    let (major, rest) = (*rest.first()?, rest.get(2..)?);
    let (len, rest) = match major {
        1 => (
            u16::from_le_bytes(rest.get(..2)?.try_into().ok()?) as usize,
            rest.get(2..)?,
        ),
        2 | 3 => (
            u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize,
            rest.get(4..)?,
        ),
        _ => return None,
    };
    let header = std::str::from_utf8(rest.get(..len)?).ok()?;
    let data = rest.get(len..)?;
    let field = |key: &str| {
        let start = header.find(&format!("'{key}':"))? + key.len() + 3;
        Some(header[start..].trim_start())
    };
    if !field("descr")?.starts_with("'<f4'") || !field("fortran_order")?.starts_with("False") {
        return None;
    }
    let shape_text = field("shape")?.strip_prefix('(')?;
    let shape: Vec<usize> = shape_text[..shape_text.find(')')?]
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().ok())
        .collect::<Option<_>>()?;
    let count: usize = shape.iter().product();
    if data.len() != count * 4 {
        return None;
    }
    let values = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Some((shape, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_describes_the_shape() {
        let bytes = encode_f32(&[1, 2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.contains("'shape': (1, 2, 3)"), "{header}");
        assert_eq!(bytes.len(), 10 + header_len + 24);
        assert_eq!(&bytes[bytes.len() - 4..], &5.0f32.to_le_bytes());
    }

    #[test]
    fn decoding_returns_what_was_encoded() {
        let values: Vec<f32> = (0..6).map(|v| v as f32 * 0.5).collect();
        assert_eq!(
            decode_f32(&encode_f32(&[2, 3], &values)),
            Some((vec![2, 3], values))
        );
        assert_eq!(decode_f32(&encode_f32(&[4], &[1.0; 4])).unwrap().0, [4]);
        let mut truncated = encode_f32(&[2], &[1.0, 2.0]);
        truncated.pop();
        assert_eq!(decode_f32(&truncated), None);
        assert_eq!(decode_f32(b"not numpy"), None);
    }
}
