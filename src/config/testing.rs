//! What the section tests share: a minimal valid file and parsing it, with or without an
//! environment.

use std::path::Path;

use super::{Config, ConfigError};

/// The smallest valid config: a device and one camera on a folder of images.
pub(super) const MINIMAL: &str = r#"
        [device]
        id = "dev1"

        [[camera]]
        name = "front"
        source = "images"
        path = "photos"
        model = "models/yolov8n-320.model.toml"
    "#;

/// Parses `text` as a file in `/etc/edgemass`, with no environment.
pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/edgemass"), &[])
}

/// Parses `text` as a file in `/etc/edgemass`, with the variables `env`.
pub(super) fn parse_env(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::parse(text, Path::new("/etc/edgemass"), &env)
}

/// The error text for `text`, checked to be one line.
pub(super) fn error(result: Result<Config, ConfigError>) -> String {
    let message = result.expect_err("config should be rejected").to_string();
    assert!(!message.contains('\n'), "{message}");
    message
}

/// [`MINIMAL`] with `line` added to its camera.
pub(super) fn with_camera_line(line: &str) -> String {
    MINIMAL.replace("name = \"front\"", &format!("name = \"front\"\n{line}"))
}

/// [`MINIMAL`] with a `[section]` table of `lines` before its camera.
pub(super) fn with_section(section: &str, lines: &str) -> String {
    MINIMAL.replace("[[camera]]", &format!("[{section}]\n{lines}\n[[camera]]"))
}

/// Checks that each text is refused with a message starting with its key.
pub(super) fn each_names_its_key(cases: &[(String, &str)]) {
    for (text, key) in cases {
        let err = error(parse(text));
        assert!(err.starts_with(key), "expected {key}, got: {err}\n{text}");
    }
}
