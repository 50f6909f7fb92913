//! Bias add and backward on NEON (4 f32 lanes).

use core::arch::aarch64::*;

/// # Safety
/// The CPU must support NEON; `x.len() == batch * bias.len() * spatial`.
#[target_feature(enable = "neon")]
pub(super) unsafe fn add(x: &mut [f32], bias: &[f32], batch: usize, spatial: usize) {
    // SAFETY: the caller guarantees NEON support, which is all the body needs.
    unsafe { add_body(x, bias, batch, spatial) }
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
    // SAFETY: the caller guarantees NEON support, which is all the body needs.
    unsafe { backward_body(grad_output, grad_bias, batch, spatial) }
}

#[inline(always)]
unsafe fn add_body(x: &mut [f32], bias: &[f32], _batch: usize, spatial: usize) {
    let channels = bias.len();
    if x.is_empty() {
        return;
    }
    if spatial == 1 {
        for row in x.chunks_exact_mut(channels) {
            // SAFETY: NEON is enabled by the caller; the rows have the bias's length.
            unsafe { add_row(row, bias) };
        }
        return;
    }
    for (plane, &b) in x.chunks_exact_mut(spatial).zip(bias.iter().cycle()) {
        // SAFETY: NEON is enabled by the caller.
        unsafe { add_scalar(plane, b) };
    }
}

/// `row[i] += bias[i]` (equal lengths).
#[inline(always)]
unsafe fn add_row(row: &mut [f32], bias: &[f32]) {
    let mut rows = row.chunks_exact_mut(4);
    let mut biases = bias.chunks_exact(4);
    for (r, b) in (&mut rows).zip(&mut biases) {
        // SAFETY: both chunks hold exactly 4 f32; NEON is enabled by the caller.
        unsafe {
            vst1q_f32(
                r.as_mut_ptr(),
                vaddq_f32(vld1q_f32(r.as_ptr()), vld1q_f32(b.as_ptr())),
            )
        };
    }
    for (r, &b) in rows.into_remainder().iter_mut().zip(biases.remainder()) {
        *r += b;
    }
}

/// `plane[i] += b`.
#[inline(always)]
unsafe fn add_scalar(plane: &mut [f32], b: f32) {
    // SAFETY: NEON is enabled by the caller.
    let vb = unsafe { vdupq_n_f32(b) };
    let mut chunks = plane.chunks_exact_mut(4);
    for c in &mut chunks {
        // SAFETY: the chunk holds exactly 4 f32; NEON is enabled by the caller.
        unsafe { vst1q_f32(c.as_mut_ptr(), vaddq_f32(vld1q_f32(c.as_ptr()), vb)) };
    }
    for v in chunks.into_remainder() {
        *v += b;
    }
}

#[inline(always)]
unsafe fn backward_body(grad_output: &[f32], grad_bias: &mut [f32], batch: usize, spatial: usize) {
    let channels = grad_bias.len();
    grad_bias.fill(0.0);
    if grad_output.is_empty() {
        return;
    }
    if spatial == 1 {
        for row in grad_output.chunks_exact(channels) {
            // SAFETY: NEON is enabled by the caller; the rows have grad_bias's length.
            unsafe { add_row(grad_bias, row) };
        }
        return;
    }
    for (c, gb) in grad_bias.iter_mut().enumerate() {
        // SAFETY: NEON is enabled by the caller.
        let mut acc = unsafe { [vdupq_n_f32(0.0); 4] };
        let mut tail = 0.0f32;
        for n in 0..batch {
            let plane = &grad_output[(n * channels + c) * spatial..][..spatial];
            let mut quads = plane.chunks_exact(16);
            for q in &mut quads {
                // SAFETY: the chunk holds exactly 16 f32; NEON is enabled by the caller.
                unsafe {
                    for (j, a) in acc.iter_mut().enumerate() {
                        *a = vaddq_f32(*a, vld1q_f32(q.as_ptr().add(4 * j)));
                    }
                }
            }
            let mut singles = quads.remainder().chunks_exact(4);
            for s in &mut singles {
                // SAFETY: the chunk holds exactly 4 f32; NEON is enabled by the caller.
                unsafe { acc[0] = vaddq_f32(acc[0], vld1q_f32(s.as_ptr())) };
            }
            tail += singles.remainder().iter().sum::<f32>();
        }
        // SAFETY: NEON is enabled by the caller.
        *gb = unsafe {
            vaddvq_f32(vaddq_f32(
                vaddq_f32(acc[0], acc[1]),
                vaddq_f32(acc[2], acc[3]),
            ))
        } + tail;
    }
}
