//! Average pooling's 2x2 stride-2 path written once over [`F32x`], on max pooling's chunk walk
//! and loads (other windows run the reference). It adds in the reference's order and divides,
//! so it gives the reference's bits.

use super::{scalar, Pool2dShape};
use crate::maxpool::vector::store_windows;
use crate::maxpool::vector::{clear_uncovered, for_each_chunk, load, load_windows, store};
use crate::simd::F32x;

/// The average-pooling forward: the 2x2 stride-2 path, the reference for other windows.
///
/// # Safety
/// The CPU supports `V`'s ISA; the lengths match `shape` (checked by the caller).
#[inline(always)]
pub(super) unsafe fn forward<V: F32x>(shape: &Pool2dShape, input: &[f32], output: &mut [f32]) {
    if !shape.is_2x2_stride_2() {
        return scalar::forward(shape, input, output);
    }
    for_each_chunk::<V>(shape, |k| {
        // SAFETY: the chunk's windows and outputs are in bounds (the slices check it).
        unsafe {
            let [a, b, c, d] = load_windows::<V>(&input[k.plane.clone()], &k);
            // ((((0 + a) + b) + c) + d) / 4: the reference's order, so the same bits.
            let sum = V::zero().add(a).add(b).add(c).add(d);
            store(&mut output[k.out], k.valid, sum.div(V::splat(4.0)));
        }
    });
}

/// The average-pooling backward: the 2x2 stride-2 path, the reference for other windows.
///
/// # Safety
/// As [`forward`].
#[inline(always)]
pub(super) unsafe fn backward<V: F32x>(
    shape: &Pool2dShape,
    grad_output: &[f32],
    grad_input: &mut [f32],
) {
    if !shape.is_2x2_stride_2() {
        return scalar::backward(shape, grad_output, grad_input);
    }
    clear_uncovered(shape, grad_input);
    for_each_chunk::<V>(shape, |k| {
        // SAFETY: the chunk's outputs and windows are in bounds (the slices check it).
        unsafe {
            let g: V = load(&grad_output[k.out.clone()], k.valid);
            // 0 + g / 4, as the reference's zero-then-add.
            let share = V::zero().add(g.div(V::splat(4.0)));
            store_windows(&mut grad_input[k.plane.clone()], &k, [share; 4]);
        }
    });
}
