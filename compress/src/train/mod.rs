//! Training with candle: fine-tuning text teachers.

pub mod text;
