//! The row kernel of the fused softmax-cross-entropy (the module docs give the passes), written
//! once over [`F32x`]: pass 1 (`exp_pass`) and pass 2 (`scale_pass`) over one row, in blocks of
//! eight vectors, two vectors per step in the long loops, tails through first-`n` loads and
//! stores. The ISA files instantiate [`row`] and [`row_in_place`].

use super::{Coef, RowArgs, RowStats, Segments};
use crate::exp::vector::exp_nonpositive;
use crate::simd::F32x;

/// The first pass starts from the maximum of the row's first `HEAD` logits (whole blocks),
/// read once more from L1 by the exponentials: rows up to this long need no segments, and
/// longer ones rarely move the maximum much after it.
const HEAD: usize = 1024;
/// How far ahead of pass 1 (in floats) the gradient buffer's lines are fetched when it is not
/// the logits: its first write to a line then needs no wait for the line.
const PREFETCH_OUT_AHEAD: usize = 512;
/// How far ahead the logits' lines are fetched where the table asks for it.
const PREFETCH_LOGITS_AHEAD: usize = HEAD;
/// Floats per cache line: prefetches step by it.
const LINE: usize = 16;

/// All lanes at `p + i`, or the first `count` (the others 0). (A function, not a closure:
/// closures do not inherit the wrapper's target features.)
///
/// # Safety
/// The CPU supports `V`'s ISA; the lanes read are inside the buffer.
#[inline(always)]
unsafe fn load<V: F32x>(p: *const f32, i: usize, count: Option<usize>) -> V {
    // SAFETY: forwarded contract.
    unsafe {
        match count {
            None => V::load(p.add(i)),
            Some(n) => V::load_first(p.add(i), n),
        }
    }
}

/// Maximum of `n` floats at `x` (`-inf` when there is none; NaN lanes may be skipped or kept:
/// the exp pass turns either into NaN).
///
/// # Safety
/// The CPU supports `V`'s ISA; `x` points to `n` readable floats.
#[inline(always)]
unsafe fn max_of<V: F32x>(x: *const f32, n: usize) -> f32 {
    let w = V::LANES;
    // SAFETY: full vectors cover [i, i + w) with i + w <= n; the tail reads n - i lanes.
    unsafe {
        let neg_inf = V::splat(f32::NEG_INFINITY);
        let (mut m0, mut m1, mut m2, mut m3) = (neg_inf, neg_inf, neg_inf, neg_inf);
        let mut i = 0;
        while i + 4 * w <= n {
            m0 = m0.max(V::load(x.add(i)));
            m1 = m1.max(V::load(x.add(i + w)));
            m2 = m2.max(V::load(x.add(i + 2 * w)));
            m3 = m3.max(V::load(x.add(i + 3 * w)));
            i += 4 * w;
        }
        while i + w <= n {
            m0 = m0.max(V::load(x.add(i)));
            i += w;
        }
        if i < n {
            let v = V::load_first(x.add(i), n - i);
            m1 = m1.max(V::select(V::first_lanes(n - i), v, neg_inf));
        }
        m0.max(m1).max(m2.max(m3)).max_lane()
    }
}

/// Per-class coefficients `c_j` of pass 2, a vector at a time.
trait Coefs<V: F32x>: Copy {
    /// Whether `sum c_j (x_j - m)` is accumulated and `beta * c_j` subtracted at all.
    const USED: bool;
    /// `c[i..i + LANES]`, or its first `count` (the other lanes finite).
    ///
    /// # Safety
    /// The CPU supports `V`'s ISA; the lanes read are inside the row.
    unsafe fn load(&self, i: usize, count: Option<usize>) -> V;
}

#[derive(Clone, Copy)]
struct NoCoefs;
impl<V: F32x> Coefs<V> for NoCoefs {
    const USED: bool = false;
    #[inline(always)]
    unsafe fn load(&self, _: usize, _: Option<usize>) -> V {
        // SAFETY: register-only.
        unsafe { V::zero() }
    }
}

#[derive(Clone, Copy)]
struct Ones;
impl<V: F32x> Coefs<V> for Ones {
    const USED: bool = true;
    #[inline(always)]
    unsafe fn load(&self, _: usize, _: Option<usize>) -> V {
        // SAFETY: register-only.
        unsafe { V::splat(1.0) }
    }
}

