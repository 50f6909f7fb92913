//! AVX2+FMA row kernels of the fused softmax-cross-entropy (the module docs give the passes):
//! 8 lanes, several vectors per step in the long loops, tails through masked loads and
//! stores.

use super::Coef;
use crate::exp::avx2::{exp8_nonpositive, hmax, hsum, tail_mask};
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
        hmax(_mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)))
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

/// Pass 1 of the two-pass form: the row maximum (NaN lanes may be skipped; the exp pass
/// catches NaN).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn row_max(x: &[f32]) -> f32 {
    // SAFETY: features enabled here; pointer and length from a slice.
    unsafe { max_of(x.as_ptr(), x.len()) }
}

/// `e_j = exp(x_j - m)` stored at `out` when `STORE` (which may equal `x`), returning
/// `(sum e_j, sum c_j (x_j - m))`.
///
/// # Safety
/// AVX2 and FMA; `x` readable and (when `STORE`) `out` writable for `n` floats; the
/// coefficients cover `n`.
#[inline(always)]
unsafe fn exp_pass<const STORE: bool, C: Coefs>(
    x: *const f32,
    out: *mut f32,
    n: usize,
    m: f32,
    c: C,
) -> (f32, f32) {
    // SAFETY: full vectors cover [i, i + 8) with i + 8 <= n; the tail is masked to n - i lanes.
    unsafe {
        let mv = _mm256_set1_ps(m);
        let zero = _mm256_setzero_ps();
        let (mut s0, mut s1, mut a0, mut a1) = (zero, zero, zero, zero);
        let mut i = 0;
        while i + 16 <= n {
            let d0 = _mm256_sub_ps(_mm256_loadu_ps(x.add(i)), mv);
            let d1 = _mm256_sub_ps(_mm256_loadu_ps(x.add(i + 8)), mv);
            let e0 = exp8_nonpositive(d0);
            let e1 = exp8_nonpositive(d1);
            if STORE {
                _mm256_storeu_ps(out.add(i), e0);
                _mm256_storeu_ps(out.add(i + 8), e1);
            }
            s0 = _mm256_add_ps(s0, e0);
            s1 = _mm256_add_ps(s1, e1);
            if C::USED {
                a0 = _mm256_fmadd_ps(c.load(i, None), d0, a0);
                a1 = _mm256_fmadd_ps(c.load(i + 8, None), d1, a1);
            }
            i += 16;
        }
        while i + 8 <= n {
            let d = _mm256_sub_ps(_mm256_loadu_ps(x.add(i)), mv);
            let e = exp8_nonpositive(d);
            if STORE {
                _mm256_storeu_ps(out.add(i), e);
            }
            s0 = _mm256_add_ps(s0, e);
            if C::USED {
                a0 = _mm256_fmadd_ps(c.load(i, None), d, a0);
            }
            i += 8;
        }
        if i < n {
            let mask = tail_mask(n - i);
            let keep = _mm256_castsi256_ps(mask);
            let d = _mm256_sub_ps(_mm256_maskload_ps(x.add(i), mask), mv);
            let e = exp8_nonpositive(d);
            if STORE {
                _mm256_maskstore_ps(out.add(i), mask, e);
            }
            s1 = _mm256_add_ps(s1, _mm256_and_ps(e, keep));
            if C::USED {
                a1 = _mm256_add_ps(
                    a1,
                    _mm256_and_ps(_mm256_mul_ps(c.load(i, Some(mask)), d), keep),
                );
            }
        }
        let acc = if C::USED {
            hsum(_mm256_add_ps(a0, a1))
        } else {
            0.0
        };
        (hsum(_mm256_add_ps(s0, s1)), acc)
    }
}

