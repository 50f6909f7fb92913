//! NEON `exp` and `ln`, 4 lanes at a time; a tail shorter than a vector goes through a padded
//! stack buffer. The vector helpers (`exp4`, horizontal sums, tail loads) are shared with the
//! cross-entropy and SGD kernels.

use super::consts::*;
use super::{EXP_MAX_INPUT, EXP_MIN_INPUT};
use std::arch::aarch64::*;

/// Loads `src` (at most 4 elements) into a vector, the missing lanes set to `fill`.
///
/// # Safety
/// The CPU must support NEON.
#[inline(always)]
pub(crate) unsafe fn load_tail(src: &[f32], fill: f32) -> float32x4_t {
    let mut buf = [fill; 4];
    let n = src.len().min(4);
    buf[..n].copy_from_slice(&src[..n]);
    // SAFETY: `buf` holds 4 floats.
    unsafe { vld1q_f32(buf.as_ptr()) }
}

/// Stores the first `dst.len()` (at most 4) lanes of `v`.
///
/// # Safety
/// The CPU must support NEON.
#[inline(always)]
pub(crate) unsafe fn store_tail(dst: &mut [f32], v: float32x4_t) {
    let mut buf = [0.0f32; 4];
    // SAFETY: `buf` holds 4 floats.
    unsafe { vst1q_f32(buf.as_mut_ptr(), v) };
    let n = dst.len().min(4);
    dst[..n].copy_from_slice(&buf[..n]);
}

/// `exp` of 4 lanes under the module's accuracy contract.
///
/// # Safety
/// The CPU must support NEON.
#[inline(always)]
pub(crate) unsafe fn exp4(x: float32x4_t) -> float32x4_t {
    // SAFETY: register-only NEON operations; the caller guarantees NEON.
    unsafe {
        let lo = vdupq_n_f32(EXP_MIN_INPUT);
        let hi = vdupq_n_f32(EXP_MAX_INPUT);
        // NEON min/max return NaN when either input is NaN, so NaN flows through.
        let xc = vmaxq_f32(lo, vminq_f32(hi, x));
        let ni = vcvtnq_s32_f32(vmulq_n_f32(xc, LOG2_E));
        let n = vcvtq_f32_s32(ni);
        let r = vfmsq_f32(xc, n, vdupq_n_f32(LN2_HI));
        let r = vfmsq_f32(r, n, vdupq_n_f32(LN2_LO));
        let mut q = vdupq_n_f32(C6);
        q = vfmaq_f32(vdupq_n_f32(C5), q, r);
        q = vfmaq_f32(vdupq_n_f32(C4), q, r);
        q = vfmaq_f32(vdupq_n_f32(C3), q, r);
        q = vfmaq_f32(vdupq_n_f32(C2), q, r);
        // 1 + r (1 + r q): one chain of fused multiply-adds (module docs).
        let one = vdupq_n_f32(1.0);
        let p = vfmaq_f32(one, vfmaq_f32(one, q, r), r);
        // p * 2^n through the exponent field (normal for every n the clamp allows).
        let y = vreinterpretq_f32_s32(vaddq_s32(vreinterpretq_s32_f32(p), vshlq_n_s32::<23>(ni)));
        let below = vcltq_f32(x, lo);
        let above = vcgtq_f32(x, hi);
        let y = vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(y), below));
        vbslq_f32(above, vdupq_n_f32(f32::INFINITY), y)
    }
}

/// `exp` of 4 lanes known to be `<= 0` or NaN (softmax's `x - max`): the module's algorithm
/// and accuracy without the overflow side.
///
/// # Safety
/// The CPU must support NEON.
#[inline(always)]
pub(crate) unsafe fn exp4_nonpositive(x: float32x4_t) -> float32x4_t {
    // SAFETY: register-only NEON operations; the caller guarantees NEON.
    unsafe {
        let lo = vdupq_n_f32(EXP_MIN_INPUT);
        // NEON max returns NaN when either input is NaN, so NaN flows through.
        let xc = vmaxq_f32(lo, x);
        let ni = vcvtnq_s32_f32(vmulq_n_f32(xc, LOG2_E));
        let n = vcvtq_f32_s32(ni);
        let r = vfmsq_f32(xc, n, vdupq_n_f32(LN2_HI));
        let r = vfmsq_f32(r, n, vdupq_n_f32(LN2_LO));
        let mut q = vdupq_n_f32(C6);
        q = vfmaq_f32(vdupq_n_f32(C5), q, r);
        q = vfmaq_f32(vdupq_n_f32(C4), q, r);
        q = vfmaq_f32(vdupq_n_f32(C3), q, r);
        q = vfmaq_f32(vdupq_n_f32(C2), q, r);
        // 1 + r (1 + r q): one chain of fused multiply-adds (module docs).
        let one = vdupq_n_f32(1.0);
        let p = vfmaq_f32(one, vfmaq_f32(one, q, r), r);
        let y = vreinterpretq_f32_s32(vaddq_s32(vreinterpretq_s32_f32(p), vshlq_n_s32::<23>(ni)));
        let below = vcltq_f32(x, lo);
        vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(y), below))
    }
}

