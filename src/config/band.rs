//! The score band of a source: results scored in `[low, high)` are the ones the edge model is
//! unsure about and the host is asked to check.

/// A half-open score interval `[low, high)` within `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    low: f32,
    high: f32,
}

impl Band {
    /// The band `[low, high)`; fails unless `0 <= low < high <= 1`.
    pub fn new(low: f32, high: f32) -> Result<Band, String> {
        if (0.0..1.0).contains(&low) && low < high && high <= 1.0 {
            Ok(Band { low, high })
        } else {
            Err(format!(
                "must satisfy 0 <= low < high <= 1 (low {low}, high {high})"
            ))
        }
    }

    /// Whether `score` lies in the band (NaN never does).
    pub fn contains(&self, score: f32) -> bool {
        score >= self.low && score < self.high
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_is_in_high_is_out() {
        let band = Band::new(0.3, 0.7).unwrap();
        assert!(band.contains(0.3) && band.contains(0.69));
        assert!(!band.contains(0.7) && !band.contains(0.29) && !band.contains(f32::NAN));
        assert!(Band::new(0.0, 1.0).unwrap().contains(0.999));
    }

    #[test]
    fn empty_or_out_of_range_bands_are_refused() {
        for (low, high) in [
            (0.5, 0.5),
            (0.7, 0.3),
            (-0.1, 0.5),
            (0.2, 1.5),
            (f32::NAN, 0.5),
        ] {
            assert!(Band::new(low, high).is_err(), "{low} {high}");
        }
    }
}
