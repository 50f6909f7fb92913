//! The block kernel of the fused softmax-cross-entropy, written once over [`F32x`]:
//! `BLOCK_ROWS` short rows (`C <= BLOCK_MAX_CLASSES`) taken `LANES` at a time, one row per
//! lane. Column `j` of the rows is gathered into one vector, so the maximum, the exponentials
//! and the sums need no horizontal operations, and one vector logarithm and one vector
//! division serve all the rows. The gradient is built column by column in a tile of vectors
//! and transposed back into rows `LANES` columns at a time.

use super::{BlockArgs, BLOCK_MAX_CLASSES, BLOCK_ROWS};
use crate::exp::vector::{exp_nonpositive, ln};
use crate::simd::F32x;

/// Rows `first..first + LANES` of the block: `c <= COLS` logits each at `x + first * c`,
/// their losses into `losses[first..]`, their gradient (when `WRITE`) at `out + first * c`,
/// which may equal `x`: every read precedes the first write.
///
/// # Safety
/// The CPU supports `V`'s ISA; `x` readable and (when `WRITE`) `out` writable for
/// `BLOCK_ROWS * c` floats; `1 <= c <= COLS`; `COLS` a multiple of `LANES`;
/// `first + LANES <= BLOCK_ROWS`; every target of those rows in `[0, c)`.
#[inline(always)]
unsafe fn lanes<V: F32x, const WRITE: bool, const COLS: usize>(
    x: *const f32,
    out: *mut f32,
    c: usize,
    args: &BlockArgs,
    first: usize,
    losses: &mut [f32; BLOCK_ROWS],
) {
    // SAFETY: the gathers read x[first * c + r * c + j] with r < LANES and j < c (or j = the
    // row's target < c), inside the block; the tile holds COLS >= c vectors and the
    // transposes read LANES of them from a multiple of LANES below c, so below COLS; the
    // stores write elements j < c of the same rows at `out`; the arguments are read and the
    // losses written at [first, first + LANES), inside their arrays.
    unsafe {
        let (x, out) = (
            x.add(first * c),
            if WRITE { out.add(first * c) } else { out },
        );
        let rows = V::index_stride(c as u32);
        let neg_inf = V::splat(f32::NEG_INFINITY);
        // The entries past c stay 0; they are transposed into elements that are never stored.
        let mut tile = [V::zero(); COLS];
        let mut mx = neg_inf;
        for (j, column) in tile.iter_mut().enumerate().take(c) {
            *column = V::gather(x.add(j), rows);
            mx = mx.max(*column);
        }
        // A row without a maximum above -inf: reference 0, and S = NaN (PyTorch's NaN).
        let none = mx.eq(neg_inf);
        let m = mx.clear_where(none);
        let mut s = V::zero();
        for column in tile.iter_mut().take(c) {
            *column = exp_nonpositive(column.sub(m));
            s = s.add(*column);
        }
        let s = V::select(none, V::splat(f32::NAN), s);
        let w = V::LANES;
        let target = V::index_load_first(args.target.as_ptr().add(first).cast(), w);
        let ignored = V::index_eq(
            V::index_load_first(args.keep.as_ptr().add(first).cast(), w),
            V::index_splat(0),
        );
        let x_t = V::gather(x, V::index_add_lanes(rows, target));
        let weight = V::load(args.weight.as_ptr().add(first));
        let loss = weight.mul(ln(s).sub(x_t.sub(m)));
        let loss = loss.clear_where(ignored);
        loss.store(losses.as_mut_ptr().add(first));
        if WRITE {
            let alpha = V::load(args.alpha.as_ptr().add(first));
            let mul = alpha.div(s);
            for (j, column) in tile.iter_mut().enumerate().take(c) {
                let hit = V::index_eq(target, V::index_splat(j as u32));
                *column = column.mul(mul).sub(alpha.keep_where(hit));
            }
            for j0 in (0..c).step_by(w) {
                let n = (c - j0).min(w);
                V::store_transposed(tile.as_ptr().add(j0), out.add(j0), c, n);
            }
        }
    }
}

/// The block's rows, `LANES` at a time, with a tile as wide as the rows need.
///
/// # Safety
/// As [`lanes`], for `1 <= c <= BLOCK_MAX_CLASSES`.
#[inline(always)]
unsafe fn rows<V: F32x, const WRITE: bool>(
    x: *const f32,
    out: *mut f32,
    c: usize,
    args: &BlockArgs,
) -> [f32; BLOCK_ROWS] {
    let mut losses = [0.0f32; BLOCK_ROWS];
    for first in (0..BLOCK_ROWS).step_by(V::LANES) {
        // SAFETY: forwarded contract; 16 and 32 are multiples of every ISA's lane count.
        unsafe {
            if c <= 16 {
                lanes::<V, WRITE, 16>(x, out, c, args, first, &mut losses);
            } else {
                lanes::<V, WRITE, BLOCK_MAX_CLASSES>(x, out, c, args, first, &mut losses);
            }
        }
    }
    losses
}

/// The block kernel, the gradient into `out` (or, forward only, nowhere); returns the rows'
/// losses.
///
/// # Safety
/// The CPU supports `V`'s ISA; `x` (and `out`) hold `BLOCK_ROWS * classes` floats,
/// `1 <= classes <= BLOCK_MAX_CLASSES`; targets inside the rows.
#[inline(always)]
pub(super) unsafe fn block<V: F32x>(
    x: &[f32],
    classes: usize,
    out: Option<&mut [f32]>,
    args: &BlockArgs,
) -> [f32; BLOCK_ROWS] {
    // SAFETY: the slices' lengths are the caller's contract.
    unsafe {
        match out {
            Some(out) => rows::<V, true>(x.as_ptr(), out.as_mut_ptr(), classes, args),
            None => rows::<V, false>(x.as_ptr(), core::ptr::null_mut(), classes, args),
        }
    }
}

/// The block kernel, the gradient over the logits.
///
/// # Safety
/// As [`block`].
#[inline(always)]
pub(super) unsafe fn block_in_place<V: F32x>(
    x: &mut [f32],
    classes: usize,
    args: &BlockArgs,
) -> [f32; BLOCK_ROWS] {
    let ptr = x.as_mut_ptr();
    // SAFETY: one pointer of the exclusive borrow, every read before the first write.
    unsafe { rows::<V, true>(ptr, ptr, classes, args) }
}