/// # Safety
/// As [`exp_pass`].
#[inline(always)]
unsafe fn exp_pass_any<const STORE: bool>(
    x: *const f32,
    out: *mut f32,
    n: usize,
    m: f32,
    coef: &Coef<'_>,
) -> (f32, f32) {
    // SAFETY: forwarded contract.
    unsafe {
        match *coef {
            Coef::None => exp_pass::<STORE, _>(x, out, n, m, NoCoefs),
            Coef::Ones => exp_pass::<STORE, _>(x, out, n, m, Ones),
            Coef::Weights(w) => exp_pass::<STORE, _>(x, out, n, m, Weights(w)),
            Coef::Probs { p, w, keep, add } => {
                exp_pass::<STORE, _>(x, out, n, m, Probs { p, w, keep, add })
            }
        }
    }
}

/// Pass 2 of the two-pass form: `exp(x - m)` into `out` (or nowhere), returning its sum and
/// `sum c_j (x_j - m)`.
///
/// # Safety
/// AVX2 and FMA; `out` and the coefficient slices as long as `x`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn exp_sum(
    x: &[f32],
    out: Option<&mut [f32]>,
    m: f32,
    coef: &Coef<'_>,
) -> (f32, f32) {
    // SAFETY: features enabled here; both slices hold x.len() floats (the caller's contract).
    unsafe {
        match out {
            Some(out) => exp_pass_any::<true>(x.as_ptr(), out.as_mut_ptr(), x.len(), m, coef),
            None => exp_pass_any::<false>(x.as_ptr(), core::ptr::null_mut(), x.len(), m, coef),
        }
    }
}

/// As [`exp_sum`], the exponentials written over the logits.
///
/// # Safety
/// AVX2 and FMA; the coefficient slices as long as `x`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn exp_sum_in_place(x: &mut [f32], m: f32, coef: &Coef<'_>) -> (f32, f32) {
    let ptr = x.as_mut_ptr();
    // SAFETY: features enabled here; one pointer of the exclusive borrow, each element read
    // before it is written.
    unsafe { exp_pass_any::<true>(ptr, ptr, x.len(), m, coef) }
}

/// `g_j = g_j * mul - beta * c_j` over the stored exponentials.
///
/// # Safety
/// AVX2 and FMA; `g` readable and writable for `n` floats; the coefficients cover `n`.
#[inline(always)]
unsafe fn scale_pass<C: Coefs>(g: *mut f32, n: usize, mul: f32, beta: f32, c: C) {
    // SAFETY: full vectors cover [i, i + 8) with i + 8 <= n; the tail is masked.
    unsafe {
        let mulv = _mm256_set1_ps(mul);
        let betav = _mm256_set1_ps(beta);
        let mut i = 0;
        while i + 16 <= n {
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
        while i + 8 <= n {
            let mut v = _mm256_mul_ps(_mm256_loadu_ps(g.add(i)), mulv);
            if C::USED {
                v = _mm256_fnmadd_ps(betav, c.load(i, None), v);
            }
            _mm256_storeu_ps(g.add(i), v);
            i += 8;
        }
        if i < n {
            let mask = tail_mask(n - i);
            let mut v = _mm256_mul_ps(_mm256_maskload_ps(g.add(i), mask), mulv);
            if C::USED {
                v = _mm256_fnmadd_ps(betav, c.load(i, Some(mask)), v);
            }
            _mm256_maskstore_ps(g.add(i), mask, v);
        }
    }
}

/// The final gradient pass of the two-pass form: `g = g * mul - beta * c`.
///
/// # Safety
/// AVX2 and FMA; the coefficient slices as long as `g`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn scale(g: &mut [f32], mul: f32, beta: f32, coef: &Coef<'_>) {
    let (ptr, n) = (g.as_mut_ptr(), g.len());
    // SAFETY: features enabled here; pointer and length of the exclusive borrow.
    unsafe {
        match *coef {
            Coef::None => scale_pass(ptr, n, mul, beta, NoCoefs),
            Coef::Ones => scale_pass(ptr, n, mul, beta, Ones),
            Coef::Weights(w) => scale_pass(ptr, n, mul, beta, Weights(w)),
            Coef::Probs { p, w, keep, add } => {
                scale_pass(ptr, n, mul, beta, Probs { p, w, keep, add })
            }
        }
    }
}
