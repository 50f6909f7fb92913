//! AVX-512 row kernels of the fused softmax-cross-entropy (the module docs give the passes):
//! AVX2's passes on 16 lanes, tails through lane masks (`__mmask16`: masked-off lanes are
//! neither read nor written), sixteen short rows side by side in the block kernel.

use super::{BlockArgs, Coef, RowArgs, RowStats, Segments, BLOCK_ROWS};
use crate::exp::vector;
use crate::simd::avx512::transpose16;
use crate::simd::avx512::{tail_mask, LANES};
use std::arch::x86_64::*;

/// Maximum of `n` floats (NaN lanes may be skipped; the exp pass catches NaN).
///
/// # Safety
/// AVX-512F; `x` points to `n` readable floats.
#[inline(always)]
unsafe fn max_of(x: *const f32, n: usize) -> f32 {
    // SAFETY: full vectors cover [i, i + 16) with i + 16 <= n; the tail load is masked to the
    // lanes below n - i (the others are not read).
    unsafe {
        let neg_inf = _mm512_set1_ps(f32::NEG_INFINITY);
        let (mut m0, mut m1, mut m2, mut m3) = (neg_inf, neg_inf, neg_inf, neg_inf);
        let mut i = 0;
        while i + 4 * LANES <= n {
            m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x.add(i)));
            m1 = _mm512_max_ps(m1, _mm512_loadu_ps(x.add(i + LANES)));
            m2 = _mm512_max_ps(m2, _mm512_loadu_ps(x.add(i + 2 * LANES)));
            m3 = _mm512_max_ps(m3, _mm512_loadu_ps(x.add(i + 3 * LANES)));
            i += 4 * LANES;
        }
        while i + LANES <= n {
            m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x.add(i)));
            i += LANES;
        }
        if i < n {
            m1 = _mm512_max_ps(
                m1,
                _mm512_mask_loadu_ps(neg_inf, tail_mask(n - i), x.add(i)),
            );
        }
        _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3)))
    }
}

/// Per-class coefficients `c_j` of pass 2, 16 at a time.
trait Coefs {
    /// Whether `sum c_j (x_j - m)` is accumulated and `beta * c_j` subtracted at all.
    const USED: bool;
    /// `c[i..i + 16]`, only the lanes of `mask` (the others 0).
    ///
    /// # Safety
    /// AVX-512F; the lanes of `mask` within the row.
    unsafe fn load(&self, i: usize, mask: __mmask16) -> __m512;
}

/// # Safety
/// AVX-512F; the lanes of `mask` at `p + i` readable.
#[inline(always)]
unsafe fn load(p: *const f32, i: usize, mask: __mmask16) -> __m512 {
    // SAFETY: the caller guarantees the lanes read are inside the slice; the others are not
    // read. (A full mask compiles to a plain load.)
    unsafe { _mm512_maskz_loadu_ps(mask, p.add(i)) }
}

/// All 16 lanes.
const ALL: __mmask16 = 0xffff;

#[derive(Clone, Copy)]
struct NoCoefs;
impl Coefs for NoCoefs {
    const USED: bool = false;
    #[inline(always)]
    unsafe fn load(&self, _: usize, _: __mmask16) -> __m512 {
        // SAFETY: register-only.
        unsafe { _mm512_setzero_ps() }
    }
}

#[derive(Clone, Copy)]
struct Ones;
impl Coefs for Ones {
    const USED: bool = true;
    #[inline(always)]
    unsafe fn load(&self, _: usize, mask: __mmask16) -> __m512 {
        // SAFETY: register-only.
        unsafe { _mm512_maskz_mov_ps(mask, _mm512_set1_ps(1.0)) }
    }
}

#[derive(Clone, Copy)]
struct Weights<'a>(&'a [f32]);
impl Coefs for Weights<'_> {
    const USED: bool = true;
    #[inline(always)]
    unsafe fn load(&self, i: usize, mask: __mmask16) -> __m512 {
        // SAFETY: the weights are as long as the row (checked by the entry point).
        unsafe { load(self.0.as_ptr(), i, mask) }
    }
}

