//! Average pooling on AVX2: a vector path for 2x2 windows with stride 2 (8 outputs at a time),
//! the reference loop otherwise. The loads and stores are max pooling's.

use super::Pool2dShape;
use crate::maxpool::avx2::{for_each_chunk, load_f32, load_pairs, store_f32, store_pairs};
use core::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX2 and FMA; the lengths match `shape` (checked by the caller).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn forward(shape: &Pool2dShape, input: &[f32], output: &mut [f32]) {
    if shape.is_2x2_stride_2() {
        // SAFETY: AVX2 is enabled on this function; the caller checked the lengths.
        unsafe { forward_2x2_stride_2(shape, input, output) }
    } else {
        super::scalar::forward(shape, input, output);
    }
}

/// # Safety
/// As [`forward`].
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn backward(shape: &Pool2dShape, grad_output: &[f32], grad_input: &mut [f32]) {
    if shape.is_2x2_stride_2() {
        // SAFETY: AVX2 is enabled on this function; the caller checked the lengths.
        unsafe { backward_2x2_stride_2(shape, grad_output, grad_input) }
    } else {
        super::scalar::backward(shape, grad_output, grad_input);
    }
}

#[inline(always)]
unsafe fn forward_2x2_stride_2(shape: &Pool2dShape, input: &[f32], output: &mut [f32]) {
    let (in_w, ow) = (shape.in_w, shape.out_w());
    let (in_plane, out_plane) = (shape.in_h * in_w, shape.out_h() * ow);
    for_each_chunk(shape, |p, oy, ox0, valid| {
        let x = &input[p * in_plane..][..in_plane];
        let start = 2 * oy * in_w + 2 * ox0;
        let o = p * out_plane + oy * ow + ox0;
        // SAFETY: AVX2 is enabled by the caller; rows 2oy and 2oy+1 hold the 2 * valid columns
        // read and the output chunk holds `valid` elements.
        unsafe {
            let (top_even, top_odd) = load_pairs(&x[start..], 2 * valid);
            let (bottom_even, bottom_odd) = load_pairs(&x[start + in_w..], 2 * valid);
            // ((((0 + a) + b) + c) + d) / 4: the reference's order, so the same bits.
            let mut sum = _mm256_add_ps(_mm256_setzero_ps(), top_even);
            sum = _mm256_add_ps(sum, top_odd);
            sum = _mm256_add_ps(sum, bottom_even);
            sum = _mm256_add_ps(sum, bottom_odd);
            let mean = _mm256_div_ps(sum, _mm256_set1_ps(4.0));
            store_f32(&mut output[o..o + valid], valid, mean);
        }
    });
}

#[inline(always)]
unsafe fn backward_2x2_stride_2(shape: &Pool2dShape, grad_output: &[f32], grad_input: &mut [f32]) {
    let (in_w, ow) = (shape.in_w, shape.out_w());
    let (in_plane, out_plane) = (shape.in_h * in_w, shape.out_h() * ow);
    // Every window element is written below; an odd last row or column is not in any window.
    if shape.in_h % 2 == 1 || in_w % 2 == 1 {
        grad_input.fill(0.0);
    }
    for_each_chunk(shape, |p, oy, ox0, valid| {
        let gi = &mut grad_input[p * in_plane..][..in_plane];
        let start = 2 * oy * in_w + 2 * ox0;
        let o = p * out_plane + oy * ow + ox0;
        // SAFETY: AVX2 is enabled by the caller; the chunk's `valid` outputs and the 2 * valid
        // columns of rows 2oy and 2oy+1 it writes are in bounds.
        unsafe {
            let g = load_f32(&grad_output[o..o + valid], valid);
            // 0 + g / 4, as the reference's zero-then-add.
            let share = _mm256_add_ps(_mm256_setzero_ps(), _mm256_div_ps(g, _mm256_set1_ps(4.0)));
            store_pairs(&mut gi[start..], 2 * valid, share, share);
            store_pairs(&mut gi[start + in_w..], 2 * valid, share, share);
        }
    });
}
