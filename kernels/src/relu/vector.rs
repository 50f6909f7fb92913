//! ReLU forward and backward written once over [`F32x`]: compare-and-clear selections, so every
//! ISA gives the reference's bits. Full vectors, then the reference on the tail.

use super::scalar::{relu, relu_grad};
use crate::simd::F32x;

/// `x < 0 ? +0 : x` per lane: clear the bits where `x < 0` (false for NaN and -0.0).
///
/// # Safety
/// The CPU supports `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn relu_lanes<V: F32x>(x: V) -> V {
    // SAFETY: register operations of `V`; the caller guarantees its ISA.
    unsafe { x.clear_where(x.lt(V::zero())) }
}

/// # Safety
/// The CPU supports `V`'s ISA; `output.len() == input.len()`.
#[inline(always)]
pub(super) unsafe fn forward<V: F32x>(input: &[f32], output: &mut [f32]) {
    let mut outs = output.chunks_exact_mut(V::LANES);
    let mut ins = input.chunks_exact(V::LANES);
    for (o, i) in (&mut outs).zip(&mut ins) {
        // SAFETY: both chunks hold exactly LANES floats; the caller guarantees the ISA.
        unsafe { relu_lanes(V::load(i.as_ptr())).store(o.as_mut_ptr()) };
    }
    for (o, &i) in outs.into_remainder().iter_mut().zip(ins.remainder()) {
        *o = relu(i);
    }
}

/// # Safety
/// The CPU supports `V`'s ISA.
#[inline(always)]
pub(super) unsafe fn forward_in_place<V: F32x>(x: &mut [f32]) {
    let mut chunks = x.chunks_exact_mut(V::LANES);
    for c in &mut chunks {
        // SAFETY: the chunk holds exactly LANES floats; the caller guarantees the ISA.
        unsafe { relu_lanes(V::load(c.as_ptr())).store(c.as_mut_ptr()) };
    }
    for v in chunks.into_remainder() {
        *v = relu(*v);
    }
}

/// # Safety
/// The CPU supports `V`'s ISA; all three slices have the same length.
#[inline(always)]
pub(super) unsafe fn backward<V: F32x>(
    output: &[f32],
    grad_output: &[f32],
    grad_input: &mut [f32],
) {
    let mut gis = grad_input.chunks_exact_mut(V::LANES);
    let mut ys = output.chunks_exact(V::LANES);
    let mut gs = grad_output.chunks_exact(V::LANES);
    for ((gi, y), g) in (&mut gis).zip(&mut ys).zip(&mut gs) {
        // SAFETY: every chunk holds exactly LANES floats; the caller guarantees the ISA.
        unsafe {
            // Zero where output <= 0 (false for NaN, so NaN passes the gradient).
            let blocked = V::load(y.as_ptr()).le(V::zero());
            V::load(g.as_ptr())
                .clear_where(blocked)
                .store(gi.as_mut_ptr());
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
