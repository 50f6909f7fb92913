//! AVX-512 `exp` and `ln`, 16 lanes at a time; tails through lane masks (`__mmask16`), so no
//! element is touched outside the slices and no scalar loop is needed. The algorithms and
//! constants are AVX2's (the module docs), with two AVX-512 instructions where they save work:
//! `vscalefps` multiplies by `2^n` (overflow to `+inf` and the exponent range handled by the
//! instruction), and a zero-masking form clears the lanes below the range. The vector helpers
//! here are shared with the cross-entropy kernels.

use super::consts::*;
use super::{EXP_MAX_INPUT, EXP_MIN_INPUT};
use std::arch::x86_64::*;

/// Floats per zmm register.
pub(crate) const LANES: usize = 16;

/// The lanes below `rem` (all 16 when `rem >= 16`): the mask of a tail of `rem` elements.
#[inline(always)]
pub(crate) fn tail_mask(rem: usize) -> __mmask16 {
    ((1u32 << rem.min(LANES)) - 1) as __mmask16
}

/// `exp(r)` for the reduced argument `|r| <= ln2/2`: `1 + r (1 + r q(r))`, one chain of fused
/// multiply-adds (module docs).
///
/// # Safety
/// The CPU must support AVX-512F.
#[inline(always)]
unsafe fn exp_reduced(r: __m512) -> __m512 {
    // SAFETY: register-only AVX-512F operations; the caller guarantees the feature.
    unsafe {
        let mut q = _mm512_set1_ps(C6);
        q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(C5));
        q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(C4));
        q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(C3));
        q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(C2));
        let one = _mm512_set1_ps(1.0);
        _mm512_fmadd_ps(_mm512_fmadd_ps(q, r, one), r, one)
    }
}

/// `(n, r)` with `x = n ln2 + r`, `n = round(x / ln2)`: the rounding adds the shifter constant
/// `1.5 * 2^23` (exact for the clamped inputs, `|x / ln2| < 2^22`), Cody-Waite for `r`.
///
/// # Safety
/// The CPU must support AVX-512F.
#[inline(always)]
unsafe fn reduce(x: __m512) -> (__m512, __m512) {
    // SAFETY: register-only AVX-512F operations; the caller guarantees the feature.
    unsafe {
        let shifter = _mm512_set1_ps(SHIFTER);
        let n = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(LOG2_E), shifter), shifter);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
        (n, r)
    }
}

/// `exp` of 16 lanes under the module's accuracy contract.
///
/// # Safety
/// The CPU must support AVX-512F.
#[inline(always)]
pub(crate) unsafe fn exp16(x: __m512) -> __m512 {
    // SAFETY: register-only AVX-512F operations; the caller guarantees the feature.
    unsafe {
        let lo = _mm512_set1_ps(EXP_MIN_INPUT);
        let hi = _mm512_set1_ps(EXP_MAX_INPUT);
        // Clamp so the reduction stays exact; `min/max(const, x)` return x when it is NaN, so
        // NaN flows through to the polynomial and out.
        let xc = _mm512_max_ps(lo, _mm512_min_ps(hi, x));
        let (n, r) = reduce(xc);
        // p * 2^n is normal for every n the clamp allows (module docs); below the range: 0.
        let inside = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x, lo);
        let y = _mm512_maskz_scalef_ps(inside, exp_reduced(r), n);
        let above = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, hi);
        _mm512_mask_mov_ps(y, above, _mm512_set1_ps(f32::INFINITY))
    }
}

/// `exp` of 16 lanes known to be `<= 0` or NaN (softmax's `x - max`): the module's algorithm
/// and accuracy without the overflow side, and without a clamp (lanes below the range, `-inf`
/// included, are zeroed by the final masked `vscalefps` whatever the reduction made of them).
///
/// # Safety
/// The CPU must support AVX-512F.
#[inline(always)]
pub(crate) unsafe fn exp16_nonpositive(x: __m512) -> __m512 {
    // SAFETY: register-only AVX-512F operations; the caller guarantees the feature.
    unsafe {
        let (n, r) = reduce(x);
        let inside = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x, _mm512_set1_ps(EXP_MIN_INPUT));
        _mm512_maskz_scalef_ps(inside, exp_reduced(r), n)
    }
}

