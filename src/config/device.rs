//! `[device]`: who this device is.

use serde::Deserialize;

use super::{ConfigError, invalid, is_name};

/// Device identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// MQTT device id: 1-64 characters of `[A-Za-z0-9_-]`.
    pub id: String,
    /// Human name for Home Assistant.
    pub name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDevice {
    #[serde(default)]
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) name: Option<String>,
}

/// Checks `[device]`: the id is required; the name defaults to it.
pub(super) fn validate(raw: &RawDevice) -> Result<Device, ConfigError> {
    let id = raw
        .id
        .clone()
        .ok_or_else(|| invalid("device.id", "is required"))?;
    if !is_name(&id) || id.len() > 64 {
        return Err(invalid(
            "device.id",
            "must be 1 to 64 characters of A-Z, a-z, 0-9, `_` and `-`",
        ));
    }
    let name = match &raw.name {
        Some(name) if name.trim().is_empty() => {
            return Err(invalid("device.name", "must not be empty"));
        }
        Some(name) => name.clone(),
        None => id.clone(),
    };
    Ok(Device { id, name })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{MINIMAL, each_names_its_key, parse};
    use super::*;

    #[test]
    fn the_name_defaults_to_the_id() {
        assert_eq!(
            parse(MINIMAL).unwrap().device,
            Device {
                id: "dev1".into(),
                name: "dev1".into()
            }
        );
    }

    #[test]
    fn each_rule_names_its_key() {
        each_names_its_key(&[
            (
                MINIMAL.replace("id = \"dev1\"", "id = \"dev 1\""),
                "`device.id`",
            ),
            (MINIMAL.replace("id = \"dev1\"", ""), "`device.id`"),
        ]);
    }
}