#[derive(Clone, Copy)]
struct Weights<'a>(&'a [f32]);
impl<V: F32x> Coefs<V> for Weights<'_> {
    const USED: bool = true;
    #[inline(always)]
    unsafe fn load(&self, i: usize, count: Option<usize>) -> V {
        // SAFETY: the weights are as long as the row (checked by the entry point).
        unsafe { load(self.0.as_ptr(), i, count) }
    }
}

#[derive(Clone, Copy)]
struct Probs<'a> {
    p: &'a [f32],
    w: Option<&'a [f32]>,
    keep: f32,
    add: f32,
}
impl<V: F32x> Coefs<V> for Probs<'_> {
    const USED: bool = true;
    #[inline(always)]
    unsafe fn load(&self, i: usize, count: Option<usize>) -> V {
        // SAFETY: targets and weights are as long as the row (checked by the entry point).
        unsafe {
            let p = load::<V>(self.p.as_ptr(), i, count)
                .mul_add(V::splat(self.keep), V::splat(self.add));
            match self.w {
                None => p,
                Some(w) => load::<V>(w.as_ptr(), i, count).mul(p),
            }
        }
    }
}

/// `exp(d)` of one `d <= 0` (or NaN) with the vector algorithm.
///
/// # Safety
/// The CPU supports `V`'s ISA.
#[inline(always)]
unsafe fn exp_one<V: F32x>(d: f32) -> f32 {
    // SAFETY: register operations of `V`; the caller guarantees its ISA.
    unsafe { exp_nonpositive(V::splat(d)).lane0() }
}

/// The switches of one instantiation of the row kernel.
#[derive(Clone, Copy)]
pub(super) struct Switches {
    /// Fetch the gradient buffer's lines ahead of pass 1 (only when it is not the logits).
    pub prefetch_out: bool,
    /// Fetch the logits' lines ahead of pass 1.
    pub prefetch_logits: bool,
}

