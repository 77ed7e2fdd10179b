//! `[http]`: where the health and metrics listener binds, if anywhere.

use std::net::SocketAddr;

use serde::Deserialize;

use super::{ConfigError, invalid};

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

/// Checks `[http]`: an address and port, or empty for no listener (`None`).
pub(super) fn validate(raw: &RawHttp) -> Result<Option<SocketAddr>, ConfigError> {
    match raw.listen.trim() {
        "" => Ok(None),
        listen => listen.parse::<SocketAddr>().map(Some).map_err(|_| {
            invalid(
                "http.listen",
                "must be an address and port such as 127.0.0.1:9898, or empty to disable",
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{MINIMAL, each_names_its_key, parse, with_section};

    #[test]
    fn the_default_listens_on_loopback() {
        assert_eq!(
            parse(MINIMAL).unwrap().http,
            Some("127.0.0.1:9898".parse().unwrap())
        );
    }

    #[test]
    fn empty_listen_disables_http() {
        let c = parse(&with_section("http", "listen = \"\"")).unwrap();
        assert_eq!(c.http, None);
    }

    #[test]
    fn each_rule_names_its_key() {
        each_names_its_key(&[(
            with_section("http", "listen = \"nowhere\""),
            "`http.listen`",
        )]);
    }
}
