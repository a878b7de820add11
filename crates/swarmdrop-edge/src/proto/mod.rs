//! The edge's sans-IO core: request paths and byte ranges.

pub mod paths;
pub mod range;
