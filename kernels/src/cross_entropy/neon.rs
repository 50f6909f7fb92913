//! NEON row kernels of the fused softmax-cross-entropy (the module docs give the passes): 4
//! lanes, several vectors per step in the long loops, tails through padded stack buffers.

use super::{BlockArgs, Coef, RowArgs, RowStats, Segments, BLOCK_MAX_CLASSES, BLOCK_ROWS};
use crate::exp::vector;
use std::arch::aarch64::*;

/// A vector of the `n - i < 4` floats at `p + i`, the other lanes `fill`.
///
/// # Safety
/// `p` readable for `n` floats.
#[inline(always)]
unsafe fn load_tail(p: *const f32, i: usize, n: usize, fill: f32) -> float32x4_t {
    let mut buf = [fill; 4];
    // SAFETY: `n - i <= 4` floats at `p + i` are inside the caller's buffer; `buf` holds 4.
    unsafe {
        core::ptr::copy_nonoverlapping(p.add(i), buf.as_mut_ptr(), n - i);
        vld1q_f32(buf.as_ptr())
    }
}

/// Stores the first `n - i < 4` lanes of `v` at `p + i`.
///
/// # Safety
/// `p` writable for `n` floats.
#[inline(always)]
unsafe fn store_tail(p: *mut f32, i: usize, n: usize, v: float32x4_t) {
    let mut buf = [0.0f32; 4];
    // SAFETY: `buf` holds 4 floats; `n - i <= 4` floats at `p + i` are inside the buffer.
    unsafe {
        vst1q_f32(buf.as_mut_ptr(), v);
        core::ptr::copy_nonoverlapping(buf.as_ptr(), p.add(i), n - i);
    }
}

/// Per-class coefficients `c_j`, 4 at a time.
trait Coefs {
    /// Whether `sum c_j (x_j - m)` is accumulated and `beta * c_j` subtracted at all.
    const USED: bool;
    /// `c[i..i + 4]`, or the `n - i < 4` left at `i` when `tail` (other lanes 0).
    ///
    /// # Safety
    /// NEON; the lanes read are inside the row.
    unsafe fn load(&self, i: usize, n: usize, tail: bool) -> float32x4_t;
}

/// # Safety
/// NEON; `p` holds `n` floats and either `i + 4 <= n` or `tail`.
#[inline(always)]
unsafe fn load(p: *const f32, i: usize, n: usize, tail: bool) -> float32x4_t {
    // SAFETY: forwarded contract.
    unsafe {
        if tail {
            load_tail(p, i, n, 0.0)
        } else {
            vld1q_f32(p.add(i))
        }
    }
}

#[derive(Clone, Copy)]
struct NoCoefs;
impl Coefs for NoCoefs {
    const USED: bool = false;
    #[inline(always)]
    unsafe fn load(&self, _: usize, _: usize, _: bool) -> float32x4_t {
        // SAFETY: register-only.
        unsafe { vdupq_n_f32(0.0) }
    }
}

#[derive(Clone, Copy)]
struct Ones;
impl Coefs for Ones {
    const USED: bool = true;
    #[inline(always)]
    unsafe fn load(&self, i: usize, n: usize, tail: bool) -> float32x4_t {
        let mut buf = [0.0f32; 4];
        let lanes = if tail { n - i } else { 4 };
        buf[..lanes].fill(1.0);
        // SAFETY: `buf` holds 4 floats.
        unsafe { vld1q_f32(buf.as_ptr()) }
    }
}

#[derive(Clone, Copy)]
struct Weights<'a>(&'a [f32]);
impl Coefs for Weights<'_> {
    const USED: bool = true;
    #[inline(always)]
    unsafe fn load(&self, i: usize, n: usize, tail: bool) -> float32x4_t {
        // SAFETY: the weights are as long as the row (checked by the entry point).
        unsafe { load(self.0.as_ptr(), i, n, tail) }
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
    unsafe fn load(&self, i: usize, n: usize, tail: bool) -> float32x4_t {
        // SAFETY: targets and weights are as long as the row (checked by the entry point).
        unsafe {
            let p = vfmaq_n_f32(
                vdupq_n_f32(self.add),
                load(self.p.as_ptr(), i, n, tail),
                self.keep,
            );
            // Padding lanes of the tail must be 0 (not `add`).
            let p = if tail {
                let mut buf = [0.0f32; 4];
                vst1q_f32(buf.as_mut_ptr(), p);
                buf[n - i..].fill(0.0);
                vld1q_f32(buf.as_ptr())
            } else {
                p
            };
            match self.w {
                None => p,
                Some(w) => vmulq_f32(load(w.as_ptr(), i, n, tail), p),
            }
        }
    }
}

