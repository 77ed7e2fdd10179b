//! `[inference]`: threads, and the defaults of each camera's model form and runtime.

use std::path::PathBuf;

use serde::Deserialize;

use super::raw::Context;
use super::{ConfigError, invalid};
use crate::model::{Precision, RuntimeSetting};

/// Inference settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inference {
    /// Inference threads per camera, 1..=64.
    pub threads: usize,
    /// onnxruntime's shared library, when the config names one.
    pub onnxruntime: Option<PathBuf>,
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

/// Checks `[inference]`: 1 to 64 threads; the library path resolves against the config's
/// directory. (`precision` and `runtime` are the cameras' defaults, taken by `camera`.)
pub(super) fn validate(raw: &RawInference, ctx: &Context) -> Result<Inference, ConfigError> {
    if !(1..=64).contains(&raw.threads) {
        return Err(invalid("inference.threads", "must be between 1 and 64"));
    }
    Ok(Inference {
        threads: raw.threads,
        onnxruntime: raw.onnxruntime.as_deref().map(|p| ctx.resolve(p.trim())),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::testing::{MINIMAL, each_names_its_key, parse, with_section};

    #[test]
    fn one_thread_and_no_library_by_default() {
        let inference = parse(MINIMAL).unwrap().inference;
        assert_eq!((inference.threads, inference.onnxruntime), (1, None));
        let text = with_section("inference", "threads = 4\nonnxruntime = \" lib/ort.so \"");
        let inference = parse(&text).unwrap().inference;
        assert_eq!(inference.threads, 4);
        assert_eq!(
            inference.onnxruntime.as_deref(),
            Some(Path::new("/etc/edgemass/lib/ort.so"))
        );
    }

    #[test]
    fn each_rule_names_its_key() {
        each_names_its_key(&[
            (
                with_section("inference", "threads = 0"),
                "`inference.threads`",
            ),
            (
                with_section("inference", "threads = 65"),
                "`inference.threads`",
            ),
        ]);
    }
}
