//! [`F32x`] for AVX2+FMA: `__m256`, 8 lanes, masks as all-ones lanes, tails through
//! `vmaskmovps`; and the 8 x 8 in-register transpose.

use super::{F32x, SQRT_HALF_BITS};
use core::arch::x86_64::*;

/// Lanes below `n` set (all when `n >= 8`): the mask of an `n`-element tail.
///
/// # Safety
/// The CPU must support AVX2.
#[inline(always)]
pub(crate) unsafe fn tail_mask(n: usize) -> __m256i {
    // SAFETY: register-only AVX2 operations; the caller guarantees AVX2.
    unsafe {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n.min(8) as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }
}

// SAFETY (every method): the trait's precondition is that the CPU has AVX2 and FMA, which is
// all these intrinsics need; the pointer methods forward the caller's validity guarantee, and
// the masked forms touch only the lanes of `tail_mask(n)`.
impl F32x for __m256 {
    type Mask = __m256;
    type Index = __m256i;
    type Tail = __m256i;
    const LANES: usize = 8;
    const SCALE_ANY_EXPONENT: bool = false;

    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        unsafe { _mm256_set1_ps(v) }
    }
    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(src: *const f32) -> Self {
        unsafe { _mm256_loadu_ps(src) }
    }
    #[inline(always)]
    unsafe fn store(self, dst: *mut f32) {
        unsafe { _mm256_storeu_ps(dst, self) }
    }
    #[inline(always)]
    unsafe fn load_first(src: *const f32, n: usize) -> Self {
        unsafe { _mm256_maskload_ps(src, tail_mask(n)) }
    }
    #[inline(always)]
    unsafe fn store_first(self, dst: *mut f32, n: usize) {
        unsafe { _mm256_maskstore_ps(dst, tail_mask(n), self) }
    }
    #[inline(always)]
    unsafe fn tail(n: usize) -> __m256i {
        unsafe { tail_mask(n) }
    }
    #[inline(always)]
    unsafe fn load_tail(src: *const f32, tail: __m256i) -> Self {
        unsafe { _mm256_maskload_ps(src, tail) }
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        unsafe { _mm256_add_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        unsafe { _mm256_sub_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        unsafe { _mm256_mul_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn div(self, b: Self) -> Self {
        unsafe { _mm256_div_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        unsafe { _mm256_fmadd_ps(self, b, c) }
    }
    #[inline(always)]
    unsafe fn neg_mul_add(self, b: Self, c: Self) -> Self {
        unsafe { _mm256_fnmadd_ps(self, b, c) }
    }
    #[inline(always)]
    unsafe fn mul_sub(self, b: Self, c: Self) -> Self {
        unsafe { _mm256_fmsub_ps(self, b, c) }
    }
    #[inline(always)]
    unsafe fn max(self, b: Self) -> Self {
        unsafe { _mm256_max_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn min(self, b: Self) -> Self {
        unsafe { _mm256_min_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn xor(self, b: Self) -> Self {
        unsafe { _mm256_xor_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn lt(self, b: Self) -> Self::Mask {
        unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(self, b) }
    }
    #[inline(always)]
    unsafe fn le(self, b: Self) -> Self::Mask {
        unsafe { _mm256_cmp_ps::<_CMP_LE_OQ>(self, b) }
    }
    #[inline(always)]
    unsafe fn gt(self, b: Self) -> Self::Mask {
        unsafe { _mm256_cmp_ps::<_CMP_GT_OQ>(self, b) }
    }
    #[inline(always)]
    unsafe fn ge(self, b: Self) -> Self::Mask {
        unsafe { _mm256_cmp_ps::<_CMP_GE_OQ>(self, b) }
    }
    #[inline(always)]
    unsafe fn eq(self, b: Self) -> Self::Mask {
        unsafe { _mm256_cmp_ps::<_CMP_EQ_OQ>(self, b) }
    }
    #[inline(always)]
    unsafe fn select(m: Self::Mask, a: Self, b: Self) -> Self {
        unsafe { _mm256_blendv_ps(b, a, m) }
    }
    #[inline(always)]
    unsafe fn clear_where(self, m: Self::Mask) -> Self {
        unsafe { _mm256_andnot_ps(m, self) }
    }
    #[inline(always)]
    unsafe fn keep_where(self, m: Self::Mask) -> Self {
        unsafe { _mm256_and_ps(self, m) }
    }
    #[inline(always)]
    unsafe fn is_nan(self) -> Self::Mask {
        unsafe { _mm256_cmp_ps::<_CMP_UNORD_Q>(self, self) }
    }
    #[inline(always)]
    unsafe fn mask_or(a: Self::Mask, b: Self::Mask) -> Self::Mask {
        unsafe { _mm256_or_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn mask_all_first(m: Self::Mask, n: usize) -> bool {
        let first = (1u32 << n) - 1;
        unsafe { (_mm256_movemask_ps(m) as u32) & first == first }
    }
    #[inline(always)]
    unsafe fn mask_any(m: Self::Mask) -> bool {
        unsafe { _mm256_movemask_ps(m) != 0 }
    }
    #[inline(always)]
    unsafe fn first_lanes(n: usize) -> Self::Mask {
        unsafe { _mm256_castsi256_ps(tail_mask(n)) }
    }
    #[inline(always)]
    unsafe fn load_pairs(src: *const f32, n: usize) -> (Self, Self) {
        unsafe {
            let (lo, hi) = if n == 16 {
                (_mm256_loadu_ps(src), _mm256_loadu_ps(src.add(8)))
            } else {
                let hi = _mm256_maskload_ps(src.wrapping_add(8), tail_mask(n.saturating_sub(8)));
                (_mm256_maskload_ps(src, tail_mask(n)), hi)
            };
            // Within each 128-bit half: [lo0 lo2 hi0 hi2] (even) / [lo1 lo3 hi1 hi3] (odd);
            // then the 64-bit quarters in the order 0, 2, 1, 3.
            let even = _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi);
            let odd = _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi);
            let order = |v: __m256| {
                _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)))
            };
            (order(even), order(odd))
        }
    }
    #[inline(always)]
    unsafe fn store_pairs(even: Self, odd: Self, dst: *mut f32, n: usize) {
        unsafe {
            let lo = _mm256_unpacklo_ps(even, odd); // e0 o0 e1 o1 | e4 o4 e5 o5
            let hi = _mm256_unpackhi_ps(even, odd); // e2 o2 e3 o3 | e6 o6 e7 o7
            let first = _mm256_permute2f128_ps::<0x20>(lo, hi);
            let second = _mm256_permute2f128_ps::<0x31>(lo, hi);
            if n == 16 {
                _mm256_storeu_ps(dst, first);
                _mm256_storeu_ps(dst.add(8), second);
            } else {
                _mm256_maskstore_ps(dst, tail_mask(n), first);
                let high = dst.wrapping_add(8);
                _mm256_maskstore_ps(high, tail_mask(n.saturating_sub(8)), second);
            }
        }
    }
    #[inline(always)]
    unsafe fn index_ramp2(start: u32) -> Self::Index {
        unsafe {
            let twice = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
            _mm256_add_epi32(_mm256_set1_epi32(start as i32), twice)
        }
    }
    #[inline(always)]
    unsafe fn index_add(a: Self::Index, k: u32) -> Self::Index {
        unsafe { _mm256_add_epi32(a, _mm256_set1_epi32(k as i32)) }
    }
    #[inline(always)]
    unsafe fn index_eq(a: Self::Index, b: Self::Index) -> Self::Mask {
        unsafe { _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, b)) }
    }
    #[inline(always)]
    unsafe fn index_select(m: Self::Mask, a: Self::Index, b: Self::Index) -> Self::Index {
        unsafe { _mm256_blendv_epi8(b, a, _mm256_castps_si256(m)) }
    }
    #[inline(always)]
    unsafe fn index_load_first(src: *const u32, n: usize) -> Self::Index {
        unsafe {
            if n == 8 {
                _mm256_loadu_si256(src.cast())
            } else {
                _mm256_maskload_epi32(src.cast(), tail_mask(n))
            }
        }
    }
    #[inline(always)]
    unsafe fn index_store_first(a: Self::Index, dst: *mut u32, n: usize) {
        unsafe {
            if n == 8 {
                _mm256_storeu_si256(dst.cast(), a)
            } else {
                _mm256_maskstore_epi32(dst.cast(), tail_mask(n), a)
            }
        }
    }
    #[inline(always)]
    unsafe fn lane0(self) -> f32 {
        unsafe { _mm256_cvtss_f32(self) }
    }
    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        unsafe {
            let s = _mm_add_ps(
                _mm256_castps256_ps128(self),
                _mm256_extractf128_ps::<1>(self),
            );
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
        }
    }
    #[inline(always)]
    unsafe fn max_lane(self) -> f32 {
        unsafe {
            let s = _mm_max_ps(
                _mm256_castps256_ps128(self),
                _mm256_extractf128_ps::<1>(self),
            );
            let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)))
        }
    }
    #[inline(always)]
    unsafe fn scale_pow2_or_zero(self, n: Self, zero: Self::Mask) -> Self {
        // Adding n to the exponent field: exact while the result stays normal.
        unsafe {
            let scale = _mm256_slli_epi32::<23>(_mm256_cvtps_epi32(n));
            let y = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(self), scale));
            _mm256_andnot_ps(zero, y)
        }
    }
    #[inline(always)]
    unsafe fn exponent_mantissa(self) -> (Self, Self) {
        unsafe {
            let bits = _mm256_add_epi32(
                _mm256_castps_si256(self),
                _mm256_set1_epi32((0x3f80_0000 - SQRT_HALF_BITS) as i32),
            );
            let k = _mm256_sub_epi32(_mm256_srli_epi32::<23>(bits), _mm256_set1_epi32(127));
            let m = _mm256_add_epi32(
                _mm256_and_si256(bits, _mm256_set1_epi32(0x007f_ffff)),
                _mm256_set1_epi32(SQRT_HALF_BITS as i32),
            );
            (_mm256_cvtepi32_ps(k), _mm256_castsi256_ps(m))
        }
    }

    #[inline(always)]
    unsafe fn index_splat(k: u32) -> Self::Index {
        unsafe { _mm256_set1_epi32(k as i32) }
    }
    #[inline(always)]
    unsafe fn index_stride(step: u32) -> Self::Index {
        let iota = unsafe { _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7) };
        unsafe { _mm256_mullo_epi32(iota, _mm256_set1_epi32(step as i32)) }
    }
    #[inline(always)]
    unsafe fn index_add_lanes(a: Self::Index, b: Self::Index) -> Self::Index {
        unsafe { _mm256_add_epi32(a, b) }
    }
    #[inline(always)]
    unsafe fn gather(src: *const f32, idx: Self::Index) -> Self {
        unsafe { _mm256_i32gather_ps::<4>(src, idx) }
    }
    #[inline(always)]
    unsafe fn store_transposed(columns: *const Self, dst: *mut f32, stride: usize, n: usize) {
        unsafe {
            if n < 8 {
                // A partial group element by element, read from the columns in memory.
                let lanes = columns.cast::<[f32; 8]>();
                for r in 0..8 {
                    for k in 0..n {
                        *dst.add(r * stride + k) = (*lanes.add(k))[r];
                    }
                }
                return;
            }
            let mut rows = *columns.cast::<[__m256; 8]>();
            transpose8(&mut rows);
            for (r, row) in rows.into_iter().enumerate() {
                _mm256_storeu_ps(dst.add(r * stride), row);
            }
        }
    }
}

