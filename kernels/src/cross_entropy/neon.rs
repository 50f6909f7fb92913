//! NEON row kernels of the fused softmax-cross-entropy: 4 lanes, four vectors per step in the
//! long loops, tails through padded stack buffers.

use super::{Coef, RowParams};
use crate::exp::neon::exp4;
use std::arch::aarch64::*;

/// Pass 1 works on blocks this long: its max pass leaves the block in L1 for the exp pass.
const BLOCK: usize = 2048;

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

/// # Safety
/// NEON; `x` readable for `n` floats.
#[inline(always)]
unsafe fn block_max(x: *const f32, n: usize) -> f32 {
    // SAFETY: full vectors cover [i, i + 4) with i + 4 <= n; the tail goes through a buffer.
    unsafe {
        let neg_inf = vdupq_n_f32(f32::NEG_INFINITY);
        let (mut m0, mut m1, mut m2, mut m3) = (neg_inf, neg_inf, neg_inf, neg_inf);
        let mut i = 0;
        while i + 16 <= n {
            m0 = vmaxnmq_f32(m0, vld1q_f32(x.add(i)));
            m1 = vmaxnmq_f32(m1, vld1q_f32(x.add(i + 4)));
            m2 = vmaxnmq_f32(m2, vld1q_f32(x.add(i + 8)));
            m3 = vmaxnmq_f32(m3, vld1q_f32(x.add(i + 12)));
            i += 16;
        }
        while i + 4 <= n {
            m0 = vmaxnmq_f32(m0, vld1q_f32(x.add(i)));
            i += 4;
        }
        if i < n {
            m1 = vmaxnmq_f32(m1, load_tail(x, i, n, f32::NEG_INFINITY));
        }
        vmaxnmvq_f32(vmaxnmq_f32(vmaxnmq_f32(m0, m1), vmaxnmq_f32(m2, m3)))
    }
}

/// # Safety
/// NEON; `x` readable for `n` floats.
#[inline(always)]
unsafe fn block_sum_exp(x: *const f32, n: usize, m: f32) -> f32 {
    // SAFETY: as in `block_max`.
    unsafe {
        let mv = vdupq_n_f32(m);
        let zero = vdupq_n_f32(0.0);
        let (mut s0, mut s1, mut s2, mut s3) = (zero, zero, zero, zero);
        let mut i = 0;
        while i + 16 <= n {
            s0 = vaddq_f32(s0, exp4(vsubq_f32(vld1q_f32(x.add(i)), mv)));
            s1 = vaddq_f32(s1, exp4(vsubq_f32(vld1q_f32(x.add(i + 4)), mv)));
            s2 = vaddq_f32(s2, exp4(vsubq_f32(vld1q_f32(x.add(i + 8)), mv)));
            s3 = vaddq_f32(s3, exp4(vsubq_f32(vld1q_f32(x.add(i + 12)), mv)));
            i += 16;
        }
        while i + 4 <= n {
            s0 = vaddq_f32(s0, exp4(vsubq_f32(vld1q_f32(x.add(i)), mv)));
            i += 4;
        }
        if i < n {
            // Padding lanes are -inf: exp gives 0 (NaN only if m is +inf, already NaN).
            let v = load_tail(x, i, n, f32::NEG_INFINITY);
            s1 = vaddq_f32(s1, exp4(vsubq_f32(v, mv)));
        }
        vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)))
    }
}

/// Pass 1: `(m, sum exp(x - m))`, online over blocks (see the module docs).
///
/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub(super) unsafe fn max_sum_exp(x: &[f32]) -> (f32, f32) {
    let mut max = f32::NEG_INFINITY;
    let mut reference = 0.0f32;
    let mut sum = 0.0f32;
    for block in x.chunks(BLOCK) {
        // SAFETY: NEON is enabled here; the pointer and length come from a slice.
        let block_max = unsafe { block_max(block.as_ptr(), block.len()) };
        let new_max = max.max(block_max);
        let new_reference = if new_max == f32::NEG_INFINITY {
            0.0
        } else {
            new_max
        };
        if sum != 0.0 && new_reference != reference {
            sum *= (reference - new_reference).exp();
        }
        // SAFETY: as above.
        sum += unsafe { block_sum_exp(block.as_ptr(), block.len(), new_reference) };
        max = new_max;
        reference = new_reference;
    }
    if max == f32::NEG_INFINITY {
        return (0.0, f32::NAN);
    }
    (reference, sum)
}

