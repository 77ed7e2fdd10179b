//! Writes f32 tensors as NumPy `.npy` files, so the exact input edgemass feeds a model can be
//! replayed in another runtime (onnxruntime in the fixture and benchmark scripts).

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
}
