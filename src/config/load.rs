//! From text and environment to a checked `Config`: parse the TOML, apply the `EDGEMASS__…`
//! overrides (each checked on its own, so an error names its variable), and fill in what
//! validation needs besides the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::raw::{Context, RawConfig};
use super::{Config, ConfigError, FALLBACK_TOKEN_ENV, OVERRIDE_PREFIX, PASSWORD_ENV, Secret, env};
use crate::model::manifest::{CACHE_ENV, toml_message};

/// The variables the config reads, as UTF-8; other variables are skipped.
pub(super) fn process_env() -> Result<Vec<(String, String)>, ConfigError> {
    let mut env = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with(OVERRIDE_PREFIX)
            || [PASSWORD_ENV, FALLBACK_TOKEN_ENV, CACHE_ENV].contains(&name))
        {
            continue;
        }
        let value = value.into_string().map_err(|_| ConfigError::Env {
            var: name.to_owned(),
            reason: "not valid UTF-8".to_owned(),
        })?;
        env.push((name.to_owned(), value));
    }
    Ok(env)
}

/// Parses `text` (from `origin`, for messages), applies `env` and validates; relative paths
/// start at `dir`.
pub(super) fn load(
    text: &str,
    origin: &Path,
    dir: &Path,
    env: &[(String, String)],
) -> Result<Config, ConfigError> {
    let parse_error = |e: toml::de::Error| ConfigError::Parse {
        path: origin.to_owned(),
        message: toml_message(&e, text),
    };
    let mut raw: RawConfig = toml::from_str(text).map_err(parse_error)?;
    let overrides = env::overrides(env)?;
    let mut origins = BTreeMap::new();
    if !overrides.is_empty() {
        let mut table: toml::Table = toml::from_str(text).map_err(parse_error)?;
        for item in &overrides {
            let (key, applied) = apply(&table, item)?;
            origins.insert(key, item.var.clone());
            table = applied;
        }
        raw = table.try_into().map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: toml_message(&e, ""),
        })?;
    }
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(var, value)| var == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    };
    raw.context = Context {
        dir: dir.to_owned(),
        cache: lookup(CACHE_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.join("../models/cache")),
        password: lookup(PASSWORD_ENV).map(Secret::new),
        token: lookup(FALLBACK_TOKEN_ENV).map(Secret::new),
        origins,
    };
    Config::try_from(raw)
}

/// Applies one override to a copy of `table` and checks that the result still deserializes. The
/// value is tried as a TOML scalar first, then as a string (so `EDGEMASS__DEVICE__ID=42` works).
fn apply(table: &toml::Table, item: &env::Override) -> Result<(String, toml::Table), ConfigError> {
    let typed = env::scalar(&item.value);
    let mut candidates = vec![typed.clone()];
    if !typed.is_str() {
        candidates.push(toml::Value::String(item.value.clone()));
    }
    let mut first_error = None;
    for value in candidates {
        let mut attempt = table.clone();
        let key = env::set(&mut attempt, item, value)?;
        match attempt.clone().try_into::<RawConfig>() {
            Ok(_) => return Ok((key, attempt)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(ConfigError::Env {
        var: item.var.clone(),
        reason: match first_error {
            Some(e) => toml_message(&e, ""),
            None => "does not fit the config".to_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::LabelThresholds;
    use super::super::testing::{MINIMAL, error, parse, parse_env};

    #[test]
    fn env_overrides_a_scalar() {
        let c = parse_env(
            MINIMAL,
            &[
                ("EDGEMASS__MQTT__PORT", "1884"),
                ("edgemass__mqtt__host", "x"),
            ],
        )
        .unwrap();
        assert_eq!(c.mqtt.port, 1884);
        assert_eq!(c.mqtt.host, "127.0.0.1", "the prefix is case-sensitive");
        let c = parse_env(MINIMAL, &[("EDGEMASS__Mqtt__Discovery", "false")]).unwrap();
        assert!(!c.mqtt.discovery);
        let c = parse_env(MINIMAL, &[("EDGEMASS__DEVICE__ID", "42")]).unwrap();
        assert_eq!(c.device.id, "42");
    }

    #[test]
    fn env_overrides_a_camera_by_index() {
        let two = format!(
            "{MINIMAL}\n{}",
            MINIMAL[MINIMAL.find("[[camera]]").unwrap()..].replace("front", "back")
        );
        let c = parse_env(
            &two,
            &[
                ("EDGEMASS__CAMERA__1__FPS", "2"),
                ("EDGEMASS__CAMERA__1__PATH", "0"),
            ],
        )
        .unwrap();
        assert_eq!(c.cameras[0].fps, 5.0);
        assert_eq!(c.cameras[1].fps, 2.0);
        assert_eq!(c.cameras[1].path, "/etc/edgemass/0");
        let err = error(parse_env(MINIMAL, &[("EDGEMASS__CAMERA__3__FPS", "2")]));
        assert!(err.contains("EDGEMASS__CAMERA__3__FPS"), "{err}");
    }

    #[test]
    fn env_overrides_a_label_threshold() {
        let c = parse_env(
            MINIMAL,
            &[("EDGEMASS__CAMERA__0__LABELS__FACE__THRESHOLD", "0.7")],
        )
        .unwrap();
        assert_eq!(
            c.cameras[0].tracker.labels["face"],
            LabelThresholds {
                min_score: 0.3,
                threshold: 0.7
            }
        );
        let text = format!("{MINIMAL}\n[camera.labels.Face]\nmin_score = 0.4\n");
        let c = parse_env(
            &text,
            &[("EDGEMASS__CAMERA__0__LABELS__FACE__THRESHOLD", "0.8")],
        )
        .unwrap();
        assert_eq!(
            c.cameras[0].tracker.labels["Face"],
            LabelThresholds {
                min_score: 0.4,
                threshold: 0.8
            }
        );
    }

    #[test]
    fn env_naming_an_unknown_key_names_the_variable() {
        for var in [
            "EDGEMASS__MQTT__POTR",
            "EDGEMASS__NOPE__KEY",
            "EDGEMASS__CAMERA__0__COLOUR",
        ] {
            let err = error(parse_env(MINIMAL, &[(var, "1")]));
            assert!(err.contains(var) && err.contains("unknown field"), "{err}");
        }
        let err = error(parse_env(MINIMAL, &[("EDGEMASS__MQTT__PORT", "many")]));
        assert!(err.contains("EDGEMASS__MQTT__PORT"), "{err}");
    }

    #[test]
    fn invalid_value_from_env_names_the_variable() {
        let err = error(parse_env(MINIMAL, &[("EDGEMASS__CAMERA__0__FPS", "500")]));
        assert!(
            err.starts_with("`camera[0].fps`") && err.contains("EDGEMASS__CAMERA__0__FPS"),
            "{err}"
        );
    }

    #[test]
    fn parse_errors_are_one_line_with_a_line_number() {
        let err = error(parse("[device]\nid = \"x\"\n[[camera]]\nfps = \"fast\"\n"));
        assert!(err.starts_with("config: line 4:"), "{err}");
        let err = error(parse("[device\n"));
        assert!(err.contains("line 1"), "{err}");
    }
}
