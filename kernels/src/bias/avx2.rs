//! Bias add and backward on AVX2 (8 f32 lanes).

use core::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX2 and FMA; `x.len() == batch * bias.len() * spatial`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn add(x: &mut [f32], bias: &[f32], batch: usize, spatial: usize) {
    // SAFETY: the caller guarantees AVX2 support, which is all the body needs.
    unsafe { add_body(x, bias, batch, spatial) }
}

/// # Safety
/// The CPU must support AVX2 and FMA; `grad_output.len() == batch * grad_bias.len() * spatial`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn backward(
    grad_output: &[f32],
    grad_bias: &mut [f32],
    batch: usize,
    spatial: usize,
) {
    // SAFETY: the caller guarantees AVX2 support, which is all the body needs.
    unsafe { backward_body(grad_output, grad_bias, batch, spatial) }
}

#[inline(always)]
unsafe fn add_body(x: &mut [f32], bias: &[f32], _batch: usize, spatial: usize) {
    let channels = bias.len();
    if x.is_empty() {
        return;
    }
    if spatial == 1 {
        // [batch, channels]: add the bias row to every row.
        for row in x.chunks_exact_mut(channels) {
            // SAFETY: AVX2 is enabled by the caller; the rows have the bias's length.
            unsafe { add_row(row, bias) };
        }
        return;
    }
    for (plane, &b) in x.chunks_exact_mut(spatial).zip(bias.iter().cycle()) {
        // SAFETY: AVX2 is enabled by the caller.
        unsafe { add_scalar(plane, b) };
    }
}

/// `row[i] += bias[i]` (equal lengths).
#[inline(always)]
unsafe fn add_row(row: &mut [f32], bias: &[f32]) {
    let mut rows = row.chunks_exact_mut(8);
    let mut biases = bias.chunks_exact(8);
    for (r, b) in (&mut rows).zip(&mut biases) {
        // SAFETY: both chunks hold exactly 8 f32, so the unaligned 8-lane accesses are in
        // bounds; AVX is enabled by the caller.
        unsafe {
            let v = _mm256_add_ps(_mm256_loadu_ps(r.as_ptr()), _mm256_loadu_ps(b.as_ptr()));
            _mm256_storeu_ps(r.as_mut_ptr(), v);
        }
    }
    for (r, &b) in rows.into_remainder().iter_mut().zip(biases.remainder()) {
        *r += b;
    }
}

/// `plane[i] += b`.
#[inline(always)]
unsafe fn add_scalar(plane: &mut [f32], b: f32) {
    // SAFETY: AVX is enabled by the caller.
    let vb = unsafe { _mm256_set1_ps(b) };
    let mut chunks = plane.chunks_exact_mut(8);
    for c in &mut chunks {
        // SAFETY: the chunk holds exactly 8 f32; AVX is enabled by the caller.
        unsafe {
            _mm256_storeu_ps(
                c.as_mut_ptr(),
                _mm256_add_ps(_mm256_loadu_ps(c.as_ptr()), vb),
            )
        };
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
        // [batch, channels]: sum the rows, in batch order (as the reference).
        for row in grad_output.chunks_exact(channels) {
            // SAFETY: AVX2 is enabled by the caller; the rows have grad_bias's length.
            unsafe { add_row(grad_bias, row) };
        }
        return;
    }
    for (c, gb) in grad_bias.iter_mut().enumerate() {
        // SAFETY: AVX is enabled by the caller.
        let mut acc = unsafe { [_mm256_setzero_ps(); 4] };
        let mut tail = 0.0f32;
        for n in 0..batch {
            let plane = &grad_output[(n * channels + c) * spatial..][..spatial];
            let mut quads = plane.chunks_exact(32);
            for q in &mut quads {
                // SAFETY: the chunk holds exactly 32 f32; AVX is enabled by the caller.
                unsafe {
                    for (j, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_add_ps(*a, _mm256_loadu_ps(q.as_ptr().add(8 * j)));
                    }
                }
            }
            let mut singles = quads.remainder().chunks_exact(8);
            for s in &mut singles {
                // SAFETY: the chunk holds exactly 8 f32; AVX is enabled by the caller.
                unsafe { acc[0] = _mm256_add_ps(acc[0], _mm256_loadu_ps(s.as_ptr())) };
            }
            tail += singles.remainder().iter().sum::<f32>();
        }
        // SAFETY: AVX is enabled by the caller.
        *gb = unsafe { horizontal_sum(acc) } + tail;
    }
}

/// The sum of the 32 lanes of four accumulators.
#[inline(always)]
unsafe fn horizontal_sum(acc: [__m256; 4]) -> f32 {
    // SAFETY: AVX is enabled by the caller (SSE is part of x86-64).
    unsafe {
        let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        let h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 0b01));
        _mm_cvtss_f32(h)
    }
}
