//! Max pooling's 2x2 stride-2 path written once over [`F32x`] (other windows run the
//! reference): `LANES` outputs of a row at a time, their windows read as two de-interleaved row
//! pairs, the running maximum and its position kept per lane. With `RELU` the forward pools
//! `relu(input)` (the raw window's scan, then the one case where the ReLU changes its result:
//! no positive element and no NaN, where the ReLU'd window's scan keeps its first element) and
//! the backward masks each output's gradient by its pooled value, so the pair is the chain
//! ReLU -> max-pool without the ReLU's output in memory. Loads and stores take whole vectors
//! where the slices hold them (the lanes past a chunk's outputs are never kept, or are
//! overwritten by later chunks). Also the chunk walk, loads and stores
//! that average pooling's 2x2 path shares.

use super::scalar::{self, check_in_window};
use super::Pool2dShape;
use crate::relu::vector::relu_lanes;
use crate::simd::F32x;
use core::ops::Range;

/// Up to `LANES` outputs of one row of outputs of a 2x2 stride-2 pooling.
pub(crate) struct Chunk {
    /// The input plane, as a range of the input.
    pub plane: Range<usize>,
    /// The first window's top-left element within the plane (row `2 oy`, column `2 ox0`).
    pub top: usize,
    /// The element below it.
    pub bottom: usize,
    /// The outputs, as a range of the output.
    pub out: Range<usize>,
    /// `out.len()`.
    pub valid: usize,
}

/// Calls `chunk` for every chunk of up to `LANES` outputs of a row of outputs, for every
/// plane, in output order.
#[inline(always)]
pub(crate) fn for_each_chunk<V: F32x>(shape: &Pool2dShape, chunk: impl FnMut(Chunk)) {
    chunks_in_order::<V, false>(shape, chunk);
}

/// As [`for_each_chunk`], but with `TAIL_FIRST` each row's last chunk first, then the rest in
/// order: a whole-vector store past the last chunk's windows then lands on elements (the start
/// of the bottom row, the next row pair) that later chunks write.
#[inline(always)]
fn chunks_in_order<V: F32x, const TAIL_FIRST: bool>(
    shape: &Pool2dShape,
    mut chunk: impl FnMut(Chunk),
) {
    let (in_w, oh, ow) = (shape.in_w, shape.out_h(), shape.out_w());
    let (in_plane, out_plane) = (shape.in_h * in_w, oh * ow);
    let last = ow.saturating_sub(1) / V::LANES * V::LANES;
    let (head, rest) = match TAIL_FIRST && ow > 0 {
        true => (last..last + 1, last),
        false => (0..0, ow),
    };
    for p in 0..shape.batch * shape.channels {
        for oy in 0..oh {
            for ox0 in head.clone().chain((0..rest).step_by(V::LANES)) {
                let valid = (ow - ox0).min(V::LANES);
                let top = 2 * oy * in_w + 2 * ox0;
                let o = p * out_plane + oy * ow + ox0;
                chunk(Chunk {
                    plane: p * in_plane..(p + 1) * in_plane,
                    top,
                    bottom: top + in_w,
                    out: o..o + valid,
                    valid,
                });
            }
        }
    }
}

/// The chunk's windows from its input plane `x`: `[top even, top odd, bottom even, bottom
/// odd]` columns (lanes past `valid` are 0).
///
/// # Safety
/// The CPU supports `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn load_windows<V: F32x>(x: &[f32], k: &Chunk) -> [V; 4] {
    // SAFETY: forwarded contract; `load_pairs` checks the slices hold what it reads.
    unsafe {
        let (top_even, top_odd) = load_pairs::<V>(&x[k.top..], 2 * k.valid);
        let (bottom_even, bottom_odd) = load_pairs::<V>(&x[k.bottom..], 2 * k.valid);
        [top_even, top_odd, bottom_even, bottom_odd]
    }
}

