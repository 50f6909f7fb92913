//! The `exp` and `ln` algorithms of the module docs, written once over [`F32x`]; the ISA files
//! instantiate [`map`] with [`Exp`] or [`Ln`], and the cross-entropy rows call the lane
//! functions directly.

use super::consts::*;
use super::{EXP_MAX_INPUT, EXP_MIN_INPUT};
use crate::simd::F32x;

/// `(n, r)` with `x = n ln2 + r`, `n = round(x / ln2)`: adding the shifter `1.5 * 2^23` rounds
/// the exact product to an integer (exact for `|x / ln2| < 2^22`), Cody-Waite for `r`.
///
/// # Safety
/// The CPU supports `V`'s ISA.
#[inline(always)]
unsafe fn reduce<V: F32x>(x: V) -> (V, V) {
    // SAFETY: register operations of `V`; the caller guarantees its ISA.
    unsafe {
        let shifter = V::splat(SHIFTER);
        let n = x.mul_add(V::splat(LOG2_E), shifter).sub(shifter);
        let r = n.neg_mul_add(V::splat(LN2_HI), x);
        (n, n.neg_mul_add(V::splat(LN2_LO), r))
    }
}

/// `exp(r)` for `|r| <= ln2/2`: `1 + r (1 + r q(r))`, one chain of fused multiply-adds.
///
/// # Safety
/// The CPU supports `V`'s ISA.
#[inline(always)]
unsafe fn exp_reduced<V: F32x>(r: V) -> V {
    // SAFETY: register operations of `V`; the caller guarantees its ISA.
    unsafe {
        let mut q = V::splat(C6);
        q = q.mul_add(r, V::splat(C5));
        q = q.mul_add(r, V::splat(C4));
        q = q.mul_add(r, V::splat(C3));
        q = q.mul_add(r, V::splat(C2));
        let one = V::splat(1.0);
        q.mul_add(r, one).mul_add(r, one)
    }
}

/// `exp` of every lane under the module's accuracy contract.
///
/// # Safety
/// The CPU supports `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn exp<V: F32x>(x: V) -> V {
    // SAFETY: register operations of `V`; the caller guarantees its ISA.
    unsafe {
        let lo = V::splat(EXP_MIN_INPUT);
        let hi = V::splat(EXP_MAX_INPUT);
        // The clamp keeps n in [-126, 128]; NaN in `x` (the second operand) flows through.
        let (n, r) = reduce(lo.max(hi.min(x)));
        let y = exp_reduced(r).scale_pow2_or_zero(n, x.lt(lo));
        V::select(x.gt(hi), V::splat(f32::INFINITY), y)
    }
}

/// `exp` of lanes known to be `<= 0` or NaN (softmax's `x - max`): [`exp`] without the
/// overflow side. Where the vector scales by any power of two, lanes below the range
/// (`-inf` included) are zeroed by the scaling's mask whatever the reduction made of them, so
/// there is no clamp.
///
/// # Safety
/// The CPU supports `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn exp_nonpositive<V: F32x>(x: V) -> V {
    // SAFETY: register operations of `V`; the caller guarantees its ISA.
    unsafe {
        let lo = V::splat(EXP_MIN_INPUT);
        let xc = if V::SCALE_ANY_EXPONENT { x } else { lo.max(x) };
        let (n, r) = reduce(xc);
        exp_reduced(r).scale_pow2_or_zero(n, x.lt(lo))
    }
}

/// `ln` of every lane under the module's accuracy contract.
///
/// # Safety
/// The CPU supports `V`'s ISA.
#[inline(always)]
pub(crate) unsafe fn ln<V: F32x>(x: V) -> V {
    // SAFETY: register operations of `V`; the caller guarantees its ISA.
    unsafe {
        // Denormals: scale by 2^23 first and take 23 off the exponent.
        let tiny = x.lt(V::splat(f32::MIN_POSITIVE));
        let xs = V::select(tiny, x.mul(V::splat(8_388_608.0)), x);
        let (k, m) = xs.exponent_mantissa();
        let k = V::select(tiny, k.sub(V::splat(23.0)), k);
        let f = m.sub(V::splat(1.0));
        let s = f.div(V::splat(2.0).add(f));
        let z = s.mul(s);
        let w = z.mul(z);
        let t1 = w.mul(w.mul_add(V::splat(LG4), V::splat(LG2)));
        let t2 = z.mul(w.mul_add(V::splat(LG3), V::splat(LG1)));
        let r = t2.add(t1);
        let hfsq = V::splat(0.5).mul(f.mul(f));
        // k ln2_hi - ((hfsq - (s (hfsq + R) + k ln2_lo)) - f)
        let inner = s.mul_add(hfsq.add(r), k.mul(V::splat(LN2_LO_LOG)));
        let y = k.mul_sub(V::splat(LN2_HI_LOG), hfsq.sub(inner).sub(f));
        // Edges: 0 -> -inf, negative or NaN -> NaN, +inf -> +inf.
        let zero = V::zero();
        let y = V::select(x.eq(zero), V::splat(f32::NEG_INFINITY), y);
        let y = V::select(x.ge(zero), y, V::splat(f32::NAN));
        V::select(x.eq(V::splat(f32::INFINITY)), x, y)
    }
}

/// A lane-wise function to [`map`] over a slice. (A trait rather than a closure: closures do
/// not inherit the wrapper's target features, so their intrinsics would not be inlined.)
pub(crate) trait LaneOp {
    /// # Safety
    /// The CPU supports `V`'s ISA.
    unsafe fn apply<V: F32x>(v: V) -> V;
}

/// [`exp`] as a [`LaneOp`].
pub(crate) struct Exp;
impl LaneOp for Exp {
    #[inline(always)]
    unsafe fn apply<V: F32x>(v: V) -> V {
        // SAFETY: forwarded precondition.
        unsafe { exp(v) }
    }
}

/// [`ln`] as a [`LaneOp`].
pub(crate) struct Ln;
impl LaneOp for Ln {
    #[inline(always)]
    unsafe fn apply<V: F32x>(v: V) -> V {
        // SAFETY: forwarded precondition.
        unsafe { ln(v) }
    }
}

/// `y[i] = Op(x[i])`, a vector at a time, the tail through first-`n` loads and stores.
///
/// # Safety
/// The CPU supports `V`'s ISA; `x.len() == y.len()`.
#[inline(always)]
pub(crate) unsafe fn map<V: F32x, Op: LaneOp>(x: &[f32], y: &mut [f32]) {
    let n = x.len();
    debug_assert_eq!(n, y.len());
    let (src, dst) = (x.as_ptr(), y.as_mut_ptr());
    let mut i = 0;
    // SAFETY: full vectors cover [i, i + LANES) with i + LANES <= n; the tail touches only
    // its n - i lanes; both slices hold n floats.
    unsafe {
        while i + V::LANES <= n {
            Op::apply(V::load(src.add(i))).store(dst.add(i));
            i += V::LANES;
        }
        if i < n {
            Op::apply(V::load_first(src.add(i), n - i)).store_first(dst.add(i), n - i);
        }
    }
}
