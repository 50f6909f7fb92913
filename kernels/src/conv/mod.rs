//! conv (placeholder)