/// As [`load_windows`], but reading whole vectors where `x` (the input from the chunk's
/// plane on) holds them: lanes past `valid` then hold the next elements, not 0. For callers
/// that never keep those lanes.
///
/// # Safety
/// The CPU supports `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn load_windows_wide<V: F32x>(x: &[f32], k: &Chunk) -> [V; 4] {
    let count = |at: usize| (2 * V::LANES).min(x.len().saturating_sub(at));
    // SAFETY: forwarded contract; `load_pairs` checks the slices hold what it reads, and
    // `count` is at least `2 valid` as the chunk's windows lie in its plane.
    unsafe {
        let (top_even, top_odd) = load_pairs::<V>(&x[k.top..], count(k.top));
        let (bottom_even, bottom_odd) = load_pairs::<V>(&x[k.bottom..], count(k.bottom));
        [top_even, top_odd, bottom_even, bottom_odd]
    }
}

/// Writes the chunk's windows into its gradient plane `gi`, in the order of [`load_windows`].
///
/// # Safety
/// The CPU supports `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn store_windows<V: F32x>(gi: &mut [f32], k: &Chunk, windows: [V; 4]) {
    let [top_even, top_odd, bottom_even, bottom_odd] = windows;
    // SAFETY: forwarded contract; `store_pairs` checks the slices hold what it writes.
    unsafe {
        store_pairs(&mut gi[k.top..], 2 * k.valid, top_even, top_odd);
        store_pairs(&mut gi[k.bottom..], 2 * k.valid, bottom_even, bottom_odd);
    }
}

/// As [`store_windows`], but writing whole vectors where `gi` (the gradient from the chunk's
/// plane on) holds them, so the lanes past `valid` overwrite the elements after the windows.
/// For callers whose later chunks write those elements again.
///
/// # Safety
/// The CPU supports `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn store_windows_wide<V: F32x>(gi: &mut [f32], k: &Chunk, windows: [V; 4]) {
    let [top_even, top_odd, bottom_even, bottom_odd] = windows;
    let count = |gi: &[f32], at: usize| (2 * V::LANES).min(gi.len() - at);
    // SAFETY: forwarded contract; `store_pairs` checks the slices hold what it writes.
    unsafe {
        let n = count(gi, k.top);
        store_pairs(&mut gi[k.top..], n, top_even, top_odd);
        let n = count(gi, k.bottom);
        store_pairs(&mut gi[k.bottom..], n, bottom_even, bottom_odd);
    }
}

