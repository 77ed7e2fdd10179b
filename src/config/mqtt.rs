//! `[mqtt]`: the broker connection, TLS and what is published.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::raw::Context;
use super::secret::read_secret;
use super::{ConfigError, Device, PASSWORD_ENV, Secret, invalid};

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

/// Checks `[mqtt]`; the client id defaults from `device`, the password comes from `ctx` or
/// `password_file`.
pub(super) fn validate(raw: &RawMqtt, device: &Device, ctx: &Context) -> Result<Mqtt, ConfigError> {
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
        (None, file) => Some(read_secret(&ctx.resolve(file), "mqtt.password_file")?),
    };
    if password.is_some() && username.is_none() {
        return Err(invalid(
            "mqtt.username",
            format!("must be set when a password is given ({PASSWORD_ENV} or mqtt.password_file)"),
        ));
    }
    let tls = tls(raw, ctx)?;
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

/// The TLS settings: a CA when `tls = true`, a client certificate and key both or neither, and
/// none of the files without `tls = true`.
fn tls(raw: &RawMqtt, ctx: &Context) -> Result<Option<Tls>, ConfigError> {
    let cert = raw.client_cert_file.trim();
    let key = raw.client_key_file.trim();
    if !raw.tls {
        if !(raw.ca_file.trim().is_empty() && cert.is_empty() && key.is_empty()) {
            return Err(invalid(
                "mqtt.tls",
                "must be true when mqtt.ca_file, client_cert_file or client_key_file is set",
            ));
        }
        return Ok(None);
    }
    let ca = raw.ca_file.trim();
    if ca.is_empty() {
        return Err(invalid("mqtt.ca_file", "is required when mqtt.tls = true"));
    }
    let client_cert = match (cert.is_empty(), key.is_empty()) {
        (true, true) => None,
        (false, false) => Some((ctx.resolve(cert), ctx.resolve(key))),
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
    Ok(Some(Tls {
        ca_file: ctx.resolve(ca),
        client_cert,
    }))
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::testing::{
        MINIMAL, each_names_its_key, error, parse, parse_env, with_section,
    };
    use super::super::{Config, ConfigError};
    use super::*;

    #[test]
    fn defaults_fill_unset_keys() {
        let c = parse(MINIMAL).unwrap().mqtt;
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.port, 1883);
        assert!(!c.embedded_broker);
        assert_eq!(c.client_id, "edgemass-dev1");
        assert_eq!(c.prefix, "edgemass");
        assert_eq!(c.username, None);
        assert_eq!(c.password, None);
        assert_eq!(c.tls, None);
        assert_eq!(c.keep_alive, Duration::from_secs(30));
        assert!(c.discovery);
        assert_eq!(c.discovery_prefix, "homeassistant");
        assert_eq!(c.stats_interval, Duration::from_secs(30));
        assert!(c.snapshots);
        assert!(!c.print_events);
    }

    #[test]
    fn each_rule_names_its_key() {
        let mqtt = |lines: &str| with_section("mqtt", lines);
        each_names_its_key(&[
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
        ]);
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
            let text = with_section(
                "mqtt",
                &format!("embedded_broker = true\nhost = \"{host}\""),
            );
            assert!(parse(&text).unwrap().mqtt.embedded_broker, "{host}");
        }
    }

    #[test]
    fn tls_paths_resolve_against_the_config_dir() {
        let text = with_section(
            "mqtt",
            "tls = true\nca_file = \"ca.pem\"\nclient_cert_file = \"/pki/c.pem\"\nclient_key_file = \"k.pem\"",
        );
        let tls = parse(&text).unwrap().mqtt.tls.unwrap();
        assert_eq!(tls.ca_file, Path::new("/etc/edgemass/ca.pem"));
        assert_eq!(
            tls.client_cert,
            Some(("/pki/c.pem".into(), "/etc/edgemass/k.pem".into()))
        );
    }

    #[test]
    fn password_never_appears_in_debug_or_errors() {
        let text = with_section("mqtt", "username = \"agent\"");
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
        let text = with_section("mqtt", "username = \"agent\"\npassword_file = \"pw\"");
        let c = Config::parse(&text, dir.path(), &[]).unwrap();
        assert_eq!(c.mqtt.password.unwrap().expose(), "from-file");
        let env = [(PASSWORD_ENV.to_owned(), "from-env".to_owned())];
        let c = Config::parse(&text, dir.path(), &env).unwrap();
        assert_eq!(c.mqtt.password.unwrap().expose(), "from-env");
        let missing = text.replace("\"pw\"", "\"absent\"");
        let err = Config::parse(&missing, dir.path(), &[]).unwrap_err();
        assert!(matches!(err, ConfigError::Secret { .. }), "{err}");
    }
}