/// The maximum of `n` floats at `p` (`-inf` when there is none; NaN is skipped, the
/// exp pass catches it).
///
/// # Safety
/// NEON; `p` readable for `n` floats.
#[inline(always)]
unsafe fn max_of(p: *const f32, n: usize) -> f32 {
    // SAFETY: full vectors cover [i, i + 4) with i + 4 <= n; the tail goes
    // through a buffer.
    unsafe {
        let neg_inf = vdupq_n_f32(f32::NEG_INFINITY);
        let (mut m0, mut m1, mut m2, mut m3) = (neg_inf, neg_inf, neg_inf, neg_inf);
        let mut i = 0;
        while i + 16 <= n {
            m0 = vmaxnmq_f32(m0, vld1q_f32(p.add(i)));
            m1 = vmaxnmq_f32(m1, vld1q_f32(p.add(i + 4)));
            m2 = vmaxnmq_f32(m2, vld1q_f32(p.add(i + 8)));
            m3 = vmaxnmq_f32(m3, vld1q_f32(p.add(i + 12)));
            i += 16;
        }
        while i + 4 <= n {
            m0 = vmaxnmq_f32(m0, vld1q_f32(p.add(i)));
            i += 4;
        }
        if i < n {
            m1 = vmaxnmq_f32(m1, load_tail(p, i, n, f32::NEG_INFINITY));
        }
        vmaxnmvq_f32(vmaxnmq_f32(vmaxnmq_f32(m0, m1), vmaxnmq_f32(m2, m3)))
    }
}

/// Logits per block of pass 1: eight vectors, whose maximum is taken before their
/// exponentials.
const BLOCK: usize = 32;
/// The first pass starts from the maximum of the row's first `HEAD` logits (whole blocks), read
/// once more from L1 by the exponentials: rows up to this long need no segments, and longer
/// ones rarely move the maximum much after it.
const HEAD: usize = 1024;

/// `exp(d)` of one `d <= 0` (or NaN) with the vector algorithm.
///
/// # Safety
/// NEON.
#[inline(always)]
unsafe fn exp_one(d: f32) -> f32 {
    // SAFETY: register-only; the caller guarantees NEON.
    unsafe { vgetq_lane_f32::<0>(vector::exp_nonpositive(vdupq_n_f32(d))) }
}

