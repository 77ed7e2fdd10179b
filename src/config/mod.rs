//! Agent configuration: strict TOML, environment overrides, validation into one `Config`.

mod env;
mod raw;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::fallback::band::Band;
use crate::fallback::breaker::BreakerConfig;
use crate::model::manifest::{CACHE_ENV, toml_message};
use crate::model::{Manifest, ManifestError, Options, Precision, RuntimeSetting};
use crate::track::{LabelThresholds, TrackerConfig};

use raw::{Context, RawCamera, RawConfig, RawEscalation, RawFallback, RawInference, RawMqtt};

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

/// A secret string: `Debug` and `Display` print `[redacted]`; [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
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

/// The GPU host that results in a source's score band are sent to (Open Inference Protocol).
#[derive(Debug, Clone, PartialEq)]
pub struct FallbackConfig {
    /// Base URL, `http://` or `https://`, without a trailing `/`.
    pub url: String,
    /// Bearer token, from `EDGEMASS_FALLBACK_TOKEN` or `fallback.token_file`.
    pub token: Option<Secret>,
    /// PEM CA bundle for an `https://` host; `None` trusts the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Most time one request may take, connection included.
    pub timeout: Duration,
    /// Most requests out at once.
    pub max_in_flight: usize,
    /// Requests per second on average (the rate budget).
    pub rate_per_s: f64,
    /// Requests that may go at once after a quiet spell.
    pub burst: u32,
    /// When the circuit breaker opens and closes.
    pub breaker: BreakerConfig,
}

/// What one camera or the text classifier sends to the host.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationConfig {
    /// Manifest of the model the host runs: its input, outputs, decoder and labels.
    pub model: PathBuf,
    /// The model's name on the host; `None` means the manifest's `name`.
    pub name: Option<String>,
    /// The model version to ask for; `None` lets the host choose.
    pub version: Option<String>,
    /// Scores that are escalated.
    pub band: Band,
    /// Detections: least IoU between the edge's box and the host's to be the same object.
    pub match_iou: f32,
}

/// Device identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// MQTT device id: 1-64 characters of `[A-Za-z0-9_-]`.
    pub id: String,
    /// Human name for Home Assistant.
    pub name: String,
}

/// MQTT connection and publishing.
#[derive(Debug, Clone, PartialEq)]
pub struct Mqtt {
    /// Broker host name or address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Start an in-process broker on `host:port` (a loopback address).
    pub embedded_broker: bool,
    /// MQTT client id (default `edgemass-{device.id}`).
    pub client_id: String,
    /// Topic prefix.
    pub prefix: String,
    /// User name, if the broker wants one.
    pub username: Option<String>,
    /// Password, from `EDGEMASS_MQTT_PASSWORD` or `mqtt.password_file`.
    pub password: Option<Secret>,
    /// TLS settings; `None` for plain TCP.
    pub tls: Option<Tls>,
    /// MQTT keep-alive interval.
    pub keep_alive: Duration,
    /// Publish Home Assistant discovery.
    pub discovery: bool,
    /// Home Assistant discovery topic prefix.
    pub discovery_prefix: String,
    /// How often stats are published.
    pub stats_interval: Duration,
    /// Publish a retained JPEG per camera and label.
    pub snapshots: bool,
    /// Also print each published event as a JSON line on stdout.
    pub print_events: bool,
}

/// TLS to the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// PEM CA bundle.
    pub ca_file: PathBuf,
    /// Client certificate and key, PEM.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// The event outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfig {
    /// SQLite file.
    pub path: PathBuf,
    /// Most events kept.
    pub capacity: usize,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Line format.
    pub format: LogFormat,
    /// A `tracing` EnvFilter directive, e.g. `info,edgemass=debug`.
    pub level: String,
}

/// Inference settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inference {
    /// Inference threads per camera, 1..=64.
    pub threads: usize,
    /// onnxruntime's shared library, when the config names one.
    pub onnxruntime: Option<PathBuf>,
}

/// Where a camera's frames come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A directory or glob of images.
    Images,
    /// A video file.
    Video,
    /// An RTSP or HTTP(S) stream.
    Stream,
    /// A local capture device.
    Camera,
}

/// The text classifier: its model and where texts come from.
#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    /// The `text-classify` manifest.
    pub model: PathBuf,
    /// Classify what arrives on `P/D/text/in`.
    pub mqtt: bool,
    /// Classify each line of standard input.
    pub stdin: bool,
    /// Classify each line of this file, once.
    pub file: Option<PathBuf>,
    /// Most texts run together in one batch.
    pub max_batch: usize,
    /// Texts waiting for the model; inputs wait when it is full.
    pub queue: usize,
    /// Texts whose score lies in a band go to the host.
    pub fallback: Option<EscalationConfig>,
}

/// One camera and its tracker.
#[derive(Clone, PartialEq)]
pub struct CameraConfig {
    /// Unique name, `[A-Za-z0-9_-]`, used in topics.
    pub name: String,
    /// Whether the camera runs.
    pub enabled: bool,
    /// Source kind.
    pub source: SourceKind,
    /// Resolved file path or glob (images, video), URL (stream) or device (camera).
    pub path: String,
    /// Frames per second to feed: playback rate, or the rate requested from a camera.
    pub fps: f64,
    /// Images and video: start over at the end.
    pub looping: bool,
    /// Camera only: requested capture width.
    pub width: u32,
    /// Camera only: requested capture height.
    pub height: u32,
    /// Model manifest.
    pub model: PathBuf,
    /// Float or int8 form of the model (the camera's own, else `[inference]`'s).
    pub precision: Precision,
    /// What runs the model (the camera's own, else `[inference]`'s).
    pub runtime: RuntimeSetting,
    /// `[width, height]` fed to a fully convolutional model instead of its manifest's size.
    pub input_size: Option<[u32; 2]>,
    /// Skip inference on frames without motion.
    pub motion_gate: bool,
    /// Tracker thresholds.
    pub tracker: TrackerConfig,
    /// Detections whose score lies in a band go to the host.
    pub fallback: Option<EscalationConfig>,
}

