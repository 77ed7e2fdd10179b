//! edgemass: runs compressed vision and text models on small boards with tract, and reports what
//! they see.

pub mod bench;
pub mod model;
pub mod vision;
