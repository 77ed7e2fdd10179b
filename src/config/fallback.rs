//! `[fallback]` (the GPU host unsure results go to) and the `fallback` table of a camera or of
//! `[text]` (what that source sends).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::raw::Context;
use super::secret::read_secret;
use super::{Band, ConfigError, Secret, invalid};

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

/// When the circuit breaker in front of the host opens and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failures: u32,
    /// How long it stays open before a probe may go.
    pub open_for: Duration,
    /// Successful probes in a row that close it.
    pub probes: u32,
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

/// Checks `[fallback]`; `None` when its `url` is empty.
pub(super) fn host(
    raw: &RawFallback,
    ctx: &Context,
) -> Result<Option<FallbackConfig>, ConfigError> {
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
        file => Some(ctx.resolve(file)),
    };
    let token = match (&ctx.token, raw.token_file.trim()) {
        (Some(secret), _) => Some(secret.clone()),
        (None, "") => None,
        (None, file) => Some(read_secret(&ctx.resolve(file), "fallback.token_file")?),
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
pub(super) fn escalation(
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
        model: ctx.resolve(raw.model.trim()),
        name: name_or_version("name", &raw.name)?,
        version: name_or_version("version", &raw.version)?,
        band,
        match_iou: raw.match_iou,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::testing::{
        MINIMAL, each_names_its_key, error, parse, parse_env, with_section,
    };
    use super::super::{Config, FALLBACK_TOKEN_ENV};
    use super::*;

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
        each_names_its_key(&[
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
        ]);
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
        let text = with_section(
            "fallback",
            "url = \"http://gpu:8000\"\ntoken_file = \"token\"",
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
}
