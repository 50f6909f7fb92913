//! ReLU on AVX2 (8 f32 lanes): compare-and-mask selections, bit-identical to the reference.

use super::scalar::{relu, relu_grad};
use core::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX2 and FMA; `output.len() == input.len()`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn forward(input: &[f32], output: &mut [f32]) {
    // SAFETY: the caller guarantees AVX2 support, which is all the body needs.
    unsafe { forward_body(input, output) }
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn forward_in_place(x: &mut [f32]) {
    // SAFETY: the caller guarantees AVX2 support, which is all the body needs.
    unsafe { forward_in_place_body(x) }
}

/// # Safety
/// The CPU must support AVX2 and FMA; all three slices have the same length.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn backward(output: &[f32], grad_output: &[f32], grad_input: &mut [f32]) {
    // SAFETY: the caller guarantees AVX2 support, which is all the body needs.
    unsafe { backward_body(output, grad_output, grad_input) }
}

/// `x < 0 ? +0 : x` per lane: clear the bits where `x < 0` (false for NaN and -0.0).
#[inline(always)]
unsafe fn relu8(x: __m256) -> __m256 {
    // SAFETY: AVX is enabled by the caller.
    unsafe { _mm256_andnot_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_setzero_ps()), x) }
}

#[inline(always)]
unsafe fn forward_body(input: &[f32], output: &mut [f32]) {
    let mut outs = output.chunks_exact_mut(8);
    let mut ins = input.chunks_exact(8);
    for (o, i) in (&mut outs).zip(&mut ins) {
        // SAFETY: both chunks hold exactly 8 f32; AVX is enabled by the caller.
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), relu8(_mm256_loadu_ps(i.as_ptr()))) };
    }
    for (o, &i) in outs.into_remainder().iter_mut().zip(ins.remainder()) {
        *o = relu(i);
    }
}

#[inline(always)]
unsafe fn forward_in_place_body(x: &mut [f32]) {
    let mut chunks = x.chunks_exact_mut(8);
    for c in &mut chunks {
        // SAFETY: the chunk holds exactly 8 f32; AVX is enabled by the caller.
        unsafe { _mm256_storeu_ps(c.as_mut_ptr(), relu8(_mm256_loadu_ps(c.as_ptr()))) };
    }
    for v in chunks.into_remainder() {
        *v = relu(*v);
    }
}

#[inline(always)]
unsafe fn backward_body(output: &[f32], grad_output: &[f32], grad_input: &mut [f32]) {
    let mut gis = grad_input.chunks_exact_mut(8);
    let mut ys = output.chunks_exact(8);
    let mut gs = grad_output.chunks_exact(8);
    for ((gi, y), g) in (&mut gis).zip(&mut ys).zip(&mut gs) {
        // SAFETY: every chunk holds exactly 8 f32; AVX is enabled by the caller.
        unsafe {
            let y = _mm256_loadu_ps(y.as_ptr());
            let g = _mm256_loadu_ps(g.as_ptr());
            // Zero where output <= 0 (false for NaN, so NaN passes the gradient).
            let blocked = _mm256_cmp_ps::<_CMP_LE_OQ>(y, _mm256_setzero_ps());
            _mm256_storeu_ps(gi.as_mut_ptr(), _mm256_andnot_ps(blocked, g));
        }
    }
    let tails = gis
        .into_remainder()
        .iter_mut()
        .zip(ys.remainder())
        .zip(gs.remainder());
    for ((gi, &y), &g) in tails {
        *gi = relu_grad(y, g);
    }
}