/// `ln` of 4 lanes under the module's accuracy contract.
///
/// # Safety
/// The CPU must support NEON.
#[inline(always)]
pub(crate) unsafe fn ln4(x: float32x4_t) -> float32x4_t {
    // SAFETY: register-only NEON operations; the caller guarantees NEON.
    unsafe {
        let tiny = vcltq_f32(x, vdupq_n_f32(f32::MIN_POSITIVE));
        let xs = vbslq_f32(tiny, vmulq_n_f32(x, 8_388_608.0), x);
        let k_adjust = vandq_u32(tiny, vdupq_n_u32(23));
        let bits = vaddq_u32(
            vreinterpretq_u32_f32(xs),
            vdupq_n_u32(0x3f80_0000 - SQRT_HALF_BITS),
        );
        let k = vsubq_s32(
            vsubq_s32(
                vreinterpretq_s32_u32(vshrq_n_u32::<23>(bits)),
                vdupq_n_s32(127),
            ),
            vreinterpretq_s32_u32(k_adjust),
        );
        let m = vaddq_u32(
            vandq_u32(bits, vdupq_n_u32(0x007f_ffff)),
            vdupq_n_u32(SQRT_HALF_BITS),
        );
        let f = vsubq_f32(vreinterpretq_f32_u32(m), vdupq_n_f32(1.0));
        let s = vdivq_f32(f, vaddq_f32(vdupq_n_f32(2.0), f));
        let z = vmulq_f32(s, s);
        let w = vmulq_f32(z, z);
        let t1 = vmulq_f32(w, vfmaq_f32(vdupq_n_f32(LG2), w, vdupq_n_f32(LG4)));
        let t2 = vmulq_f32(z, vfmaq_f32(vdupq_n_f32(LG1), w, vdupq_n_f32(LG3)));
        let r = vaddq_f32(t2, t1);
        let hfsq = vmulq_n_f32(vmulq_f32(f, f), 0.5);
        let kf = vcvtq_f32_s32(k);
        let inner = vfmaq_f32(vmulq_n_f32(kf, LN2_LO_LOG), s, vaddq_f32(hfsq, r));
        let y = vsubq_f32(
            vmulq_n_f32(kf, LN2_HI_LOG),
            vsubq_f32(vsubq_f32(hfsq, inner), f),
        );
        let zero = vdupq_n_f32(0.0);
        let y = vbslq_f32(vceqq_f32(x, zero), vdupq_n_f32(f32::NEG_INFINITY), y);
        // Not (x >= 0): negative or NaN.
        let y = vbslq_f32(vmvnq_u32(vcgeq_f32(x, zero)), vdupq_n_f32(f32::NAN), y);
        let y = vbslq_f32(vceqq_f32(x, vdupq_n_f32(f32::INFINITY)), x, y);
        // Keep NaN inputs as they are (their payload), as the scalar reference does.
        vbslq_f32(vceqq_f32(x, x), y, x)
    }
}

/// An element-wise vector function. (A trait rather than a closure: closures do not inherit
/// the caller's target features.)
trait VectorOp {
    /// # Safety
    /// NEON.
    unsafe fn apply(v: float32x4_t) -> float32x4_t;
}

struct Exp;
impl VectorOp for Exp {
    #[inline(always)]
    unsafe fn apply(v: float32x4_t) -> float32x4_t {
        // SAFETY: the caller guarantees NEON.
        unsafe { exp4(v) }
    }
}

struct Ln;
impl VectorOp for Ln {
    #[inline(always)]
    unsafe fn apply(v: float32x4_t) -> float32x4_t {
        // SAFETY: the caller guarantees NEON.
        unsafe { ln4(v) }
    }
}

/// Applies `Op` to `x` into `y`, 4 lanes at a time, the tail through a stack buffer.
///
/// # Safety
/// NEON; `x.len() == y.len()`.
#[inline(always)]
unsafe fn map<Op: VectorOp>(x: &[f32], y: &mut [f32]) {
    let n = x.len();
    debug_assert_eq!(n, y.len());
    let mut i = 0;
    // SAFETY: each full-vector access covers [i, i + 4) with i + 4 <= n; the tail goes through
    // the bounds-checked buffer helpers.
    unsafe {
        while i + 4 <= n {
            vst1q_f32(
                y.as_mut_ptr().add(i),
                Op::apply(vld1q_f32(x.as_ptr().add(i))),
            );
            i += 4;
        }
        if i < n {
            store_tail(&mut y[i..], Op::apply(load_tail(&x[i..], 1.0)));
        }
    }
}

/// # Safety
/// The CPU must support NEON; `x.len() == y.len()`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn exp(x: &[f32], y: &mut [f32]) {
    // SAFETY: NEON is enabled on this function; lengths are the caller's contract.
    unsafe { map::<Exp>(x, y) }
}

/// # Safety
/// The CPU must support NEON; `x.len() == y.len()`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn ln(x: &[f32], y: &mut [f32]) {
    // SAFETY: as in `exp`.
    unsafe { map::<Ln>(x, y) }
}
