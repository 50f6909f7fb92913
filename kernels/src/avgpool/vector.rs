//! Average pooling's 2x2 stride-2 path written once over [`F32x`], on max pooling's chunk walk
//! and loads (other windows run the reference). It adds in the reference's order and divides,
//! so it gives the reference's bits.

use super::Pool2dShape;
use crate::maxpool::vector::{for_each_chunk, load, load_pairs, store, store_pairs};
use crate::simd::F32x;

/// # Safety
/// The CPU supports `V`'s ISA; the lengths match `shape` (checked by the caller).
#[inline(always)]
pub(super) unsafe fn forward_2x2_stride_2<V: F32x>(
    shape: &Pool2dShape,
    input: &[f32],
    output: &mut [f32],
) {
    let (in_w, ow) = (shape.in_w, shape.out_w());
    let (in_plane, out_plane) = (shape.in_h * in_w, shape.out_h() * ow);
    for_each_chunk::<V>(shape, |p, oy, ox0, valid| {
        let x = &input[p * in_plane..][..in_plane];
        let start = 2 * oy * in_w + 2 * ox0;
        let o = p * out_plane + oy * ow + ox0;
        // SAFETY: rows 2oy and 2oy+1 hold the 2 * valid columns read and the output chunk
        // holds `valid` elements.
        unsafe {
            let (top_even, top_odd) = load_pairs::<V>(&x[start..], 2 * valid);
            let (bottom_even, bottom_odd) = load_pairs::<V>(&x[start + in_w..], 2 * valid);
            // ((((0 + a) + b) + c) + d) / 4: the reference's order, so the same bits.
            let sum = V::zero().add(top_even).add(top_odd);
            let sum = sum.add(bottom_even).add(bottom_odd);
            store(&mut output[o..o + valid], valid, sum.div(V::splat(4.0)));
        }
    });
}

/// # Safety
/// As [`forward_2x2_stride_2`].
#[inline(always)]
pub(super) unsafe fn backward_2x2_stride_2<V: F32x>(
    shape: &Pool2dShape,
    grad_output: &[f32],
    grad_input: &mut [f32],
) {
    let (in_w, ow) = (shape.in_w, shape.out_w());
    let (in_plane, out_plane) = (shape.in_h * in_w, shape.out_h() * ow);
    // Every window element is written below; an odd last row or column is not in any window.
    if shape.in_h % 2 == 1 || in_w % 2 == 1 {
        grad_input.fill(0.0);
    }
    for_each_chunk::<V>(shape, |p, oy, ox0, valid| {
        let gi = &mut grad_input[p * in_plane..][..in_plane];
        let start = 2 * oy * in_w + 2 * ox0;
        let o = p * out_plane + oy * ow + ox0;
        // SAFETY: the chunk's `valid` outputs and the 2 * valid columns of rows 2oy and 2oy+1
        // it writes are in bounds.
        unsafe {
            let g: V = load(&grad_output[o..o + valid], valid);
            // 0 + g / 4, as the reference's zero-then-add.
            let share = V::zero().add(g.div(V::splat(4.0)));
            store_pairs(&mut gi[start..], 2 * valid, share, share);
            store_pairs(&mut gi[start + in_w..], 2 * valid, share, share);
        }
    });
}
