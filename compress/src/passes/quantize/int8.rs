//! Symmetric int8 quantization of f32 weights, one scale per channel along one axis.

/// Largest magnitude of a quantized value; `-127..=127` keeps the range symmetric around zero.
const LEVELS: f32 = 127.0;

/// A weight quantized along one axis: `value ≈ values[i] * scales[channel(i)]`, zero point 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Channels {
    /// The quantized values, in the weight's own (row-major) order.
    pub values: Vec<i8>,
    /// One scale per channel of the quantized axis.
    pub scales: Vec<f32>,
}

/// Quantizes `data` of shape `dims` with one symmetric scale per index of `axis`.
///
/// Each channel's scale maps its largest magnitude to 127; an all-zero channel gets scale 1.
/// Values round half to even, as ONNX `QuantizeLinear` does. `data` must be finite and hold
/// `dims.iter().product()` values, and `axis < dims.len()`.
pub fn quantize_per_channel(data: &[f32], dims: &[usize], axis: usize) -> Int8Channels {
    let channels = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let channel = |i: usize| (i / inner) % channels;
    let mut largest = vec![0f32; channels];
    for (i, v) in data.iter().enumerate() {
        let c = channel(i);
        largest[c] = largest[c].max(v.abs());
    }
    let scales: Vec<f32> = largest
        .iter()
        .map(|&m| if m > 0.0 { m / LEVELS } else { 1.0 })
        .collect();
    let values = data
        .iter()
        .enumerate()
        .map(|(i, v)| {
            (v / scales[channel(i)])
                .round_ties_even()
                .clamp(-LEVELS, LEVELS) as i8
        })
        .collect();
    Int8Channels { values, scales }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_of_a_matrix_get_their_own_scale() {
        // [2, 3] matrix, channel axis 1: columns (1, -4), (0.5, 2), (0, 0).
        let q = quantize_per_channel(&[1.0, 0.5, 0.0, -4.0, 2.0, 0.0], &[2, 3], 1);
        assert_eq!(q.scales, vec![4.0 / 127.0, 2.0 / 127.0, 1.0]);
        assert_eq!(q.values, vec![32, 32, 0, -127, 127, 0]);
    }

    #[test]
    fn leading_axis_groups_whole_filters() {
        // Two filters of 2×2: the second is ten times the first.
        let data = [0.1, -0.2, 0.3, 0.4, 1.0, -2.0, 3.0, 4.0];
        let q = quantize_per_channel(&data, &[2, 1, 2, 2], 0);
        assert_eq!(q.values[..4], q.values[4..]);
        assert!((q.scales[1] / q.scales[0] - 10.0).abs() < 1e-5);
        for (i, v) in data.iter().enumerate() {
            let back = q.values[i] as f32 * q.scales[i / 4];
            assert!((back - v).abs() <= q.scales[i / 4] / 2.0 + 1e-7, "{i}");
        }
    }

    #[test]
    fn halves_round_to_even() {
        // Scale 1: 2.5 -> 2, 3.5 -> 4, -0.5 -> 0.
        let q = quantize_per_channel(&[127.0, 2.5, 3.5, -0.5], &[1, 4], 0);
        assert_eq!(q.values, vec![127, 2, 4, 0]);
    }
}
