//! `exp` and `ln` on NEON: the generic bodies of `vector.rs` on `float32x4_t`.

use super::vector::{map, Exp, Ln};
use core::arch::aarch64::float32x4_t;

/// # Safety
/// The CPU must support NEON; `x.len() == y.len()`.
#[target_feature(enable = "neon")]
pub(super) unsafe fn exp(x: &[f32], y: &mut [f32]) {
    // SAFETY: the features are enabled on this function; lengths are the caller's contract.
    unsafe { map::<float32x4_t, Exp>(x, y) }
}

/// # Safety
/// The CPU must support NEON; `x.len() == y.len()`.
#[target_feature(enable = "neon")]
pub(super) unsafe fn ln(x: &[f32], y: &mut [f32]) {
    // SAFETY: as in `exp`.
    unsafe { map::<float32x4_t, Ln>(x, y) }
}
