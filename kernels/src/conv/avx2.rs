//! The direct path on AVX2 + FMA: the generic bodies of `direct.rs` on `__m256` (8 lanes, 16
//! registers): forward blocks of 6 channels x 2 vectors (12 accumulators, 2 input vectors
//! and a broadcast: 15 of the 16 registers), weight-gradient blocks of 2 channels x 5 kernel
//! columns (10 accumulators; 2 output-gradient and 5 input loads per 10 FMAs).

use super::args::{Forward, WeightGradient};
use super::geometry::Direct;
use super::{direct, rows};
use core::arch::x86_64::__m256;

/// # Safety
/// The CPU must support AVX2 and FMA; the lengths must match `d.shape` (input, weight, bias
/// `out_channels`, output) and the workspace must hold at least `d.padded_len()` f32.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn direct_forward(d: &Direct, args: Forward<'_>) {
    // SAFETY: the features are enabled here; the lengths are the caller's contract.
    unsafe { direct::forward::<__m256, 2, false, false>(d, args) }
}

/// # Safety
/// The CPU must support AVX2 and FMA; the lengths must match `d.shape` (input, grad_output,
/// grad_weight, grad_bias `out_channels` where given) and the workspace must hold at least
/// `d.padded_len() + d.partials_len()` f32.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn direct_backward_weight(d: &Direct, args: WeightGradient<'_>) {
    // SAFETY: as in `direct_forward`.
    unsafe { direct::backward_weight::<__m256, 2, false>(d, args) }
}

/// # Safety
/// The CPU must support AVX2 and FMA; `t` is the transposed convolution of a channel-path
/// shape (so its rows are at most 22 wide) with the lengths and workspace `rows.rs` requires.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn rows_backward_input(t: &Direct, args: Forward<'_>) {
    // SAFETY: as in `direct_forward`; the row width picks the instantiation whose vectors
    // cover it (at most 22 <= 24 columns).
    unsafe {
        match t.out_w.div_ceil(8) {
            1 => rows::backward_input::<__m256, 4, 2, 1>(t, args),
            2 => rows::backward_input::<__m256, 2, 2, 2>(t, args),
            _ => rows::backward_input::<__m256, 3, 1, 3>(t, args),
        }
    }
}
