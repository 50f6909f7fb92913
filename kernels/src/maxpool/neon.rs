//! Max pooling on NEON: a vector path for 2x2 windows with stride 2 (4 outputs at a time, with
//! the de-interleaving `ld2`), the reference loop otherwise. Also the loads and stores that
//! average pooling's 2x2 path shares.

use super::scalar::check_in_window;
use super::Pool2dShape;
use core::arch::aarch64::*;

/// # Safety
/// The CPU must support NEON; the lengths match `shape` and an input plane has at most
/// `i32::MAX` elements (checked by the caller).
#[target_feature(enable = "neon")]
pub(super) unsafe fn forward(
    shape: &Pool2dShape,
    input: &[f32],
    output: &mut [f32],
    argmax: &mut [u32],
) {
    if shape.is_2x2_stride_2() {
        // SAFETY: NEON is enabled on this function; the caller checked the lengths.
        unsafe { forward_2x2_stride_2(shape, input, output, argmax) }
    } else {
        super::scalar::forward(shape, input, output, argmax);
    }
}

/// # Safety
/// As [`forward`].
#[target_feature(enable = "neon")]
pub(super) unsafe fn backward(
    shape: &Pool2dShape,
    grad_output: &[f32],
    argmax: &[u32],
    grad_input: &mut [f32],
) {
    if shape.is_2x2_stride_2() {
        // SAFETY: NEON is enabled on this function; the caller checked the lengths.
        unsafe { backward_2x2_stride_2(shape, grad_output, argmax, grad_input) }
    } else {
        super::scalar::backward(shape, grad_output, argmax, grad_input);
    }
}

/// Calls `chunk(plane, oy, ox0, valid)` for every chunk of up to 4 outputs of a row of
/// outputs, for every plane, in output order.
#[inline(always)]
pub(crate) fn for_each_chunk(
    shape: &Pool2dShape,
    mut chunk: impl FnMut(usize, usize, usize, usize),
) {
    let (oh, ow) = (shape.out_h(), shape.out_w());
    for p in 0..shape.batch * shape.channels {
        for oy in 0..oh {
            for ox0 in (0..ow).step_by(4) {
                chunk(p, oy, ox0, (ow - ox0).min(4));
            }
        }
    }
}

/// Loads `count <= 8` floats from `src` (holding at least `count`) split into even and odd
/// positions; lanes past `count` are 0. A partial chunk is staged through a stack buffer.
#[inline(always)]
pub(crate) unsafe fn load_pairs(src: &[f32], count: usize) -> float32x4x2_t {
    assert!(count <= 8 && src.len() >= count);
    // SAFETY: `ld2` reads 8 floats: from `src` only when it holds 8, else from the buffer.
    // NEON is enabled by the caller.
    unsafe {
        if count == 8 {
            vld2q_f32(src.as_ptr())
        } else {
            let mut staged = [0.0f32; 8];
            staged[..count].copy_from_slice(&src[..count]);
            vld2q_f32(staged.as_ptr())
        }
    }
}

/// The inverse of [`load_pairs`]: stores the first `count <= 8` floats of
/// `[e0, o0, e1, o1, ..]` to `dst`.
#[inline(always)]
pub(crate) unsafe fn store_pairs(
    dst: &mut [f32],
    count: usize,
    even: float32x4_t,
    odd: float32x4_t,
) {
    assert!(count <= 8 && dst.len() >= count);
    // SAFETY: `st2` writes 8 floats: to `dst` only when it holds 8, else to the buffer.
    // NEON is enabled by the caller.
    unsafe {
        if count == 8 {
            vst2q_f32(dst.as_mut_ptr(), float32x4x2_t(even, odd));
        } else {
            let mut staged = [0.0f32; 8];
            vst2q_f32(staged.as_mut_ptr(), float32x4x2_t(even, odd));
            dst[..count].copy_from_slice(&staged[..count]);
        }
    }
}

/// Loads `count <= 4` floats (lanes past it are 0).
#[inline(always)]
pub(crate) unsafe fn load_f32(src: &[f32], count: usize) -> float32x4_t {
    assert!(count <= 4 && src.len() >= count);
    let mut staged = [0.0f32; 4];
    let from = if count == 4 {
        src
    } else {
        staged[..count].copy_from_slice(&src[..count]);
        &staged[..]
    };
    // SAFETY: `from` holds 4 floats. NEON is enabled by the caller.
    unsafe { vld1q_f32(from.as_ptr()) }
}

/// Stores the first `count <= 4` lanes of `v`.
#[inline(always)]
pub(crate) unsafe fn store_f32(dst: &mut [f32], count: usize, v: float32x4_t) {
    assert!(count <= 4 && dst.len() >= count);
    let mut staged = [0.0f32; 4];
    // SAFETY: each store writes 4 floats to a slice that holds 4. NEON is enabled by the caller.
    unsafe {
        if count == 4 {
            vst1q_f32(dst.as_mut_ptr(), v);
        } else {
            vst1q_f32(staged.as_mut_ptr(), v);
            dst[..count].copy_from_slice(&staged[..count]);
        }
    }
}

