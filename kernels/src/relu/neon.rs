//! ReLU on NEON (4 f32 lanes): compare-and-mask selections, bit-identical to the reference.

use super::scalar::{relu, relu_grad};
use core::arch::aarch64::*;

/// # Safety
/// The CPU must support NEON; `output.len() == input.len()`.
#[target_feature(enable = "neon")]
pub(super) unsafe fn forward(input: &[f32], output: &mut [f32]) {
    // SAFETY: the caller guarantees NEON support, which is all the body needs.
    unsafe { forward_body(input, output) }
}

/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub(super) unsafe fn forward_in_place(x: &mut [f32]) {
    // SAFETY: the caller guarantees NEON support, which is all the body needs.
    unsafe { forward_in_place_body(x) }
}

/// # Safety
/// The CPU must support NEON; all three slices have the same length.
#[target_feature(enable = "neon")]
pub(super) unsafe fn backward(output: &[f32], grad_output: &[f32], grad_input: &mut [f32]) {
    // SAFETY: the caller guarantees NEON support, which is all the body needs.
    unsafe { backward_body(output, grad_output, grad_input) }
}

/// `x < 0 ? +0 : x` per lane: clear the bits where `x < 0` (false for NaN and -0.0).
#[inline(always)]
unsafe fn relu4(x: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is enabled by the caller.
    unsafe {
        let negative = vcltq_f32(x, vdupq_n_f32(0.0));
        vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(x), negative))
    }
}

#[inline(always)]
unsafe fn forward_body(input: &[f32], output: &mut [f32]) {
    let mut outs = output.chunks_exact_mut(4);
    let mut ins = input.chunks_exact(4);
    for (o, i) in (&mut outs).zip(&mut ins) {
        // SAFETY: both chunks hold exactly 4 f32; NEON is enabled by the caller.
        unsafe { vst1q_f32(o.as_mut_ptr(), relu4(vld1q_f32(i.as_ptr()))) };
    }
    for (o, &i) in outs.into_remainder().iter_mut().zip(ins.remainder()) {
        *o = relu(i);
    }
}

#[inline(always)]
unsafe fn forward_in_place_body(x: &mut [f32]) {
    let mut chunks = x.chunks_exact_mut(4);
    for c in &mut chunks {
        // SAFETY: the chunk holds exactly 4 f32; NEON is enabled by the caller.
        unsafe { vst1q_f32(c.as_mut_ptr(), relu4(vld1q_f32(c.as_ptr()))) };
    }
    for v in chunks.into_remainder() {
        *v = relu(*v);
    }
}

#[inline(always)]
unsafe fn backward_body(output: &[f32], grad_output: &[f32], grad_input: &mut [f32]) {
    let mut gis = grad_input.chunks_exact_mut(4);
    let mut ys = output.chunks_exact(4);
    let mut gs = grad_output.chunks_exact(4);
    for ((gi, y), g) in (&mut gis).zip(&mut ys).zip(&mut gs) {
        // SAFETY: every chunk holds exactly 4 f32; NEON is enabled by the caller.
        unsafe {
            let y = vld1q_f32(y.as_ptr());
            let g = vreinterpretq_u32_f32(vld1q_f32(g.as_ptr()));
            // Zero where output <= 0 (false for NaN, so NaN passes the gradient).
            let blocked = vcleq_f32(y, vdupq_n_f32(0.0));
            vst1q_f32(
                gi.as_mut_ptr(),
                vreinterpretq_f32_u32(vbicq_u32(g, blocked)),
            );
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
