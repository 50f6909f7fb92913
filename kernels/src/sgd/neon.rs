//! The SGD step on NEON: the generic body of `vector.rs` on `float32x4_t`.

use super::{vector, Coefficients};
use core::arch::aarch64::float32x4_t;

/// # Safety
/// The CPU must support NEON; `grad` and `buffer` as long as `param`; a buffer exactly
/// when `c.use_momentum`.
#[target_feature(enable = "neon")]
pub(super) unsafe fn step(
    c: &Coefficients,
    param: &mut [f32],
    grad: &[f32],
    buffer: Option<&mut [f32]>,
    first: bool,
) {
    // SAFETY: the features are enabled on this function; lengths are the caller's contract.
    unsafe { vector::step::<float32x4_t>(c, param, grad, buffer, first) }
}