/// Zeroes `grad_input` when the 2x2 windows leave an odd last row or column out (the
/// backward passes write every element inside a window).
pub(crate) fn clear_uncovered(shape: &Pool2dShape, grad_input: &mut [f32]) {
    if shape.in_h % 2 == 1 || shape.in_w % 2 == 1 {
        grad_input.fill(0.0);
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

/// The max-pooling forward (of `relu(input)` with `RELU`): the 2x2 stride-2 path, the
/// reference for other windows.
///
/// # Safety
/// The CPU supports `V`'s ISA; the lengths match `shape` and an input plane has at most
/// `i32::MAX` elements (checked by the caller).
#[inline(always)]
pub(super) unsafe fn forward<V: F32x, const RELU: bool>(
    shape: &Pool2dShape,
    input: &[f32],
    output: &mut [f32],
    argmax: &mut [u32],
) {
    if !shape.is_2x2_stride_2() {
        return match RELU {
            true => scalar::relu_forward(shape, input, output, argmax),
            false => scalar::forward(shape, input, output, argmax),
        };
    }
    for_each_chunk::<V>(shape, |k| {
        // SAFETY: the chunk's windows and outputs are in bounds (the slices check it).
        // Positions fit in u32: a plane does (checked).
        unsafe {
            let windows = load_windows_wide::<V>(&input[k.plane.start..], &k);
            let [top_even, top_odd, bottom_even, bottom_odd] = windows;
            let at = V::index_ramp2(k.top as u32);
            let at_below = V::index_add(at, shape.in_w as u32);
            let (mut best, mut best_at) = (top_even, at);
            scan(&mut best, &mut best_at, top_odd, V::index_add(at, 1));
            scan(&mut best, &mut best_at, bottom_even, at_below);
            scan(
                &mut best,
                &mut best_at,
                bottom_odd,
                V::index_add(at_below, 1),
            );
            if RELU {
                // The scan of the raw window equals the scan of its ReLU wherever the window
                // holds a NaN (the last NaN wins either way) or a positive maximum (the first
                // occurrence wins either way). Where every element is <= 0, the ReLU's window
                // is all zeros, whose scan keeps the first element: `relu(top_even)` at `at`.
                let none_positive = best.le(V::zero());
                best = V::select(none_positive, relu_lanes(top_even), best);
                best_at = V::index_select(none_positive, at, best_at);
            }
            // Whole vectors where the output holds them: the lanes past `valid` land on
            // outputs of later chunks, which overwrite them (chunks run in output order).
            let wide = V::LANES.min(output.len() - k.out.start);
            store(&mut output[k.out.start..], wide, best);
            let idx = &mut argmax[k.out.start..][..wide];
            V::index_store_first(best_at, idx.as_mut_ptr(), wide);
        }
    });
}

/// Runs the reference's window check on every output in order (it panics at the first whose
/// index lies outside its window).
#[cold]
#[track_caller]
fn check_every_window(shape: &Pool2dShape, argmax: &[u32]) {
    let (oh, ow) = (shape.out_h(), shape.out_w());
    for (o, &a) in argmax.iter().enumerate() {
        let (oy, ox) = (o / ow % oh, o % ow);
        check_in_window(shape, o, a as usize, oy, ox);
    }
}

/// The max-pooling backward: the 2x2 stride-2 path, the reference for other windows. With
/// `RELU`, `pooled` is the forward's output (of `relu(input)`) and an output's gradient
/// reaches its argmax only where `pooled > 0` (or NaN), the ReLU's mask at that element;
/// without, `pooled` is not read.
///
/// # Safety
/// As [`forward`]; with `RELU`, `pooled` is as long as `grad_output`.
#[inline(always)]
pub(super) unsafe fn backward<V: F32x, const RELU: bool>(
    shape: &Pool2dShape,
    grad_output: &[f32],
    argmax: &[u32],
    pooled: &[f32],
    grad_input: &mut [f32],
) {
    if !shape.is_2x2_stride_2() {
        return match RELU {
            true => scalar::relu_backward(shape, grad_output, argmax, pooled, grad_input),
            false => scalar::backward(shape, grad_output, argmax, grad_input),
        };
    }
    clear_uncovered(shape, grad_input);
    // Whole-vector stores of a chunk's windows are safe when every element they spill onto is
    // written again later: with even sides every element lies in a window, and with each
    // row's last chunk first (the only one short of LANES) a top row's spill lands on the start
    // of the bottom row, which this chunk or the row's first chunk writes next, a bottom row's
    // on the next row pair (or plane), which later chunks write.
    let spill = shape.in_w.is_multiple_of(2) && shape.in_h.is_multiple_of(2);
    chunks_in_order::<V, true>(shape, |k| {
        // Whole vectors where the slices hold them; the lanes past `valid` are never kept.
        let wide = V::LANES.min(grad_output.len() - k.out.start);
        let idx = &argmax[k.out.start..][..wide];
        // SAFETY: the chunk's outputs, indices and windows are in bounds (the slices check it).
        unsafe {
            let mut g: V = load(&grad_output[k.out.start..], wide);
            if RELU {
                // The ReLU backward's rule (`relu_grad`): no gradient where the output <= 0.
                let y: V = load(&pooled[k.out.start..], wide);
                g = g.clear_where(y.le(V::zero()));
            }
            let a = V::index_load_first(idx.as_ptr(), wide);
            let at = V::index_ramp2(k.top as u32);
            let at_below = V::index_add(at, shape.in_w as u32);
            let hits = [
                V::index_eq(a, at),
                V::index_eq(a, V::index_add(at, 1)),
                V::index_eq(a, at_below),
                V::index_eq(a, V::index_add(at_below, 1)),
            ];
            let any = V::mask_or(V::mask_or(hits[0], hits[1]), V::mask_or(hits[2], hits[3]));
            if !V::mask_all_first(any, k.valid) {
                // Some index is outside its window: let the reference's check name the first
                // in output order (chunks do not run in that order).
                check_every_window(shape, argmax);
            }
            // 0 + (g or 0), as the reference's zero-then-add (so -0.0 becomes +0.0 there too).
            let zero = V::zero();
            let mut windows = [zero; 4];
            for (w, &hit) in windows.iter_mut().zip(&hits) {
                *w = zero.add(g.keep_where(hit));
            }
            if spill {
                store_windows_wide(&mut grad_input[k.plane.start..], &k, windows);
            } else {
                store_windows(&mut grad_input[k.plane.clone()], &k, windows);
            }
        }
    });
}
