//! IDX datasets (placeholder)