/// Pass 1 over a row of `n` logits at `x` (module docs): the maximum of the row's head is the
/// first reference `r`; block by block, a block past the head whose maximum is above it moves
/// `r` there (the sums so far rescaled, a new segment in `segments`); then `e_j = exp(x_j - r)`
/// is stored at `out` when `STORE` (which may equal `x`), summed, and `c_j (x_j - r)`
/// accumulated. Returns the final maximum (`-inf` when there is none), `sum e_j` and
/// `sum c_j (x_j - max)`, both against that maximum (against 0 when it is `-inf`).
///
/// # Safety
/// NEON; `x` readable and (when `STORE`) `out` writable for `n` floats; the coefficients
/// cover `n`.
#[inline(always)]
unsafe fn exp_pass<const STORE: bool, C: Coefs>(
    x: *const f32,
    out: *mut f32,
    n: usize,
    c: C,
    segments: &mut Segments,
) -> (f32, f32, f32) {
    // SAFETY: full vectors cover [j, j + 4) with j + 4 <= n; the tail goes through buffers.
    unsafe {
        let zero = vdupq_n_f32(0.0);
        // The running maximum starts as the maximum of the row's head (of all of a short
        // row): only a larger value further on moves it. The reference is it, or 0 while it
        // is -inf; `last`: it cannot move again (the head is the row, or the segments ran out
        // and it is the rest of the row's maximum).
        let head = n.min(HEAD);
        let mut max = max_of(x, head);
        let mut r = if max == f32::NEG_INFINITY { 0.0 } else { max };
        let mut last = head == n;
        segments.push(0, max);
        let (mut maxv, mut rv) = (vdupq_n_f32(max), vdupq_n_f32(r));
        let (mut s0, mut s1) = (zero, zero);
        // sum c_j (x_j - r) and sum c_j, two lanes' worth each.
        let (mut a0, mut a1, mut w0, mut w1) = (zero, zero, zero, zero);
        let mut i = 0;
        while i < n {
            let len = (n - i).min(BLOCK);
            // (Blocks inside the head cannot move the maximum: `HEAD` is whole blocks.)
            if !last && i >= head {
                let above = if len == BLOCK {
                    let v = |k: usize| x.add(i + 4 * k);
                    let block_max = vmaxnmq_f32(
                        vmaxnmq_f32(
                            vmaxnmq_f32(vld1q_f32(v(0)), vld1q_f32(v(1))),
                            vmaxnmq_f32(vld1q_f32(v(2)), vld1q_f32(v(3))),
                        ),
                        vmaxnmq_f32(
                            vmaxnmq_f32(vld1q_f32(v(4)), vld1q_f32(v(5))),
                            vmaxnmq_f32(vld1q_f32(v(6)), vld1q_f32(v(7))),
                        ),
                    );
                    vmaxvq_u32(vcgtq_f32(block_max, maxv)) != 0
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
                    let f = exp_one(max - new);
                    s0 = vmulq_n_f32(s0, f);
                    s1 = vmulq_n_f32(s1, f);
                    if C::USED {
                        a0 = vfmaq_n_f32(a0, w0, r - new);
                        a1 = vfmaq_n_f32(a1, w1, r - new);
                    }
                    segments.push(i, new);
                    (max, r) = (new, new);
                    (maxv, rv) = (vdupq_n_f32(max), vdupq_n_f32(r));
                }
            }
            if len == BLOCK {
                // (The block is loaded again rather than kept, as in the AVX2 kernel.)
                for k in (0..BLOCK).step_by(8) {
                    let d0 = vsubq_f32(vld1q_f32(x.add(i + k)), rv);
                    let d1 = vsubq_f32(vld1q_f32(x.add(i + k + 4)), rv);
                    let e0 = vector::exp_nonpositive(d0);
                    let e1 = vector::exp_nonpositive(d1);
                    if STORE {
                        vst1q_f32(out.add(i + k), e0);
                        vst1q_f32(out.add(i + k + 4), e1);
                    }
                    s0 = vaddq_f32(s0, e0);
                    s1 = vaddq_f32(s1, e1);
                    if C::USED {
                        let (c0, c1) = (c.load(i + k, n, false), c.load(i + k + 4, n, false));
                        a0 = vfmaq_f32(a0, c0, d0);
                        a1 = vfmaq_f32(a1, c1, d1);
                        w0 = vaddq_f32(w0, c0);
                        w1 = vaddq_f32(w1, c1);
                    }
                }
            } else {
                // The row's last, partial block: vector by vector, the last one through
                // buffers.
                let mut j = i;
                while j + 4 <= n {
                    let d = vsubq_f32(vld1q_f32(x.add(j)), rv);
                    let e = vector::exp_nonpositive(d);
                    if STORE {
                        vst1q_f32(out.add(j), e);
                    }
                    s0 = vaddq_f32(s0, e);
                    if C::USED {
                        let cj = c.load(j, n, false);
                        a0 = vfmaq_f32(a0, cj, d);
                        w0 = vaddq_f32(w0, cj);
                    }
                    j += 4;
                }
                if j < n {
                    // Padding lanes are -inf: exp gives 0; their coefficients are 0, and `d` is
                    // zeroed for them.
                    let d = vsubq_f32(load_tail(x, j, n, f32::NEG_INFINITY), rv);
                    let e = vector::exp_nonpositive(d);
                    if STORE {
                        store_tail(out, j, n, e);
                    }
                    s1 = vaddq_f32(s1, e);
                    if C::USED {
                        let mut dbuf = [0.0f32; 4];
                        vst1q_f32(dbuf.as_mut_ptr(), d);
                        dbuf[n - j..].fill(0.0);
                        let cj = c.load(j, n, true);
                        a1 = vfmaq_f32(a1, cj, vld1q_f32(dbuf.as_ptr()));
                        w1 = vaddq_f32(w1, cj);
                    }
                }
            }
            i += len;
        }
        let acc = if C::USED {
            vaddvq_f32(vaddq_f32(a0, a1))
        } else {
            0.0
        };
        let sum = vaddvq_f32(vaddq_f32(s0, s1));
        (max, sum, acc)
    }
}

