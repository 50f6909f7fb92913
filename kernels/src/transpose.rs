//! In-register square transposes shared by the x86 kernels that switch between rows and
//! columns (the cross-entropy block kernels, the convolution channel paths). After a call,
//! `rows[c]` lane `r` holds what `rows[r]` lane `c` held.

use core::arch::x86_64::*;

/// Transposes an 8 x 8 block held as 8 rows: 32-bit interleaves, 64-bit shuffles within the
/// 128-bit halves, then the halves.
///
/// # Safety
/// AVX must be enabled.
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

/// Transposes a 16 x 16 block held as 16 rows: 32-bit interleaves, 64-bit shuffles within the
/// 128-bit lanes (4 x 4 blocks transposed), then the 4 x 4 grid of 128-bit lanes.
///
/// # Safety
/// AVX-512F must be enabled.
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
