//! `EDGEMASS__SECTION__KEY=value` overrides, applied to the parsed TOML table before validation.

use toml::{Table, Value};

use super::{ConfigError, FALLBACK_TOKEN_ENV, OVERRIDE_PREFIX, PASSWORD_ENV};

/// One override variable, split into its lowercase key path.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Override {
    /// The variable name, for messages.
    pub(super) var: String,
    /// Lowercase key path, e.g. `["camera", "0", "fps"]`.
    pub(super) keys: Vec<String>,
    /// The raw value.
    pub(super) value: String,
}

/// The override variables in `env`, sorted by name so the result does not depend on the order of
/// the process environment.
pub(super) fn overrides(env: &[(String, String)]) -> Result<Vec<Override>, ConfigError> {
    let mut found = Vec::new();
    for (var, value) in env {
        let Some(rest) = var.strip_prefix(OVERRIDE_PREFIX) else {
            continue;
        };
        let keys: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if keys.len() < 2 || keys.iter().any(String::is_empty) {
            return Err(env_error(
                var,
                "not of the form EDGEMASS__SECTION__KEY (levels separated by `__`)",
            ));
        }
        let secret = match keys.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["mqtt", "password"] => Some(("password", PASSWORD_ENV, "mqtt.password_file")),
            ["fallback", "token"] => Some(("token", FALLBACK_TOKEN_ENV, "fallback.token_file")),
            _ => None,
        };
        if let Some((what, env, file)) = secret {
            return Err(env_error(
                var,
                format!("not a config key; the {what} comes from {env} or {file}"),
            ));
        }
        found.push(Override {
            var: var.clone(),
            keys,
            value: value.clone(),
        });
    }
    found.sort_by(|a, b| a.var.cmp(&b.var));
    Ok(found)
}

/// A value as a TOML integer, float or boolean, or else the text as a string.
pub(super) fn scalar(text: &str) -> Value {
    if let Ok(mut table) = format!("v = {text}").parse::<Table>()
        && table.len() == 1
        && let Some(value @ (Value::Integer(_) | Value::Float(_) | Value::Boolean(_))) =
            table.remove("v")
    {
        return value;
    }
    Value::String(text.to_owned())
}

/// Sets `value` at the override's key path, creating missing tables, and returns the dotted key it
/// set as validation names it (`camera[0].labels.face.threshold`). Existing keys are matched
/// without regard to case; list entries are addressed by index and must already exist.
pub(super) fn set(table: &mut Table, item: &Override, value: Value) -> Result<String, ConfigError> {
    let mut dotted = String::new();
    set_in(table, &item.keys, value, &item.var, &mut dotted)?;
    Ok(dotted)
}

fn set_in(
    table: &mut Table,
    keys: &[String],
    value: Value,
    var: &str,
    dotted: &mut String,
) -> Result<(), ConfigError> {
    let Some((first, rest)) = keys.split_first() else {
        return Ok(());
    };
    let key = table
        .keys()
        .find(|k| k.eq_ignore_ascii_case(first))
        .cloned()
        .unwrap_or_else(|| first.clone());
    if !dotted.is_empty() {
        dotted.push('.');
    }
    dotted.push_str(&key);
    let Some(next) = rest.first() else {
        table.insert(key, value);
        return Ok(());
    };
    let index = next.parse::<usize>().ok();
    if index.is_some() && !table.contains_key(&key) {
        return Err(env_error(
            var,
            format!("`{dotted}` is not a list in the file"),
        ));
    }
    let slot = table
        .entry(key)
        .or_insert_with(|| Value::Table(Table::new()));
    match (slot, index) {
        (Value::Table(inner), _) => set_in(inner, rest, value, var, dotted),
        (Value::Array(items), Some(index)) => {
            let len = items.len();
            dotted.push_str(&format!("[{index}]"));
            let Some(entry) = items.get_mut(index) else {
                return Err(env_error(
                    var,
                    format!("`{dotted}` does not exist (the file has {len}, numbered from 0)"),
                ));
            };
            match (entry, rest.len()) {
                (entry, 1) => {
                    *entry = value;
                    Ok(())
                }
                (Value::Table(inner), _) => set_in(inner, &rest[1..], value, var, dotted),
                _ => Err(env_error(var, format!("`{dotted}` is not a table"))),
            }
        }
        (Value::Array(_), None) => Err(env_error(
            var,
            format!(
                "`{dotted}` is a list: address an entry by index, as in {OVERRIDE_PREFIX}CAMERA__0__FPS"
            ),
        )),
        _ => Err(env_error(var, format!("`{dotted}` is not a table"))),
    }
}

fn env_error(var: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Env {
        var: var.to_owned(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_toml_scalars_or_strings() {
        assert_eq!(scalar("1884"), Value::Integer(1884));
        assert_eq!(scalar("0.7"), Value::Float(0.7));
        assert_eq!(scalar("true"), Value::Boolean(true));
        assert_eq!(scalar("front door"), Value::String("front door".into()));
        assert_eq!(scalar("1\nx = 2"), Value::String("1\nx = 2".into()));
        assert_eq!(scalar("[1]"), Value::String("[1]".into()));
    }

    #[test]
    fn keys_are_lowercased_and_need_two_levels() {
        let env = [("EDGEMASS__MQTT__PORT".to_owned(), "1".to_owned())];
        assert_eq!(overrides(&env).unwrap()[0].keys, ["mqtt", "port"]);
        for bad in [
            "EDGEMASS__MQTT",
            "EDGEMASS__MQTT____PORT",
            "EDGEMASS__MQTT__",
        ] {
            let err = overrides(&[(bad.to_owned(), "1".to_owned())]).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
        let ignored = [
            ("EDGEMASS_MQTT_PASSWORD".to_owned(), "x".to_owned()),
            ("EDGEMASS_LOG".to_owned(), "debug".to_owned()),
            ("PATH".to_owned(), "/bin".to_owned()),
        ];
        assert!(overrides(&ignored).unwrap().is_empty());
    }
}
