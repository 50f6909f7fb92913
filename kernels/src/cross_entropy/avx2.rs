//! AVX2+FMA row kernels of the fused softmax-cross-entropy (the module docs give the passes):
//! 8 lanes, several vectors per step in the long loops, tails through masked loads and
//! stores.

use super::{BlockArgs, Coef, RowArgs, RowStats, Segments, BLOCK_MAX_CLASSES, BLOCK_ROWS};
use crate::exp::vector;
use crate::simd::avx2::tail_mask;
use crate::simd::avx2::transpose8;
use crate::simd::F32x;
use std::arch::x86_64::*;

/// Maximum of `n` floats (NaN lanes may be skipped; the exp pass catches NaN).
///
/// # Safety
/// AVX2; `x` points to `n` readable floats.
#[inline(always)]
unsafe fn max_of(x: *const f32, n: usize) -> f32 {
    // SAFETY: full vectors cover [i, i + 8) with i + 8 <= n; the tail load is masked to the
    // lanes below n - i.
    unsafe {
        let neg_inf = _mm256_set1_ps(f32::NEG_INFINITY);
        let (mut m0, mut m1, mut m2, mut m3) = (neg_inf, neg_inf, neg_inf, neg_inf);
        let mut i = 0;
        while i + 32 <= n {
            m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x.add(i)));
            m1 = _mm256_max_ps(m1, _mm256_loadu_ps(x.add(i + 8)));
            m2 = _mm256_max_ps(m2, _mm256_loadu_ps(x.add(i + 16)));
            m3 = _mm256_max_ps(m3, _mm256_loadu_ps(x.add(i + 24)));
            i += 32;
        }
        while i + 8 <= n {
            m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x.add(i)));
            i += 8;
        }
        if i < n {
            let mask = tail_mask(n - i);
            let v = _mm256_maskload_ps(x.add(i), mask);
            m1 = _mm256_max_ps(m1, _mm256_blendv_ps(neg_inf, v, _mm256_castsi256_ps(mask)));
        }
        F32x::max_lane(_mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)))
    }
}

/// Per-class coefficients `c_j` of pass 2, 8 at a time.
trait Coefs {
    /// Whether `sum c_j (x_j - m)` is accumulated and `beta * c_j` subtracted at all.
    const USED: bool;
    /// `c[i..i + 8]` (`mask` given: only its lanes; the others may be anything finite).
    ///
    /// # Safety
    /// AVX2; `i + 8` within the row, or `mask` limits the lanes to the row.
    unsafe fn load(&self, i: usize, mask: Option<__m256i>) -> __m256;
}

/// # Safety
/// AVX2; without a mask `p` must hold 8 floats at `i`, with one the masked lanes.
#[inline(always)]
unsafe fn load(p: *const f32, i: usize, mask: Option<__m256i>) -> __m256 {
    // SAFETY: the caller guarantees the lanes read are inside the slice.
    unsafe {
        match mask {
            None => _mm256_loadu_ps(p.add(i)),
            Some(m) => _mm256_maskload_ps(p.add(i), m),
        }
    }
}

#[derive(Clone, Copy)]
struct NoCoefs;
impl Coefs for NoCoefs {
    const USED: bool = false;
    #[inline(always)]
    unsafe fn load(&self, _: usize, _: Option<__m256i>) -> __m256 {
        // SAFETY: register-only.
        unsafe { _mm256_setzero_ps() }
    }
}

#[derive(Clone, Copy)]
struct Ones;
impl Coefs for Ones {
    const USED: bool = true;
    #[inline(always)]
    unsafe fn load(&self, _: usize, _: Option<__m256i>) -> __m256 {
        // SAFETY: register-only.
        unsafe { _mm256_set1_ps(1.0) }
    }
}

#[derive(Clone, Copy)]
struct Weights<'a>(&'a [f32]);
impl Coefs for Weights<'_> {
    const USED: bool = true;
    #[inline(always)]
    unsafe fn load(&self, i: usize, mask: Option<__m256i>) -> __m256 {
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
    unsafe fn load(&self, i: usize, mask: Option<__m256i>) -> __m256 {
        // SAFETY: targets and weights are as long as the row (checked by the entry point).
        unsafe {
            let p = _mm256_fmadd_ps(
                load(self.p.as_ptr(), i, mask),
                _mm256_set1_ps(self.keep),
                _mm256_set1_ps(self.add),
            );
            match self.w {
                None => p,
                Some(w) => _mm256_mul_ps(load(w.as_ptr(), i, mask), p),
            }
        }
    }
}

/// Logits per block of pass 1: eight vectors, whose maximum is taken before their
/// exponentials.
const BLOCK: usize = 64;
/// How far ahead of pass 1 (in floats) the gradient buffer's lines are fetched when it is not
/// the logits: its first write to a line then needs no wait for the line (and the row's lines
/// after the first few are already in cache when pass 1 reaches them).
const PREFETCH_AHEAD: usize = 512;
/// The first pass starts from the maximum of the row's first `HEAD` logits (whole blocks), read
/// once more from L1 by the exponentials: rows up to this long need no segments, and longer
/// ones rarely move the maximum much after it.
const HEAD: usize = 1024;

