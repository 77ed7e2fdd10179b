//! The passes that turn a teacher into a student, one per file, the family in the file's name.

pub mod distill;
pub mod downscale;
pub mod prune;
pub mod quantize;
