//! ReLU on NEON: the generic bodies of `vector.rs` on `float32x4_t`.

use super::vector;
use core::arch::aarch64::float32x4_t;

/// # Safety
/// The CPU must support NEON; `output.len() == input.len()`.
#[target_feature(enable = "neon")]
pub(super) unsafe fn forward(input: &[f32], output: &mut [f32]) {
    // SAFETY: the features are enabled on this function; lengths are the caller's contract.
    unsafe { vector::forward::<float32x4_t>(input, output) }
}

/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub(super) unsafe fn forward_in_place(x: &mut [f32]) {
    // SAFETY: as in `forward`.
    unsafe { vector::forward_in_place::<float32x4_t>(x) }
}

/// # Safety
/// The CPU must support NEON; all three slices have the same length.
#[target_feature(enable = "neon")]
pub(super) unsafe fn backward(output: &[f32], grad_output: &[f32], grad_input: &mut [f32]) {
    // SAFETY: as in `forward`.
    unsafe { vector::backward::<float32x4_t>(output, grad_output, grad_input) }
}
