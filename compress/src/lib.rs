//! edgemass-compress: reads ONNX teachers and (as passes land) prunes, distills and quantizes
//! them into students for edgemass.

pub mod graph;
pub mod inspect;