#[derive(Clone, Copy)]
struct Probs<'a> {
    p: &'a [f32],
    w: Option<&'a [f32]>,
    keep: f32,
    add: f32,
}
impl Coefs for Probs<'_> {
    const USED: bool = true;
    #[inline(always)]
    unsafe fn load(&self, i: usize, mask: __mmask16) -> __m512 {
        // SAFETY: targets and weights are as long as the row (checked by the entry point).
        unsafe {
            let p = _mm512_maskz_fmadd_ps(
                mask,
                load(self.p.as_ptr(), i, mask),
                _mm512_set1_ps(self.keep),
                _mm512_set1_ps(self.add),
            );
            match self.w {
                None => p,
                Some(w) => _mm512_mul_ps(load(w.as_ptr(), i, mask), p),
            }
        }
    }
}

/// Logits per block of pass 1: eight vectors, whose maximum is taken before their
/// exponentials.
const BLOCK: usize = 8 * LANES;
/// How far ahead of pass 1 (in floats) the gradient buffer's lines are fetched when it is not
/// the logits (as on AVX2).
const PREFETCH_AHEAD: usize = 512;
/// The first pass starts from the maximum of the row's first `HEAD` logits (whole blocks), as
/// on AVX2.
const HEAD: usize = 1024;
/// How far ahead of pass 1 (in floats) the logits' lines are fetched: one head, so while a row
/// up to `HEAD` long is exponentiated the next row's head (whose maximum is read first, with
/// nothing to overlap it) comes in.
const PREFETCH_LOGITS_AHEAD: usize = HEAD;

/// `exp(d)` of one `d <= 0` (or NaN) with the vector algorithm.
///
/// # Safety
/// AVX-512F.
#[inline(always)]
unsafe fn exp_one(d: f32) -> f32 {
    // SAFETY: register-only; the caller guarantees the feature.
    unsafe { _mm512_cvtss_f32(vector::exp_nonpositive(_mm512_set1_ps(d))) }
}

