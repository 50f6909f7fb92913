//! simdnet (placeholder)
