//! Commands received on `P/D/set/...`, validated before they reach the pipeline.
//!
//! - `set/CAMERA/enabled`: `true` / `false` (also `"ON"` / `"OFF"`, as Home Assistant switches send)
//! - `set/CAMERA/thresholds`: `{"label": "face", "min_score": 0.4, "threshold": 0.6}`; without
//!   `label` the values apply to every label of the camera; at least one value is required.

use serde::Deserialize;
use serde_json::Value;

/// A validated command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Start or stop inference on a camera.
    Enable {
        /// Camera name.
        camera: String,
        /// New state.
        enabled: bool,
    },
    /// Change tracking thresholds.
    Thresholds {
        /// Camera name.
        camera: String,
        /// One label, or all when `None`.
        label: Option<String>,
        /// New minimum score to start tracking.
        min_score: Option<f32>,
        /// New reporting threshold.
        threshold: Option<f32>,
    },
}

/// Why a command was rejected; published on `P/D/error`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    /// The topic names no known command.
    #[error(
        "unknown command topic `{topic}`: expected set/CAMERA/enabled or set/CAMERA/thresholds"
    )]
    UnknownCommand {
        /// The full topic.
        topic: String,
    },
    /// The camera does not exist.
    #[error("unknown camera `{camera}` in `{topic}`")]
    UnknownCamera {
        /// The full topic.
        topic: String,
        /// The camera named.
        camera: String,
    },
    /// The payload is not what the command takes.
    #[error("bad payload on `{topic}`: {reason}")]
    Payload {
        /// The full topic.
        topic: String,
        /// What was expected.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdsPayload {
    label: Option<String>,
    min_score: Option<f32>,
    threshold: Option<f32>,
}

/// Parses a command. `suffix` is the topic after `P/D/set/`; `cameras` are the known names and
/// `labels(camera)` the labels of a camera's model.
pub fn parse<'a>(
    topic: &str,
    suffix: &str,
    payload: &[u8],
    cameras: &[String],
    labels: impl Fn(&str) -> &'a [String],
) -> Result<Command, CommandError> {
    let bad = |reason: String| CommandError::Payload {
        topic: topic.to_owned(),
        reason,
    };
    let Some((camera, action)) = suffix.split_once('/') else {
        return Err(CommandError::UnknownCommand {
            topic: topic.to_owned(),
        });
    };
    if action != "enabled" && action != "thresholds" {
        return Err(CommandError::UnknownCommand {
            topic: topic.to_owned(),
        });
    }
    if !cameras.iter().any(|c| c == camera) {
        return Err(CommandError::UnknownCamera {
            topic: topic.to_owned(),
            camera: camera.to_owned(),
        });
    }
    let text = std::str::from_utf8(payload)
        .map_err(|_| bad("not UTF-8".into()))?
        .trim();
    let camera = camera.to_owned();
    if action == "enabled" {
        let enabled = match text {
            "ON" | "on" => true,
            "OFF" | "off" => false,
            _ => match serde_json::from_str::<Value>(text) {
                Ok(Value::Bool(b)) => b,
                Ok(other) => return Err(bad(format!("expected true or false, got {other}"))),
                Err(e) => return Err(bad(format!("not JSON ({e})"))),
            },
        };
        return Ok(Command::Enable { camera, enabled });
    }
    let p: ThresholdsPayload = serde_json::from_str(text).map_err(|e| {
        bad(format!(
            "expected {{\"label\"?, \"min_score\"?, \"threshold\"?}} ({e})"
        ))
    })?;
    if p.min_score.is_none() && p.threshold.is_none() {
        return Err(bad("give min_score, threshold or both".into()));
    }
    for (name, value) in [("min_score", p.min_score), ("threshold", p.threshold)] {
        if value.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
            return Err(bad(format!("{name} must be between 0 and 1")));
        }
    }
    if let (Some(min), Some(thr)) = (p.min_score, p.threshold)
        && min > thr
    {
        return Err(bad("min_score must not exceed threshold".into()));
    }
    if let Some(label) = &p.label
        && !labels(&camera).contains(label)
    {
        return Err(bad(format!("camera `{camera}` has no label `{label}`")));
    }
    Ok(Command::Thresholds {
        camera,
        label: p.label,
        min_score: p.min_score,
        threshold: p.threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(suffix: &str, payload: &str) -> Result<Command, CommandError> {
        let cameras = vec!["front".to_string()];
        let labels = vec!["face".to_string()];
        parse(
            &format!("e/d/set/{suffix}"),
            suffix,
            payload.as_bytes(),
            &cameras,
            |_| &labels,
        )
    }

    #[test]
    fn enable_accepts_json_booleans_and_switch_words() {
        assert_eq!(
            run("front/enabled", "false"),
            Ok(Command::Enable {
                camera: "front".into(),
                enabled: false
            })
        );
        assert_eq!(
            run("front/enabled", "ON"),
            Ok(Command::Enable {
                camera: "front".into(),
                enabled: true
            })
        );
    }

    #[test]
    fn thresholds_are_validated() {
        assert_eq!(
            run("front/thresholds", r#"{"label":"face","threshold":0.7}"#),
            Ok(Command::Thresholds {
                camera: "front".into(),
                label: Some("face".into()),
                min_score: None,
                threshold: Some(0.7)
            })
        );
        for bad in [
            r#"{"threshold":"high"}"#,
            r#"{"threshold":1.5}"#,
            "{}",
            r#"{"label":"dog","threshold":0.5}"#,
            r#"{"min_score":0.9,"threshold":0.5}"#,
            "not json",
            r#"{"thresh":0.5}"#,
        ] {
            assert!(
                matches!(
                    run("front/thresholds", bad),
                    Err(CommandError::Payload { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_cameras_and_commands_are_named() {
        let err = run("back/enabled", "true").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown camera `back` in `e/d/set/back/enabled`"
        );
        assert!(matches!(
            run("front/reboot", "true"),
            Err(CommandError::UnknownCommand { .. })
        ));
        assert!(matches!(
            run("front", "true"),
            Err(CommandError::UnknownCommand { .. })
        ));
        assert!(matches!(
            run("front/enabled", "1"),
            Err(CommandError::Payload { .. })
        ));
    }
}
