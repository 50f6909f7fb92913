//! The fused softmax-cross-entropy on NEON: the row kernel of `vector.rs` on `float32x4_t`, and
//! the block kernel (four short rows side by side, one per lane, through a stack tile), which
//! stays per ISA because its register layout does.

use super::{vector as rows, BlockArgs, RowArgs, RowStats, BLOCK_MAX_CLASSES, BLOCK_ROWS};
use crate::exp::vector;
use std::arch::aarch64::*;

/// The row kernel, the gradient into `out` (or, forward only, nowhere).
///
/// # Safety
/// The CPU must support NEON; `out` and the coefficient slices as long as `x`; `args.fix`
/// inside the row.
#[target_feature(enable = "neon")]
pub(super) unsafe fn row(x: &[f32], out: Option<&mut [f32]>, args: &RowArgs<'_>) -> RowStats {
    // SAFETY: the features are enabled on this function; lengths are the caller's contract.
    unsafe { rows::row::<float32x4_t>(x, out, args, false) }
}

/// The row kernel, the gradient over the logits.
///
/// # Safety
/// The CPU must support NEON; the coefficient slices as long as `x`; `args.fix` inside the row.
#[target_feature(enable = "neon")]
pub(super) unsafe fn row_in_place(x: &mut [f32], args: &RowArgs<'_>) -> RowStats {
    // SAFETY: as in `row`.
    unsafe { rows::row_in_place::<float32x4_t>(x, args, false) }
}

/// Four rows of `c <= BLOCK_MAX_CLASSES` logits at `x`, one per lane (element `j` of the four
/// rows loaded through a small buffer): maximum, exponentials and sums without horizontal
/// operations, one vector logarithm and one vector division. The gradient goes through a
/// stack tile, transposed back, at `out` when `WRITE` (which may equal `x`: every read
/// precedes the first write). Writes the rows' losses to `losses`.
///
/// # Safety
/// NEON; `x` readable and (when `WRITE`) `out` writable for `4 * c` floats; `1 <= c <=
/// BLOCK_MAX_CLASSES`; targets in `[0, c)`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn block4<const WRITE: bool>(
    x: *const f32,
    out: *mut f32,
    c: usize,
    target: &[i32],
    alpha: &[f32],
    weight: &[f32],
    keep: &[i32],
    losses: &mut [f32],
) {
    // SAFETY: reads x[r * c + j] with r < 4, j < c (or j = target < c), inside the 4 * c
    // floats; the tile holds BLOCK_MAX_CLASSES x 4 floats; writes out[r * c + j] likewise.
    unsafe {
        let column = |j: usize| -> float32x4_t {
            let v = [
                *x.add(j),
                *x.add(c + j),
                *x.add(2 * c + j),
                *x.add(3 * c + j),
            ];
            vld1q_f32(v.as_ptr())
        };
        let neg_inf = vdupq_n_f32(f32::NEG_INFINITY);
        let mut mx = neg_inf;
        for j in 0..c {
            mx = vmaxq_f32(mx, column(j));
        }
        let none = vceqq_f32(mx, neg_inf);
        let m = vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(mx), none));
        let mut tile = [[0.0f32; 4]; BLOCK_MAX_CLASSES];
        let mut s = vdupq_n_f32(0.0);
        for (j, lane) in tile.iter_mut().enumerate().take(c) {
            let e = vector::exp_nonpositive(vsubq_f32(column(j), m));
            vst1q_f32(lane.as_mut_ptr(), e);
            s = vaddq_f32(s, e);
        }
        let s = vbslq_f32(none, vdupq_n_f32(f32::NAN), s);
        let x_t = [
            *x.add(target[0] as usize),
            *x.add(c + target[1] as usize),
            *x.add(2 * c + target[2] as usize),
            *x.add(3 * c + target[3] as usize),
        ];
        let d_t = vsubq_f32(vld1q_f32(x_t.as_ptr()), m);
        let loss = vmulq_f32(vld1q_f32(weight.as_ptr()), vsubq_f32(vector::ln(s), d_t));
        let keep = vreinterpretq_u32_s32(vld1q_s32(keep.as_ptr()));
        vst1q_f32(
            losses.as_mut_ptr(),
            vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(loss), keep)),
        );
        if WRITE {
            let alpha = vld1q_f32(alpha.as_ptr());
            let mul = vdivq_f32(alpha, s);
            let target = vld1q_s32(target.as_ptr());
            for (j, lane) in tile.iter_mut().enumerate().take(c) {
                let hit = vceqq_s32(target, vdupq_n_s32(j as i32));
                let g = vmulq_f32(vld1q_f32(lane.as_ptr()), mul);
                let fix = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(alpha), hit));
                vst1q_f32(lane.as_mut_ptr(), vsubq_f32(g, fix));
            }
            for r in 0..4 {
                for (j, lane) in tile.iter().enumerate().take(c) {
                    *out.add(r * c + j) = lane[r];
                }
            }
        }
    }
}

/// # Safety
/// As [`block4`], for the block's `BLOCK_ROWS` rows.
#[inline(always)]
unsafe fn block_body<const WRITE: bool>(
    x: *const f32,
    out: *mut f32,
    c: usize,
    args: &BlockArgs,
) -> [f32; BLOCK_ROWS] {
    let mut losses = [0.0f32; BLOCK_ROWS];
    for first in (0..BLOCK_ROWS).step_by(4) {
        let lanes = first..first + 4;
        // SAFETY: rows `first..first + 4` start `first * c` floats in, inside the block; `out`
        // is only offset when it is written.
        unsafe {
            block4::<WRITE>(
                x.add(first * c),
                if WRITE { out.add(first * c) } else { out },
                c,
                &args.target[lanes.clone()],
                &args.alpha[lanes.clone()],
                &args.weight[lanes.clone()],
                &args.keep[lanes.clone()],
                &mut losses[lanes],
            );
        }
    }
    losses
}

/// The block kernel, the gradient into `out` (or, forward only, nowhere).
///
/// # Safety
/// NEON; `x` (and `out`) hold `BLOCK_ROWS * classes` floats, `1 <= classes <= BLOCK_MAX_CLASSES`;
/// targets inside the rows.
#[target_feature(enable = "neon")]
pub(super) unsafe fn block(
    x: &[f32],
    classes: usize,
    out: Option<&mut [f32]>,
    args: &BlockArgs,
) -> [f32; BLOCK_ROWS] {
    // SAFETY: NEON enabled here; the slices' lengths are the caller's contract.
    unsafe {
        match out {
            Some(out) => block_body::<true>(x.as_ptr(), out.as_mut_ptr(), classes, args),
            None => block_body::<false>(x.as_ptr(), core::ptr::null_mut(), classes, args),
        }
    }
}

/// The block kernel, the gradient over the logits.
///
/// # Safety
/// As [`block`].
#[target_feature(enable = "neon")]
pub(super) unsafe fn block_in_place(
    x: &mut [f32],
    classes: usize,
    args: &BlockArgs,
) -> [f32; BLOCK_ROWS] {
    let ptr = x.as_mut_ptr();
    // SAFETY: NEON enabled here; one pointer of the exclusive borrow, every read before the
    // first write.
    unsafe { block_body::<true>(ptr, ptr, classes, args) }
}
