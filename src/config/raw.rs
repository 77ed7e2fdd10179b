//! The config file as written (each section's serde struct, with its defaults, lives in the
//! section's file) and what validation needs besides it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::Secret;
use super::camera::RawCamera;
use super::device::RawDevice;
use super::fallback::RawFallback;
use super::http::RawHttp;
use super::inference::RawInference;
use super::log::RawLog;
use super::mqtt::RawMqtt;
use super::outbox::RawOutbox;
use super::text::RawText;

/// The whole file, before validation; `Config::try_from` checks it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub(super) device: RawDevice,
    #[serde(default)]
    pub(super) mqtt: RawMqtt,
    #[serde(default)]
    pub(super) outbox: RawOutbox,
    #[serde(default)]
    pub(super) http: RawHttp,
    #[serde(default)]
    pub(super) log: RawLog,
    #[serde(default)]
    pub(super) inference: RawInference,
    #[serde(default)]
    pub(super) camera: Vec<RawCamera>,
    #[serde(default)]
    pub(super) text: Option<RawText>,
    #[serde(default)]
    pub(super) fallback: RawFallback,
    /// Where the file came from: filled in by the loader, never read from TOML.
    #[serde(skip)]
    pub(super) context: Context,
}

/// What validation needs besides the file: the directory relative paths start from, the
/// expansion of `{cache}`, the password from the environment, and which keys the environment set.
#[derive(Debug, Default)]
pub(super) struct Context {
    pub(super) dir: PathBuf,
    pub(super) cache: PathBuf,
    pub(super) password: Option<Secret>,
    /// The fallback host's bearer token from the environment.
    pub(super) token: Option<Secret>,
    /// Dotted key → the variable that set it.
    pub(super) origins: BTreeMap<String, String>,
}

impl Context {
    /// Expands `{cache}/` and resolves a relative path against the config directory.
    pub(super) fn resolve(&self, path: &str) -> PathBuf {
        match path.strip_prefix("{cache}") {
            Some("") => self.cache.clone(),
            Some(rest) if rest.starts_with('/') => self.cache.join(rest.trim_start_matches('/')),
            _ => self.dir.join(path),
        }
    }
}

/// The serde default of a flag that is on unless the file turns it off.
pub(super) fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::testing::{MINIMAL, parse, parse_env};
    use crate::model::manifest::CACHE_ENV;

    #[test]
    fn cache_placeholder_expands() {
        let text = MINIMAL.replace("\"photos\"", "\"{cache}/photos\"").replace(
            "\"models/yolov8n-320.model.toml\"",
            "\"{cache}/m.model.toml\"",
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.cameras[0].path, "/etc/edgemass/../models/cache/photos");
        assert_eq!(
            c.cameras[0].model,
            Path::new("/etc/edgemass/../models/cache/m.model.toml")
        );
        let c = parse_env(&text, &[(CACHE_ENV, "/var/cache/edgemass")]).unwrap();
        assert_eq!(c.cameras[0].path, "/var/cache/edgemass/photos");
        assert_eq!(
            c.cameras[0].model,
            Path::new("/var/cache/edgemass/m.model.toml")
        );
    }

    #[test]
    fn relative_paths_resolve_against_the_config_dir() {
        let text = MINIMAL.replace(
            "[[camera]]",
            "[outbox]\npath = \"state/outbox.sqlite\"\n[[camera]]",
        );
        let c = parse(&text).unwrap();
        assert_eq!(
            c.outbox.path,
            Path::new("/etc/edgemass/state/outbox.sqlite")
        );
        assert_eq!(c.cameras[0].path, "/etc/edgemass/photos");
        assert_eq!(
            c.cameras[0].model,
            Path::new("/etc/edgemass/models/yolov8n-320.model.toml")
        );
        let abs = MINIMAL.replace("\"photos\"", "\"/srv/photos/*.jpg\"");
        assert_eq!(parse(&abs).unwrap().cameras[0].path, "/srv/photos/*.jpg");
    }
}
