//! The direct path and the channel path's row-block input gradient on AVX-512: the generic
//! bodies of `direct.rs` and `rows.rs` on `__m512` (16 lanes, 32 registers, lane masks).
//!
//! - Forward: blocks of 6 channels x 2 vectors (12 accumulators), kernel widths 3 and 5
//!   compile-time constants, images copied into the padded planes by vectors.
//! - Weight gradient: blocks of 3 channels x 5 kernel columns (15 accumulators); the table
//!   also lists it as the fused entry, which sums the bias gradient in the same pass.
//! - Row-block input gradient: 6 channels x 2 rows of one vector where a row fits in one, 3
//!   channels x 2 rows of two vectors otherwise (12 accumulators either way).

use super::args::{Forward, WeightGradient};
use super::geometry::Direct;
use super::{direct, rows};
use core::arch::x86_64::__m512;

/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA; the lengths must match `d.shape` (input, weight, bias
/// `out_channels`, output) and the workspace must hold at least `d.padded_len()` f32.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn direct_forward(d: &Direct, args: Forward<'_>) {
    // SAFETY: the features are enabled here; the lengths are the caller's contract.
    unsafe { direct::forward::<__m512, 2, true, true>(d, args) }
}

/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA; the lengths must match `d.shape` (input, grad_output,
/// grad_weight, grad_bias `out_channels` where given) and the workspace must hold at least
/// `d.padded_len() + d.partials_len()` f32.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn direct_backward_weight(d: &Direct, args: WeightGradient<'_>) {
    // SAFETY: as in `direct_forward`.
    unsafe { direct::backward_weight::<__m512, 3, true>(d, args) }
}

/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA; `t` is the transposed convolution of a
/// channel-path shape (so its rows are at most 22 wide) with the lengths and workspace
/// `rows.rs` requires.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn rows_backward_input(t: &Direct, args: Forward<'_>) {
    // SAFETY: as in `direct_forward`; the row width picks the instantiation whose vectors
    // cover it (at most 22 <= 32 columns).
    unsafe {
        if t.out_w <= 16 {
            rows::backward_input::<__m512, 6, 2, 1>(t, args)
        } else {
            rows::backward_input::<__m512, 3, 2, 2>(t, args)
        }
    }
}
