//! [`F32x`] for AVX-512F: `__m512`, 16 lanes, `__mmask16` lane masks (masked-off lanes are
//! neither read nor written and cannot fault), `vscalefps` for `p * 2^n`; and the 16 x 16
//! in-register transpose.

use super::{F32x, SQRT_HALF_BITS};
use core::arch::x86_64::*;

/// f32 lanes per zmm register.
pub(crate) const LANES: usize = 16;

/// Lanes below `n` set (all 16 when `n >= 16`): the mask of an `n`-element tail.
#[inline(always)]
pub(crate) fn tail_mask(n: usize) -> __mmask16 {
    ((1u32 << n.min(LANES)) - 1) as __mmask16
}

// SAFETY (every method): the trait's precondition is that the CPU has AVX-512F, which is all
// these intrinsics need; the pointer methods forward the caller's validity guarantee, and the
// masked forms touch only the lanes of `tail_mask(n)`.
impl F32x for __m512 {
    type Mask = __mmask16;
    type Index = __m512i;
    type Tail = __mmask16;
    const LANES: usize = LANES;
    const SCALE_ANY_EXPONENT: bool = true;

    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        unsafe { _mm512_set1_ps(v) }
    }
    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(src: *const f32) -> Self {
        unsafe { _mm512_loadu_ps(src) }
    }
    #[inline(always)]
    unsafe fn store(self, dst: *mut f32) {
        unsafe { _mm512_storeu_ps(dst, self) }
    }
    #[inline(always)]
    unsafe fn load_first(src: *const f32, n: usize) -> Self {
        unsafe { _mm512_maskz_loadu_ps(tail_mask(n), src) }
    }
    #[inline(always)]
    unsafe fn store_first(self, dst: *mut f32, n: usize) {
        unsafe { _mm512_mask_storeu_ps(dst, tail_mask(n), self) }
    }
    #[inline(always)]
    unsafe fn tail(n: usize) -> __mmask16 {
        tail_mask(n)
    }
    #[inline(always)]
    unsafe fn load_tail(src: *const f32, tail: __mmask16) -> Self {
        unsafe { _mm512_maskz_loadu_ps(tail, src) }
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        unsafe { _mm512_add_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        unsafe { _mm512_sub_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        unsafe { _mm512_mul_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn div(self, b: Self) -> Self {
        unsafe { _mm512_div_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        unsafe { _mm512_fmadd_ps(self, b, c) }
    }
    #[inline(always)]
    unsafe fn neg_mul_add(self, b: Self, c: Self) -> Self {
        unsafe { _mm512_fnmadd_ps(self, b, c) }
    }
    #[inline(always)]
    unsafe fn mul_sub(self, b: Self, c: Self) -> Self {
        unsafe { _mm512_fmsub_ps(self, b, c) }
    }
    #[inline(always)]
    unsafe fn max(self, b: Self) -> Self {
        unsafe { _mm512_max_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn min(self, b: Self) -> Self {
        unsafe { _mm512_min_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn xor(self, b: Self) -> Self {
        // The integer form is AVX-512F; `_mm512_xor_ps` would need AVX-512DQ.
        unsafe {
            _mm512_castsi512_ps(_mm512_xor_si512(
                _mm512_castps_si512(self),
                _mm512_castps_si512(b),
            ))
        }
    }
    #[inline(always)]
    unsafe fn lt(self, b: Self) -> Self::Mask {
        unsafe { _mm512_cmp_ps_mask::<_CMP_LT_OQ>(self, b) }
    }
    #[inline(always)]
    unsafe fn le(self, b: Self) -> Self::Mask {
        unsafe { _mm512_cmp_ps_mask::<_CMP_LE_OQ>(self, b) }
    }
    #[inline(always)]
    unsafe fn gt(self, b: Self) -> Self::Mask {
        unsafe { _mm512_cmp_ps_mask::<_CMP_GT_OQ>(self, b) }
    }
    #[inline(always)]
    unsafe fn ge(self, b: Self) -> Self::Mask {
        unsafe { _mm512_cmp_ps_mask::<_CMP_GE_OQ>(self, b) }
    }
    #[inline(always)]
    unsafe fn eq(self, b: Self) -> Self::Mask {
        unsafe { _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(self, b) }
    }
    #[inline(always)]
    unsafe fn select(m: Self::Mask, a: Self, b: Self) -> Self {
        unsafe { _mm512_mask_mov_ps(b, m, a) }
    }
    #[inline(always)]
    unsafe fn clear_where(self, m: Self::Mask) -> Self {
        unsafe { _mm512_maskz_mov_ps(!m, self) }
    }
    #[inline(always)]
    unsafe fn keep_where(self, m: Self::Mask) -> Self {
        unsafe { _mm512_maskz_mov_ps(m, self) }
    }
    #[inline(always)]
    unsafe fn is_nan(self) -> Self::Mask {
        unsafe { _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(self, self) }
    }
    #[inline(always)]
    unsafe fn mask_or(a: Self::Mask, b: Self::Mask) -> Self::Mask {
        a | b
    }
    #[inline(always)]
    unsafe fn mask_all_first(m: Self::Mask, n: usize) -> bool {
        m & tail_mask(n) == tail_mask(n)
    }
    #[inline(always)]
    unsafe fn mask_any(m: Self::Mask) -> bool {
        m != 0
    }
    #[inline(always)]
    unsafe fn first_lanes(n: usize) -> Self::Mask {
        tail_mask(n)
    }
    #[inline(always)]
    unsafe fn load_pairs(src: *const f32, n: usize) -> (Self, Self) {
        unsafe {
            let lo = _mm512_maskz_loadu_ps(tail_mask(n), src);
            let hi = _mm512_maskz_loadu_ps(tail_mask(n.saturating_sub(16)), src.wrapping_add(16));
            let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
            (
                _mm512_permutex2var_ps(lo, even, hi),
                _mm512_permutex2var_ps(lo, odd, hi),
            )
        }
    }
    #[inline(always)]
    unsafe fn store_pairs(even: Self, odd: Self, dst: *mut f32, n: usize) {
        unsafe {
            // Position 2i takes even[i] (index i), 2i + 1 takes odd[i] (index 16 + i).
            let first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
            let second = _mm512_add_epi32(first, _mm512_set1_epi32(8));
            let lo = _mm512_permutex2var_ps(even, first, odd);
            let hi = _mm512_permutex2var_ps(even, second, odd);
            _mm512_mask_storeu_ps(dst, tail_mask(n), lo);
            _mm512_mask_storeu_ps(dst.wrapping_add(16), tail_mask(n.saturating_sub(16)), hi);
        }
    }
    #[inline(always)]
    unsafe fn index_ramp2(start: u32) -> Self::Index {
        unsafe {
            let twice =
                _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            _mm512_add_epi32(_mm512_set1_epi32(start as i32), twice)
        }
    }
    #[inline(always)]
    unsafe fn index_add(a: Self::Index, k: u32) -> Self::Index {
        unsafe { _mm512_add_epi32(a, _mm512_set1_epi32(k as i32)) }
    }
    #[inline(always)]
    unsafe fn index_eq(a: Self::Index, b: Self::Index) -> Self::Mask {
        unsafe { _mm512_cmpeq_epi32_mask(a, b) }
    }
    #[inline(always)]
    unsafe fn index_select(m: Self::Mask, a: Self::Index, b: Self::Index) -> Self::Index {
        unsafe { _mm512_mask_mov_epi32(b, m, a) }
    }
    #[inline(always)]
    unsafe fn index_load_first(src: *const u32, n: usize) -> Self::Index {
        unsafe { _mm512_maskz_loadu_epi32(tail_mask(n), src.cast()) }
    }
    #[inline(always)]
    unsafe fn index_store_first(a: Self::Index, dst: *mut u32, n: usize) {
        unsafe { _mm512_mask_storeu_epi32(dst.cast(), tail_mask(n), a) }
    }
    #[inline(always)]
    unsafe fn lane0(self) -> f32 {
        unsafe { _mm512_cvtss_f32(self) }
    }
    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        unsafe { _mm512_reduce_add_ps(self) }
    }
    #[inline(always)]
    unsafe fn max_lane(self) -> f32 {
        unsafe { _mm512_reduce_max_ps(self) }
    }
    #[inline(always)]
    unsafe fn scale_pow2_or_zero(self, n: Self, zero: Self::Mask) -> Self {
        unsafe { _mm512_maskz_scalef_ps(!zero, self, n) }
    }
    #[inline(always)]
    unsafe fn exponent_mantissa(self) -> (Self, Self) {
        unsafe {
            let bits = _mm512_add_epi32(
                _mm512_castps_si512(self),
                _mm512_set1_epi32((0x3f80_0000 - SQRT_HALF_BITS) as i32),
            );
            let k = _mm512_sub_epi32(_mm512_srli_epi32::<23>(bits), _mm512_set1_epi32(127));
            let m = _mm512_add_epi32(
                _mm512_and_si512(bits, _mm512_set1_epi32(0x007f_ffff)),
                _mm512_set1_epi32(SQRT_HALF_BITS as i32),
            );
            (_mm512_cvtepi32_ps(k), _mm512_castsi512_ps(m))
        }
    }

    #[inline(always)]
    unsafe fn index_splat(k: u32) -> Self::Index {
        unsafe { _mm512_set1_epi32(k as i32) }
    }
    #[inline(always)]
    unsafe fn index_stride(step: u32) -> Self::Index {
        let iota =
            unsafe { _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) };
        unsafe { _mm512_mullo_epi32(iota, _mm512_set1_epi32(step as i32)) }
    }
    #[inline(always)]
    unsafe fn index_add_lanes(a: Self::Index, b: Self::Index) -> Self::Index {
        unsafe { _mm512_add_epi32(a, b) }
    }
    #[inline(always)]
    unsafe fn gather(src: *const f32, idx: Self::Index) -> Self {
        unsafe { _mm512_i32gather_ps::<4>(idx, src) }
    }
    #[inline(always)]
    unsafe fn store_transposed(columns: *const Self, dst: *mut f32, stride: usize, n: usize) {
        unsafe {
            let mut rows = *columns.cast::<[__m512; LANES]>();
            transpose16(&mut rows);
            if n == LANES {
                // Whole rows: plain stores (a masked store is slower on some cores, Zen 4).
                for (r, row) in rows.into_iter().enumerate() {
                    _mm512_storeu_ps(dst.add(r * stride), row);
                }
            } else {
                for (r, row) in rows.into_iter().enumerate() {
                    _mm512_mask_storeu_ps(dst.add(r * stride), tail_mask(n), row);
                }
            }
        }
    }
}

/// Transposes a 16 x 16 block held as 16 rows (after it, `rows[c]` lane `r` holds what
/// `rows[r]` lane `c` held): 32-bit interleaves, 64-bit shuffles within the 128-bit lanes
/// (4 x 4 blocks transposed), then the 4 x 4 grid of 128-bit lanes.
///
/// # Safety
/// The CPU must support AVX-512F.
#[inline(always)]
pub(crate) unsafe fn transpose16(rows: &mut [__m512; 16]) {
    // SAFETY: AVX-512F is enabled by the caller; register operations only.
    unsafe {
        let r = *rows;
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        // u[4i + k], 128-bit lane L: column 4L + k of rows 4i..4i + 4.
        let mut u = [_mm512_setzero_ps(); 16];
        for i in 0..4 {
            u[4 * i] = _mm512_shuffle_ps::<0x44>(t[4 * i], t[4 * i + 2]);
            u[4 * i + 1] = _mm512_shuffle_ps::<0xEE>(t[4 * i], t[4 * i + 2]);
            u[4 * i + 2] = _mm512_shuffle_ps::<0x44>(t[4 * i + 1], t[4 * i + 3]);
            u[4 * i + 3] = _mm512_shuffle_ps::<0xEE>(t[4 * i + 1], t[4 * i + 3]);
        }
        // Column 4L + k gathers lane L of u[k], u[4 + k], u[8 + k], u[12 + k].
        for k in 0..4 {
            let v0 = _mm512_shuffle_f32x4::<0x44>(u[k], u[4 + k]);
            let v1 = _mm512_shuffle_f32x4::<0xEE>(u[k], u[4 + k]);
            let v2 = _mm512_shuffle_f32x4::<0x44>(u[8 + k], u[12 + k]);
            let v3 = _mm512_shuffle_f32x4::<0xEE>(u[8 + k], u[12 + k]);
            rows[k] = _mm512_shuffle_f32x4::<0x88>(v0, v2);
            rows[4 + k] = _mm512_shuffle_f32x4::<0xDD>(v0, v2);
            rows[8 + k] = _mm512_shuffle_f32x4::<0x88>(v1, v3);
            rows[12 + k] = _mm512_shuffle_f32x4::<0xDD>(v1, v3);
        }
    }
}
