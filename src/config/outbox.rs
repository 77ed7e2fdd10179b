//! `[outbox]`: the on-disk queue of events the broker has not yet acknowledged.

use std::path::PathBuf;

use serde::Deserialize;

use super::raw::Context;
use super::{ConfigError, invalid};

/// The event outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfig {
    /// SQLite file.
    pub path: PathBuf,
    /// Most events kept.
    pub capacity: usize,
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

/// Checks `[outbox]`: a path (relative to the config's directory) and room for one event.
pub(super) fn validate(raw: &RawOutbox, ctx: &Context) -> Result<OutboxConfig, ConfigError> {
    if raw.path.trim().is_empty() {
        return Err(invalid("outbox.path", "must not be empty"));
    }
    if raw.capacity == 0 {
        return Err(invalid("outbox.capacity", "must be at least 1"));
    }
    Ok(OutboxConfig {
        path: ctx.resolve(&raw.path),
        capacity: raw.capacity,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{MINIMAL, each_names_its_key, parse, with_section};
    use super::*;

    #[test]
    fn defaults_fill_unset_keys() {
        assert_eq!(
            parse(MINIMAL).unwrap().outbox,
            OutboxConfig {
                path: "/var/lib/edgemass/outbox.sqlite".into(),
                capacity: 100_000
            }
        );
    }

    #[test]
    fn each_rule_names_its_key() {
        each_names_its_key(&[
            (with_section("outbox", "capacity = 0"), "`outbox.capacity`"),
            (with_section("outbox", "path = \" \""), "`outbox.path`"),
        ]);
    }
}
