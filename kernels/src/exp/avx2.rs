//! AVX2+FMA `exp` and `ln`, 8 lanes at a time; tails through masked loads and stores. The
//! vector helpers here (`exp8`, `tail_mask`, horizontal sums) are shared with the
//! cross-entropy and SGD kernels.

use super::consts::*;
use super::{EXP_MAX_INPUT, EXP_MIN_INPUT};
use std::arch::x86_64::*;

/// Lanes below `rem` set (all of them when `rem >= 8`): the mask of a tail of `rem` elements.
///
/// # Safety
/// The CPU must support AVX2.
#[inline(always)]
pub(crate) unsafe fn tail_mask(rem: usize) -> __m256i {
    // SAFETY: register-only AVX2 operations; the caller guarantees AVX2.
    unsafe {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(rem.min(8) as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }
}

/// Sum of the 8 lanes.
///
/// # Safety
/// The CPU must support AVX2.
#[inline(always)]
pub(crate) unsafe fn hsum(v: __m256) -> f32 {
    // SAFETY: register-only AVX operations; the caller guarantees AVX2.
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
}

/// Maximum of the 8 lanes (NaN lanes may be skipped: callers detect NaN elsewhere).
///
/// # Safety
/// The CPU must support AVX2.
#[inline(always)]
pub(crate) unsafe fn hmax(v: __m256) -> f32 {
    // SAFETY: register-only AVX operations; the caller guarantees AVX2.
    unsafe {
        let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_max_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
}

/// `exp` of 8 lanes under the module's accuracy contract.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[inline(always)]
pub(crate) unsafe fn exp8(x: __m256) -> __m256 {
    // SAFETY: register-only AVX2/FMA operations; the caller guarantees both features.
    unsafe {
        let lo = _mm256_set1_ps(EXP_MIN_INPUT);
        let hi = _mm256_set1_ps(EXP_MAX_INPUT);
        // Clamp so the exponent arithmetic stays in range; `min/max(const, x)` return x when it
        // is NaN, so NaN flows through to the polynomial and out.
        let xc = _mm256_max_ps(lo, _mm256_min_ps(hi, x));
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(xc, _mm256_set1_ps(LOG2_E)),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), xc);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let mut q = _mm256_set1_ps(C6);
        q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(C5));
        q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(C4));
        q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(C3));
        q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(C2));
        // 1 + r (1 + r q): one chain of fused multiply-adds (module docs).
        let one = _mm256_set1_ps(1.0);
        let p = _mm256_fmadd_ps(_mm256_fmadd_ps(q, r, one), r, one);
        // p is in [0.7, 1.42]: adding n to its exponent field gives p * 2^n, normal for every
        // n in [-126, 128] that the clamp allows (p < 1 exactly when n = 128 is reached).
        let scale = _mm256_slli_epi32::<23>(_mm256_cvtps_epi32(n));
        let y = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), scale));
        let below = _mm256_cmp_ps::<_CMP_LT_OQ>(x, lo);
        let above = _mm256_cmp_ps::<_CMP_GT_OQ>(x, hi);
        let y = _mm256_andnot_ps(below, y);
        _mm256_blendv_ps(y, _mm256_set1_ps(f32::INFINITY), above)
    }
}

/// `exp` of 8 lanes known to be `<= 0` or NaN (softmax's `x - max`): the module's algorithm
/// and accuracy without the overflow side. Rounding uses the shifter constant `1.5 * 2^23`,
/// whose low mantissa bits then hold `n`, so `2^n` is one shift of the same register.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[inline(always)]
pub(crate) unsafe fn exp8_nonpositive(x: __m256) -> __m256 {
    // SAFETY: register-only AVX2/FMA operations; the caller guarantees both features.
    unsafe {
        let lo = _mm256_set1_ps(EXP_MIN_INPUT);
        let shifter = _mm256_set1_ps(SHIFTER);
        // `max(lo, x)` returns x when it is NaN, so NaN flows through.
        let xc = _mm256_max_ps(lo, x);
        let t = _mm256_fmadd_ps(xc, _mm256_set1_ps(LOG2_E), shifter);
        let n = _mm256_sub_ps(t, shifter);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), xc);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let mut q = _mm256_set1_ps(C6);
        q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(C5));
        q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(C4));
        q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(C3));
        q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(C2));
        // 1 + r (1 + r q): one chain of fused multiply-adds (module docs).
        let one = _mm256_set1_ps(1.0);
        let p = _mm256_fmadd_ps(_mm256_fmadd_ps(q, r, one), r, one);
        // The low 9 bits of t's pattern are n (two's complement): shifted up, 2^n's exponent.
        let scale = _mm256_slli_epi32::<23>(_mm256_castps_si256(t));
        let y = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), scale));
        _mm256_andnot_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(x, lo), y)
    }
}