/// Pass 2 over elements `[start, end)`: `g_j = g_j * mul - beta * c_j`.
///
/// # Safety
/// NEON; `g` readable and writable for `end` floats; the coefficients cover `end`.
#[inline(always)]
unsafe fn scale_pass<C: Coefs>(g: *mut f32, start: usize, end: usize, mul: f32, beta: f32, c: C) {
    // SAFETY: full vectors cover [i, i + 4) with i + 4 <= end; the tail goes through buffers.
    unsafe {
        let betav = vdupq_n_f32(beta);
        let mut i = start;
        while i + 8 <= end {
            let mut v0 = vmulq_n_f32(vld1q_f32(g.add(i)), mul);
            let mut v1 = vmulq_n_f32(vld1q_f32(g.add(i + 4)), mul);
            if C::USED {
                v0 = vfmsq_f32(v0, betav, c.load(i, end, false));
                v1 = vfmsq_f32(v1, betav, c.load(i + 4, end, false));
            }
            vst1q_f32(g.add(i), v0);
            vst1q_f32(g.add(i + 4), v1);
            i += 8;
        }
        while i + 4 <= end {
            let mut v = vmulq_n_f32(vld1q_f32(g.add(i)), mul);
            if C::USED {
                v = vfmsq_f32(v, betav, c.load(i, end, false));
            }
            vst1q_f32(g.add(i), v);
            i += 4;
        }
        if i < end {
            let mut v = vmulq_n_f32(load_tail(g, i, end, 0.0), mul);
            if C::USED {
                v = vfmsq_f32(v, betav, c.load(i, end, true));
            }
            store_tail(g, i, end, v);
        }
    }
}

/// The two passes over a row of `n` logits at `x`; the gradient written at `out` when
/// `WRITE` (which may equal `x`).
///
/// # Safety
/// NEON; `x` readable and (when `WRITE`) `out` writable for `n` floats; the coefficients cover
/// `n`; `args.fix` inside the row.
#[inline(always)]
unsafe fn row_body<const WRITE: bool, C: Coefs + Copy>(
    x: *const f32,
    out: *mut f32,
    n: usize,
    args: &RowArgs<'_>,
    c: C,
) -> RowStats {
    // SAFETY: forwarded contract; segments lie inside the row; the fix-up index is inside it.
    unsafe {
        let mut segments = Segments::new();
        let (max, sum, acc) = exp_pass::<WRITE, C>(x, out, n, c, &mut segments);
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
unsafe fn row_any<const WRITE: bool>(
    x: *const f32,
    out: *mut f32,
    n: usize,
    args: &RowArgs<'_>,
) -> RowStats {
    // SAFETY: forwarded contract.
    unsafe {
        match args.coef {
            Coef::None => row_body::<WRITE, _>(x, out, n, args, NoCoefs),
            Coef::Ones => row_body::<WRITE, _>(x, out, n, args, Ones),
            Coef::Weights(w) => row_body::<WRITE, _>(x, out, n, args, Weights(w)),
            Coef::Probs { p, w, keep, add } => {
                row_body::<WRITE, _>(x, out, n, args, Probs { p, w, keep, add })
            }
        }
    }
}

/// The row kernel, the gradient into `out` (or, forward only, nowhere).
///
/// # Safety
/// NEON; `out` and the coefficient slices as long as `x`; `args.fix` inside the row.
#[target_feature(enable = "neon")]
pub(super) unsafe fn row(x: &[f32], out: Option<&mut [f32]>, args: &RowArgs<'_>) -> RowStats {
    // SAFETY: NEON enabled here; both slices hold x.len() floats (the caller's contract).
    unsafe {
        match out {
            Some(out) => row_any::<true>(x.as_ptr(), out.as_mut_ptr(), x.len(), args),
            None => row_any::<false>(x.as_ptr(), core::ptr::null_mut(), x.len(), args),
        }
    }
}

/// The row kernel, the gradient over the logits.
///
/// # Safety
/// NEON; the coefficient slices as long as `x`; `args.fix` inside the row.
#[target_feature(enable = "neon")]
pub(super) unsafe fn row_in_place(x: &mut [f32], args: &RowArgs<'_>) -> RowStats {
    let ptr = x.as_mut_ptr();
    // SAFETY: NEON enabled here; one pointer of the exclusive borrow, each element read before
    // it is written.
    unsafe { row_any::<true>(ptr, ptr, x.len(), args) }
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