/// Pass 1 over a row of `n` logits at `x` (module docs): the maximum of the row's head is the
/// first reference `r`; block by block, a block past the head whose maximum is above it moves
/// `r` there (the sums so far rescaled, a new segment in `segments`); then `e_j = exp(x_j - r)`
/// is stored at `out` when `STORE` (which may equal `x`), summed, and `c_j (x_j - r)`
/// accumulated. Returns the final maximum (`-inf` when there is none), `sum e_j` and
/// `sum c_j (x_j - max)`, both against that maximum (against 0 when it is `-inf`).
///
/// # Safety
/// The CPU supports `V`'s ISA; `x` readable and (when `STORE`) `out` writable for `n` floats;
/// the coefficients cover `n`.
#[inline(always)]
unsafe fn exp_pass<V: F32x, const STORE: bool, C: Coefs<V>>(
    x: *const f32,
    out: *mut f32,
    n: usize,
    c: C,
    segments: &mut Segments,
    switches: Switches,
) -> (f32, f32, f32) {
    let w = V::LANES;
    let block = 8 * w;
    // SAFETY: full vectors cover [j, j + w) with j + w <= n; the tail touches n - j lanes;
    // prefetches are hints that never fault (`wrapping_add`: the address may be past the
    // buffer).
    unsafe {
        let zero = V::zero();
        // The running maximum starts as the maximum of the row's head (of all of a short
        // row): only a larger value further on moves it. The reference is it, or 0 while it
        // is -inf; `last`: it cannot move again (the head is the row, or the segments ran out
        // and it is the rest of the row's maximum).
        let head = n.min(HEAD);
        let mut max = max_of::<V>(x, head);
        let mut r = if max == f32::NEG_INFINITY { 0.0 } else { max };
        let mut last = head == n;
        segments.push(0, max);
        let (mut maxv, mut rv) = (V::splat(max), V::splat(r));
        let (mut s0, mut s1) = (zero, zero);
        // sum c_j (x_j - r) and sum c_j, two vectors' worth each.
        let (mut a0, mut a1, mut w0, mut w1) = (zero, zero, zero, zero);
        let mut i = 0;
        while i < n {
            let len = (n - i).min(block);
            // (Blocks inside the head cannot move the maximum: `HEAD` is whole blocks.)
            if !last && i >= head {
                let above = if len == block {
                    let v = |k: usize| V::load(x.add(i + w * k));
                    let block_max = v(0).max(v(1)).max(v(2).max(v(3)));
                    let block_max = block_max.max(v(4).max(v(5)).max(v(6).max(v(7))));
                    V::mask_any(block_max.gt(maxv))
                } else {
                    max_of::<V>(x.add(i), len) > max
                };
                if above {
                    let mut new = max_of::<V>(x.add(i), len);
                    if segments.last_place() {
                        new = new.max(max_of::<V>(x.add(i), n - i));
                        last = true;
                    }
                    // Sums against the old reference, moved to the new one (0 when there was
                    // no maximum: every term so far was exp(-inf), or NaN).
                    let f = V::splat(exp_one::<V>(max - new));
                    s0 = s0.mul(f);
                    s1 = s1.mul(f);
                    if C::USED {
                        let shift = V::splat(r - new);
                        a0 = w0.mul_add(shift, a0);
                        a1 = w1.mul_add(shift, a1);
                    }
                    segments.push(i, new);
                    (max, r) = (new, new);
                    (maxv, rv) = (V::splat(max), V::splat(r));
                }
            }
            if len == block {
                if switches.prefetch_logits {
                    let ahead = x.wrapping_add(i + PREFETCH_LOGITS_AHEAD);
                    for line in 0..block / LINE {
                        V::prefetch(ahead.wrapping_add(LINE * line));
                    }
                }
                if switches.prefetch_out {
                    let ahead = out.wrapping_add(i + PREFETCH_OUT_AHEAD);
                    for line in 0..block / LINE {
                        V::prefetch(ahead.wrapping_add(LINE * line));
                    }
                }
                // (The block is loaded again rather than kept: sixteen registers do not hold
                // it next to the exponential's constants.)
                for k in (0..block).step_by(2 * w) {
                    let d0 = V::load(x.add(i + k)).sub(rv);
                    let d1 = V::load(x.add(i + k + w)).sub(rv);
                    let e0 = exp_nonpositive(d0);
                    let e1 = exp_nonpositive(d1);
                    if STORE {
                        e0.store(out.add(i + k));
                        e1.store(out.add(i + k + w));
                    }
                    s0 = s0.add(e0);
                    s1 = s1.add(e1);
                    if C::USED {
                        let (c0, c1) = (c.load(i + k, None), c.load(i + k + w, None));
                        a0 = c0.mul_add(d0, a0);
                        a1 = c1.mul_add(d1, a1);
                        w0 = w0.add(c0);
                        w1 = w1.add(c1);
                    }
                }
            } else {
                // The row's last, partial block: vector by vector, the last one partial (its
                // other lanes are left out of every sum).
                let mut j = i;
                while j + w <= n {
                    let d = V::load(x.add(j)).sub(rv);
                    let e = exp_nonpositive(d);
                    if STORE {
                        e.store(out.add(j));
                    }
                    s0 = s0.add(e);
                    if C::USED {
                        let cj = c.load(j, None);
                        a0 = cj.mul_add(d, a0);
                        w0 = w0.add(cj);
                    }
                    j += w;
                }
                if j < n {
                    let keep = V::first_lanes(n - j);
                    let d = V::load_first(x.add(j), n - j).sub(rv);
                    let e = exp_nonpositive(d);
                    if STORE {
                        e.store_first(out.add(j), n - j);
                    }
                    s1 = s1.add(e.keep_where(keep));
                    if C::USED {
                        let cj = c.load(j, Some(n - j)).keep_where(keep);
                        a1 = a1.add(cj.mul(d).keep_where(keep));
                        w1 = w1.add(cj);
                    }
                }
            }
            i += len;
        }
        let acc = if C::USED { a0.add(a1).sum() } else { 0.0 };
        (max, s0.add(s1).sum(), acc)
    }
}

/// Pass 2 over elements `[start, end)`: `g_j = g_j * mul - beta * c_j`.
///
/// # Safety
/// The CPU supports `V`'s ISA; `g` readable and writable for `end` floats; the coefficients
/// cover `end`.
#[inline(always)]
unsafe fn scale_pass<V: F32x, C: Coefs<V>>(
    g: *mut f32,
    start: usize,
    end: usize,
    mul: f32,
    beta: f32,
    c: C,
) {
    let w = V::LANES;
    // SAFETY: full vectors cover [i, i + w) with i + w <= end; the tail touches end - i lanes.
    unsafe {
        let mulv = V::splat(mul);
        let betav = V::splat(beta);
        let mut i = start;
        while i + 2 * w <= end {
            let mut v0 = V::load(g.add(i)).mul(mulv);
            let mut v1 = V::load(g.add(i + w)).mul(mulv);
            if C::USED {
                v0 = betav.neg_mul_add(c.load(i, None), v0);
                v1 = betav.neg_mul_add(c.load(i + w, None), v1);
            }
            v0.store(g.add(i));
            v1.store(g.add(i + w));
            i += 2 * w;
        }
        while i < end {
            let count = (end - i).min(w);
            let mut v = V::load_first(g.add(i), count).mul(mulv);
            if C::USED {
                v = betav.neg_mul_add(c.load(i, Some(count)), v);
            }
            v.store_first(g.add(i), count);
            i += w;
        }
    }
}

