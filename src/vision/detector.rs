//! A loaded model together with its preprocessing and decoder: image in, detections in the
//! image's own pixels out.

use std::time::{Duration, Instant};

use image::RgbImage;
use tract_onnx::prelude::{IntoTensor, Tensor, tract_ndarray};

use super::decode::{self, Context, DecodeError};
use super::preprocess::prepare;
use super::{Detection, Transform};
use crate::model::{Manifest, Model, ModelError, Options, Outputs, choose, input_shape};

/// Errors while detecting.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// Inference failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The outputs do not fit the manifest's decoder.
    #[error("model `{model}` outputs do not fit its decoder")]
    Decode {
        /// Model id.
        model: String,
        /// What did not fit.
        source: DecodeError,
    },
}

/// Detections of one image and where the time went.
#[derive(Debug, Clone)]
pub struct Found {
    /// Detections in original-image pixels, best first.
    pub detections: Vec<Detection>,
    /// Resize and normalisation.
    pub preprocess: Duration,
    /// tract run.
    pub inference: Duration,
    /// Decoding and NMS.
    pub decode: Duration,
}

/// Runs one model on images.
pub struct Detector {
    model: Model,
    context: Context,
}

impl Detector {
    /// Wraps a loaded model and runs it once on a blank input, so that a decoder that does not
    /// fit the model's outputs fails here rather than on the first frame.
    pub fn new(model: Model) -> Result<Detector, DetectError> {
        let context = Context::of(model.manifest());
        let detector = Detector { model, context };
        let blank = tract_ndarray::Array4::<f32>::zeros(input_shape(detector.model.manifest()))
            .into_tensor();
        let outputs = detector.model.run(blank)?;
        detector.decode(&outputs)?;
        Ok(detector)
    }

    /// Loads `manifest`'s model on the runtime and in the form `options` ask for, measuring the
    /// candidates on [`super::scene::scene`] when they leave a choice.
    pub fn load(manifest: Manifest, options: &Options) -> Result<Detector, DetectError> {
        let (sample, _) = prepare(&super::scene::scene(), &manifest.input);
        Detector::new(choose::load(manifest, options, &sample)?)
    }

    /// The underlying model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Class names of the model.
    pub fn labels(&self) -> &[String] {
        &self.model.manifest().labels
    }

    /// Preprocesses `image` into the model's input tensor.
    pub fn prepare(&self, image: &RgbImage) -> (Tensor, Transform) {
        prepare(image, &self.model.manifest().input)
    }

    /// Detects in one image.
    pub fn detect(&self, image: &RgbImage) -> Result<Found, DetectError> {
        let started = Instant::now();
        let (tensor, transform) = self.prepare(image);
        let prepared = Instant::now();
        let outputs = self.model.run(tensor)?;
        let inferred = Instant::now();
        let detections = self
            .decode(&outputs)?
            .into_iter()
            .map(|d| transform.detection(d))
            .collect();
        Ok(Found {
            detections,
            preprocess: prepared - started,
            inference: inferred - prepared,
            decode: inferred.elapsed(),
        })
    }

    /// Decodes raw outputs into detections in model-input pixels.
    pub fn decode(&self, outputs: &Outputs) -> Result<Vec<Detection>, DetectError> {
        decode::decode(&self.model.manifest().decoder, outputs, &self.context).map_err(|source| {
            DetectError::Decode {
                model: self.model.manifest().name.clone(),
                source,
            }
        })
    }
}
