//! The fused softmax-cross-entropy on AVX2+FMA: the row kernel of `vector.rs` on `__m256`, and
//! the block kernel (eight short rows side by side, one per lane, gathered and transposed with
//! 8 x 8 in-register transposes), which stays per ISA because its register layout does.

use super::{vector as rows, BlockArgs, RowArgs, RowStats, BLOCK_MAX_CLASSES, BLOCK_ROWS};
use crate::exp::vector;
use crate::simd::avx2::transpose8;
use std::arch::x86_64::*;

/// The row kernel, the gradient into `out` (or, forward only, nowhere).
///
/// # Safety
/// The CPU must support AVX2 and FMA; `out` and the coefficient slices as long as `x`; `args.fix`
/// inside the row.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn row(x: &[f32], out: Option<&mut [f32]>, args: &RowArgs<'_>) -> RowStats {
    // SAFETY: the features are enabled on this function; lengths are the caller's contract.
    unsafe { rows::row::<__m256>(x, out, args, false) }
}

/// The row kernel, the gradient over the logits.
///
/// # Safety
/// The CPU must support AVX2 and FMA; the coefficient slices as long as `x`; `args.fix` inside the row.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn row_in_place(x: &mut [f32], args: &RowArgs<'_>) -> RowStats {
    // SAFETY: as in `row`.
    unsafe { rows::row_in_place::<__m256>(x, args, false) }
}

/// Rows of the block kernel per vector.
const LANES: usize = 8;

/// Eight rows of `c <= COLS` logits at `x`, rows `first..first + 8` of the
/// block's arguments, one per lane (element `j` of every row gathered at once): maximum,
/// exponentials and sums without horizontal operations, one vector logarithm and one vector
/// division for the eight rows. The gradient goes through a stack tile, transposed back into
/// rows, at `out` when `WRITE` (which may equal `x`: every read precedes the first write).
/// The rows' losses go to `losses[first..first + 8]`.
///
/// # Safety
/// AVX2 and FMA; `x` readable and (when `WRITE`) `out` writable for `8 * c` floats;
/// `1 <= c <= COLS`; `first + 8 <= BLOCK_ROWS`; every target in `[0, c)`.
#[inline(always)]
unsafe fn block8<const WRITE: bool, const COLS: usize>(
    x: *const f32,
    out: *mut f32,
    c: usize,
    args: &BlockArgs,
    first: usize,
    losses: &mut [f32; BLOCK_ROWS],
) {
    // SAFETY: gathers read x[r * c + j] with r < 8, j < c (or j = target < c), all inside the
    // 8 * c floats; the tile holds COLS x 8 floats and j < c <= COLS; the writes
    // cover out[r * c + j], inside the block; the arguments and losses are read and written at
    // [first, first + 8), inside their arrays.
    unsafe {
        let rows = _mm256_mullo_epi32(
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            _mm256_set1_epi32(c as i32),
        );
        let neg_inf = _mm256_set1_ps(f32::NEG_INFINITY);
        // Columns are gathered once into the tile (element j of the eight rows per entry).
        let mut tile = [[0.0f32; LANES]; COLS];
        let mut mx = neg_inf;
        for (j, lane) in tile.iter_mut().enumerate().take(c) {
            let v = _mm256_i32gather_ps::<4>(x.add(j), rows);
            _mm256_storeu_ps(lane.as_mut_ptr(), v);
            mx = _mm256_max_ps(mx, v);
        }
        // A row without a maximum above -inf: reference 0, and S = NaN (PyTorch's NaN).
        let none = _mm256_cmp_ps::<_CMP_EQ_OQ>(mx, neg_inf);
        let m = _mm256_andnot_ps(none, mx);
        let mut s = _mm256_setzero_ps();
        for lane in tile.iter_mut().take(c) {
            let d = _mm256_sub_ps(_mm256_loadu_ps(lane.as_ptr()), m);
            let e = vector::exp_nonpositive(d);
            _mm256_storeu_ps(lane.as_mut_ptr(), e);
            s = _mm256_add_ps(s, e);
        }
        let s = _mm256_blendv_ps(s, _mm256_set1_ps(f32::NAN), none);
        let target = _mm256_loadu_si256(args.target.as_ptr().add(first).cast());
        let keep = _mm256_castsi256_ps(_mm256_loadu_si256(args.keep.as_ptr().add(first).cast()));
        let x_t = _mm256_i32gather_ps::<4>(x, _mm256_add_epi32(rows, target));
        let weight = _mm256_loadu_ps(args.weight.as_ptr().add(first));
        let loss = _mm256_mul_ps(weight, _mm256_sub_ps(vector::ln(s), _mm256_sub_ps(x_t, m)));
        _mm256_storeu_ps(losses.as_mut_ptr().add(first), _mm256_and_ps(loss, keep));
        if WRITE {
            let alpha = _mm256_loadu_ps(args.alpha.as_ptr().add(first));
            let mul = _mm256_div_ps(alpha, s);
            for (j, lane) in tile.iter_mut().enumerate().take(c) {
                let hit = _mm256_cmpeq_epi32(target, _mm256_set1_epi32(j as i32));
                let g = _mm256_mul_ps(_mm256_loadu_ps(lane.as_ptr()), mul);
                let g = _mm256_sub_ps(g, _mm256_and_ps(_mm256_castsi256_ps(hit), alpha));
                _mm256_storeu_ps(lane.as_mut_ptr(), g);
            }
            // Back into rows: eight columns at a time by an 8x8 transpose, the rest one by one.
            let mut j0 = 0;
            while j0 + 8 <= c {
                // (No closure around the intrinsics: closures lose the target features.)
                let column = |k: usize| tile[j0 + k].as_ptr();
                let mut columns = [
                    _mm256_loadu_ps(column(0)),
                    _mm256_loadu_ps(column(1)),
                    _mm256_loadu_ps(column(2)),
                    _mm256_loadu_ps(column(3)),
                    _mm256_loadu_ps(column(4)),
                    _mm256_loadu_ps(column(5)),
                    _mm256_loadu_ps(column(6)),
                    _mm256_loadu_ps(column(7)),
                ];
                transpose8(&mut columns);
                for (r, row) in columns.into_iter().enumerate() {
                    _mm256_storeu_ps(out.add(r * c + j0), row);
                }
                j0 += 8;
            }
            for r in 0..LANES {
                for (j, lane) in tile.iter().enumerate().take(c).skip(j0) {
                    *out.add(r * c + j) = lane[r];
                }
            }
        }
    }
}