impl CameraConfig {
    /// The camera's model manifest at the camera's input size (its form is chosen at load
    /// time, see [`CameraConfig::load_options`]).
    pub fn manifest(&self) -> Result<Manifest, ManifestError> {
        let manifest = Manifest::from_path(&self.model)?;
        Ok(match self.input_size {
            Some(size) => manifest.with_input_size(size),
            None => manifest,
        })
    }

    /// How to load the camera's model with `inference`'s threads and library.
    pub fn load_options(&self, inference: &Inference) -> Options {
        Options {
            runtime: self.runtime,
            precision: self.precision,
            library: inference.onnxruntime.clone(),
            threads: inference.threads,
        }
    }

    /// `path` with any password in a URL replaced by `[redacted]`, for logs.
    pub fn redacted_path(&self) -> String {
        redact_url(&self.path)
    }
}

impl fmt::Debug for CameraConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CameraConfig")
            .field("name", &self.name)
            .field("enabled", &self.enabled)
            .field("source", &self.source)
            .field("path", &self.redacted_path())
            .field("fps", &self.fps)
            .field("looping", &self.looping)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("model", &self.model)
            .field("precision", &self.precision)
            .field("runtime", &self.runtime)
            .field("input_size", &self.input_size)
            .field("motion_gate", &self.motion_gate)
            .field("tracker", &self.tracker)
            .field("fallback", &self.fallback)
            .finish()
    }
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
        let env = process_env()?;
        load(&text, path, dir, &env)
    }

    /// Parses `text`; `dir` resolves relative paths; `env` is the environment to apply (tests
    /// pass their own list instead of the process env).
    pub fn parse(text: &str, dir: &Path, env: &[(String, String)]) -> Result<Config, ConfigError> {
        load(text, Path::new("config"), dir, env)
    }
}

