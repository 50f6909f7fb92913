//! seeded random numbers (placeholder)
