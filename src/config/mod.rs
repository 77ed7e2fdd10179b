//! Agent configuration: strict TOML, environment overrides, validation into one `Config`.
//!
//! One file per section of the file: each holds the section as written (its serde struct and
//! defaults), the checked form the agent uses, the checks between them and their tests. `load.rs`
//! reads the text and applies the environment (`env.rs`); this file puts the sections together.
//! The value types the sections check into (`Band`, `TrackerConfig`, `BreakerConfig`) live here
//! too, so the modules that use them import them from below.

mod band;
mod camera;
mod device;
mod env;
mod fallback;
mod http;
mod inference;
mod load;
mod log;
mod mqtt;
mod outbox;
mod raw;
mod secret;
#[cfg(test)]
mod testing;
mod text;
mod tracker;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use band::Band;
pub use camera::{CameraConfig, SourceKind};
pub use device::Device;
pub use fallback::{BreakerConfig, EscalationConfig, FallbackConfig};
pub use inference::Inference;
pub use log::{LogConfig, LogFormat};
pub use mqtt::{Mqtt, Tls};
pub use outbox::OutboxConfig;
pub use secret::Secret;
pub use text::TextConfig;
pub use tracker::{LabelThresholds, TrackerConfig};

use raw::RawConfig;

/// The commented default configuration, as printed by `edgemass print-config`.
pub const DEFAULT: &str = include_str!("default.toml");

/// Prefix of the variables that override config keys: `EDGEMASS__MQTT__PORT=1884`.
pub const OVERRIDE_PREFIX: &str = "EDGEMASS__";

/// Environment variable holding the MQTT password; it wins over `mqtt.password_file`.
pub const PASSWORD_ENV: &str = "EDGEMASS_MQTT_PASSWORD";

/// Environment variable holding the fallback host's bearer token; it wins over
/// `fallback.token_file`.
pub const FALLBACK_TOKEN_ENV: &str = "EDGEMASS_FALLBACK_TOKEN";

/// Errors while reading or validating the configuration. No variant ever holds the password.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config {path}")]
    Read {
        /// The config path.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The TOML is malformed, has an unknown key, or a value of the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The config path (`config` for text parsed without a file).
        path: PathBuf,
        /// What the parser found, with its line.
        message: String,
    },
    /// A key parsed but its value is not acceptable.
    #[error("`{key}` {reason}")]
    Invalid {
        /// The dotted key, e.g. `camera[1].fps` or `mqtt.port`.
        key: String,
        /// What was expected.
        reason: String,
    },
    /// An environment variable cannot be applied.
    #[error("environment variable {var}: {reason}")]
    Env {
        /// The variable name.
        var: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file holding a secret (MQTT password, fallback token) could not be read.
    #[error("cannot read secret file {path}")]
    Secret {
        /// The secret file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
}

/// The validated configuration; the rest of the agent only sees this.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Who this device is.
    pub device: Device,
    /// Broker connection and what is published.
    pub mqtt: Mqtt,
    /// The on-disk queue of events not yet acknowledged by the broker.
    pub outbox: OutboxConfig,
    /// Address of the HTTP listener (health, metrics); `None` disables it.
    pub http: Option<SocketAddr>,
    /// Logging.
    pub log: LogConfig,
    /// Inference threads.
    pub inference: Inference,
    /// Cameras in file order (at least one, unless there is a text classifier).
    pub cameras: Vec<CameraConfig>,
    /// The text classifier and its inputs.
    pub text: Option<TextConfig>,
    /// The GPU host that unsure results are escalated to; `None` when `fallback.url` is empty.
    pub fallback: Option<FallbackConfig>,
}

impl Config {
    /// Reads and validates a config file with the process environment applied; relative paths
    /// are taken from the file's directory.
    pub fn from_path(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let env = load::process_env()?;
        load::load(&text, path, dir, &env)
    }

    /// Parses `text`; `dir` resolves relative paths; `env` is the environment to apply (tests
    /// pass their own list instead of the process env).
    pub fn parse(text: &str, dir: &Path, env: &[(String, String)]) -> Result<Config, ConfigError> {
        load::load(text, Path::new("config"), dir, env)
    }
}

/// A `ConfigError::Invalid` for the dotted `key`.
fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Config, ConfigError> {
        let ctx = &raw.context;
        validate(&raw).map_err(|e| match e {
            ConfigError::Invalid { key, reason } => match ctx.origins.get(&key) {
                Some(var) => invalid(key, format!("{reason} (set by {var})")),
                None => invalid(key, reason),
            },
            other => other,
        })
    }
}

