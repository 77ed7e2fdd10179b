//! `[log]`: the format of log lines and which are kept.

use serde::Deserialize;

use super::{ConfigError, invalid};

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

/// Checks `[log]`: the level must be a filter `tracing` accepts.
pub(super) fn validate(raw: &RawLog) -> Result<LogConfig, ConfigError> {
    if tracing_subscriber::EnvFilter::try_new(&raw.level).is_err() {
        return Err(invalid(
            "log.level",
            "must be a tracing filter such as `info` or `info,edgemass=debug`",
        ));
    }
    Ok(LogConfig {
        format: raw.format,
        level: raw.level.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{MINIMAL, each_names_its_key, parse, with_section};
    use super::*;

    #[test]
    fn defaults_fill_unset_keys() {
        let log = parse(MINIMAL).unwrap().log;
        assert_eq!(log.format, LogFormat::Text);
        assert_eq!(log.level, "info");
        let json = parse(&with_section("log", "format = \"json\"\nlevel = \"debug\"")).unwrap();
        assert_eq!(json.log.format, LogFormat::Json);
    }

    #[test]
    fn each_rule_names_its_key() {
        each_names_its_key(&[(with_section("log", "level = \"info,[\""), "`log.level`")]);
    }
}
