//! An inference request as `edgemass serve` receives it, read and checked against its model:
//! the `Inference-Header-Content-Length` value, the JSON part and the binary data after it.
//! Pure, so that the fuzz targets and their corpus replay run exactly the server's path.

use super::config::ModelConfig;
use crate::fallback::protocol::{self, HEADER_LENGTH, Tensor};

/// A request that fits its model.
#[derive(Debug)]
pub struct Checked {
    /// The request's id, echoed in the response.
    pub id: Option<String>,
    /// Inputs, in the model's order.
    pub inputs: Vec<Tensor>,
    /// Batch rows (1 for a model without a batch dimension).
    pub rows: usize,
    /// Outputs wanted; empty means all.
    pub outputs: Vec<String>,
    /// Answer with binary output data.
    pub binary_outputs: bool,
}

/// Reads `body` (with the raw `Inference-Header-Content-Length` value, when the request has
/// one) and checks it against `config`; the error is the one-line reason a 400 carries.
pub fn read(
    config: &ModelConfig,
    body: &[u8],
    header_length: Option<&[u8]>,
) -> Result<Checked, String> {
    let header_length = header_length
        .map(|value| {
            std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| format!("{HEADER_LENGTH} is not a byte count"))
        })
        .transpose()?;
    let request =
        protocol::decode_request(body, header_length).map_err(|e| crate::fallback::describe(&e))?;
    if let Some(unknown) = request
        .outputs
        .iter()
        .find(|o| !config.outputs.iter().any(|s| s.name == **o))
    {
        return Err(format!(
            "model `{}` has no output `{unknown}` (its outputs are {:?})",
            config.name,
            config.outputs.iter().map(|s| &s.name).collect::<Vec<_>>()
        ));
    }
    let (inputs, rows) = config.check(request.inputs)?;
    Ok(Checked {
        id: request.id,
        inputs,
        rows,
        outputs: request.outputs,
        binary_outputs: request.binary_outputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fallback::serve::fuzz::MODEL;
    use crate::fallback::serve::pbtxt;

    #[test]
    fn a_header_length_that_is_no_byte_count_is_refused_naming_the_header() {
        let config = pbtxt::parse(MODEL, "model").unwrap();
        for value in [&b"-1"[..], b"", b"12a", b"\xff", b"99999999999999999999999"] {
            let err = read(&config, b"{}", Some(value)).unwrap_err();
            assert_eq!(
                err, "inference-header-content-length is not a byte count",
                "{value:?}"
            );
        }
        let err = read(&config, b"{\"inputs\":[]}", Some(b" 13 ")).unwrap_err();
        assert_eq!(err, "input `pixels` is missing");
    }

    #[test]
    fn outputs_the_model_lacks_are_named() {
        let config = pbtxt::parse(MODEL, "model").unwrap();
        let body = br#"{"inputs":[],"outputs":[{"name":"boxes"}]}"#;
        let err = read(&config, body, None).unwrap_err();
        assert_eq!(
            err,
            "model `model` has no output `boxes` (its outputs are [\"scores\"])"
        );
    }
}