/// `exp(d)` of one `d <= 0` (or NaN) with the vector algorithm.
///
/// # Safety
/// AVX2 and FMA.
#[inline(always)]
unsafe fn exp_one(d: f32) -> f32 {
    // SAFETY: register-only; the caller guarantees the features.
    unsafe { _mm256_cvtss_f32(vector::exp_nonpositive(_mm256_set1_ps(d))) }
}

/// Pass 1 over a row of `n` logits at `x` (module docs): the maximum of the row's head is the
/// first reference `r`; block by block, a block past the head whose maximum is above it moves
/// `r` there (the sums so far rescaled, a new segment in `segments`); then `e_j = exp(x_j - r)`
/// is stored at `out` when `STORE` (which may equal `x`), summed, and `c_j (x_j - r)`
/// accumulated. Returns the final maximum (`-inf` when there is none), `sum e_j` and
/// `sum c_j (x_j - max)`, both against that maximum (against 0 when it is `-inf`).
///
/// # Safety
/// AVX2 and FMA; `x` readable and (when `STORE`) `out` writable for `n` floats; the
/// coefficients cover `n`.
#[inline(always)]
unsafe fn exp_pass<const STORE: bool, const PREFETCH: bool, C: Coefs>(
    x: *const f32,
    out: *mut f32,
    n: usize,
    c: C,
    segments: &mut Segments,
) -> (f32, f32, f32) {
    // SAFETY: full vectors cover [j, j + 8) with j + 8 <= n; tails are masked to n - j lanes;
    // prefetches are hints that never fault (`wrapping_add`: the address may be past the
    // buffer).
    unsafe {
        let zero = _mm256_setzero_ps();
        // The running maximum starts as the maximum of the row's head (of all of a short
        // row): only a larger value further on moves it. The reference is it, or 0 while it
        // is -inf; `last`: it cannot move again (the head is the row, or the segments ran out
        // and it is the rest of the row's maximum).
        let head = n.min(HEAD);
        let mut max = max_of(x, head);
        let mut r = if max == f32::NEG_INFINITY { 0.0 } else { max };
        let mut last = head == n;
        segments.push(0, max);
        let (mut maxv, mut rv) = (_mm256_set1_ps(max), _mm256_set1_ps(r));
        let (mut s0, mut s1) = (zero, zero);
        // sum c_j (x_j - r) and sum c_j, two lanes' worth each.
        let (mut a0, mut a1, mut w0, mut w1) = (zero, zero, zero, zero);
        let mut i = 0;
        while i < n {
            let len = (n - i).min(BLOCK);
            // (Blocks inside the head cannot move the maximum: `HEAD` is whole blocks.)
            if !last && i >= head {
                let above = if len == BLOCK {
                    let v = |k: usize| x.add(i + 8 * k);
                    let block_max = _mm256_max_ps(
                        _mm256_max_ps(
                            _mm256_max_ps(_mm256_loadu_ps(v(0)), _mm256_loadu_ps(v(1))),
                            _mm256_max_ps(_mm256_loadu_ps(v(2)), _mm256_loadu_ps(v(3))),
                        ),
                        _mm256_max_ps(
                            _mm256_max_ps(_mm256_loadu_ps(v(4)), _mm256_loadu_ps(v(5))),
                            _mm256_max_ps(_mm256_loadu_ps(v(6)), _mm256_loadu_ps(v(7))),
                        ),
                    );
                    _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(block_max, maxv)) != 0
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
                    let f = _mm256_set1_ps(exp_one(max - new));
                    s0 = _mm256_mul_ps(s0, f);
                    s1 = _mm256_mul_ps(s1, f);
                    if C::USED {
                        let shift = _mm256_set1_ps(r - new);
                        a0 = _mm256_fmadd_ps(w0, shift, a0);
                        a1 = _mm256_fmadd_ps(w1, shift, a1);
                    }
                    segments.push(i, new);
                    (max, r) = (new, new);
                    (maxv, rv) = (_mm256_set1_ps(max), _mm256_set1_ps(r));
                }
            }
            if len == BLOCK {
                if PREFETCH {
                    let ahead = out.wrapping_add(i + PREFETCH_AHEAD);
                    for line in 0..4 {
                        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(16 * line) as *const i8);
                    }
                }
                // (The block is loaded again rather than kept: sixteen registers do not hold
                // it next to the exponential's constants.)
                for k in (0..BLOCK).step_by(16) {
                    let d0 = _mm256_sub_ps(_mm256_loadu_ps(x.add(i + k)), rv);
                    let d1 = _mm256_sub_ps(_mm256_loadu_ps(x.add(i + k + 8)), rv);
                    let e0 = vector::exp_nonpositive(d0);
                    let e1 = vector::exp_nonpositive(d1);
                    if STORE {
                        _mm256_storeu_ps(out.add(i + k), e0);
                        _mm256_storeu_ps(out.add(i + k + 8), e1);
                    }
                    s0 = _mm256_add_ps(s0, e0);
                    s1 = _mm256_add_ps(s1, e1);
                    if C::USED {
                        let (c0, c1) = (c.load(i + k, None), c.load(i + k + 8, None));
                        a0 = _mm256_fmadd_ps(c0, d0, a0);
                        a1 = _mm256_fmadd_ps(c1, d1, a1);
                        w0 = _mm256_add_ps(w0, c0);
                        w1 = _mm256_add_ps(w1, c1);
                    }
                }
            } else {
                // The row's last, partial block: vector by vector, the last one masked.
                let mut j = i;
                while j + 8 <= n {
                    let d = _mm256_sub_ps(_mm256_loadu_ps(x.add(j)), rv);
                    let e = vector::exp_nonpositive(d);
                    if STORE {
                        _mm256_storeu_ps(out.add(j), e);
                    }
                    s0 = _mm256_add_ps(s0, e);
                    if C::USED {
                        let cj = c.load(j, None);
                        a0 = _mm256_fmadd_ps(cj, d, a0);
                        w0 = _mm256_add_ps(w0, cj);
                    }
                    j += 8;
                }
                if j < n {
                    let mask = tail_mask(n - j);
                    let keep = _mm256_castsi256_ps(mask);
                    let d = _mm256_sub_ps(_mm256_maskload_ps(x.add(j), mask), rv);
                    let e = vector::exp_nonpositive(d);
                    if STORE {
                        _mm256_maskstore_ps(out.add(j), mask, e);
                    }
                    s1 = _mm256_add_ps(s1, _mm256_and_ps(e, keep));
                    if C::USED {
                        let cj = _mm256_and_ps(c.load(j, Some(mask)), keep);
                        a1 = _mm256_add_ps(a1, _mm256_and_ps(_mm256_mul_ps(cj, d), keep));
                        w1 = _mm256_add_ps(w1, cj);
                    }
                }
            }
            i += len;
        }
        let acc = if C::USED {
            F32x::sum(_mm256_add_ps(a0, a1))
        } else {
            0.0
        };
        let sum = F32x::sum(_mm256_add_ps(s0, s1));
        (max, sum, acc)
    }
}

