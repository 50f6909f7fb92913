//! Bias add and backward on NEON: the generic bodies of `vector.rs` on `float32x4_t`.

use super::vector;
use core::arch::aarch64::float32x4_t;

/// # Safety
/// The CPU must support NEON; `x.len() == batch * bias.len() * spatial`.
#[target_feature(enable = "neon")]
pub(super) unsafe fn add(x: &mut [f32], bias: &[f32], batch: usize, spatial: usize) {
    // SAFETY: the features are enabled on this function; lengths are the caller's contract.
    unsafe { vector::add::<float32x4_t>(x, bias, batch, spatial) }
}

/// # Safety
/// The CPU must support NEON; `grad_output.len() == batch * grad_bias.len() * spatial`.
#[target_feature(enable = "neon")]
pub(super) unsafe fn backward(
    grad_output: &[f32],
    grad_bias: &mut [f32],
    batch: usize,
    spatial: usize,
) {
    // SAFETY: as in `add`.
    unsafe { vector::backward::<float32x4_t>(grad_output, grad_bias, batch, spatial) }
}