/// The variables the config reads, as UTF-8; other variables are skipped.
fn process_env() -> Result<Vec<(String, String)>, ConfigError> {
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

fn load(
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

fn validate(raw: &RawConfig) -> Result<Config, ConfigError> {
    let ctx = &raw.context;
    let device = device(raw)?;
    let mqtt = mqtt(&raw.mqtt, &device, ctx)?;
    if raw.outbox.path.trim().is_empty() {
        return Err(invalid("outbox.path", "must not be empty"));
    }
    if raw.outbox.capacity == 0 {
        return Err(invalid("outbox.capacity", "must be at least 1"));
    }
    let outbox = OutboxConfig {
        path: resolve(&raw.outbox.path, ctx),
        capacity: raw.outbox.capacity,
    };
    let http = match raw.http.listen.trim() {
        "" => None,
        listen => Some(listen.parse::<SocketAddr>().map_err(|_| {
            invalid(
                "http.listen",
                "must be an address and port such as 127.0.0.1:9898, or empty to disable",
            )
        })?),
    };
    if tracing_subscriber::EnvFilter::try_new(&raw.log.level).is_err() {
        return Err(invalid(
            "log.level",
            "must be a tracing filter such as `info` or `info,edgemass=debug`",
        ));
    }
    let log = LogConfig {
        format: raw.log.format,
        level: raw.log.level.clone(),
    };
    if !(1..=64).contains(&raw.inference.threads) {
        return Err(invalid("inference.threads", "must be between 1 and 64"));
    }
    if raw.camera.is_empty() && raw.text.is_none() {
        return Err(invalid(
            "camera",
            "needs at least one [[camera]] table (or a [text] table)",
        ));
    }
    let fallback = fallback(&raw.fallback, ctx)?;
    let text = raw.text.as_ref().map(|t| text(t, ctx)).transpose()?;
    let mut names = BTreeSet::new();
    let mut cameras = Vec::with_capacity(raw.camera.len());
    for (index, camera) in raw.camera.iter().enumerate() {
        let camera = self::camera(index, camera, &raw.inference, ctx)?;
        if !names.insert(camera.name.clone()) {
            return Err(invalid(
                format!("camera[{index}].name"),
                format!("`{}` is used by an earlier camera", camera.name),
            ));
        }
        cameras.push(camera);
    }
    Ok(Config {
        device,
        mqtt,
        outbox,
        http,
        log,
        inference: Inference {
            threads: raw.inference.threads,
            onnxruntime: raw
                .inference
                .onnxruntime
                .as_deref()
                .map(|p| resolve(p.trim(), ctx)),
        },
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

fn fallback(raw: &RawFallback, ctx: &Context) -> Result<Option<FallbackConfig>, ConfigError> {
    let url = raw.url.trim().trim_end_matches('/');
    if url.is_empty() {
        return Ok(None);
    }
    let uri = url.parse::<hyper::Uri>().ok();
    let scheme = uri.as_ref().and_then(|u| u.scheme_str());
    let authority = uri.as_ref().and_then(|u| u.authority());
    if !matches!(scheme, Some("http" | "https")) || authority.is_none() {
        return Err(invalid(
            "fallback.url",
            "must be an http:// or https:// URL such as http://gpu-host:8000",
        ));
    }
    if authority.is_some_and(|a| a.as_str().contains('@'))
        || uri.as_ref().is_some_and(|u| u.query().is_some())
    {
        return Err(invalid(
            "fallback.url",
            "must hold no credentials or query (the token comes from fallback.token_file)",
        ));
    }
    let https = scheme == Some("https");
    let ca_file = match raw.ca_file.trim() {
        "" => None,
        _ if !https => {
            return Err(invalid(
                "fallback.ca_file",
                "is only used with an https:// fallback.url",
            ));
        }
        file => Some(resolve(file, ctx)),
    };
    let token = match (&ctx.token, raw.token_file.trim()) {
        (Some(secret), _) => Some(secret.clone()),
        (None, "") => None,
        (None, file) => Some(read_secret(&resolve(file, ctx), "fallback.token_file")?),
    };
    if !(1..=600_000).contains(&raw.timeout_ms) {
        return Err(invalid(
            "fallback.timeout_ms",
            "must be between 1 and 600000",
        ));
    }
    if !(1..=1024).contains(&raw.max_in_flight) {
        return Err(invalid(
            "fallback.max_in_flight",
            "must be between 1 and 1024",
        ));
    }
    if !(raw.rate_per_s.is_finite() && raw.rate_per_s > 0.0) {
        return Err(invalid("fallback.rate_per_s", "must be greater than 0"));
    }
    for (key, value) in [
        ("fallback.burst", raw.burst),
        ("fallback.failures_to_open", raw.failures_to_open),
        ("fallback.probes", raw.probes),
    ] {
        if value == 0 {
            return Err(invalid(key, "must be at least 1"));
        }
    }
    if !(raw.open_s.is_finite() && raw.open_s > 0.0 && raw.open_s <= 86_400.0) {
        return Err(invalid(
            "fallback.open_s",
            "must be greater than 0 and at most 86400",
        ));
    }
    Ok(Some(FallbackConfig {
        url: url.to_owned(),
        token,
        ca_file,
        timeout: Duration::from_millis(raw.timeout_ms),
        max_in_flight: raw.max_in_flight,
        rate_per_s: raw.rate_per_s,
        burst: raw.burst,
        breaker: BreakerConfig {
            failures: raw.failures_to_open,
            open_for: Duration::from_secs_f64(raw.open_s),
            probes: raw.probes,
        },
    }))
}

/// Checks a source's `fallback` table; `prefix` is its dotted key ending in `.`.
fn escalation(
    prefix: &str,
    raw: &RawEscalation,
    ctx: &Context,
) -> Result<EscalationConfig, ConfigError> {
    let key = |field: &str| format!("{prefix}{field}");
    if raw.model.trim().is_empty() {
        return Err(invalid(
            key("model"),
            "must name the manifest of the model the host runs",
        ));
    }
    let band = Band::new(raw.low, raw.high).map_err(|reason| invalid(key("low"), reason))?;
    let name_or_version = |field: &str, value: &str| -> Result<Option<String>, ConfigError> {
        match value.trim() {
            "" => Ok(None),
            v if v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) =>
            {
                Ok(Some(v.to_owned()))
            }
            _ => Err(invalid(
                key(field),
                "must be characters of A-Z, a-z, 0-9, `_`, `.` and `-`",
            )),
        }
    };
    if !(raw.match_iou.is_finite() && raw.match_iou > 0.0 && raw.match_iou <= 1.0) {
        return Err(invalid(
            key("match_iou"),
            "must be greater than 0 and at most 1",
        ));
    }
    Ok(EscalationConfig {
        model: resolve(raw.model.trim(), ctx),
        name: name_or_version("name", &raw.name)?,
        version: name_or_version("version", &raw.version)?,
        band,
        match_iou: raw.match_iou,
    })
}

fn text(raw: &raw::RawText, ctx: &Context) -> Result<TextConfig, ConfigError> {
    if raw.model.trim().is_empty() {
        return Err(invalid("text.model", "must name a text-classify manifest"));
    }
    if !(1..=256).contains(&raw.max_batch) {
        return Err(invalid("text.max_batch", "must be between 1 and 256"));
    }
    if raw.queue < raw.max_batch {
        return Err(invalid("text.queue", "must be at least `text.max_batch`"));
    }
    let file = match raw.file.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(path) => Some(resolve(path, ctx)),
    };
    if !raw.mqtt && !raw.stdin && file.is_none() {
        return Err(invalid(
            "text",
            "needs at least one input: mqtt = true, stdin = true or a file",
        ));
    }
    Ok(TextConfig {
        model: resolve(&raw.model, ctx),
        mqtt: raw.mqtt,
        stdin: raw.stdin,
        file,
        max_batch: raw.max_batch,
        queue: raw.queue,
        fallback: raw
            .fallback
            .as_ref()
            .map(|f| escalation("text.fallback.", f, ctx))
            .transpose()?,
    })
}

fn device(raw: &RawConfig) -> Result<Device, ConfigError> {
    let id = raw
        .device
        .id
        .clone()
        .ok_or_else(|| invalid("device.id", "is required"))?;
    if !is_name(&id) || id.len() > 64 {
        return Err(invalid(
            "device.id",
            "must be 1 to 64 characters of A-Z, a-z, 0-9, `_` and `-`",
        ));
    }
    let name = match &raw.device.name {
        Some(name) if name.trim().is_empty() => {
            return Err(invalid("device.name", "must not be empty"));
        }
        Some(name) => name.clone(),
        None => id.clone(),
    };
    Ok(Device { id, name })
}

fn mqtt(raw: &RawMqtt, device: &Device, ctx: &Context) -> Result<Mqtt, ConfigError> {
    let host = raw.host.trim();
    if host.is_empty() {
        return Err(invalid("mqtt.host", "must not be empty"));
    }
    if raw.port == 0 {
        return Err(invalid("mqtt.port", "must be between 1 and 65535"));
    }
    if raw.embedded_broker && !cfg!(feature = "embedded-broker") {
        return Err(invalid(
            "mqtt.embedded_broker",
            "needs a build with the `embedded-broker` feature (board releases leave it out): run a broker such as mosquitto and point mqtt.host at it",
        ));
    }
    if raw.embedded_broker && !is_loopback(host) {
        return Err(invalid(
            "mqtt.host",
            "must be a loopback address (127.0.0.1, ::1 or localhost) when mqtt.embedded_broker = true",
        ));
    }
    check_topic_prefix("mqtt.prefix", &raw.prefix)?;
    check_topic_prefix("mqtt.discovery_prefix", &raw.discovery_prefix)?;
    if raw.client_id.contains(['+', '#', '/']) {
        return Err(invalid(
            "mqtt.client_id",
            "must not contain `+`, `#` or `/`",
        ));
    }
    let client_id = match raw.client_id.trim() {
        "" => format!("edgemass-{}", device.id),
        id => id.to_owned(),
    };
    let username = Some(raw.username.clone()).filter(|u| !u.is_empty());
    let password = match (&ctx.password, raw.password_file.trim()) {
        (Some(secret), _) => Some(secret.clone()),
        (None, "") => None,
        (None, file) => Some(read_secret(&resolve(file, ctx), "mqtt.password_file")?),
    };
    if password.is_some() && username.is_none() {
        return Err(invalid(
            "mqtt.username",
            format!("must be set when a password is given ({PASSWORD_ENV} or mqtt.password_file)"),
        ));
    }
    let cert = raw.client_cert_file.trim();
    let key = raw.client_key_file.trim();
    let tls = if raw.tls {
        let ca = raw.ca_file.trim();
        if ca.is_empty() {
            return Err(invalid("mqtt.ca_file", "is required when mqtt.tls = true"));
        }
        let client_cert = match (cert.is_empty(), key.is_empty()) {
            (true, true) => None,
            (false, false) => Some((resolve(cert, ctx), resolve(key, ctx))),
            (false, true) => {
                return Err(invalid(
                    "mqtt.client_key_file",
                    "is required when mqtt.client_cert_file is set",
                ));
            }
            (true, false) => {
                return Err(invalid(
                    "mqtt.client_cert_file",
                    "is required when mqtt.client_key_file is set",
                ));
            }
        };
        Some(Tls {
            ca_file: resolve(ca, ctx),
            client_cert,
        })
    } else {
        if !(raw.ca_file.trim().is_empty() && cert.is_empty() && key.is_empty()) {
            return Err(invalid(
                "mqtt.tls",
                "must be true when mqtt.ca_file, client_cert_file or client_key_file is set",
            ));
        }
        None
    };
    if !(5..=3600).contains(&raw.keep_alive_s) {
        return Err(invalid(
            "mqtt.keep_alive_s",
            "must be between 5 and 3600 seconds",
        ));
    }
    if raw.stats_interval_s == 0 {
        return Err(invalid(
            "mqtt.stats_interval_s",
            "must be at least 1 second",
        ));
    }
    Ok(Mqtt {
        host: host.to_owned(),
        port: raw.port,
        embedded_broker: raw.embedded_broker,
        client_id,
        prefix: raw.prefix.clone(),
        username,
        password,
        tls,
        keep_alive: Duration::from_secs(raw.keep_alive_s),
        discovery: raw.discovery,
        discovery_prefix: raw.discovery_prefix.clone(),
        stats_interval: Duration::from_secs(raw.stats_interval_s),
        snapshots: raw.snapshots,
        print_events: raw.print_events,
    })
}

fn camera(
    index: usize,
    raw: &RawCamera,
    inference: &RawInference,
    ctx: &Context,
) -> Result<CameraConfig, ConfigError> {
    let key = |field: &str| format!("camera[{index}].{field}");
    if !is_name(&raw.name) {
        return Err(invalid(
            key("name"),
            "must be one or more characters of A-Z, a-z, 0-9, `_` and `-`",
        ));
    }
    let source = raw.source.ok_or_else(|| {
        invalid(
            key("source"),
            "is required: images, video, stream or camera",
        )
    })?;
    let given = raw.path.trim();
    if given.is_empty() {
        return Err(invalid(key("path"), "must not be empty"));
    }
    let path = match source {
        SourceKind::Images | SourceKind::Video => resolve(given, ctx)
            .into_os_string()
            .into_string()
            .map_err(|_| invalid(key("path"), "is not valid UTF-8 once resolved"))?,
        SourceKind::Stream => {
            let scheme_ok = ["rtsp://", "rtsps://", "http://", "https://"]
                .iter()
                .any(|scheme| {
                    given.len() > scheme.len() && given[..scheme.len()].eq_ignore_ascii_case(scheme)
                });
            if !scheme_ok {
                return Err(invalid(
                    key("path"),
                    "must be a URL starting with rtsp://, rtsps://, http:// or https://",
                ));
            }
            given.to_owned()
        }
        SourceKind::Camera => given.to_owned(),
    };
    if !(raw.fps.is_finite() && raw.fps > 0.0 && raw.fps <= 120.0) {
        return Err(invalid(
            key("fps"),
            "must be greater than 0 and at most 120",
        ));
    }
    for (field, value) in [("width", raw.width), ("height", raw.height)] {
        if !(1..=8192).contains(&value) {
            return Err(invalid(key(field), "must be between 1 and 8192"));
        }
    }
    if raw.model.trim().is_empty() {
        return Err(invalid(
            key("model"),
            "must name a model manifest (NAME.model.toml)",
        ));
    }
    if let Some(size) = raw.input_size
        && !size.iter().all(|s| s % 32 == 0 && (32..=4096).contains(s))
    {
        return Err(invalid(
            key("input_size"),
            "must be [width, height], each a multiple of 32 from 32 to 4096",
        ));
    }
    let default = thresholds(&key(""), raw.min_score, raw.threshold)?;
    let mut labels = BTreeMap::new();
    for (label, over) in &raw.labels {
        if label.is_empty() {
            return Err(invalid(key("labels"), "has an empty label name"));
        }
        let thresholds = thresholds(
            &key(&format!("labels.{label}.")),
            over.min_score.unwrap_or(default.min_score),
            over.threshold.unwrap_or(default.threshold),
        )?;
        labels.insert(label.clone(), thresholds);
    }
    if !(raw.iou.is_finite() && raw.iou > 0.0 && raw.iou <= 1.0) {
        return Err(invalid(key("iou"), "must be greater than 0 and at most 1"));
    }
    Ok(CameraConfig {
        name: raw.name.clone(),
        enabled: raw.enabled,
        source,
        path,
        fps: raw.fps,
        looping: raw.looping,
        width: raw.width,
        height: raw.height,
        model: resolve(raw.model.trim(), ctx),
        precision: raw.precision.unwrap_or(inference.precision),
        runtime: raw.runtime.unwrap_or(inference.runtime),
        input_size: raw.input_size,
        motion_gate: raw
            .motion_gate
            .unwrap_or(matches!(source, SourceKind::Camera | SourceKind::Stream)),
        tracker: TrackerConfig {
            default,
            labels,
            iou: raw.iou,
            max_missed: raw.max_missed,
        },
        fallback: raw
            .fallback
            .as_ref()
            .map(|f| escalation(&key("fallback."), f, ctx))
            .transpose()?,
    })
}

/// Checks `min_score <= threshold`, both in 0..=1; `prefix` is the dotted key ending in `.`.
fn thresholds(
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

/// One or more of `[A-Za-z0-9_-]`.
fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

fn check_topic_prefix(key: &str, prefix: &str) -> Result<(), ConfigError> {
    if prefix.is_empty()
        || prefix.starts_with('/')
        || prefix.ends_with('/')
        || prefix.contains(['+', '#', '\0'])
        || prefix.contains("//")
    {
        return Err(invalid(
            key,
            "must be a non-empty topic without `+`, `#`, empty levels or a leading or trailing `/`",
        ));
    }
    Ok(())
}

/// Expands `{cache}/` and resolves a relative path against the config directory.
fn resolve(path: &str, ctx: &Context) -> PathBuf {
    match path.strip_prefix("{cache}") {
        Some("") => ctx.cache.clone(),
        Some(rest) if rest.starts_with('/') => ctx.cache.join(rest.trim_start_matches('/')),
        _ => ctx.dir.join(path),
    }
}

/// Reads a one-line secret from `path`; `key` names the setting in errors.
fn read_secret(path: &Path, key: &str) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Secret {
        path: path.to_owned(),
        source,
    })?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(invalid(key, format!("{} is empty", path.display())));
    }
    Ok(Secret::new(secret))
}

/// Replaces the password of `scheme://user:password@host` with `[redacted]`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let Some((user, _password)) = authority[..at].split_once(':') else {
        return url.to_owned();
    };
    format!("{scheme}://{user}:[redacted]@{}", &rest[at + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [device]
        id = "dev1"

        [[camera]]
        name = "front"
        source = "images"
        path = "photos"
        model = "models/yolov8n-320.model.toml"
    "#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/edgemass"), &[])
    }

    fn parse_env(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::parse(text, Path::new("/etc/edgemass"), &env)
    }

    /// The error text for `text`, checked to be one line.
    fn error(result: Result<Config, ConfigError>) -> String {
        let message = result.expect_err("config should be rejected").to_string();
        assert!(!message.contains('\n'), "{message}");
        message
    }

    fn with_camera_line(line: &str) -> String {
        MINIMAL.replace("name = \"front\"", &format!("name = \"front\"\n{line}"))
    }

    #[test]
    fn defaults_fill_unset_keys() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(
            c.device,
            Device {
                id: "dev1".into(),
                name: "dev1".into()
            }
        );
        assert_eq!(c.mqtt.host, "127.0.0.1");
        assert_eq!(c.mqtt.port, 1883);
        assert!(!c.mqtt.embedded_broker);
        assert_eq!(c.mqtt.client_id, "edgemass-dev1");
        assert_eq!(c.mqtt.prefix, "edgemass");
        assert_eq!(c.mqtt.username, None);
        assert_eq!(c.mqtt.password, None);
        assert_eq!(c.mqtt.tls, None);
        assert_eq!(c.mqtt.keep_alive, Duration::from_secs(30));
        assert!(c.mqtt.discovery);
        assert_eq!(c.mqtt.discovery_prefix, "homeassistant");
        assert_eq!(c.mqtt.stats_interval, Duration::from_secs(30));
        assert!(c.mqtt.snapshots);
        assert!(!c.mqtt.print_events);
        assert_eq!(
            c.outbox,
            OutboxConfig {
                path: "/var/lib/edgemass/outbox.sqlite".into(),
                capacity: 100_000
            }
        );
        assert_eq!(c.http, Some("127.0.0.1:9898".parse().unwrap()));
        assert_eq!(c.log.format, LogFormat::Text);
        assert_eq!(c.log.level, "info");
        assert_eq!(c.inference.threads, 1);
        let cam = &c.cameras[0];
        assert!(cam.enabled);
        assert_eq!(cam.source, SourceKind::Images);
        assert_eq!((cam.fps, cam.looping), (5.0, false));
        assert_eq!((cam.width, cam.height), (1280, 720));
        assert!(!cam.motion_gate);
        assert_eq!(
            cam.tracker,
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
    fn empty_listen_disables_http() {
        let c = parse(&MINIMAL.replace("[[camera]]", "[http]\nlisten = \"\"\n[[camera]]")).unwrap();
        assert_eq!(c.http, None);
    }

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
    fn each_rule_names_its_key() {
        let mqtt =
            |lines: &str| MINIMAL.replace("[[camera]]", &format!("[mqtt]\n{lines}\n[[camera]]"));
        let cases: Vec<(String, &str)> = vec![
            (
                MINIMAL.replace("id = \"dev1\"", "id = \"dev 1\""),
                "`device.id`",
            ),
            (MINIMAL.replace("id = \"dev1\"", ""), "`device.id`"),
            (
                with_camera_line("min_score = 0.6\nthreshold = 0.5"),
                "`camera[0].min_score`",
            ),
            (with_camera_line("threshold = 1.5"), "`camera[0].threshold`"),
            (
                with_camera_line("input_size = [640, 600]"),
                "`camera[0].input_size`",
            ),
            (
                format!("{MINIMAL}\n[camera.labels.face]\nmin_score = 0.9\n"),
                "`camera[0].labels.face.min_score`",
            ),
            (mqtt("tls = true"), "`mqtt.ca_file`"),
            (
                mqtt("tls = true\nca_file = \"ca.pem\"\nclient_cert_file = \"c.pem\""),
                "`mqtt.client_key_file`",
            ),
            (
                mqtt("tls = true\nca_file = \"ca.pem\"\nclient_key_file = \"k.pem\""),
                "`mqtt.client_cert_file`",
            ),
            (mqtt("ca_file = \"ca.pem\""), "`mqtt.tls`"),
            (
                mqtt("embedded_broker = true\nhost = \"192.168.1.2\""),
                "`mqtt.host`",
            ),
            (mqtt("prefix = \"a/+/b\""), "`mqtt.prefix`"),
            (mqtt("prefix = \"a/\""), "`mqtt.prefix`"),
            (mqtt("keep_alive_s = 2"), "`mqtt.keep_alive_s`"),
            (mqtt("stats_interval_s = 0"), "`mqtt.stats_interval_s`"),
            (
                MINIMAL.replace("[[camera]]", "[inference]\nthreads = 0\n[[camera]]"),
                "`inference.threads`",
            ),
            (
                MINIMAL.replace("[[camera]]", "[outbox]\ncapacity = 0\n[[camera]]"),
                "`outbox.capacity`",
            ),
            (
                MINIMAL.replace("[[camera]]", "[http]\nlisten = \"nowhere\"\n[[camera]]"),
                "`http.listen`",
            ),
            (
                MINIMAL.replace("[[camera]]", "[log]\nlevel = \"info,[\"\n[[camera]]"),
                "`log.level`",
            ),
            (
                format!(
                    "{MINIMAL}\n{}",
                    &MINIMAL[MINIMAL.find("[[camera]]").unwrap()..]
                ),
                "`camera[1].name`",
            ),
            (
                MINIMAL.replace("path = \"photos\"", "path = \"\""),
                "`camera[0].path`",
            ),
            (
                MINIMAL
                    .replace("source = \"images\"", "source = \"stream\"")
                    .replace("\"photos\"", "\"ftp://x/y\""),
                "`camera[0].path`",
            ),
            (with_camera_line("fps = 0.0"), "`camera[0].fps`"),
            (with_camera_line("fps = 121.0"), "`camera[0].fps`"),
            (with_camera_line("iou = 0.0"), "`camera[0].iou`"),
            (
                MINIMAL.replace("source = \"images\"", ""),
                "`camera[0].source`",
            ),
            (
                MINIMAL.replace("model = \"models/yolov8n-320.model.toml\"", ""),
                "`camera[0].model`",
            ),
            (
                MINIMAL[..MINIMAL.find("[[camera]]").unwrap()].to_owned(),
                "`camera`",
            ),
        ];
        for (text, key) in cases {
            let err = error(parse(&text));
            assert!(err.starts_with(key), "expected {key}, got: {err}\n{text}");
        }
    }

    #[test]
    fn password_needs_a_username() {
        let err = error(parse_env(MINIMAL, &[(PASSWORD_ENV, "pw")]));
        assert!(err.starts_with("`mqtt.username`"), "{err}");
    }

    #[test]
    #[cfg(feature = "embedded-broker")]
    fn embedded_broker_accepts_loopback_hosts() {
        for host in ["127.0.0.1", "localhost", "::1"] {
            let text = MINIMAL.replace(
                "[[camera]]",
                &format!("[mqtt]\nembedded_broker = true\nhost = \"{host}\"\n[[camera]]"),
            );
            assert!(parse(&text).unwrap().mqtt.embedded_broker, "{host}");
        }
    }

    #[test]
    fn tls_paths_resolve_against_the_config_dir() {
        let text = MINIMAL.replace(
            "[[camera]]",
            "[mqtt]\ntls = true\nca_file = \"ca.pem\"\nclient_cert_file = \"/pki/c.pem\"\nclient_key_file = \"k.pem\"\n[[camera]]",
        );
        let tls = parse(&text).unwrap().mqtt.tls.unwrap();
        assert_eq!(tls.ca_file, Path::new("/etc/edgemass/ca.pem"));
        assert_eq!(
            tls.client_cert,
            Some(("/pki/c.pem".into(), "/etc/edgemass/k.pem".into()))
        );
    }

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
    fn password_never_appears_in_debug_or_errors() {
        let text = MINIMAL.replace("[[camera]]", "[mqtt]\nusername = \"agent\"\n[[camera]]");
        let c = parse_env(&text, &[(PASSWORD_ENV, "hunter2")]).unwrap();
        assert_eq!(
            c.mqtt.password.as_ref().map(Secret::expose),
            Some("hunter2")
        );
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(format!("{c:?}").contains("[redacted]"));
        assert_eq!(c.mqtt.password.as_ref().unwrap().to_string(), "[redacted]");
        let err = error(parse_env(&text, &[("EDGEMASS__MQTT__PASSWORD", "hunter2")]));
        assert!(
            err.contains(PASSWORD_ENV) && !err.contains("hunter2"),
            "{err}"
        );
        let err = error(parse(
            &text.replace("username", "password = \"hunter2\"\nusername"),
        ));
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn password_env_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "from-file\n").unwrap();
        let text = MINIMAL.replace(
            "[[camera]]",
            "[mqtt]\nusername = \"agent\"\npassword_file = \"pw\"\n[[camera]]",
        );
        let c = Config::parse(&text, dir.path(), &[]).unwrap();
        assert_eq!(c.mqtt.password.unwrap().expose(), "from-file");
        let env = [(PASSWORD_ENV.to_owned(), "from-env".to_owned())];
        let c = Config::parse(&text, dir.path(), &env).unwrap();
        assert_eq!(c.mqtt.password.unwrap().expose(), "from-env");
        let missing = text.replace("\"pw\"", "\"absent\"");
        let err = Config::parse(&missing, dir.path(), &[]).unwrap_err();
        assert!(matches!(err, ConfigError::Secret { .. }), "{err}");
    }

    #[test]
    fn stream_urls_are_redacted_in_debug() {
        let text = MINIMAL
            .replace("source = \"images\"", "source = \"stream\"")
            .replace("\"photos\"", "\"rtsp://admin:s3cret@192.0.2.1:554/live\"");
        let c = parse(&text).unwrap();
        assert_eq!(c.cameras[0].path, "rtsp://admin:s3cret@192.0.2.1:554/live");
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(
            c.cameras[0].redacted_path(),
            "rtsp://admin:[redacted]@192.0.2.1:554/live"
        );
    }

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

    #[test]
    fn device_and_url_paths_are_kept_verbatim() {
        let cam = MINIMAL
            .replace("source = \"images\"", "source = \"camera\"")
            .replace("\"photos\"", "\"/dev/video0\"");
        assert_eq!(parse(&cam).unwrap().cameras[0].path, "/dev/video0");
        let index = cam.replace("\"/dev/video0\"", "\"0\"");
        assert_eq!(parse(&index).unwrap().cameras[0].path, "0");
    }

    #[test]
    fn motion_gate_defaults_by_source_kind() {
        for (source, path, gate) in [
            ("images", "photos", false),
            ("video", "a.mp4", false),
            ("stream", "rtsp://192.0.2.1/live", true),
            ("camera", "/dev/video0", true),
        ] {
            let text = MINIMAL
                .replace("\"images\"", &format!("\"{source}\""))
                .replace("\"photos\"", &format!("\"{path}\""));
            assert_eq!(
                parse(&text).unwrap().cameras[0].motion_gate,
                gate,
                "{source}"
            );
            let forced = text.replace(
                "name = \"front\"",
                &format!("name = \"front\"\nmotion_gate = {}", !gate),
            );
            assert_eq!(
                parse(&forced).unwrap().cameras[0].motion_gate,
                !gate,
                "{source}"
            );
        }
    }

    #[test]
    fn parse_errors_are_one_line_with_a_line_number() {
        let err = error(parse("[device]\nid = \"x\"\n[[camera]]\nfps = \"fast\"\n"));
        assert!(err.starts_with("config: line 4:"), "{err}");
        let err = error(parse("[device\n"));
        assert!(err.contains("line 1"), "{err}");
    }

    const HOST: &str = "[fallback]\nurl = \"https://gpu.example:8000/\"\n";

    fn with_fallback(host: &str, camera: &str) -> String {
        format!("{host}{MINIMAL}\n[camera.fallback]\n{camera}\n")
    }

    #[test]
    fn fallback_tables_resolve() {
        let text = with_fallback(
            HOST,
            "model = \"teacher.model.toml\"\nname = \"yolo-x\"\nversion = \"2\"\nlow = 0.3\nhigh = 0.7",
        );
        let c = parse(&text).unwrap();
        let host = c.fallback.unwrap();
        assert_eq!(host.url, "https://gpu.example:8000");
        assert_eq!(host.timeout, Duration::from_millis(2000));
        assert_eq!(host.breaker.failures, 3);
        assert_eq!(host.token, None);
        let e = c.cameras[0].fallback.clone().unwrap();
        assert_eq!(e.model, Path::new("/etc/edgemass/teacher.model.toml"));
        assert_eq!(
            (e.name.as_deref(), e.version.as_deref()),
            (Some("yolo-x"), Some("2"))
        );
        assert!(e.band.contains(0.3) && !e.band.contains(0.7));
        assert_eq!(e.match_iou, 0.5);
        assert_eq!(parse(MINIMAL).unwrap().fallback, None);
    }

    #[test]
    fn bad_fallback_settings_name_their_key() {
        let escalation = "model = \"t.model.toml\"\nlow = 0.3\nhigh = 0.7";
        let host = |line: &str| format!("{HOST}{line}\n");
        let cases = [
            (with_fallback("", escalation), "`camera[0].fallback`"),
            (
                with_fallback("[fallback]\nurl = \"ftp://x\"\n", escalation),
                "`fallback.url`",
            ),
            (
                with_fallback("[fallback]\nurl = \"http://user:pw@x:8000\"\n", escalation),
                "`fallback.url`",
            ),
            (
                with_fallback(
                    "[fallback]\nurl = \"http://x:8000\"\nca_file = \"ca.pem\"\n",
                    escalation,
                ),
                "`fallback.ca_file`",
            ),
            (
                with_fallback(&host("timeout_ms = 0"), escalation),
                "`fallback.timeout_ms`",
            ),
            (
                with_fallback(&host("max_in_flight = 0"), escalation),
                "`fallback.max_in_flight`",
            ),
            (
                with_fallback(&host("rate_per_s = 0.0"), escalation),
                "`fallback.rate_per_s`",
            ),
            (
                with_fallback(&host("failures_to_open = 0"), escalation),
                "`fallback.failures_to_open`",
            ),
            (
                with_fallback(&host("open_s = -1.0"), escalation),
                "`fallback.open_s`",
            ),
            (
                with_fallback(HOST, &escalation.replace("high = 0.7", "high = 0.2")),
                "`camera[0].fallback.low`",
            ),
            (
                with_fallback(
                    HOST,
                    &escalation.replace("model = \"t.model.toml\"", "model = \"\""),
                ),
                "`camera[0].fallback.model`",
            ),
            (
                with_fallback(HOST, &format!("{escalation}\nname = \"a/b\"")),
                "`camera[0].fallback.name`",
            ),
            (
                with_fallback(HOST, &format!("{escalation}\nmatch_iou = 0.0")),
                "`camera[0].fallback.match_iou`",
            ),
        ];
        for (text, key) in cases {
            let err = error(parse(&text));
            assert!(err.starts_with(key), "expected {key}, got: {err}\n{text}");
        }
        let err = error(parse(&with_fallback(
            HOST,
            &format!("{escalation}\nlevel = 1"),
        )));
        assert!(err.contains("unknown field `level`"), "{err}");
    }

    #[test]
    fn fallback_token_comes_from_env_or_file_and_is_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "t0ken-from-file\n").unwrap();
        let text = MINIMAL.replace(
            "[[camera]]",
            "[fallback]\nurl = \"http://gpu:8000\"\ntoken_file = \"token\"\n[[camera]]",
        );
        let c = Config::parse(&text, dir.path(), &[]).unwrap();
        let token = c.fallback.as_ref().unwrap().token.as_ref().unwrap();
        assert_eq!(token.expose(), "t0ken-from-file");
        assert!(!format!("{c:?}").contains("t0ken"));
        let env = [(FALLBACK_TOKEN_ENV.to_owned(), "t0ken-from-env".to_owned())];
        let c = Config::parse(&text, dir.path(), &env).unwrap();
        assert_eq!(
            c.fallback.unwrap().token.unwrap().expose(),
            "t0ken-from-env"
        );
        let err = error(parse_env(
            MINIMAL,
            &[("EDGEMASS__FALLBACK__TOKEN", "t0ken")],
        ));
        assert!(
            err.contains(FALLBACK_TOKEN_ENV) && !err.contains("t0ken"),
            "{err}"
        );
    }

    #[test]
    fn a_camera_runtime_overrides_the_inference_default_and_the_library_path_is_resolved() {
        let text = MINIMAL.replace(
            "[[camera]]",
            "[inference]\nruntime = \"onnxruntime\"\nonnxruntime = \"lib/libonnxruntime.so\"\n[[camera]]",
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.cameras[0].runtime, RuntimeSetting::Onnxruntime);
        let library = c.inference.onnxruntime.clone().unwrap();
        assert!(
            library.is_absolute() && library.ends_with("lib/libonnxruntime.so"),
            "{library:?}"
        );
        let options = c.cameras[0].load_options(&c.inference);
        assert_eq!(
            (options.runtime, options.library),
            (RuntimeSetting::Onnxruntime, Some(library))
        );
        let text = text.replace("name = \"front\"", "name = \"front\"\nruntime = \"tract\"");
        assert_eq!(
            parse(&text).unwrap().cameras[0].runtime,
            RuntimeSetting::Tract
        );
        assert_eq!(
            parse(MINIMAL).unwrap().cameras[0].runtime,
            RuntimeSetting::Auto
        );
        let err = error(parse(&with_camera_line("runtime = \"tensorrt\"")));
        assert!(err.contains("tensorrt"), "{err}");
    }

    #[test]
    fn a_camera_precision_overrides_the_inference_default() {
        let text = MINIMAL.replace(
            "[[camera]]",
            "[inference]\nprecision = \"int8\"\n[[camera]]",
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.cameras[0].precision, Precision::Int8);
        let text = text.replace("name = \"front\"", "name = \"front\"\nprecision = \"fp32\"");
        assert_eq!(parse(&text).unwrap().cameras[0].precision, Precision::Fp32);
        assert_eq!(
            parse(MINIMAL).unwrap().cameras[0].precision,
            Precision::Auto
        );
        let err = error(parse(&with_camera_line("precision = \"int4\"")));
        assert!(err.contains("int4"), "{err}");
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
