//! Distillation: a pruned student learns to match its teacher's outputs.

pub mod detect;
pub mod text;