/// The two passes over a row of `n` logits at `x`; the gradient written at `out` when
/// `WRITE` (which may equal `x`; `switches.prefetch_out` only when it does not).
///
/// # Safety
/// The CPU supports `V`'s ISA; `x` readable and (when `WRITE`) `out` writable for `n` floats;
/// the coefficients cover `n`; `args.fix` inside the row.
#[inline(always)]
unsafe fn row_body<V: F32x, const WRITE: bool, C: Coefs<V>>(
    x: *const f32,
    out: *mut f32,
    n: usize,
    args: &RowArgs<'_>,
    c: C,
    switches: Switches,
) -> RowStats {
    // SAFETY: forwarded contract; segments lie inside the row; the fix-up index is inside it.
    unsafe {
        let mut segments = Segments::new();
        let (max, sum, acc) = exp_pass::<V, WRITE, C>(x, out, n, c, &mut segments, switches);
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
                    exp_one::<V>(reference - max)
                };
                scale_pass::<V, C>(out, start, end, mul * moved, args.beta, c);
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
unsafe fn row_any<V: F32x, const WRITE: bool>(
    x: *const f32,
    out: *mut f32,
    n: usize,
    args: &RowArgs<'_>,
    switches: Switches,
) -> RowStats {
    // SAFETY: forwarded contract.
    unsafe {
        match args.coef {
            Coef::None => row_body::<V, WRITE, _>(x, out, n, args, NoCoefs, switches),
            Coef::Ones => row_body::<V, WRITE, _>(x, out, n, args, Ones, switches),
            Coef::Weights(w) => row_body::<V, WRITE, _>(x, out, n, args, Weights(w), switches),
            Coef::Probs { p, w, keep, add } => {
                let probs = Probs { p, w, keep, add };
                row_body::<V, WRITE, _>(x, out, n, args, probs, switches)
            }
        }
    }
}

/// The row kernel, the gradient into `out` (or, forward only, nowhere); `prefetch_logits`
/// is the table's choice.
///
/// # Safety
/// The CPU supports `V`'s ISA; `out` and the coefficient slices as long as `x`; `args.fix`
/// inside the row.
#[inline(always)]
pub(super) unsafe fn row<V: F32x>(
    x: &[f32],
    out: Option<&mut [f32]>,
    args: &RowArgs<'_>,
    prefetch_logits: bool,
) -> RowStats {
    // SAFETY: both slices hold x.len() floats (the caller's contract).
    unsafe {
        match out {
            Some(out) => {
                let switches = Switches {
                    prefetch_out: true,
                    prefetch_logits,
                };
                row_any::<V, true>(x.as_ptr(), out.as_mut_ptr(), x.len(), args, switches)
            }
            None => {
                let switches = Switches {
                    prefetch_out: false,
                    prefetch_logits,
                };
                let null = core::ptr::null_mut();
                row_any::<V, false>(x.as_ptr(), null, x.len(), args, switches)
            }
        }
    }
}

/// The row kernel, the gradient over the logits.
///
/// # Safety
/// The CPU supports `V`'s ISA; the coefficient slices as long as `x`; `args.fix` inside the
/// row.
#[inline(always)]
pub(super) unsafe fn row_in_place<V: F32x>(
    x: &mut [f32],
    args: &RowArgs<'_>,
    prefetch_logits: bool,
) -> RowStats {
    let ptr = x.as_mut_ptr();
    let switches = Switches {
        prefetch_out: false,
        prefetch_logits,
    };
    // SAFETY: one pointer of the exclusive borrow, each element read before it is written.
    unsafe { row_any::<V, true>(ptr, ptr, x.len(), args, switches) }
}
