//! [`F32x`] for aarch64 Advanced SIMD: `float32x4_t`, 4 lanes, masks as all-ones `uint32x4_t`
//! lanes; the first-`n` forms go through a 4-float stack buffer (NEON has no masked loads).

use super::{F32x, SQRT_HALF_BITS};
use core::arch::aarch64::*;

// SAFETY (every method): the trait's precondition is that the CPU has NEON, which is all these
// intrinsics need; the pointer methods forward the caller's validity guarantee, and the
// first-`n` forms copy exactly `n <= 4` floats between the slice and a local buffer.
impl F32x for float32x4_t {
    type Mask = uint32x4_t;
    type Index = uint32x4_t;
    /// No masked loads: a tail is its length.
    type Tail = usize;
    const LANES: usize = 4;
    const SCALE_ANY_EXPONENT: bool = false;

    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        unsafe { vdupq_n_f32(v) }
    }
    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { vdupq_n_f32(0.0) }
    }
    #[inline(always)]
    unsafe fn load(src: *const f32) -> Self {
        unsafe { vld1q_f32(src) }
    }
    #[inline(always)]
    unsafe fn store(self, dst: *mut f32) {
        unsafe { vst1q_f32(dst, self) }
    }
    #[inline(always)]
    unsafe fn load_first(src: *const f32, n: usize) -> Self {
        let mut buf = [0.0f32; 4];
        unsafe {
            core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), n.min(4));
            vld1q_f32(buf.as_ptr())
        }
    }
    #[inline(always)]
    unsafe fn store_first(self, dst: *mut f32, n: usize) {
        let mut buf = [0.0f32; 4];
        unsafe {
            vst1q_f32(buf.as_mut_ptr(), self);
            core::ptr::copy_nonoverlapping(buf.as_ptr(), dst, n.min(4));
        }
    }
    #[inline(always)]
    unsafe fn tail(n: usize) -> usize {
        n
    }
    #[inline(always)]
    unsafe fn load_tail(src: *const f32, tail: usize) -> Self {
        unsafe { Self::load_first(src, tail) }
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        unsafe { vaddq_f32(self, b) }
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        unsafe { vsubq_f32(self, b) }
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        unsafe { vmulq_f32(self, b) }
    }
    #[inline(always)]
    unsafe fn div(self, b: Self) -> Self {
        unsafe { vdivq_f32(self, b) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        unsafe { vfmaq_f32(c, self, b) }
    }
    #[inline(always)]
    unsafe fn neg_mul_add(self, b: Self, c: Self) -> Self {
        unsafe { vfmsq_f32(c, self, b) }
    }
    #[inline(always)]
    unsafe fn mul_sub(self, b: Self, c: Self) -> Self {
        // -(c - a b) is a b - c exactly: negation does not round.
        unsafe { vnegq_f32(vfmsq_f32(c, self, b)) }
    }
    #[inline(always)]
    unsafe fn max(self, b: Self) -> Self {
        unsafe { vmaxq_f32(self, b) }
    }
    #[inline(always)]
    unsafe fn min(self, b: Self) -> Self {
        unsafe { vminq_f32(self, b) }
    }
    #[inline(always)]
    unsafe fn xor(self, b: Self) -> Self {
        unsafe {
            vreinterpretq_f32_u32(veorq_u32(
                vreinterpretq_u32_f32(self),
                vreinterpretq_u32_f32(b),
            ))
        }
    }
    #[inline(always)]
    unsafe fn lt(self, b: Self) -> Self::Mask {
        unsafe { vcltq_f32(self, b) }
    }
    #[inline(always)]
    unsafe fn le(self, b: Self) -> Self::Mask {
        unsafe { vcleq_f32(self, b) }
    }
    #[inline(always)]
    unsafe fn gt(self, b: Self) -> Self::Mask {
        unsafe { vcgtq_f32(self, b) }
    }
    #[inline(always)]
    unsafe fn ge(self, b: Self) -> Self::Mask {
        unsafe { vcgeq_f32(self, b) }
    }
    #[inline(always)]
    unsafe fn eq(self, b: Self) -> Self::Mask {
        unsafe { vceqq_f32(self, b) }
    }
    #[inline(always)]
    unsafe fn select(m: Self::Mask, a: Self, b: Self) -> Self {
        unsafe { vbslq_f32(m, a, b) }
    }
    #[inline(always)]
    unsafe fn clear_where(self, m: Self::Mask) -> Self {
        unsafe { vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(self), m)) }
    }
    #[inline(always)]
    unsafe fn keep_where(self, m: Self::Mask) -> Self {
        unsafe { vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(self), m)) }
    }
    #[inline(always)]
    unsafe fn is_nan(self) -> Self::Mask {
        unsafe { vmvnq_u32(vceqq_f32(self, self)) }
    }
    #[inline(always)]
    unsafe fn mask_or(a: Self::Mask, b: Self::Mask) -> Self::Mask {
        unsafe { vorrq_u32(a, b) }
    }
    #[inline(always)]
    unsafe fn mask_all_first(m: Self::Mask, n: usize) -> bool {
        let mut lanes = [0u32; 4];
        unsafe { vst1q_u32(lanes.as_mut_ptr(), m) };
        lanes[..n.min(4)].iter().all(|&l| l != 0)
    }
    #[inline(always)]
    unsafe fn mask_any(m: Self::Mask) -> bool {
        unsafe { vmaxvq_u32(m) != 0 }
    }
    #[inline(always)]
    unsafe fn first_lanes(n: usize) -> Self::Mask {
        const IOTA: [u32; 4] = [0, 1, 2, 3];
        unsafe { vcltq_u32(vld1q_u32(IOTA.as_ptr()), vdupq_n_u32(n.min(4) as u32)) }
    }
    #[inline(always)]
    unsafe fn load_pairs(src: *const f32, n: usize) -> (Self, Self) {
        unsafe {
            let v = if n == 8 {
                vld2q_f32(src)
            } else {
                let mut staged = [0.0f32; 8];
                core::ptr::copy_nonoverlapping(src, staged.as_mut_ptr(), n.min(8));
                vld2q_f32(staged.as_ptr())
            };
            (v.0, v.1)
        }
    }
    #[inline(always)]
    unsafe fn store_pairs(even: Self, odd: Self, dst: *mut f32, n: usize) {
        unsafe {
            if n == 8 {
                vst2q_f32(dst, float32x4x2_t(even, odd));
            } else {
                let mut staged = [0.0f32; 8];
                vst2q_f32(staged.as_mut_ptr(), float32x4x2_t(even, odd));
                core::ptr::copy_nonoverlapping(staged.as_ptr(), dst, n.min(8));
            }
        }
    }
    #[inline(always)]
    unsafe fn index_ramp2(start: u32) -> Self::Index {
        const TWICE: [u32; 4] = [0, 2, 4, 6];
        unsafe { vaddq_u32(vdupq_n_u32(start), vld1q_u32(TWICE.as_ptr())) }
    }
    #[inline(always)]
    unsafe fn index_add(a: Self::Index, k: u32) -> Self::Index {
        unsafe { vaddq_u32(a, vdupq_n_u32(k)) }
    }
    #[inline(always)]
    unsafe fn index_eq(a: Self::Index, b: Self::Index) -> Self::Mask {
        unsafe { vceqq_u32(a, b) }
    }
    #[inline(always)]
    unsafe fn index_select(m: Self::Mask, a: Self::Index, b: Self::Index) -> Self::Index {
        unsafe { vbslq_u32(m, a, b) }
    }
    #[inline(always)]
    unsafe fn index_load_first(src: *const u32, n: usize) -> Self::Index {
        let mut staged = [0u32; 4];
        unsafe {
            core::ptr::copy_nonoverlapping(src, staged.as_mut_ptr(), n.min(4));
            vld1q_u32(staged.as_ptr())
        }
    }
    #[inline(always)]
    unsafe fn index_store_first(a: Self::Index, dst: *mut u32, n: usize) {
        let mut staged = [0u32; 4];
        unsafe {
            vst1q_u32(staged.as_mut_ptr(), a);
            core::ptr::copy_nonoverlapping(staged.as_ptr(), dst, n.min(4));
        }
    }
    #[inline(always)]
    unsafe fn lane0(self) -> f32 {
        unsafe { vgetq_lane_f32::<0>(self) }
    }
    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        unsafe { vaddvq_f32(self) }
    }
    #[inline(always)]
    unsafe fn max_lane(self) -> f32 {
        unsafe { vmaxvq_f32(self) }
    }
    #[inline(always)]
    unsafe fn scale_pow2_or_zero(self, n: Self, zero: Self::Mask) -> Self {
        // Adding n to the exponent field: exact while the result stays normal.
        unsafe {
            let scale = vshlq_n_s32::<23>(vcvtq_s32_f32(n));
            let y = vreinterpretq_f32_s32(vaddq_s32(vreinterpretq_s32_f32(self), scale));
            y.clear_where(zero)
        }
    }
    #[inline(always)]
    unsafe fn exponent_mantissa(self) -> (Self, Self) {
        unsafe {
            let bits = vaddq_u32(
                vreinterpretq_u32_f32(self),
                vdupq_n_u32(0x3f80_0000 - SQRT_HALF_BITS),
            );
            let k = vsubq_s32(
                vreinterpretq_s32_u32(vshrq_n_u32::<23>(bits)),
                vdupq_n_s32(127),
            );
            let m = vaddq_u32(
                vandq_u32(bits, vdupq_n_u32(0x007f_ffff)),
                vdupq_n_u32(SQRT_HALF_BITS),
            );
            (vcvtq_f32_s32(k), vreinterpretq_f32_u32(m))
        }
    }

    #[inline(always)]
    unsafe fn index_splat(k: u32) -> Self::Index {
        unsafe { vdupq_n_u32(k) }
    }
    #[inline(always)]
    unsafe fn index_stride(step: u32) -> Self::Index {
        const IOTA: [u32; 4] = [0, 1, 2, 3];
        unsafe { vmulq_n_u32(vld1q_u32(IOTA.as_ptr()), step) }
    }
    #[inline(always)]
    unsafe fn index_add_lanes(a: Self::Index, b: Self::Index) -> Self::Index {
        unsafe { vaddq_u32(a, b) }
    }
    #[inline(always)]
    unsafe fn gather(src: *const f32, idx: Self::Index) -> Self {
        unsafe {
            let at = |i: u32| *src.add(i as usize);
            let lanes = [
                at(vgetq_lane_u32::<0>(idx)),
                at(vgetq_lane_u32::<1>(idx)),
                at(vgetq_lane_u32::<2>(idx)),
                at(vgetq_lane_u32::<3>(idx)),
            ];
            vld1q_f32(lanes.as_ptr())
        }
    }
    #[inline(always)]
    unsafe fn store_transposed(columns: *const Self, dst: *mut f32, stride: usize, n: usize) {
        if n == 4 {
            // SAFETY: NEON is the caller's precondition; the four rows of four are in bounds.
            unsafe {
                let [c0, c1, c2, c3] = *columns.cast::<[float32x4_t; 4]>();
                // 32-bit pairs, then 64-bit halves: row r is [c0[r], c1[r], c2[r], c3[r]].
                let (t0, t1) = (vtrn1q_f32(c0, c1), vtrn2q_f32(c0, c1));
                let (t2, t3) = (vtrn1q_f32(c2, c3), vtrn2q_f32(c2, c3));
                let half = |a: float32x4_t, b: float32x4_t, high: bool| {
                    let (a, b) = (vreinterpretq_f64_f32(a), vreinterpretq_f64_f32(b));
                    vreinterpretq_f32_f64(if high {
                        vtrn2q_f64(a, b)
                    } else {
                        vtrn1q_f64(a, b)
                    })
                };
                vst1q_f32(dst, half(t0, t2, false));
                vst1q_f32(dst.add(stride), half(t1, t3, false));
                vst1q_f32(dst.add(2 * stride), half(t0, t2, true));
                vst1q_f32(dst.add(3 * stride), half(t1, t3, true));
            }
            return;
        }
        // A partial group through a stack tile, each row's first `n` elements one by one.
        let mut tile = [[0.0f32; 4]; 4];
        unsafe {
            for (k, column) in tile.iter_mut().enumerate() {
                vst1q_f32(column.as_mut_ptr(), *columns.add(k));
            }
            for r in 0..4 {
                for (k, column) in tile.iter().enumerate().take(n) {
                    *dst.add(r * stride + k) = column[r];
                }
            }
        }
    }
}