/// Pass 1 over a row of `n` logits at `x` (module docs), as AVX2's `exp_pass`: the maximum of
/// the row's head is the first reference; a block past the head whose maximum is above it
/// moves the reference (a new segment); `e_j = exp(x_j - r)` is stored at `out` when `STORE`
/// (which may equal `x`), summed, and `c_j (x_j - r)` accumulated. Returns the final maximum
/// (`-inf` when there is none), `sum e_j` and `sum c_j (x_j - max)`.
///
/// # Safety
/// AVX-512F; `x` readable and (when `STORE`) `out` writable for `n` floats; the coefficients
/// cover `n`.
#[inline(always)]
unsafe fn exp_pass<const STORE: bool, const PREFETCH: bool, C: Coefs>(
    x: *const f32,
    out: *mut f32,
    n: usize,
    c: C,
    segments: &mut Segments,
) -> (f32, f32, f32) {
    // SAFETY: full vectors cover [j, j + 16) with j + 16 <= n; the tail is masked to n - j
    // lanes; prefetches are hints that never fault (`wrapping_add`: the address may be past
    // the buffer).
    unsafe {
        let zero = _mm512_setzero_ps();
        let head = n.min(HEAD);
        let mut max = max_of(x, head);
        let mut r = if max == f32::NEG_INFINITY { 0.0 } else { max };
        let mut last = head == n;
        segments.push(0, max);
        let (mut maxv, mut rv) = (_mm512_set1_ps(max), _mm512_set1_ps(r));
        let (mut s0, mut s1) = (zero, zero);
        // sum c_j (x_j - r) and sum c_j, two lanes' worth each.
        let (mut a0, mut a1, mut w0, mut w1) = (zero, zero, zero, zero);
        let mut i = 0;
        while i < n {
            let len = (n - i).min(BLOCK);
            // (Blocks inside the head cannot move the maximum: `HEAD` is whole blocks.)
            if !last && i >= head {
                let above = if len == BLOCK {
                    let v = |k: usize| _mm512_loadu_ps(x.add(i + LANES * k));
                    let block_max = _mm512_max_ps(
                        _mm512_max_ps(_mm512_max_ps(v(0), v(1)), _mm512_max_ps(v(2), v(3))),
                        _mm512_max_ps(_mm512_max_ps(v(4), v(5)), _mm512_max_ps(v(6), v(7))),
                    );
                    _mm512_cmp_ps_mask::<_CMP_GT_OQ>(block_max, maxv) != 0
                } else {
                    max_of(x.add(i), len) > max
                };
                if above {
                    let mut new = max_of(x.add(i), len);
                    if segments.last_place() {
                        new = new.max(max_of(x.add(i), n - i));
                        last = true;
                    }
                    // Sums against the old reference, moved to the new one (0 when there was
                    // no maximum: every term so far was exp(-inf), or NaN).
                    let f = _mm512_set1_ps(exp_one(max - new));
                    s0 = _mm512_mul_ps(s0, f);
                    s1 = _mm512_mul_ps(s1, f);
                    if C::USED {
                        let shift = _mm512_set1_ps(r - new);
                        a0 = _mm512_fmadd_ps(w0, shift, a0);
                        a1 = _mm512_fmadd_ps(w1, shift, a1);
                    }
                    segments.push(i, new);
                    (max, r) = (new, new);
                    (maxv, rv) = (_mm512_set1_ps(max), _mm512_set1_ps(r));
                }
            }
            if len == BLOCK {
                let logits_ahead = x.wrapping_add(i + PREFETCH_LOGITS_AHEAD);
                for line in 0..BLOCK / LANES {
                    _mm_prefetch::<_MM_HINT_T0>(
                        logits_ahead.wrapping_add(LANES * line) as *const i8
                    );
                }
                if PREFETCH {
                    let ahead = out.wrapping_add(i + PREFETCH_AHEAD);
                    for line in 0..BLOCK / LANES {
                        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(LANES * line) as *const i8);
                    }
                }
                for k in (0..BLOCK).step_by(2 * LANES) {
                    let d0 = _mm512_sub_ps(_mm512_loadu_ps(x.add(i + k)), rv);
                    let d1 = _mm512_sub_ps(_mm512_loadu_ps(x.add(i + k + LANES)), rv);
                    let e0 = vector::exp_nonpositive(d0);
                    let e1 = vector::exp_nonpositive(d1);
                    if STORE {
                        _mm512_storeu_ps(out.add(i + k), e0);
                        _mm512_storeu_ps(out.add(i + k + LANES), e1);
                    }
                    s0 = _mm512_add_ps(s0, e0);
                    s1 = _mm512_add_ps(s1, e1);
                    if C::USED {
                        let (c0, c1) = (c.load(i + k, ALL), c.load(i + k + LANES, ALL));
                        a0 = _mm512_fmadd_ps(c0, d0, a0);
                        a1 = _mm512_fmadd_ps(c1, d1, a1);
                        w0 = _mm512_add_ps(w0, c0);
                        w1 = _mm512_add_ps(w1, c1);
                    }
                }
            } else {
                // The row's last, partial block: vector by vector, the last one masked (its
                // other lanes read as 0 and are left out of every sum).
                let mut j = i;
                while j < n {
                    let mask = tail_mask(n - j);
                    let d = _mm512_sub_ps(_mm512_maskz_loadu_ps(mask, x.add(j)), rv);
                    let e = vector::exp_nonpositive(d);
                    if STORE {
                        _mm512_mask_storeu_ps(out.add(j), mask, e);
                    }
                    s1 = _mm512_mask_add_ps(s1, mask, s1, e);
                    if C::USED {
                        let cj = c.load(j, mask);
                        a1 = _mm512_mask3_fmadd_ps(cj, d, a1, mask);
                        w1 = _mm512_add_ps(w1, cj);
                    }
                    j += LANES;
                }
            }
            i += len;
        }
        let acc = if C::USED {
            _mm512_reduce_add_ps(_mm512_add_ps(a0, a1))
        } else {
            0.0
        };
        let sum = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
        (max, sum, acc)
    }
}

/// Pass 2 over elements `[start, end)`: `g_j = g_j * mul - beta * c_j`.
///
/// # Safety
/// AVX-512F; `g` readable and writable for `end` floats; the coefficients cover `end`.
#[inline(always)]
unsafe fn scale_pass<C: Coefs>(g: *mut f32, start: usize, end: usize, mul: f32, beta: f32, c: C) {
    // SAFETY: full vectors cover [i, i + 16) with i + 16 <= end; the tail is masked.
    unsafe {
        let mulv = _mm512_set1_ps(mul);
        let betav = _mm512_set1_ps(beta);
        let mut i = start;
        while i + 2 * LANES <= end {
            let mut v0 = _mm512_mul_ps(_mm512_loadu_ps(g.add(i)), mulv);
            let mut v1 = _mm512_mul_ps(_mm512_loadu_ps(g.add(i + LANES)), mulv);
            if C::USED {
                v0 = _mm512_fnmadd_ps(betav, c.load(i, ALL), v0);
                v1 = _mm512_fnmadd_ps(betav, c.load(i + LANES, ALL), v1);
            }
            _mm512_storeu_ps(g.add(i), v0);
            _mm512_storeu_ps(g.add(i + LANES), v1);
            i += 2 * LANES;
        }
        while i < end {
            let mask = tail_mask(end - i);
            let mut v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, g.add(i)), mulv);
            if C::USED {
                v = _mm512_fnmadd_ps(betav, c.load(i, mask), v);
            }
            _mm512_mask_storeu_ps(g.add(i), mask, v);
            i += LANES;
        }
    }
}

