//! Bias add and backward written once over [`F32x`] (the module docs give the contract).

use crate::simd::F32x;

/// # Safety
/// The CPU supports `V`'s ISA; `x.len() == batch * bias.len() * spatial`.
#[inline(always)]
pub(super) unsafe fn add<V: F32x>(x: &mut [f32], bias: &[f32], _batch: usize, spatial: usize) {
    let channels = bias.len();
    if x.is_empty() {
        return;
    }
    if spatial == 1 {
        // [batch, channels]: add the bias row to every row.
        for row in x.chunks_exact_mut(channels) {
            // SAFETY: forwarded ISA guarantee; the rows have the bias's length.
            unsafe { add_row::<V>(row, bias) };
        }
        return;
    }
    for (plane, &b) in x.chunks_exact_mut(spatial).zip(bias.iter().cycle()) {
        // SAFETY: forwarded ISA guarantee.
        unsafe { add_scalar::<V>(plane, b) };
    }
}

/// `row[i] += bias[i]` (equal lengths).
///
/// # Safety
/// The CPU supports `V`'s ISA.
#[inline(always)]
unsafe fn add_row<V: F32x>(row: &mut [f32], bias: &[f32]) {
    let mut rows = row.chunks_exact_mut(V::LANES);
    let mut biases = bias.chunks_exact(V::LANES);
    for (r, b) in (&mut rows).zip(&mut biases) {
        // SAFETY: both chunks hold exactly LANES floats; forwarded ISA guarantee.
        unsafe {
            V::load(r.as_ptr())
                .add(V::load(b.as_ptr()))
                .store(r.as_mut_ptr())
        };
    }
    for (r, &b) in rows.into_remainder().iter_mut().zip(biases.remainder()) {
        *r += b;
    }
}

/// `plane[i] += b`.
///
/// # Safety
/// The CPU supports `V`'s ISA.
#[inline(always)]
unsafe fn add_scalar<V: F32x>(plane: &mut [f32], b: f32) {
    // SAFETY: forwarded ISA guarantee.
    let vb = unsafe { V::splat(b) };
    let mut chunks = plane.chunks_exact_mut(V::LANES);
    for c in &mut chunks {
        // SAFETY: the chunk holds exactly LANES floats; forwarded ISA guarantee.
        unsafe { V::load(c.as_ptr()).add(vb).store(c.as_mut_ptr()) };
    }
    for v in chunks.into_remainder() {
        *v += b;
    }
}

/// # Safety
/// The CPU supports `V`'s ISA; `grad_output.len() == batch * grad_bias.len() * spatial`.
#[inline(always)]
pub(super) unsafe fn backward<V: F32x>(
    grad_output: &[f32],
    grad_bias: &mut [f32],
    batch: usize,
    spatial: usize,
) {
    let channels = grad_bias.len();
    grad_bias.fill(0.0);
    if grad_output.is_empty() {
        return;
    }
    if spatial == 1 {
        // [batch, channels]: sum the rows, in batch order (as the reference).
        for row in grad_output.chunks_exact(channels) {
            // SAFETY: forwarded ISA guarantee; the rows have grad_bias's length.
            unsafe { add_row::<V>(grad_bias, row) };
        }
        return;
    }
    let w = V::LANES;
    for (c, gb) in grad_bias.iter_mut().enumerate() {
        // Four accumulators, so consecutive additions do not wait on each other.
        // SAFETY: forwarded ISA guarantee.
        let mut acc = unsafe { [V::zero(); 4] };
        let mut tail = 0.0f32;
        for n in 0..batch {
            let plane = &grad_output[(n * channels + c) * spatial..][..spatial];
            let mut quads = plane.chunks_exact(4 * w);
            for q in &mut quads {
                // SAFETY: the chunk holds exactly 4 LANES floats; forwarded ISA guarantee.
                unsafe {
                    for (j, a) in acc.iter_mut().enumerate() {
                        *a = a.add(V::load(q.as_ptr().add(w * j)));
                    }
                }
            }
            let mut singles = quads.remainder().chunks_exact(w);
            for s in &mut singles {
                // SAFETY: the chunk holds exactly LANES floats; forwarded ISA guarantee.
                unsafe { acc[0] = acc[0].add(V::load(s.as_ptr())) };
            }
            tail += singles.remainder().iter().sum::<f32>();
        }
        // SAFETY: forwarded ISA guarantee.
        *gb = unsafe { acc[0].add(acc[1]).add(acc[2].add(acc[3])).sum() } + tail;
    }
}
