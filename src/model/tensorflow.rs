//! Frozen TensorFlow graphs (`.pb`) read by tract-tensorflow, without TensorFlow: the image
//! enters as a new source in place of the output of the node the manifest names, and only the
//! decoder's outputs are kept, so the TensorFlow loops before and after the network are cut off.

use std::path::Path;

use tract_onnx::prelude::*;

use super::ModelError;
use super::manifest::Manifest;

/// The cut graph of `bytes` (the file at `path`), its input fixed to `shape`; returns it with the
/// names of its outputs in order.
pub fn load(
    bytes: &[u8],
    path: &Path,
    manifest: &Manifest,
    replace: &str,
    shape: [usize; 4],
) -> Result<(InferenceModel, Vec<String>), ModelError> {
    let tract_err = |stage| ModelError::tract(path, stage);
    let mismatch = |reason: String| ModelError::Mismatch {
        path: path.to_owned(),
        reason,
    };
    let tf = tract_tensorflow::tensorflow();
    let graph = tf.read_frozen_model(&mut &bytes[..]).map_err(|_| {
        mismatch("it is not a readable TensorFlow GraphDef (truncated or corrupt)".into())
    })?;
    let mut model = tf
        .model_for_proto_model(&graph)
        .map_err(tract_err("import"))?;
    let cut = model
        .node_by_name(replace)
        .map_err(|_| {
            mismatch(format!(
                "tensorflow.replace names node `{replace}`, which the graph lacks"
            ))
        })?
        .id;
    let successors = model.outlet_successors(OutletId::new(cut, 0)).to_vec();
    let source = model
        .add_source(&manifest.input.name, f32::fact(shape).into())
        .map_err(tract_err("add the image input to"))?;
    for inlet in successors {
        model.add_edge(source, inlet).map_err(tract_err("rewire"))?;
    }
    model
        .set_input_outlets(&[source])
        .map_err(tract_err("set the input of"))?;
    let outputs: Vec<String> = manifest
        .decoder
        .output_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    for name in &outputs {
        if model.node_by_name(name).is_err() {
            return Err(mismatch(format!(
                "decoder reads output `{name}`, which the graph lacks"
            )));
        }
    }
    model
        .select_outputs_by_name(&outputs)
        .map_err(tract_err("select the outputs of"))?;
    let model = model.into_compact().map_err(tract_err("cut"))?;
    Ok((model, outputs))
}
