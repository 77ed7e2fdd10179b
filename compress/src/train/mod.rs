//! Training with candle: the scaffold every training pass shares, and fine-tuning text teachers.

pub mod scaffold;
pub mod text;