/// `ln` of 8 lanes under the module's accuracy contract.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[inline(always)]
pub(crate) unsafe fn ln8(x: __m256) -> __m256 {
    // SAFETY: register-only AVX2/FMA operations; the caller guarantees both features.
    unsafe {
        // Denormals: scale by 2^23 first and take 23 off the exponent.
        let tiny = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(f32::MIN_POSITIVE));
        let xs = _mm256_blendv_ps(x, _mm256_mul_ps(x, _mm256_set1_ps(8_388_608.0)), tiny);
        let k_adjust = _mm256_and_si256(_mm256_castps_si256(tiny), _mm256_set1_epi32(23));
        // Move the mantissa into [sqrt(2)/2, sqrt(2)) and read off the exponent k.
        let bits = _mm256_add_epi32(
            _mm256_castps_si256(xs),
            _mm256_set1_epi32((0x3f80_0000 - SQRT_HALF_BITS) as i32),
        );
        let k = _mm256_sub_epi32(
            _mm256_sub_epi32(_mm256_srli_epi32::<23>(bits), _mm256_set1_epi32(127)),
            k_adjust,
        );
        let m = _mm256_add_epi32(
            _mm256_and_si256(bits, _mm256_set1_epi32(0x007f_ffff)),
            _mm256_set1_epi32(SQRT_HALF_BITS as i32),
        );
        let f = _mm256_sub_ps(_mm256_castsi256_ps(m), _mm256_set1_ps(1.0));
        let s = _mm256_div_ps(f, _mm256_add_ps(_mm256_set1_ps(2.0), f));
        let z = _mm256_mul_ps(s, s);
        let w = _mm256_mul_ps(z, z);
        let t1 = _mm256_mul_ps(
            w,
            _mm256_fmadd_ps(w, _mm256_set1_ps(LG4), _mm256_set1_ps(LG2)),
        );
        let t2 = _mm256_mul_ps(
            z,
            _mm256_fmadd_ps(w, _mm256_set1_ps(LG3), _mm256_set1_ps(LG1)),
        );
        let r = _mm256_add_ps(t2, t1);
        let hfsq = _mm256_mul_ps(_mm256_set1_ps(0.5), _mm256_mul_ps(f, f));
        let kf = _mm256_cvtepi32_ps(k);
        // k*ln2_hi - ((hfsq - (s*(hfsq + R) + k*ln2_lo)) - f)
        let inner = _mm256_fmadd_ps(
            s,
            _mm256_add_ps(hfsq, r),
            _mm256_mul_ps(kf, _mm256_set1_ps(LN2_LO_LOG)),
        );
        let y = _mm256_fmsub_ps(
            kf,
            _mm256_set1_ps(LN2_HI_LOG),
            _mm256_sub_ps(_mm256_sub_ps(hfsq, inner), f),
        );
        // Edges: 0 -> -inf, negative -> NaN, +inf -> +inf, NaN -> NaN.
        let zero = _mm256_setzero_ps();
        let y = _mm256_blendv_ps(
            y,
            _mm256_set1_ps(f32::NEG_INFINITY),
            _mm256_cmp_ps::<_CMP_EQ_OQ>(x, zero),
        );
        let y = _mm256_blendv_ps(
            y,
            _mm256_set1_ps(f32::NAN),
            _mm256_cmp_ps::<_CMP_NGE_UQ>(x, zero),
        );
        _mm256_blendv_ps(
            y,
            x,
            _mm256_cmp_ps::<_CMP_EQ_OQ>(x, _mm256_set1_ps(f32::INFINITY)),
        )
    }
}

/// An element-wise vector function. (A trait rather than a closure: closures do not inherit
/// the caller's target features, so their intrinsics would not be inlined.)
trait VectorOp {
    /// # Safety
    /// AVX2 and FMA.
    unsafe fn apply(v: __m256) -> __m256;
}

struct Exp;
impl VectorOp for Exp {
    #[inline(always)]
    unsafe fn apply(v: __m256) -> __m256 {
        // SAFETY: the caller guarantees AVX2 and FMA.
        unsafe { exp8(v) }
    }
}

struct Ln;
impl VectorOp for Ln {
    #[inline(always)]
    unsafe fn apply(v: __m256) -> __m256 {
        // SAFETY: the caller guarantees AVX2 and FMA.
        unsafe { ln8(v) }
    }
}

/// Applies `Op` to `x` into `y`, 8 lanes at a time, the tail masked.
///
/// # Safety
/// AVX2 and FMA; `x.len() == y.len()`.
#[inline(always)]
unsafe fn map<Op: VectorOp>(x: &[f32], y: &mut [f32]) {
    let n = x.len();
    debug_assert_eq!(n, y.len());
    let mut i = 0;
    // SAFETY: every full-vector access covers [i, i + 8) with i + 8 <= n, and the tail uses a
    // mask with only the lanes below n - i set, so no access leaves the slices; both hold n.
    unsafe {
        while i + 8 <= n {
            _mm256_storeu_ps(
                y.as_mut_ptr().add(i),
                Op::apply(_mm256_loadu_ps(x.as_ptr().add(i))),
            );
            i += 8;
        }
        if i < n {
            let mask = tail_mask(n - i);
            let v = _mm256_maskload_ps(x.as_ptr().add(i), mask);
            _mm256_maskstore_ps(y.as_mut_ptr().add(i), mask, Op::apply(v));
        }
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA; `x.len() == y.len()`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn exp(x: &[f32], y: &mut [f32]) {
    // SAFETY: the features are enabled on this function; lengths are the caller's contract.
    unsafe { map::<Exp>(x, y) }
}

/// # Safety
/// The CPU must support AVX2 and FMA; `x.len() == y.len()`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn ln(x: &[f32], y: &mut [f32]) {
    // SAFETY: as in `exp`.
    unsafe { map::<Ln>(x, y) }
}