/// Pass 2 over elements `[start, end)`: `g_j = g_j * mul - beta * c_j`.
///
/// # Safety
/// AVX2 and FMA; `g` readable and writable for `end` floats; the coefficients cover `end`.
#[inline(always)]
unsafe fn scale_pass<C: Coefs>(g: *mut f32, start: usize, end: usize, mul: f32, beta: f32, c: C) {
    // SAFETY: full vectors cover [i, i + 8) with i + 8 <= end; the tail is masked.
    unsafe {
        let mulv = _mm256_set1_ps(mul);
        let betav = _mm256_set1_ps(beta);
        let mut i = start;
        while i + 16 <= end {
            let mut v0 = _mm256_mul_ps(_mm256_loadu_ps(g.add(i)), mulv);
            let mut v1 = _mm256_mul_ps(_mm256_loadu_ps(g.add(i + 8)), mulv);
            if C::USED {
                v0 = _mm256_fnmadd_ps(betav, c.load(i, None), v0);
                v1 = _mm256_fnmadd_ps(betav, c.load(i + 8, None), v1);
            }
            _mm256_storeu_ps(g.add(i), v0);
            _mm256_storeu_ps(g.add(i + 8), v1);
            i += 16;
        }
        while i < end {
            let mask = tail_mask(end - i);
            let mut v = _mm256_mul_ps(_mm256_maskload_ps(g.add(i), mask), mulv);
            if C::USED {
                v = _mm256_fnmadd_ps(betav, c.load(i, Some(mask)), v);
            }
            _mm256_maskstore_ps(g.add(i), mask, v);
            i += 8;
        }
    }
}

/// The two passes over a row of `n` logits at `x`; the gradient written at `out` when
/// `WRITE` (which may equal `x`; `PREFETCH` only when it does not).
///
/// # Safety
/// AVX2 and FMA; `x` readable and (when `WRITE`) `out` writable for `n` floats; the
/// coefficients cover `n`; `args.fix` inside the row.
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
                // exp(reference - max): 1 for the last segment (the usual only one: no
                // exponential on the way to the scale pass), 0 for one without a maximum.
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
/// AVX2 and FMA; `out` and the coefficient slices as long as `x`; `args.fix` inside the row.
#[target_feature(enable = "avx2,fma")]
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
/// AVX2 and FMA; the coefficient slices as long as `x`; `args.fix` inside the row.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn row_in_place(x: &mut [f32], args: &RowArgs<'_>) -> RowStats {
    let ptr = x.as_mut_ptr();
    // SAFETY: features enabled here; one pointer of the exclusive borrow, each element read
    // before it is written.
    unsafe { row_any::<true, false>(ptr, ptr, x.len(), args) }
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