/// Checks each section in file order, then what spans sections.
fn validate(raw: &RawConfig) -> Result<Config, ConfigError> {
    let ctx = &raw.context;
    let device = device::validate(&raw.device)?;
    let mqtt = mqtt::validate(&raw.mqtt, &device, ctx)?;
    let outbox = outbox::validate(&raw.outbox, ctx)?;
    let http = http::validate(&raw.http)?;
    let log = log::validate(&raw.log)?;
    let inference = inference::validate(&raw.inference, ctx)?;
    if raw.camera.is_empty() && raw.text.is_none() {
        return Err(invalid(
            "camera",
            "needs at least one [[camera]] table (or a [text] table)",
        ));
    }
    let fallback = fallback::host(&raw.fallback, ctx)?;
    let text = raw
        .text
        .as_ref()
        .map(|t| text::validate(t, ctx))
        .transpose()?;
    let cameras = camera::validate(&raw.camera, &raw.inference, ctx)?;
    Ok(Config {
        device,
        mqtt,
        outbox,
        http,
        log,
        inference,
        cameras,
        text,
        fallback,
    })
    .and_then(needs_host)
}

/// A source that escalates needs the host to be set.
fn needs_host(config: Config) -> Result<Config, ConfigError> {
    if config.fallback.is_none() {
        if let Some(index) = config.cameras.iter().position(|c| c.fallback.is_some()) {
            return Err(invalid(
                format!("camera[{index}].fallback"),
                "needs the host: set fallback.url",
            ));
        }
        if config.text.as_ref().is_some_and(|t| t.fallback.is_some()) {
            return Err(invalid("text.fallback", "needs the host: set fallback.url"));
        }
    }
    Ok(config)
}

/// One or more of `[A-Za-z0-9_-]`.
fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::testing::{MINIMAL, each_names_its_key, error, parse, with_camera_line};
    use super::*;

    #[test]
    fn unknown_keys_are_rejected_with_their_line() {
        let text = MINIMAL.replace("id = \"dev1\"", "id = \"dev1\"\nmystery = 1");
        let err = error(parse(&text));
        assert!(err.contains("mystery") && err.contains("line 4"), "{err}");
        let err = error(parse(&with_camera_line("colour = \"red\"")));
        assert!(err.contains("colour"), "{err}");
        let err = error(parse(&format!(
            "{MINIMAL}\n[camera.labels.face]\nscore = 0.1\n"
        )));
        assert!(err.contains("score"), "{err}");
    }

    #[test]
    fn a_source_is_required() {
        each_names_its_key(&[(
            MINIMAL[..MINIMAL.find("[[camera]]").unwrap()].to_owned(),
            "`camera`",
        )]);
    }

    #[test]
    fn default_config_parses_and_validates() {
        let c = Config::parse(DEFAULT, Path::new("/etc/edgemass"), &[]).unwrap();
        assert_eq!(c.device.id, "edgemass");
        assert_eq!(c.cameras.len(), 1);
        assert!(c.cameras[0].motion_gate);
        assert!(!DEFAULT.contains("\t"));
    }

    #[test]
    fn every_firmware_profile_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let config = Config::parse(&text, &dir, &[])
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(!config.cameras.is_empty());
                for camera in &config.cameras {
                    assert!(
                        camera.model.exists(),
                        "{}: {} missing",
                        path.display(),
                        camera.model.display()
                    );
                }
                seen += 1;
            }
        }
        assert!(seen >= 5, "only {seen} profiles in {}", dir.display());
    }

    #[test]
    fn packaged_default_points_at_the_installed_models() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join("cross/deb/edgemass.toml")).unwrap();
        let config = Config::parse(&text, Path::new("/etc/edgemass"), &[]).unwrap();
        assert_eq!(
            config.outbox.path,
            Path::new("/var/lib/edgemass/outbox.sqlite")
        );
        for camera in &config.cameras {
            let installed = camera
                .model
                .strip_prefix("/usr/share/edgemass")
                .expect("models are installed under /usr/share/edgemass");
            assert!(root.join(installed).is_file(), "{}", camera.model.display());
        }
        let text = config.text.expect("the packaged sentiment student");
        let installed = text
            .model
            .strip_prefix("/usr/share/edgemass")
            .expect("models are installed under /usr/share/edgemass");
        assert!(root.join(installed).is_file(), "{}", text.model.display());
    }

    #[test]
    #[cfg(feature = "embedded-broker")]
    fn demo_profile_runs_without_a_system_broker() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config/demo.toml");
        let c = Config::from_path(&path).unwrap();
        assert!(c.mqtt.embedded_broker && c.mqtt.print_events);
        assert_eq!((c.mqtt.host.as_str(), c.mqtt.port), ("127.0.0.1", 18830));
        let names: Vec<&str> = c.cameras.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["street", "faces", "text"]);
        assert_eq!(c.cameras[1].tracker.default.threshold, 0.5);
        assert_eq!(c.cameras[2].tracker.default.threshold, 0.6);
    }
}
