//! Entry points for the fuzz targets in `fuzz/` and for the test that replays their corpora on
//! stable: each takes raw bytes as they reach `edgemass serve` from outside and runs them through
//! the same functions the server does. Anything they return is a fine answer; a panic, a hang or
//! an allocation out of proportion to the input is a bug.

use super::config::ModelConfig;
use super::{pbtxt, request};

/// The model the infer targets send their requests to: a batched image input and a
/// variable-length token input, as a detector and a text model have.
pub const MODEL: &str = r#"
name: "model"
max_batch_size: 4
input [
  { name: "pixels" data_type: TYPE_FP32 dims: [ 3, 4, 4 ] },
  { name: "ids" data_type: TYPE_INT64 dims: [ -1 ] }
]
output [ { name: "scores" data_type: TYPE_FP32 dims: [ 2 ] } ]
dynamic_batching { max_queue_delay_microseconds: 100 }
"#;

fn model() -> ModelConfig {
    match pbtxt::parse(MODEL, "model") {
        Ok(config) => config,
        Err(e) => unreachable!("the fuzz model's config.pbtxt does not parse: {e}"),
    }
}

/// An infer request's body without binary data (no `Inference-Header-Content-Length`).
pub fn infer_json(data: &[u8]) -> Result<request::Checked, String> {
    request::read(&model(), data, None)
}

/// An infer request with the binary data extension: the bytes before the first newline are the
/// `Inference-Header-Content-Length` value, the rest is the body (JSON, then tensor bytes).
pub fn infer_binary(data: &[u8]) -> Result<request::Checked, String> {
    let (value, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    request::read(&model(), body, Some(value))
}

/// A model directory's `config.pbtxt`, as the repository scan reads it (UTF-8 text, the
/// directory named `model`); a config that parses is also described as metadata and unbatched,
/// as serving it does.
pub fn config_pbtxt(data: &[u8]) -> Result<ModelConfig, String> {
    let text = std::str::from_utf8(data).map_err(|e| format!("not UTF-8: {e}"))?;
    let config = pbtxt::parse(text, "model")?;
    config.metadata("1");
    config.unbatched();
    Ok(config)
}
