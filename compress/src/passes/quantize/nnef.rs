//! tract's own NNEF archive of a model, which keeps quantized types (int8 weights, uint8
//! activations with their scales) as tract's typed graph holds them: written from the ONNX at
//! fixed input shapes and loaded back for timing.

use std::sync::Arc;

use tract_nnef::framework::Nnef;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;
use tract_onnx_opl::WithOnnx;

use crate::onnx::tract::{CheckError, plan, tract_error};

fn nnef() -> Nnef {
    tract_nnef::nnef().with_onnx()
}

/// The model as a `.nnef.tgz` archive, typed and decluttered for inputs shaped like `inputs`.
pub fn archive(model: &ModelProto, inputs: &[Tensor]) -> Result<Vec<u8>, CheckError> {
    let mut parsed = tract_onnx::onnx()
        .with_ignore_output_shapes(true)
        .with_ignore_value_info(true)
        .model_for_proto_model(model)
        .map_err(tract_error("nnef", "import"))?;
    for (i, t) in inputs.iter().enumerate() {
        parsed = parsed
            .with_input_fact(i, InferenceFact::dt_shape(t.datum_type(), t.shape()))
            .map_err(tract_error("nnef", "fix the input shapes of"))?;
    }
    let typed = parsed
        .into_typed()
        .and_then(|m| m.into_decluttered())
        .map_err(tract_error("nnef", "type and declutter"))?;
    nnef()
        .write_to_tar(&typed, Vec::new())
        .map_err(tract_error("nnef", "write"))
}

/// The optimised plan of an archive made by [`archive`].
pub fn load(archive: &[u8]) -> Result<Arc<TypedRunnableModel>, CheckError> {
    nnef()
        .model_for_read(&mut std::io::Cursor::new(archive))
        .map_err(tract_error("nnef", "read"))?
        .into_optimized()
        .map_err(tract_error("nnef", "optimise"))?
        .into_runnable()
        .map_err(tract_error("nnef", "plan"))
}

/// Both steps, checked: the archive and its plan.
pub fn round_trip(
    model: &ModelProto,
    inputs: &[Tensor],
) -> Result<(Vec<u8>, Arc<TypedRunnableModel>), CheckError> {
    plan(model, inputs, "nnef")?;
    let bytes = archive(model, inputs)?;
    let loaded = load(&bytes)?;
    Ok((bytes, loaded))
}