/// The index vector `[start, start + 2, start + 4, start + 6]` of a chunk's window corners.
#[inline(always)]
unsafe fn corners(start: usize) -> uint32x4_t {
    const TWICE: [u32; 4] = [0, 2, 4, 6];
    // SAFETY: TWICE holds 4 u32. NEON is enabled by the caller. `start` fits (checked plane).
    unsafe { vaddq_u32(vdupq_n_u32(start as u32), vld1q_u32(TWICE.as_ptr())) }
}

/// One step of the scan: `v` (at index `at`) replaces the running maximum where it is greater or
/// NaN (the reference's `takes_over`).
#[inline(always)]
unsafe fn scan(best: &mut float32x4_t, best_at: &mut uint32x4_t, v: float32x4_t, at: uint32x4_t) {
    // SAFETY: NEON is enabled by the caller.
    unsafe {
        let greater = vcgtq_f32(v, *best);
        let nan = vmvnq_u32(vceqq_f32(v, v));
        let take = vorrq_u32(greater, nan);
        *best = vbslq_f32(take, v, *best);
        *best_at = vbslq_u32(take, at, *best_at);
    }
}

#[inline(always)]
unsafe fn forward_2x2_stride_2(
    shape: &Pool2dShape,
    input: &[f32],
    output: &mut [f32],
    argmax: &mut [u32],
) {
    let (in_w, ow) = (shape.in_w, shape.out_w());
    let (in_plane, out_plane) = (shape.in_h * in_w, shape.out_h() * ow);
    for_each_chunk(shape, |p, oy, ox0, valid| {
        let x = &input[p * in_plane..][..in_plane];
        let start = 2 * oy * in_w + 2 * ox0;
        let o = p * out_plane + oy * ow + ox0;
        // SAFETY: NEON is enabled by the caller; the slices passed hold the counts given.
        unsafe {
            let top = load_pairs(&x[start..], 2 * valid);
            let bottom = load_pairs(&x[start + in_w..], 2 * valid);
            let at = corners(start);
            let one = vdupq_n_u32(1);
            let at_below = vaddq_u32(at, vdupq_n_u32(in_w as u32));
            let (mut best, mut best_at) = (top.0, at);
            scan(&mut best, &mut best_at, top.1, vaddq_u32(at, one));
            scan(&mut best, &mut best_at, bottom.0, at_below);
            scan(&mut best, &mut best_at, bottom.1, vaddq_u32(at_below, one));
            store_f32(&mut output[o..o + valid], valid, best);
            let mut staged = [0u32; 4];
            vst1q_u32(staged.as_mut_ptr(), best_at);
            argmax[o..o + valid].copy_from_slice(&staged[..valid]);
        }
    });
}

#[inline(always)]
unsafe fn backward_2x2_stride_2(
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
    for_each_chunk(shape, |p, oy, ox0, valid| {
        let gi = &mut grad_input[p * in_plane..][..in_plane];
        let start = 2 * oy * in_w + 2 * ox0;
        let o = p * out_plane + oy * ow + ox0;
        let idx = &argmax[o..o + valid];
        // SAFETY: NEON is enabled by the caller; the slices passed hold the counts given.
        unsafe {
            let g = load_f32(&grad_output[o..o + valid], valid);
            let mut staged = [u32::MAX; 4];
            staged[..valid].copy_from_slice(idx);
            let a = vld1q_u32(staged.as_ptr());
            let at = corners(start);
            let one = vdupq_n_u32(1);
            let at_below = vaddq_u32(at, vdupq_n_u32(in_w as u32));
            let hits = [
                vceqq_u32(a, at),
                vceqq_u32(a, vaddq_u32(at, one)),
                vceqq_u32(a, at_below),
                vceqq_u32(a, vaddq_u32(at_below, one)),
            ];
            let any = vorrq_u32(vorrq_u32(hits[0], hits[1]), vorrq_u32(hits[2], hits[3]));
            let mut matched = [0u32; 4];
            vst1q_u32(matched.as_mut_ptr(), any);
            if matched[..valid].contains(&0) {
                // Some index is outside its window: let the reference's check name the first.
                for (i, &a) in idx.iter().enumerate() {
                    check_in_window(shape, o + i, a as usize, oy, ox0 + i);
                }
            }
            // 0 + (g or 0), as the reference's zero-then-add (so -0.0 becomes +0.0 there too).
            let zero = vdupq_n_f32(0.0);
            let g_bits = vreinterpretq_u32_f32(g);
            let put =
                |hit: uint32x4_t| vaddq_f32(zero, vreinterpretq_f32_u32(vandq_u32(g_bits, hit)));
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
