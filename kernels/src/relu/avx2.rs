//! ReLU on AVX2 and FMA: the generic bodies of `vector.rs` on `__m256`.

use super::vector;
use core::arch::x86_64::__m256;

/// # Safety
/// The CPU must support AVX2 and FMA; `output.len() == input.len()`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn forward(input: &[f32], output: &mut [f32]) {
    // SAFETY: the features are enabled on this function; lengths are the caller's contract.
    unsafe { vector::forward::<__m256>(input, output) }
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn forward_in_place(x: &mut [f32]) {
    // SAFETY: as in `forward`.
    unsafe { vector::forward_in_place::<__m256>(x) }
}

/// # Safety
/// The CPU must support AVX2 and FMA; all three slices have the same length.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn backward(output: &[f32], grad_output: &[f32], grad_input: &mut [f32]) {
    // SAFETY: as in `forward`.
    unsafe { vector::backward::<__m256>(output, grad_output, grad_input) }
}
