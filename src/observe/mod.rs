//! Observability: the stats message, Prometheus metrics and the loopback HTTP listener.

pub mod counters;
pub mod http;
pub mod stats;
