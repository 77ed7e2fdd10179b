//! ONNX graphs: loading, building and rewriting them, reporting on them (inspect, dot, profile)
//! and running them (candle for training, tract for checks).

pub use edgemass::model::onnx_build as build;
pub mod candle;
pub mod dot;
pub mod graph;
pub mod inspect;
pub mod profile;
pub mod tract;
