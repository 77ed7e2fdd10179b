//! Whether a host model fits what the agent will send it and read from it: the names, datatypes
//! and shapes of its metadata against the manifest's. Pure; the readiness check feeds it the
//! metadata the host gave.

use super::protocol::{DataType, ModelMetadata};

/// One dimension of what the agent sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    /// Always this size: the host may declare it or `-1`.
    Fixed(usize),
    /// Varies from request to request: the host must declare `-1`.
    Varies,
}

/// An input the agent sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Name.
    pub name: String,
    /// Element type.
    pub datatype: DataType,
    /// Dimensions, batch first.
    pub dims: Vec<Dim>,
}

/// What the agent sends and reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Every input of the model, exactly.
    pub inputs: Vec<Input>,
    /// Outputs the agent reads; the model may have more.
    pub outputs: Vec<String>,
}

/// Checks `metadata` against `signature`; the error says what differs.
pub fn fits(signature: &Signature, metadata: &ModelMetadata) -> Result<(), String> {
    let host_inputs: Vec<&str> = metadata.inputs.iter().map(|t| t.name.as_str()).collect();
    for input in &signature.inputs {
        let Some(host) = metadata.inputs.iter().find(|t| t.name == input.name) else {
            return Err(format!(
                "it has no input `{}` (its inputs are {host_inputs:?})",
                input.name
            ));
        };
        if host.datatype != input.datatype.name() {
            return Err(format!(
                "input `{}` is {} but edgemass sends {}",
                input.name,
                host.datatype,
                input.datatype.name()
            ));
        }
        let shown = || {
            input
                .dims
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => n.to_string(),
                    Dim::Varies => "any".to_owned(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let fits = host.shape.len() == input.dims.len()
            && host.shape.iter().zip(&input.dims).all(|(h, d)| match d {
                Dim::Fixed(n) => *h == -1 || usize::try_from(*h) == Ok(*n),
                Dim::Varies => *h == -1,
            });
        if !fits {
            return Err(format!(
                "input `{}` has shape {:?} but edgemass sends [{}]",
                input.name,
                host.shape,
                shown()
            ));
        }
    }
    if let Some(extra) = metadata
        .inputs
        .iter()
        .find(|t| !signature.inputs.iter().any(|i| i.name == t.name))
    {
        return Err(format!(
            "it takes input `{}`, which edgemass does not send",
            extra.name
        ));
    }
    let host_outputs: Vec<&str> = metadata.outputs.iter().map(|t| t.name.as_str()).collect();
    for wanted in &signature.outputs {
        let Some(host) = metadata.outputs.iter().find(|t| t.name == *wanted) else {
            return Err(format!(
                "it has no output `{wanted}` (its outputs are {host_outputs:?})"
            ));
        };
        if DataType::parse(&host.datatype).is_none() {
            return Err(format!(
                "output `{wanted}` is {}, which edgemass cannot read",
                host.datatype
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fallback::protocol::TensorMetadata;

    fn tensor(name: &str, datatype: &str, shape: &[i64]) -> TensorMetadata {
        TensorMetadata {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
        }
    }

    fn signature() -> Signature {
        Signature {
            inputs: vec![
                Input {
                    name: "input_ids".into(),
                    datatype: DataType::Int64,
                    dims: vec![Dim::Fixed(1), Dim::Varies],
                },
                Input {
                    name: "x".into(),
                    datatype: DataType::Fp32,
                    dims: vec![Dim::Fixed(1), Dim::Fixed(3)],
                },
            ],
            outputs: vec!["scores".into()],
        }
    }

    fn metadata(inputs: Vec<TensorMetadata>, outputs: Vec<TensorMetadata>) -> ModelMetadata {
        ModelMetadata {
            name: "m".into(),
            versions: vec!["1".into()],
            platform: "onnxruntime_onnx".into(),
            inputs,
            outputs,
        }
    }

    fn good_inputs() -> Vec<TensorMetadata> {
        vec![
            tensor("x", "FP32", &[-1, 3]),
            tensor("input_ids", "INT64", &[-1, -1]),
        ]
    }

    #[test]
    fn variable_host_dims_fit_fixed_ones() {
        let outputs = vec![
            tensor("logits", "FP32", &[-1, 2]),
            tensor("scores", "FP32", &[-1, 2]),
        ];
        assert_eq!(
            fits(&signature(), &metadata(good_inputs(), outputs)),
            Ok(())
        );
        let fixed = vec![
            tensor("x", "FP32", &[1, 3]),
            tensor("input_ids", "INT64", &[1, -1]),
        ];
        let outputs = vec![tensor("scores", "FP32", &[1, 2])];
        assert_eq!(fits(&signature(), &metadata(fixed, outputs)), Ok(()));
    }

    #[test]
    fn each_difference_is_named() {
        let scores = || vec![tensor("scores", "FP32", &[-1, 2])];
        let mut renamed = good_inputs();
        renamed[0].name = "images".into();
        let mut int32 = good_inputs();
        int32[1].datatype = "INT32".into();
        let mut fixed_length = good_inputs();
        fixed_length[1].shape = vec![-1, 128];
        let mut rank = good_inputs();
        rank[0].shape = vec![-1, 3, 1];
        let mut extra = good_inputs();
        extra.push(tensor("token_type_ids", "INT64", &[-1, -1]));
        let cases = [
            (metadata(renamed, scores()), "no input `x`"),
            (
                metadata(int32, scores()),
                "`input_ids` is INT32 but edgemass sends INT64",
            ),
            (
                metadata(fixed_length, scores()),
                "[-1, 128] but edgemass sends [1, any]",
            ),
            (metadata(rank, scores()), "`x` has shape [-1, 3, 1]"),
            (metadata(extra, scores()), "takes input `token_type_ids`"),
            (
                metadata(good_inputs(), vec![tensor("logits", "FP32", &[-1, 2])]),
                "no output `scores`",
            ),
            (
                metadata(good_inputs(), vec![tensor("scores", "FP16", &[-1, 2])]),
                "FP16, which edgemass cannot read",
            ),
        ];
        for (metadata, expected) in cases {
            let err = fits(&signature(), &metadata).unwrap_err();
            assert!(err.contains(expected), "{err} (wanted {expected})");
        }
    }
}
