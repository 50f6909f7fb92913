//! `exp` and `ln` on AVX-512F, AVX2 and FMA: the generic bodies of `vector.rs` on `__m512`.

use super::vector::{map, Exp, Ln};
use core::arch::x86_64::__m512;

/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA; `x.len() == y.len()`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn exp(x: &[f32], y: &mut [f32]) {
    // SAFETY: the features are enabled on this function; lengths are the caller's contract.
    unsafe { map::<__m512, Exp>(x, y) }
}

/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA; `x.len() == y.len()`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn ln(x: &[f32], y: &mut [f32]) {
    // SAFETY: as in `exp`.
    unsafe { map::<__m512, Ln>(x, y) }
}