/// Per-class coefficients `c_j` of pass 2, 4 at a time.
trait Coefs {
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
unsafe fn load(p: *const f32, i: usize, n: usize, tail: bool, fill: f32) -> float32x4_t {
    // SAFETY: forwarded contract.
    unsafe {
        if tail {
            load_tail(p, i, n, fill)
        } else {
            vld1q_f32(p.add(i))
        }
    }
}

struct NoCoefs;
impl Coefs for NoCoefs {
    const USED: bool = false;
    #[inline(always)]
    unsafe fn load(&self, _: usize, _: usize, _: bool) -> float32x4_t {
        // SAFETY: register-only.
        unsafe { vdupq_n_f32(0.0) }
    }
}

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

struct Weights<'a>(&'a [f32]);
impl Coefs for Weights<'_> {
    const USED: bool = true;
    #[inline(always)]
    unsafe fn load(&self, i: usize, n: usize, tail: bool) -> float32x4_t {
        // SAFETY: the weights are as long as the row (checked by the entry point).
        unsafe { load(self.0.as_ptr(), i, n, tail, 0.0) }
    }
}

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
                load(self.p.as_ptr(), i, n, tail, 0.0),
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
                Some(w) => vmulq_f32(load(w.as_ptr(), i, n, tail, 0.0), p),
            }
        }
    }
}

/// Pass 2 over `n` logits at `x`: `out_j = exp(x_j - m) * mul - beta * c_j` stored at `out`
/// when `WRITE` (which may equal `x`: each element is read before it is written), returning
/// `sum c_j (x_j - m)`.
///
/// # Safety
/// NEON; `x` readable and (when `WRITE`) `out` writable for `n` floats; the coefficients
/// cover `n`.
#[inline(always)]
unsafe fn pass2<const WRITE: bool, C: Coefs>(
    x: *const f32,
    out: *mut f32,
    n: usize,
    p: &RowParams<'_>,
    c: C,
) -> f32 {
    // SAFETY: full vectors cover [i, i + 4) with i + 4 <= n; the tail goes through buffers.
    unsafe {
        let m = vdupq_n_f32(p.m);
        let beta = vdupq_n_f32(p.beta);
        let mut acc0 = vdupq_n_f32(0.0);
        let mut acc1 = vdupq_n_f32(0.0);
        let step = |v: float32x4_t, cv: float32x4_t, acc: &mut float32x4_t| -> float32x4_t {
            let d = vsubq_f32(v, m);
            let s = vmulq_n_f32(exp4(d), p.mul);
            if C::USED {
                *acc = vfmaq_f32(*acc, cv, d);
                vfmsq_f32(s, beta, cv)
            } else {
                s
            }
        };
        let mut i = 0;
        while i + 8 <= n {
            let g0 = step(vld1q_f32(x.add(i)), c.load(i, n, false), &mut acc0);
            let g1 = step(vld1q_f32(x.add(i + 4)), c.load(i + 4, n, false), &mut acc1);
            if WRITE {
                vst1q_f32(out.add(i), g0);
                vst1q_f32(out.add(i + 4), g1);
            }
            i += 8;
        }
        while i + 4 <= n {
            let g = step(vld1q_f32(x.add(i)), c.load(i, n, false), &mut acc0);
            if WRITE {
                vst1q_f32(out.add(i), g);
            }
            i += 4;
        }
        if i < n {
            // Padding lanes: x = m gives d = 0, and c = 0, so they add nothing.
            let g = step(load_tail(x, i, n, p.m), c.load(i, n, true), &mut acc1);
            if WRITE {
                store_tail(out, i, n, g);
            }
        }
        if C::USED {
            vaddvq_f32(vaddq_f32(acc0, acc1))
        } else {
            0.0
        }
    }
}

/// # Safety
/// As [`pass2`].
#[inline(always)]
unsafe fn pass2_any<const WRITE: bool>(
    x: *const f32,
    out: *mut f32,
    n: usize,
    p: &RowParams<'_>,
) -> f32 {
    // SAFETY: forwarded contract.
    unsafe {
        match p.coef {
            Coef::None => pass2::<WRITE, _>(x, out, n, p, NoCoefs),
            Coef::Ones => pass2::<WRITE, _>(x, out, n, p, Ones),
            Coef::Weights(w) => pass2::<WRITE, _>(x, out, n, p, Weights(w)),
            Coef::Probs { p: t, w, keep, add } => {
                pass2::<WRITE, _>(x, out, n, p, Probs { p: t, w, keep, add })
            }
        }
    }
}

/// Pass 2 into `out` (or nowhere).
///
/// # Safety
/// NEON; `out` and the coefficient slices as long as `x`.
#[target_feature(enable = "neon")]
pub(super) unsafe fn softmax_grad(x: &[f32], out: Option<&mut [f32]>, p: &RowParams<'_>) -> f32 {
    // SAFETY: NEON enabled here; both slices hold x.len() floats (the caller's contract).
    unsafe {
        match out {
            Some(out) => pass2_any::<true>(x.as_ptr(), out.as_mut_ptr(), x.len(), p),
            None => pass2_any::<false>(x.as_ptr(), core::ptr::null_mut(), x.len(), p),
        }
    }
}

/// Pass 2 over the logits.
///
/// # Safety
/// NEON; the coefficient slices as long as `x`.
#[target_feature(enable = "neon")]
pub(super) unsafe fn softmax_grad_in_place(x: &mut [f32], p: &RowParams<'_>) -> f32 {
    let ptr = x.as_mut_ptr();
    // SAFETY: NEON enabled here; reads and writes go through the one pointer of the exclusive
    // borrow, each element read before it is written.
    unsafe { pass2_any::<true>(ptr, ptr, x.len(), p) }
}
