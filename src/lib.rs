//! edgemass: runs compressed vision and text models on small boards with tract, and reports what
//! they see.

#![deny(missing_docs)]

pub mod config;
pub mod fallback;
pub mod latency;
pub mod model;
pub mod observe;
pub mod pipeline;
pub mod publish;
pub mod queue;
pub mod source;
pub mod text;
pub mod track;
pub mod vision;
