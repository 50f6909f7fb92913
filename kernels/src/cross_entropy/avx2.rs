//! AVX2+FMA row kernels of the fused softmax-cross-entropy: 8 lanes, four vectors per step in
//! the long loops, tails through masked loads and stores.

use super::{Coef, RowParams};
use crate::exp::avx2::{exp8, hmax, hsum, tail_mask};
use std::arch::x86_64::*;

/// Pass 1 works on blocks this long: its max pass leaves the block in L1 for the exp pass.
const BLOCK: usize = 2048;

/// Maximum of a block (NaN lanes may be skipped; the exp pass catches NaN).
///
/// # Safety
/// AVX2; `x` points to `n` readable floats.
#[inline(always)]
unsafe fn block_max(x: *const f32, n: usize) -> f32 {
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
        hmax(_mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)))
    }
}

/// `sum exp(x - m)` of a block.
///
/// # Safety
/// AVX2 and FMA; `x` points to `n` readable floats.
#[inline(always)]
unsafe fn block_sum_exp(x: *const f32, n: usize, m: f32) -> f32 {
    // SAFETY: as in `block_max`.
    unsafe {
        let mv = _mm256_set1_ps(m);
        let zero = _mm256_setzero_ps();
        let (mut s0, mut s1, mut s2, mut s3) = (zero, zero, zero, zero);
        let mut i = 0;
        while i + 32 <= n {
            s0 = _mm256_add_ps(s0, exp8(_mm256_sub_ps(_mm256_loadu_ps(x.add(i)), mv)));
            s1 = _mm256_add_ps(s1, exp8(_mm256_sub_ps(_mm256_loadu_ps(x.add(i + 8)), mv)));
            s2 = _mm256_add_ps(s2, exp8(_mm256_sub_ps(_mm256_loadu_ps(x.add(i + 16)), mv)));
            s3 = _mm256_add_ps(s3, exp8(_mm256_sub_ps(_mm256_loadu_ps(x.add(i + 24)), mv)));
            i += 32;
        }
        while i + 8 <= n {
            s0 = _mm256_add_ps(s0, exp8(_mm256_sub_ps(_mm256_loadu_ps(x.add(i)), mv)));
            i += 8;
        }
        if i < n {
            let mask = tail_mask(n - i);
            let e = exp8(_mm256_sub_ps(_mm256_maskload_ps(x.add(i), mask), mv));
            s1 = _mm256_add_ps(s1, _mm256_and_ps(e, _mm256_castsi256_ps(mask)));
        }
        hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)))
    }
}

/// Pass 1: `(m, sum exp(x - m))`, online over blocks (see the module docs).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn max_sum_exp(x: &[f32]) -> (f32, f32) {
    let mut max = f32::NEG_INFINITY;
    // The reference point of `sum`: the running maximum, or 0 while that is -inf.
    let mut reference = 0.0f32;
    let mut sum = 0.0f32;
    for block in x.chunks(BLOCK) {
        // SAFETY: AVX2 and FMA are enabled here; the pointer and length come from a slice.
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

struct NoCoefs;
impl Coefs for NoCoefs {
    const USED: bool = false;
    #[inline(always)]
    unsafe fn load(&self, _: usize, _: Option<__m256i>) -> __m256 {
        // SAFETY: register-only.
        unsafe { _mm256_setzero_ps() }
    }
}

struct Ones;
impl Coefs for Ones {
    const USED: bool = true;
    #[inline(always)]
    unsafe fn load(&self, _: usize, _: Option<__m256i>) -> __m256 {
        // SAFETY: register-only.
        unsafe { _mm256_set1_ps(1.0) }
    }
}

struct Weights<'a>(&'a [f32]);
impl Coefs for Weights<'_> {
    const USED: bool = true;
    #[inline(always)]
    unsafe fn load(&self, i: usize, mask: Option<__m256i>) -> __m256 {
        // SAFETY: the weights are as long as the row (checked by the entry point).
        unsafe { load(self.0.as_ptr(), i, mask) }
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

/// Pass 2 over `n` logits at `x`: `out_j = exp(x_j - m) * mul - beta * c_j` stored at `out`
/// when `WRITE` (which may equal `x`: each element is read before it is written), returning
/// `sum c_j (x_j - m)`.
///
/// # Safety
/// AVX2 and FMA; `x` readable and (when `WRITE`) `out` writable for `n` floats; the
/// coefficients cover `n`.
#[inline(always)]
unsafe fn pass2<const WRITE: bool, C: Coefs>(
    x: *const f32,
    out: *mut f32,
    n: usize,
    p: &RowParams<'_>,
    c: C,
) -> f32 {
    // SAFETY: full vectors cover [i, i + 8) with i + 8 <= n; the tail is masked to n - i lanes.
    unsafe {
        let m = _mm256_set1_ps(p.m);
        let mul = _mm256_set1_ps(p.mul);
        let beta = _mm256_set1_ps(p.beta);
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let step = |i: usize, mask: Option<__m256i>, acc: &mut __m256| -> __m256 {
            let d = _mm256_sub_ps(load(x, i, mask), m);
            let s = _mm256_mul_ps(exp8(d), mul);
            if C::USED {
                let cv = c.load(i, mask);
                *acc = _mm256_fmadd_ps(cv, d, *acc);
                _mm256_fnmadd_ps(beta, cv, s)
            } else {
                s
            }
        };
        let mut i = 0;
        while i + 16 <= n {
            let g0 = step(i, None, &mut acc0);
            let g1 = step(i + 8, None, &mut acc1);
            if WRITE {
                _mm256_storeu_ps(out.add(i), g0);
                _mm256_storeu_ps(out.add(i + 8), g1);
            }
            i += 16;
        }
        while i + 8 <= n {
            let g = step(i, None, &mut acc0);
            if WRITE {
                _mm256_storeu_ps(out.add(i), g);
            }
            i += 8;
        }
        if i < n {
            let mask = tail_mask(n - i);
            let mut acc_tail = _mm256_setzero_ps();
            let g = step(i, Some(mask), &mut acc_tail);
            // Masked-out lanes of the tail may hold anything: keep only the real ones.
            acc1 = _mm256_add_ps(acc1, _mm256_and_ps(acc_tail, _mm256_castsi256_ps(mask)));
            if WRITE {
                _mm256_maskstore_ps(out.add(i), mask, g);
            }
        }
        if C::USED {
            hsum(_mm256_add_ps(acc0, acc1))
        } else {
            0.0
        }
    }
}

/// Dispatches pass 2 on the coefficient kind.
///
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
/// AVX2 and FMA; `out` and the coefficient slices as long as `x`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn softmax_grad(x: &[f32], out: Option<&mut [f32]>, p: &RowParams<'_>) -> f32 {
    // SAFETY: features enabled here; both slices hold x.len() floats (the caller's contract).
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
/// AVX2 and FMA; the coefficient slices as long as `x`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn softmax_grad_in_place(x: &mut [f32], p: &RowParams<'_>) -> f32 {
    let ptr = x.as_mut_ptr();
    // SAFETY: features enabled here; reads and writes go through the one pointer of the
    // exclusive borrow, each element read before it is written.
    unsafe { pass2_any::<true>(ptr, ptr, x.len(), p) }
}
