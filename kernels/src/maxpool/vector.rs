//! Max pooling's 2x2 stride-2 path written once over [`F32x`] (other windows run the
//! reference): `LANES` outputs of a row at a time, their windows read as two de-interleaved row
//! pairs, the running maximum and its position kept per lane. Also the chunk walk, loads and
//! stores that average pooling's 2x2 path shares.

use super::scalar::check_in_window;
use super::Pool2dShape;
use crate::simd::F32x;

/// Calls `chunk(plane, oy, ox0, valid)` for every chunk of up to `LANES` outputs of a row of
/// outputs, for every plane, in output order.
#[inline(always)]
pub(crate) fn for_each_chunk<V: F32x>(
    shape: &Pool2dShape,
    mut chunk: impl FnMut(usize, usize, usize, usize),
) {
    let (oh, ow) = (shape.out_h(), shape.out_w());
    for p in 0..shape.batch * shape.channels {
        for oy in 0..oh {
            for ox0 in (0..ow).step_by(V::LANES) {
                chunk(p, oy, ox0, (ow - ox0).min(V::LANES));
            }
        }
    }
}

/// The first `count <= LANES` floats of `src` (lanes past it are 0).
///
/// # Safety
/// The CPU supports `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn load<V: F32x>(src: &[f32], count: usize) -> V {
    assert!(count <= V::LANES && src.len() >= count);
    // SAFETY: a full load only when LANES floats are present, else the first `count`.
    unsafe {
        if count == V::LANES {
            V::load(src.as_ptr())
        } else {
            V::load_first(src.as_ptr(), count)
        }
    }
}

/// Stores the first `count <= LANES` lanes of `v`.
///
/// # Safety
/// The CPU supports `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn store<V: F32x>(dst: &mut [f32], count: usize, v: V) {
    assert!(count <= V::LANES && dst.len() >= count);
    // SAFETY: as in `load`, for stores.
    unsafe {
        if count == V::LANES {
            v.store(dst.as_mut_ptr())
        } else {
            v.store_first(dst.as_mut_ptr(), count)
        }
    }
}

/// `count <= 2 LANES` floats of `src` split into even and odd positions (lanes past are 0).
///
/// # Safety
/// The CPU supports `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn load_pairs<V: F32x>(src: &[f32], count: usize) -> (V, V) {
    assert!(count <= 2 * V::LANES && src.len() >= count);
    // SAFETY: `load_pairs` touches only the first `count` floats, which `src` holds.
    unsafe { V::load_pairs(src.as_ptr(), count) }
}

/// Stores `[e0, o0, e1, o1, ..]`, its first `count <= 2 LANES` floats.
///
/// # Safety
/// The CPU supports `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn store_pairs<V: F32x>(dst: &mut [f32], count: usize, even: V, odd: V) {
    assert!(count <= 2 * V::LANES && dst.len() >= count);
    // SAFETY: `store_pairs` writes only the first `count` floats, which `dst` holds.
    unsafe { V::store_pairs(even, odd, dst.as_mut_ptr(), count) }
}

/// One step of the scan: `v` (at index `at`) replaces the running maximum where it is greater
/// or NaN (the reference's `takes_over`).
///
/// # Safety
/// The CPU supports `V`'s ISA.
#[inline(always)]
unsafe fn scan<V: F32x>(best: &mut V, best_at: &mut V::Index, v: V, at: V::Index) {
    // SAFETY: register operations of `V`.
    unsafe {
        let take = V::mask_or(v.gt(*best), v.is_nan());
        *best = V::select(take, v, *best);
        *best_at = V::index_select(take, at, *best_at);
    }
}

/// # Safety
/// The CPU supports `V`'s ISA; the lengths match `shape` and an input plane has at most
/// `i32::MAX` elements (checked by the caller).
#[inline(always)]
pub(super) unsafe fn forward_2x2_stride_2<V: F32x>(
    shape: &Pool2dShape,
    input: &[f32],
    output: &mut [f32],
    argmax: &mut [u32],
) {
    let (in_w, ow) = (shape.in_w, shape.out_w());
    let (in_plane, out_plane) = (shape.in_h * in_w, shape.out_h() * ow);
    for_each_chunk::<V>(shape, |p, oy, ox0, valid| {
        let x = &input[p * in_plane..][..in_plane];
        let start = 2 * oy * in_w + 2 * ox0;
        let o = p * out_plane + oy * ow + ox0;
        // SAFETY: the window rows 2oy and 2oy+1 exist and hold the 2 * valid columns read; the
        // output chunk holds `valid` elements. Positions fit in u32: a plane does (checked).
        unsafe {
            let (top_even, top_odd) = load_pairs::<V>(&x[start..], 2 * valid);
            let (bottom_even, bottom_odd) = load_pairs::<V>(&x[start + in_w..], 2 * valid);
            let at = V::index_ramp2(start as u32);
            let at_below = V::index_add(at, in_w as u32);
            let (mut best, mut best_at) = (top_even, at);
            scan(&mut best, &mut best_at, top_odd, V::index_add(at, 1));
            scan(&mut best, &mut best_at, bottom_even, at_below);
            scan(
                &mut best,
                &mut best_at,
                bottom_odd,
                V::index_add(at_below, 1),
            );
            store(&mut output[o..o + valid], valid, best);
            let idx = &mut argmax[o..o + valid];
            V::index_store_first(best_at, idx.as_mut_ptr(), valid);
        }
    });
}

/// # Safety
/// As [`forward_2x2_stride_2`].
#[inline(always)]
pub(super) unsafe fn backward_2x2_stride_2<V: F32x>(
    shape: &Pool2dShape,
    grad_output: &[f32],
    argmax: &[u32],
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
        let idx = &argmax[o..o + valid];
        // SAFETY: the chunk's `valid` outputs and indices, and the 2 * valid columns of rows
        // 2oy and 2oy+1 it writes, are in bounds.
        unsafe {
            let g: V = load(&grad_output[o..o + valid], valid);
            let a = V::index_load_first(idx.as_ptr(), valid);
            let at = V::index_ramp2(start as u32);
            let at_below = V::index_add(at, in_w as u32);
            let hits = [
                V::index_eq(a, at),
                V::index_eq(a, V::index_add(at, 1)),
                V::index_eq(a, at_below),
                V::index_eq(a, V::index_add(at_below, 1)),
            ];
            let any = V::mask_or(V::mask_or(hits[0], hits[1]), V::mask_or(hits[2], hits[3]));
            if !V::mask_all_first(any, valid) {
                // Some index is outside its window: let the reference's check name the first.
                for (i, &a) in idx.iter().enumerate() {
                    check_in_window(shape, o + i, a as usize, oy, ox0 + i);
                }
            }
            // 0 + (g or 0), as the reference's zero-then-add (so -0.0 becomes +0.0 there too).
            let zero = V::zero();
            let put = |hit: V::Mask| zero.add(g.keep_where(hit));
            store_pairs(&mut gi[start..], 2 * valid, put(hits[0]), put(hits[1]));
            store_pairs(
                &mut gi[start + in_w..],
                2 * valid,
                put(hits[2]),
                put(hits[3]),
            );
        }
    });
}
