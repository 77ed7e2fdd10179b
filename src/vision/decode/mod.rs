//! Output decoders: model outputs → detections in model-input pixels. One decoder per file.

mod blazeface;
mod boxes_scores;
mod dbnet;
mod softmax;
mod ssd;
mod yolo;

use tract_onnx::prelude::tract_ndarray::ArrayD;

use super::Detection;
use super::nms::nms;
use crate::model::Outputs;
use crate::model::manifest::{DecoderSpec, Manifest, Thresholds};

/// Errors when outputs do not have the shape a decoder needs.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The model produced no output of that name.
    #[error("model has no output `{name}`")]
    MissingOutput {
        /// The output name from the manifest.
        name: String,
    },
    /// The output's shape does not fit the decoder.
    #[error("output `{name}` has shape {shape:?}, the {decoder} decoder expects {expected}")]
    Shape {
        /// The output name.
        name: String,
        /// Its actual shape.
        shape: Vec<usize>,
        /// Decoder kind.
        decoder: &'static str,
        /// The expected shape, in words.
        expected: String,
    },
}

/// What a decoder needs besides the outputs.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// Number of labels in the manifest.
    pub labels: usize,
    /// Input tensor width in pixels.
    pub width: u32,
    /// Input tensor height in pixels.
    pub height: u32,
    /// Score and IoU thresholds.
    pub thresholds: Thresholds,
}

impl Context {
    /// The context of a manifest's model, with its own thresholds.
    pub fn of(manifest: &Manifest) -> Context {
        Context {
            labels: manifest.labels.len(),
            width: manifest.input.width,
            height: manifest.input.height,
            thresholds: manifest.thresholds,
        }
    }
}

/// Decodes `outputs` per `spec`, applying score threshold and (where the model needs it) NMS.
pub fn decode(
    spec: &DecoderSpec,
    outputs: &Outputs,
    ctx: &Context,
) -> Result<Vec<Detection>, DecodeError> {
    let iou = ctx.thresholds.iou;
    Ok(match spec {
        DecoderSpec::Yolov8 { output } => {
            nms(yolo::decode_v8(get(outputs, output)?, output, ctx)?, iou)
        }
        DecoderSpec::Yolov5 { output } => {
            nms(yolo::decode_v5(get(outputs, output)?, output, ctx)?, iou)
        }
        DecoderSpec::Blazeface {
            scores,
            boxes,
            grids,
        } => {
            let mut all = Vec::new();
            for ((s, b), grid) in scores.iter().zip(boxes).zip(grids) {
                let grid = blazeface::Grid {
                    cells: grid[0] as usize,
                    anchors: grid[1] as usize,
                };
                all.extend(blazeface::decode(
                    get(outputs, s)?,
                    get(outputs, b)?,
                    (s, b),
                    grid,
                    ctx,
                )?);
            }
            nms(all, iou)
        }
        DecoderSpec::Dbnet {
            output,
            threshold,
            unclip_ratio,
            min_size,
        } => {
            let params = dbnet::Params {
                threshold: *threshold,
                unclip_ratio: *unclip_ratio,
                min_size: *min_size,
            };
            dbnet::decode(get(outputs, output)?, output, &params, ctx)?
        }
        DecoderSpec::BoxesScores {
            boxes,
            scores,
            format,
            normalized,
        } => boxes_scores::decode(
            (get(outputs, boxes)?, boxes),
            (get(outputs, scores)?, scores),
            *format,
            *normalized,
            ctx,
        )?,
        DecoderSpec::Ssd {
            boxes,
            scores,
            columns,
            grids,
            scales,
            aspect_ratios,
            box_scales,
        } => ssd::decode(
            (get(outputs, boxes)?, boxes),
            (get(outputs, scores)?, scores),
            &ssd::Params {
                columns,
                grids,
                scales: *scales,
                aspect_ratios,
                box_scales: *box_scales,
            },
            ctx,
        )?,
        DecoderSpec::Softmax { output, top_k } => {
            softmax::decode(get(outputs, output)?, output, *top_k, ctx)?
        }
    })
}

fn get<'a>(outputs: &'a Outputs, name: &str) -> Result<&'a ArrayD<f32>, DecodeError> {
    outputs.get(name).ok_or_else(|| DecodeError::MissingOutput {
        name: name.to_owned(),
    })
}

fn shape_error(
    name: &str,
    array: &ArrayD<f32>,
    decoder: &'static str,
    expected: String,
) -> DecodeError {
    DecodeError::Shape {
        name: name.to_owned(),
        shape: array.shape().to_vec(),
        decoder,
        expected,
    }
}

/// Index and value of the largest element.
fn argmax(values: impl Iterator<Item = f32>) -> Option<(usize, f32)> {
    values.enumerate().max_by(|a, b| a.1.total_cmp(&b.1))
}
