//! The direct path on NEON: the generic bodies of `direct.rs` on `float32x4_t` (4 lanes, 32
//! registers): forward blocks of 6 channels x 4 vectors (24 accumulators), weight-gradient
//! blocks of 3 channels x 5 kernel columns (15 accumulators). NEON has no lane masks: the
//! vocabulary's partial loads and stores go through a stack buffer.

use super::args::{Forward, WeightGradient};
use super::direct;
use super::geometry::Direct;
use core::arch::aarch64::float32x4_t;

/// # Safety
/// The CPU must support NEON; the lengths must match `d.shape` (input, weight, bias
/// `out_channels`, output) and the workspace must hold at least `d.padded_len()` f32.
#[target_feature(enable = "neon")]
pub(super) unsafe fn direct_forward(d: &Direct, args: Forward<'_>) {
    // SAFETY: the features are enabled here; the lengths are the caller's contract.
    unsafe { direct::forward::<float32x4_t, 4, false, false>(d, args) }
}

/// # Safety
/// The CPU must support NEON; the lengths must match `d.shape` (input, grad_output,
/// grad_weight, grad_bias `out_channels` where given) and the workspace must hold at least
/// `d.padded_len() + d.partials_len()` f32.
#[target_feature(enable = "neon")]
pub(super) unsafe fn direct_backward_weight(d: &Direct, args: WeightGradient<'_>) {
    // SAFETY: as in `direct_forward`.
    unsafe { direct::backward_weight::<float32x4_t, 3, false>(d, args) }
}