/// The two passes over a row of `n` logits at `x`; the gradient written at `out` when
/// `WRITE` (which may equal `x`; `PREFETCH` only when it does not).
///
/// # Safety
/// AVX-512F; `x` readable and (when `WRITE`) `out` writable for `n` floats; the coefficients
/// cover `n`; `args.fix` inside the row.
#[inline(always)]
unsafe fn row_body<const WRITE: bool, const PREFETCH: bool, C: Coefs + Copy>(
    x: *const f32,
    out: *mut f32,
    n: usize,
    args: &RowArgs<'_>,
    c: C,
) -> RowStats {
    // SAFETY: forwarded contract; segments lie inside the row; the fix-up index is inside it.
    unsafe {
        let mut segments = Segments::new();
        let (max, sum, acc) = exp_pass::<WRITE, PREFETCH, C>(x, out, n, c, &mut segments);
        // A row without a maximum above -inf has no softmax: NaN, as PyTorch's.
        let (m, sum) = if max == f32::NEG_INFINITY {
            (0.0, f32::NAN)
        } else {
            (max, sum)
        };
        if WRITE {
            let mul = args.alpha / sum;
            for (start, end, reference) in segments.iter(n) {
                // exp(reference - max): 1 for the last segment, 0 for one without a maximum.
                let moved = if reference == max {
                    1.0
                } else {
                    exp_one(reference - max)
                };
                scale_pass(out, start, end, mul * moved, args.beta, c);
            }
            if let Some((t, amount)) = args.fix {
                *out.add(t) -= amount;
            }
        }
        RowStats { m, sum, acc }
    }
}

/// # Safety
/// As [`row_body`].
#[inline(always)]
unsafe fn row_any<const WRITE: bool, const PREFETCH: bool>(
    x: *const f32,
    out: *mut f32,
    n: usize,
    args: &RowArgs<'_>,
) -> RowStats {
    // SAFETY: forwarded contract.
    unsafe {
        match args.coef {
            Coef::None => row_body::<WRITE, PREFETCH, _>(x, out, n, args, NoCoefs),
            Coef::Ones => row_body::<WRITE, PREFETCH, _>(x, out, n, args, Ones),
            Coef::Weights(w) => row_body::<WRITE, PREFETCH, _>(x, out, n, args, Weights(w)),
            Coef::Probs { p, w, keep, add } => {
                row_body::<WRITE, PREFETCH, _>(x, out, n, args, Probs { p, w, keep, add })
            }
        }
    }
}

/// The row kernel, the gradient into `out` (or, forward only, nowhere).
///
/// # Safety
/// AVX-512F, AVX2 and FMA; `out` and the coefficient slices as long as `x`; `args.fix` inside
/// the row.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn row(x: &[f32], out: Option<&mut [f32]>, args: &RowArgs<'_>) -> RowStats {
    // SAFETY: features enabled here; both slices hold x.len() floats (the caller's contract).
    unsafe {
        match out {
            Some(out) => row_any::<true, true>(x.as_ptr(), out.as_mut_ptr(), x.len(), args),
            None => row_any::<false, false>(x.as_ptr(), core::ptr::null_mut(), x.len(), args),
        }
    }
}

/// The row kernel, the gradient over the logits.
///
/// # Safety
/// AVX-512F, AVX2 and FMA; the coefficient slices as long as `x`; `args.fix` inside the row.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn row_in_place(x: &mut [f32], args: &RowArgs<'_>) -> RowStats {
    let ptr = x.as_mut_ptr();
    // SAFETY: features enabled here; one pointer of the exclusive borrow, each element read
    // before it is written.
    unsafe { row_any::<true, false>(ptr, ptr, x.len(), args) }
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
