//! The config file as written: serde structs with defaults and no validation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{LogFormat, Secret, SourceKind};
use crate::model::{Precision, RuntimeSetting};

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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDevice {
    #[serde(default)]
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawMqtt {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) embedded_broker: bool,
    pub(super) client_id: String,
    pub(super) prefix: String,
    pub(super) username: String,
    pub(super) password_file: String,
    pub(super) tls: bool,
    pub(super) ca_file: String,
    pub(super) client_cert_file: String,
    pub(super) client_key_file: String,
    pub(super) keep_alive_s: u64,
    pub(super) discovery: bool,
    pub(super) discovery_prefix: String,
    pub(super) stats_interval_s: u64,
    pub(super) snapshots: bool,
    pub(super) print_events: bool,
}

impl Default for RawMqtt {
    fn default() -> Self {
        RawMqtt {
            host: "127.0.0.1".to_owned(),
            port: 1883,
            embedded_broker: false,
            client_id: String::new(),
            prefix: "edgemass".to_owned(),
            username: String::new(),
            password_file: String::new(),
            tls: false,
            ca_file: String::new(),
            client_cert_file: String::new(),
            client_key_file: String::new(),
            keep_alive_s: 30,
            discovery: true,
            discovery_prefix: "homeassistant".to_owned(),
            stats_interval_s: 30,
            snapshots: true,
            print_events: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawOutbox {
    pub(super) path: String,
    pub(super) capacity: usize,
}

impl Default for RawOutbox {
    fn default() -> Self {
        RawOutbox {
            path: "/var/lib/edgemass/outbox.sqlite".to_owned(),
            capacity: 100_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) listen: String,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: "127.0.0.1:9898".to_owned(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) format: LogFormat,
    pub(super) level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawInference {
    pub(super) threads: usize,
    pub(super) precision: Precision,
    pub(super) runtime: RuntimeSetting,
    pub(super) onnxruntime: Option<String>,
}

impl Default for RawInference {
    fn default() -> Self {
        RawInference {
            threads: 1,
            precision: Precision::Auto,
            runtime: RuntimeSetting::Auto,
            onnxruntime: None,
        }
    }
}

/// The GPU host; an empty `url` disables escalation.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawFallback {
    pub(super) url: String,
    pub(super) token_file: String,
    pub(super) ca_file: String,
    pub(super) timeout_ms: u64,
    pub(super) max_in_flight: usize,
    pub(super) rate_per_s: f64,
    pub(super) burst: u32,
    pub(super) failures_to_open: u32,
    pub(super) open_s: f64,
    pub(super) probes: u32,
}

impl Default for RawFallback {
    fn default() -> Self {
        RawFallback {
            url: String::new(),
            token_file: String::new(),
            ca_file: String::new(),
            timeout_ms: 2000,
            max_in_flight: 4,
            rate_per_s: 5.0,
            burst: 10,
            failures_to_open: 3,
            open_s: 10.0,
            probes: 1,
        }
    }
}

/// What a camera or the text classifier sends to the host.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEscalation {
    pub(super) model: String,
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) version: String,
    pub(super) low: f32,
    pub(super) high: f32,
    #[serde(default = "default_match_iou")]
    pub(super) match_iou: f32,
}

fn default_match_iou() -> f32 {
    0.5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawText {
    pub(super) model: String,
    #[serde(default = "yes")]
    pub(super) mqtt: bool,
    #[serde(default)]
    pub(super) stdin: bool,
    #[serde(default)]
    pub(super) file: Option<String>,
    #[serde(default = "default_max_batch")]
    pub(super) max_batch: usize,
    #[serde(default = "default_queue")]
    pub(super) queue: usize,
    #[serde(default)]
    pub(super) fallback: Option<RawEscalation>,
}

fn default_max_batch() -> usize {
    16
}

fn default_queue() -> usize {
    256
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCamera {
    #[serde(default)]
    pub(super) name: String,
    #[serde(default = "yes")]
    pub(super) enabled: bool,
    #[serde(default)]
    pub(super) source: Option<SourceKind>,
    #[serde(default)]
    pub(super) path: String,
    #[serde(default = "default_fps")]
    pub(super) fps: f64,
    #[serde(default, rename = "loop")]
    pub(super) looping: bool,
    #[serde(default = "default_width")]
    pub(super) width: u32,
    #[serde(default = "default_height")]
    pub(super) height: u32,
    #[serde(default)]
    pub(super) model: String,
    #[serde(default)]
    pub(super) precision: Option<Precision>,
    #[serde(default)]
    pub(super) runtime: Option<RuntimeSetting>,
    #[serde(default)]
    pub(super) input_size: Option<[u32; 2]>,
    #[serde(default)]
    pub(super) motion_gate: Option<bool>,
    #[serde(default = "default_min_score")]
    pub(super) min_score: f32,
    #[serde(default = "default_threshold")]
    pub(super) threshold: f32,
    #[serde(default = "default_iou")]
    pub(super) iou: f32,
    #[serde(default = "default_max_missed")]
    pub(super) max_missed: u32,
    #[serde(default)]
    pub(super) labels: BTreeMap<String, RawLabel>,
    #[serde(default)]
    pub(super) fallback: Option<RawEscalation>,
}

/// Per-label overrides; an unset field falls back to the camera's value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLabel {
    #[serde(default)]
    pub(super) min_score: Option<f32>,
    #[serde(default)]
    pub(super) threshold: Option<f32>,
}

fn yes() -> bool {
    true
}

fn default_fps() -> f64 {
    5.0
}

fn default_width() -> u32 {
    1280
}

fn default_height() -> u32 {
    720
}

fn default_min_score() -> f32 {
    0.3
}

fn default_threshold() -> f32 {
    0.5
}

fn default_iou() -> f32 {
    0.3
}

fn default_max_missed() -> u32 {
    5
}