/// `ln` of 16 lanes under the module's accuracy contract (AVX2's algorithm).
///
/// # Safety
/// The CPU must support AVX-512F.
#[inline(always)]
pub(crate) unsafe fn ln16(x: __m512) -> __m512 {
    // SAFETY: register-only AVX-512F operations; the caller guarantees the feature.
    unsafe {
        // Denormals: scale by 2^23 first and take 23 off the exponent.
        let tiny = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_set1_ps(f32::MIN_POSITIVE));
        let xs = _mm512_mask_mul_ps(x, tiny, x, _mm512_set1_ps(8_388_608.0));
        let k_adjust = _mm512_maskz_mov_epi32(tiny, _mm512_set1_epi32(23));
        // Move the mantissa into [sqrt(2)/2, sqrt(2)) and read off the exponent k.
        let bits = _mm512_add_epi32(
            _mm512_castps_si512(xs),
            _mm512_set1_epi32((0x3f80_0000 - SQRT_HALF_BITS) as i32),
        );
        let k = _mm512_sub_epi32(
            _mm512_sub_epi32(_mm512_srli_epi32::<23>(bits), _mm512_set1_epi32(127)),
            k_adjust,
        );
        let m = _mm512_add_epi32(
            _mm512_and_si512(bits, _mm512_set1_epi32(0x007f_ffff)),
            _mm512_set1_epi32(SQRT_HALF_BITS as i32),
        );
        let f = _mm512_sub_ps(_mm512_castsi512_ps(m), _mm512_set1_ps(1.0));
        let s = _mm512_div_ps(f, _mm512_add_ps(_mm512_set1_ps(2.0), f));
        let z = _mm512_mul_ps(s, s);
        let w = _mm512_mul_ps(z, z);
        let t1 = _mm512_mul_ps(
            w,
            _mm512_fmadd_ps(w, _mm512_set1_ps(LG4), _mm512_set1_ps(LG2)),
        );
        let t2 = _mm512_mul_ps(
            z,
            _mm512_fmadd_ps(w, _mm512_set1_ps(LG3), _mm512_set1_ps(LG1)),
        );
        let r = _mm512_add_ps(t2, t1);
        let hfsq = _mm512_mul_ps(_mm512_set1_ps(0.5), _mm512_mul_ps(f, f));
        let kf = _mm512_cvtepi32_ps(k);
        // k*ln2_hi - ((hfsq - (s*(hfsq + R) + k*ln2_lo)) - f)
        let inner = _mm512_fmadd_ps(
            s,
            _mm512_add_ps(hfsq, r),
            _mm512_mul_ps(kf, _mm512_set1_ps(LN2_LO_LOG)),
        );
        let y = _mm512_fmsub_ps(
            kf,
            _mm512_set1_ps(LN2_HI_LOG),
            _mm512_sub_ps(_mm512_sub_ps(hfsq, inner), f),
        );
        // Edges: 0 -> -inf, negative -> NaN, +inf -> +inf, NaN -> NaN.
        let zero = _mm512_setzero_ps();
        let y = _mm512_mask_mov_ps(
            y,
            _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(x, zero),
            _mm512_set1_ps(f32::NEG_INFINITY),
        );
        let y = _mm512_mask_mov_ps(
            y,
            _mm512_cmp_ps_mask::<_CMP_NGE_UQ>(x, zero),
            _mm512_set1_ps(f32::NAN),
        );
        _mm512_mask_mov_ps(
            y,
            _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(x, _mm512_set1_ps(f32::INFINITY)),
            x,
        )
    }
}

/// An element-wise vector function. (A trait rather than a closure: closures do not inherit
/// the caller's target features, so their intrinsics would not be inlined.)
trait VectorOp {
    /// # Safety
    /// AVX-512F.
    unsafe fn apply(v: __m512) -> __m512;
}

struct Exp;
impl VectorOp for Exp {
    #[inline(always)]
    unsafe fn apply(v: __m512) -> __m512 {
        // SAFETY: the caller guarantees AVX-512F.
        unsafe { exp16(v) }
    }
}

struct Ln;
impl VectorOp for Ln {
    #[inline(always)]
    unsafe fn apply(v: __m512) -> __m512 {
        // SAFETY: the caller guarantees AVX-512F.
        unsafe { ln16(v) }
    }
}

/// Applies `Op` to `x` into `y`, 16 lanes at a time, the tail masked.
///
/// # Safety
/// AVX-512F; `x.len() == y.len()`.
#[inline(always)]
unsafe fn map<Op: VectorOp>(x: &[f32], y: &mut [f32]) {
    let n = x.len();
    debug_assert_eq!(n, y.len());
    let (src, dst) = (x.as_ptr(), y.as_mut_ptr());
    let mut i = 0;
    // SAFETY: every full-vector access covers [i, i + 16) with i + 16 <= n, and the tail's
    // mask has only the lanes below n - i set (masked-off lanes are neither read nor written,
    // and cannot fault), so no access leaves the slices; both hold n.
    unsafe {
        while i + LANES <= n {
            _mm512_storeu_ps(dst.add(i), Op::apply(_mm512_loadu_ps(src.add(i))));
            i += LANES;
        }
        if i < n {
            let mask = tail_mask(n - i);
            let v = _mm512_maskz_loadu_ps(mask, src.add(i));
            _mm512_mask_storeu_ps(dst.add(i), mask, Op::apply(v));
        }
    }
}

/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA; `x.len() == y.len()`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn exp(x: &[f32], y: &mut [f32]) {
    // SAFETY: the features are enabled on this function; lengths are the caller's contract.
    unsafe { map::<Exp>(x, y) }
}

/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA; `x.len() == y.len()`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn ln(x: &[f32], y: &mut [f32]) {
    // SAFETY: as in `exp`.
    unsafe { map::<Ln>(x, y) }
}
