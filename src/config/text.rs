//! `[text]`: the text classifier, where its texts come from and how they are batched.

use std::path::PathBuf;

use serde::Deserialize;

use super::fallback::{RawEscalation, escalation};
use super::raw::{Context, yes};
use super::{ConfigError, EscalationConfig, invalid};

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

/// Checks `[text]`: a manifest, a batch of 1 to 256 in a queue at least as long, and at least
/// one input.
pub(super) fn validate(raw: &RawText, ctx: &Context) -> Result<TextConfig, ConfigError> {
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
        Some(path) => Some(ctx.resolve(path)),
    };
    if !raw.mqtt && !raw.stdin && file.is_none() {
        return Err(invalid(
            "text",
            "needs at least one input: mqtt = true, stdin = true or a file",
        ));
    }
    Ok(TextConfig {
        model: ctx.resolve(&raw.model),
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::testing::{MINIMAL, each_names_its_key, parse};

    /// `MINIMAL`'s device with a `[text]` table of `lines` and no camera.
    fn text_only(lines: &str) -> String {
        let device = &MINIMAL[..MINIMAL.find("[[camera]]").unwrap()];
        format!("{device}\n[text]\n{lines}\n")
    }

    #[test]
    fn a_text_classifier_alone_is_enough() {
        let c = parse(&text_only("model = \"s.model.toml\"\nfile = \"in.txt\"")).unwrap();
        assert!(c.cameras.is_empty());
        let text = c.text.unwrap();
        assert_eq!(text.model, Path::new("/etc/edgemass/s.model.toml"));
        assert_eq!(
            text.file.as_deref(),
            Some(Path::new("/etc/edgemass/in.txt"))
        );
        assert!(text.mqtt && !text.stdin);
        assert_eq!((text.max_batch, text.queue, text.fallback), (16, 256, None));
    }

    #[test]
    fn each_rule_names_its_key() {
        each_names_its_key(&[
            (text_only("model = \"\""), "`text.model`"),
            (
                text_only("model = \"s.model.toml\"\nmax_batch = 0"),
                "`text.max_batch`",
            ),
            (
                text_only("model = \"s.model.toml\"\nmax_batch = 32\nqueue = 8"),
                "`text.queue`",
            ),
            (
                text_only("model = \"s.model.toml\"\nmqtt = false"),
                "`text`",
            ),
            (
                text_only(
                    "model = \"s.model.toml\"\n[text.fallback]\nmodel = \"t.model.toml\"\nlow = 0.2\nhigh = 0.8",
                ),
                "`text.fallback`",
            ),
        ]);
    }
}