/// Transposes an 8 x 8 block held as 8 rows (after it, `rows[c]` lane `r` holds what `rows[r]`
/// lane `c` held): 32-bit interleaves, 64-bit shuffles within the 128-bit halves, then the
/// halves.
///
/// # Safety
/// The CPU must support AVX.
#[inline(always)]
pub(crate) unsafe fn transpose8(rows: &mut [__m256; 8]) {
    // SAFETY: AVX is enabled by the caller; register operations only.
    unsafe {
        let r = *rows;
        let mut t = [_mm256_setzero_ps(); 8];
        for i in 0..4 {
            t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        // u[4i + k]: column k (low half) and k + 4 (high half) of rows 4i..4i + 4.
        let mut u = [_mm256_setzero_ps(); 8];
        for i in 0..2 {
            u[4 * i] = _mm256_shuffle_ps::<0x44>(t[4 * i], t[4 * i + 2]);
            u[4 * i + 1] = _mm256_shuffle_ps::<0xEE>(t[4 * i], t[4 * i + 2]);
            u[4 * i + 2] = _mm256_shuffle_ps::<0x44>(t[4 * i + 1], t[4 * i + 3]);
            u[4 * i + 3] = _mm256_shuffle_ps::<0xEE>(t[4 * i + 1], t[4 * i + 3]);
        }
        for k in 0..4 {
            rows[k] = _mm256_permute2f128_ps::<0x20>(u[k], u[4 + k]);
            rows[4 + k] = _mm256_permute2f128_ps::<0x31>(u[k], u[4 + k]);
        }
    }
}
