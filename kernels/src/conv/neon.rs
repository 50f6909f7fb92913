//! The direct path on NEON: the generic bodies of `direct.rs` on `float32x4_t` (4 lanes, 32
//! registers): forward blocks of 6 channels x 4 vectors (24 accumulators), weight-gradient
//! blocks of 3 channels x 5 kernel columns (15 accumulators). NEON has no lane masks: the
//! vocabulary's partial loads and stores go through a stack buffer.

use super::direct;
use super::geometry::Direct;
use core::arch::aarch64::float32x4_t;

/// # Safety
/// The CPU must support NEON; the lengths must match `d.shape` (input, weight, bias
/// `out_channels`, output) and `workspace` must hold at least `d.padded_len()` f32.
#[target_feature(enable = "neon")]
pub(super) unsafe fn direct_forward(
    d: &Direct,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
    workspace: &mut [f32],
) {
    // SAFETY: the features are enabled here; the lengths are the caller's contract.
    unsafe {
        direct::forward::<float32x4_t, 4, false, false>(d, input, weight, bias, output, workspace)
    }
}

/// # Safety
/// The CPU must support NEON; the lengths must match `d.shape` (input, grad_output,
/// grad_weight) and `workspace` must hold at least `d.padded_len() + d.partials_len()` f32.
#[target_feature(enable = "neon")]
pub(super) unsafe fn direct_backward_weight(
    d: &Direct,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
    workspace: &mut [f32],
) {
    // SAFETY: as in `direct_forward`.
    unsafe {
        direct::backward_weight::<float32x4_t, 3, false>(
            d,
            input,
            grad_output,
            grad_weight,
            None,
            workspace,
        )
    }
}
