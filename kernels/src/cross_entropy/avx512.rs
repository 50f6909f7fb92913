//! The fused softmax-cross-entropy on AVX-512: the row kernel of `vector.rs` on `__m512` (with
//! the logits prefetched ahead), and the block kernel (sixteen short rows side by side, one per
//! lane, 16 x 16 in-register transposes), which stays per ISA because its register layout does.

use super::{vector as rows, BlockArgs, RowArgs, RowStats, BLOCK_ROWS};
use crate::exp::vector;
use crate::simd::avx512::transpose16;
use crate::simd::avx512::{tail_mask, LANES};
use std::arch::x86_64::*;

/// The row kernel, the gradient into `out` (or, forward only, nowhere).
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA; `out` and the coefficient slices as long as `x`; `args.fix`
/// inside the row.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn row(x: &[f32], out: Option<&mut [f32]>, args: &RowArgs<'_>) -> RowStats {
    // SAFETY: the features are enabled on this function; lengths are the caller's contract.
    unsafe { rows::row::<__m512>(x, out, args, true) }
}

/// The row kernel, the gradient over the logits.
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA; the coefficient slices as long as `x`; `args.fix` inside the row.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn row_in_place(x: &mut [f32], args: &RowArgs<'_>) -> RowStats {
    // SAFETY: as in `row`.
    unsafe { rows::row_in_place::<__m512>(x, args, true) }
}

/// Sixteen rows of `c <= COLS` logits at `x` (`COLS` 16 or 32), one per lane (element `j` of
/// every row gathered at once): maximum, exponentials and sums without horizontal operations,
/// one vector logarithm and one vector division for the sixteen rows. The gradient goes
/// through a tile of `COLS` vectors in registers or on the stack, transposed back into rows
/// sixteen columns at a time, at `out` when `WRITE` (which may equal `x`: every read precedes
/// the first write). Returns the rows' losses.
///
/// # Safety
/// AVX-512F; `x` readable and (when `WRITE`) `out` writable for `16 * c` floats;
/// `1 <= c <= COLS`; every `args.target` in `[0, c)`.
#[inline(always)]
unsafe fn block_body<const WRITE: bool, const COLS: usize>(
    x: *const f32,
    out: *mut f32,
    c: usize,
    args: &BlockArgs,
) -> [f32; BLOCK_ROWS] {
    // SAFETY: gathers read x[r * c + j] with r < 16, j < c (or j = target < c), all inside the
    // 16 * c floats; the tile holds COLS >= c vectors; the stores write lanes j < c of row r
    // at out[r * c + j], inside the block.
    unsafe {
        let rows = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(c as i32),
        );
        let neg_inf = _mm512_set1_ps(f32::NEG_INFINITY);
        // Columns gathered once into the tile (element j of the sixteen rows per entry); the
        // entries past c stay 0 and are transposed into lanes that are never stored.
        let mut tile = [_mm512_setzero_ps(); COLS];
        let mut mx = neg_inf;
        for (j, column) in tile.iter_mut().enumerate().take(c) {
            let v = _mm512_i32gather_ps::<4>(rows, x.add(j));
            *column = v;
            mx = _mm512_max_ps(mx, v);
        }
        // A row without a maximum above -inf: reference 0, and S = NaN (PyTorch's NaN).
        let none = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(mx, neg_inf);
        let m = _mm512_mask_mov_ps(mx, none, _mm512_setzero_ps());
        let mut s = _mm512_setzero_ps();
        for column in tile.iter_mut().take(c) {
            let e = vector::exp_nonpositive(_mm512_sub_ps(*column, m));
            *column = e;
            s = _mm512_add_ps(s, e);
        }
        let s = _mm512_mask_mov_ps(s, none, _mm512_set1_ps(f32::NAN));
        let target = _mm512_loadu_si512(args.target.as_ptr().cast());
        let keep = _mm512_cmpneq_epi32_mask(
            _mm512_loadu_si512(args.keep.as_ptr().cast()),
            _mm512_setzero_si512(),
        );
        let x_t = _mm512_i32gather_ps::<4>(_mm512_add_epi32(rows, target), x);
        let weight = _mm512_loadu_ps(args.weight.as_ptr());
        let loss = _mm512_mul_ps(weight, _mm512_sub_ps(vector::ln(s), _mm512_sub_ps(x_t, m)));
        let mut losses = [0.0f32; BLOCK_ROWS];
        _mm512_storeu_ps(losses.as_mut_ptr(), _mm512_maskz_mov_ps(keep, loss));
        if WRITE {
            let alpha = _mm512_loadu_ps(args.alpha.as_ptr());
            let mul = _mm512_div_ps(alpha, s);
            for (j, column) in tile.iter_mut().enumerate().take(c) {
                let hit = _mm512_cmpeq_epi32_mask(target, _mm512_set1_epi32(j as i32));
                let g = _mm512_mul_ps(*column, mul);
                *column = _mm512_mask_sub_ps(g, hit, g, alpha);
            }
            // Back into rows, sixteen columns at a time.
            for j0 in (0..c).step_by(LANES) {
                let mut columns = [_mm512_setzero_ps(); 16];
                columns.copy_from_slice(&tile[j0..j0 + LANES]);
                let mask = tail_mask(c - j0);
                transpose16(&mut columns);
                for (r, row) in columns.into_iter().enumerate() {
                    _mm512_mask_storeu_ps(out.add(r * c + j0), mask, row);
                }
            }
        }
        losses
    }
}

/// # Safety
/// As [`block_body`], for any `1 <= classes <= 32`.
#[inline(always)]
unsafe fn block_any<const WRITE: bool>(
    x: *const f32,
    out: *mut f32,
    classes: usize,
    args: &BlockArgs,
) -> [f32; BLOCK_ROWS] {
    // SAFETY: forwarded contract; the tile is as wide as the rows need.
    unsafe {
        if classes <= LANES {
            block_body::<WRITE, LANES>(x, out, classes, args)
        } else {
            block_body::<WRITE, { 2 * LANES }>(x, out, classes, args)
        }
    }
}

/// The block kernel, the gradient into `out` (or, forward only, nowhere).
///
/// # Safety
/// AVX-512F, AVX2 and FMA; `x` (and `out`) hold `16 * classes` floats, `1 <= classes <=
/// BLOCK_MAX_CLASSES`; targets inside the rows.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn block(
    x: &[f32],
    classes: usize,
    out: Option<&mut [f32]>,
    args: &BlockArgs,
) -> [f32; BLOCK_ROWS] {
    // SAFETY: features enabled here; the slices' lengths are the caller's contract.
    unsafe {
        match out {
            Some(out) => block_any::<true>(x.as_ptr(), out.as_mut_ptr(), classes, args),
            None => block_any::<false>(x.as_ptr(), core::ptr::null_mut(), classes, args),
        }
    }
}

/// The block kernel, the gradient over the logits.
///
/// # Safety
/// As [`block`].
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn block_in_place(
    x: &mut [f32],
    classes: usize,
    args: &BlockArgs,
) -> [f32; BLOCK_ROWS] {
    let ptr = x.as_mut_ptr();
    // SAFETY: features enabled here; one pointer of the exclusive borrow, every read before
    // the first write.
    unsafe { block_any::<true>(ptr, ptr, classes, args) }
}
