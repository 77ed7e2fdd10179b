//! Pruning: removing the least important heads, channels, layers and tokens.

pub mod bert;
pub mod conv;
pub mod vocab;