/// The block's rows, eight at a time.
///
/// # Safety
/// As [`block8`], for `BLOCK_ROWS * c` floats.
#[inline(always)]
unsafe fn block_body<const WRITE: bool>(
    x: *const f32,
    out: *mut f32,
    c: usize,
    args: &BlockArgs,
) -> [f32; BLOCK_ROWS] {
    let mut losses = [0.0f32; BLOCK_ROWS];
    for first in (0..BLOCK_ROWS).step_by(LANES) {
        // SAFETY: rows `first..first + 8` start `first * c` floats in, inside the block; `out`
        // is only offset when it is written.
        unsafe {
            let (x, out) = (
                x.add(first * c),
                if WRITE { out.add(first * c) } else { out },
            );
            // The tile only as wide as the rows need: less to zero for the shortest rows.
            if c <= 16 {
                block8::<WRITE, 16>(x, out, c, args, first, &mut losses);
            } else {
                block8::<WRITE, BLOCK_MAX_CLASSES>(x, out, c, args, first, &mut losses);
            }
        }
    }
    losses
}

/// The block kernel, the gradient into `out` (or, forward only, nowhere).
///
/// # Safety
/// AVX2 and FMA; `x` (and `out`) hold `BLOCK_ROWS * classes` floats, `1 <= classes <=
/// BLOCK_MAX_CLASSES`; targets inside the rows.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn block(
    x: &[f32],
    classes: usize,
    out: Option<&mut [f32]>,
    args: &BlockArgs,
) -> [f32; BLOCK_ROWS] {
    // SAFETY: features enabled here; the slices' lengths are the caller's contract.
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
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn block_in_place(
    x: &mut [f32],
    classes: usize,
    args: &BlockArgs,
) -> [f32; BLOCK_ROWS] {
    let ptr = x.as_mut_ptr();
    // SAFETY: features enabled here; one pointer of the exclusive borrow, every read before
    // the first write.
    unsafe { block_body::<true>(ptr, ptr, classes, args) }
}
