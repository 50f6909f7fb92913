//! Bias add and backward on AVX2 and FMA: the generic bodies of `vector.rs` on `__m256`.

use super::vector;
use core::arch::x86_64::__m256;

/// # Safety
/// The CPU must support AVX2 and FMA; `x.len() == batch * bias.len() * spatial`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn add(x: &mut [f32], bias: &[f32], batch: usize, spatial: usize) {
    // SAFETY: the features are enabled on this function; lengths are the caller's contract.
    unsafe { vector::add::<__m256>(x, bias, batch, spatial) }
}

/// # Safety
/// The CPU must support AVX2 and FMA; `grad_output.len() == batch * grad_bias.len() * spatial`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn backward(
    grad_output: &[f32],
    grad_bias: &mut [f32],
    batch: usize,
    spatial: usize,
) {
    // SAFETY: as in `add`.
    unsafe { vector::backward::<__m256>(grad_output, grad_bias, batch, spatial) }
}
