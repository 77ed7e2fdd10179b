//! How good a model is: accuracy and mAP on held-out data, latency and size, for both families,
//! and tuning the detector's decoder thresholds.

pub mod cost;
pub mod detect;
pub mod measure_detect;
pub mod measure_text;
pub mod ort;
pub mod text;
pub mod tune_decoder;
