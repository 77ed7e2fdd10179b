//! A camera's tracker settings: when a detection starts an object, when an object is reported,
//! and when it ends.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ConfigError, invalid};

/// Per-label tracking thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LabelThresholds {
    /// A detection that matches no object starts a new one only with at least this score.
    pub min_score: f32,
    /// An object is reported once its best score reaches this.
    pub threshold: f32,
}

/// Tracker settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerConfig {
    /// Thresholds for labels not in `labels`.
    pub default: LabelThresholds,
    /// Thresholds per label.
    pub labels: BTreeMap<String, LabelThresholds>,
    /// Minimum IoU to match a detection to an existing object of the same label.
    pub iou: f32,
    /// Consecutive frames without a match after which an object ends.
    pub max_missed: u32,
}

impl TrackerConfig {
    /// The thresholds for `label`: its own entry, else the default.
    pub fn thresholds(&self, label: &str) -> LabelThresholds {
        self.labels.get(label).copied().unwrap_or(self.default)
    }
}

/// Checks `min_score <= threshold`, both in 0..=1; `prefix` is the dotted key ending in `.`.
pub(super) fn thresholds(
    prefix: &str,
    min_score: f32,
    threshold: f32,
) -> Result<LabelThresholds, ConfigError> {
    for (field, value) in [("min_score", min_score), ("threshold", threshold)] {
        if !(0.0..=1.0).contains(&value) {
            return Err(invalid(
                format!("{prefix}{field}"),
                "must be between 0 and 1",
            ));
        }
    }
    if min_score > threshold {
        return Err(invalid(
            format!("{prefix}min_score"),
            format!("({min_score}) must not exceed threshold ({threshold})"),
        ));
    }
    Ok(LabelThresholds {
        min_score,
        threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{MINIMAL, each_names_its_key, parse, with_camera_line};
    use super::*;

    #[test]
    fn defaults_fill_unset_keys() {
        assert_eq!(
            parse(MINIMAL).unwrap().cameras[0].tracker,
            TrackerConfig {
                default: LabelThresholds {
                    min_score: 0.3,
                    threshold: 0.5
                },
                labels: BTreeMap::new(),
                iou: 0.3,
                max_missed: 5,
            }
        );
    }

    #[test]
    fn a_label_falls_back_to_the_camera_for_what_it_leaves_unset() {
        let text = format!("{MINIMAL}\n[camera.labels.face]\nthreshold = 0.8\n");
        let tracker = parse(&text).unwrap().cameras[0].tracker.clone();
        assert_eq!(
            tracker.thresholds("face"),
            LabelThresholds {
                min_score: 0.3,
                threshold: 0.8
            }
        );
        assert_eq!(tracker.thresholds("person"), tracker.default);
    }

    #[test]
    fn each_rule_names_its_key() {
        each_names_its_key(&[
            (
                with_camera_line("min_score = 0.6\nthreshold = 0.5"),
                "`camera[0].min_score`",
            ),
            (with_camera_line("threshold = 1.5"), "`camera[0].threshold`"),
            (
                format!("{MINIMAL}\n[camera.labels.face]\nmin_score = 0.9\n"),
                "`camera[0].labels.face.min_score`",
            ),
            (with_camera_line("iou = 0.0"), "`camera[0].iou`"),
        ]);
    }
}
