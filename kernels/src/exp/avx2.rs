//! `exp` and `ln` on AVX2 and FMA: the generic bodies of `vector.rs` on `__m256`.

use super::vector::{map, Exp, Ln};
use core::arch::x86_64::__m256;

/// # Safety
/// The CPU must support AVX2 and FMA; `x.len() == y.len()`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn exp(x: &[f32], y: &mut [f32]) {
    // SAFETY: the features are enabled on this function; lengths are the caller's contract.
    unsafe { map::<__m256, Exp>(x, y) }
}

/// # Safety
/// The CPU must support AVX2 and FMA; `x.len() == y.len()`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn ln(x: &[f32], y: &mut [f32]) {
    // SAFETY: as in `exp`.
    unsafe { map::<__m256, Ln>(x, y) }
}
