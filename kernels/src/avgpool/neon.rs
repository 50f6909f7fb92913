//! Average pooling on NEON: the 2x2 stride-2 body of `vector.rs` on `float32x4_t`, the reference
//! otherwise.

use super::{scalar, vector, Pool2dShape};
use core::arch::aarch64::float32x4_t;

/// # Safety
/// The CPU must support NEON; the lengths match `shape` (checked by the caller).
#[target_feature(enable = "neon")]
pub(super) unsafe fn forward(shape: &Pool2dShape, input: &[f32], output: &mut [f32]) {
    if shape.is_2x2_stride_2() {
        // SAFETY: the features are enabled on this function; the caller checked the lengths.
        unsafe { vector::forward_2x2_stride_2::<float32x4_t>(shape, input, output) }
    } else {
        scalar::forward(shape, input, output);
    }
}

/// # Safety
/// As [`forward`].
#[target_feature(enable = "neon")]
pub(super) unsafe fn backward(shape: &Pool2dShape, grad_output: &[f32], grad_input: &mut [f32]) {
    if shape.is_2x2_stride_2() {
        // SAFETY: as in `forward`.
        unsafe { vector::backward_2x2_stride_2::<float32x4_t>(shape, grad_output, grad_input) }
    } else {
        scalar::backward(shape, grad_output, grad_input);
    }
}
