//! Max pooling on AVX2: a vector path for 2x2 windows with stride 2 (8 outputs at a time),
//! the reference loop otherwise. Also the de-interleaving loads and interleaving stores that
//! average pooling's 2x2 path shares.

use super::scalar::check_in_window;
use super::Pool2dShape;
use core::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX2 and FMA; the lengths match `shape` and an input plane has at most
/// `i32::MAX` elements (checked by the caller).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn forward(
    shape: &Pool2dShape,
    input: &[f32],
    output: &mut [f32],
    argmax: &mut [u32],
) {
    if shape.is_2x2_stride_2() {
        // SAFETY: AVX2 is enabled on this function; the caller checked the lengths.
        unsafe { forward_2x2_stride_2(shape, input, output, argmax) }
    } else {
        super::scalar::forward(shape, input, output, argmax);
    }
}

/// # Safety
/// As [`forward`].
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn backward(
    shape: &Pool2dShape,
    grad_output: &[f32],
    argmax: &[u32],
    grad_input: &mut [f32],
) {
    if shape.is_2x2_stride_2() {
        // SAFETY: AVX2 is enabled on this function; the caller checked the lengths.
        unsafe { backward_2x2_stride_2(shape, grad_output, argmax, grad_input) }
    } else {
        super::scalar::backward(shape, grad_output, argmax, grad_input);
    }
}

/// Calls `chunk(plane, oy, ox0, valid)` for every chunk of up to 8 outputs of a row of
/// outputs, for every plane, in output order.
#[inline(always)]
pub(crate) fn for_each_chunk(
    shape: &Pool2dShape,
    mut chunk: impl FnMut(usize, usize, usize, usize),
) {
    let (oh, ow) = (shape.out_h(), shape.out_w());
    for p in 0..shape.batch * shape.channels {
        for oy in 0..oh {
            for ox0 in (0..ow).step_by(8) {
                chunk(p, oy, ox0, (ow - ox0).min(8));
            }
        }
    }
}

/// Lanes `i < count` set (all ones), the rest clear.
#[inline(always)]
unsafe fn lanes_below(count: usize) -> __m256i {
    // SAFETY: AVX2 is enabled by the caller.
    unsafe {
        let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(count as i32), iota)
    }
}

/// Loads `count <= 16` floats from `src` (holding at least `count`) and splits them into even
/// and odd positions: `([s0, s2, .., s14], [s1, s3, .., s15])`; lanes past `count` are 0.
#[inline(always)]
pub(crate) unsafe fn load_pairs(src: &[f32], count: usize) -> (__m256, __m256) {
    assert!(count <= 16 && src.len() >= count);
    // SAFETY: with 16 floats present both full loads are in bounds; otherwise the masked loads
    // touch only lanes below `count`, which are in bounds. AVX2 is enabled by the caller.
    unsafe {
        let (lo, hi) = if count == 16 {
            (
                _mm256_loadu_ps(src.as_ptr()),
                _mm256_loadu_ps(src.as_ptr().add(8)),
            )
        } else {
            let lo = _mm256_maskload_ps(src.as_ptr(), lanes_below(count));
            let hi_ptr = src.as_ptr().wrapping_add(8);
            let hi = _mm256_maskload_ps(hi_ptr, lanes_below(count.saturating_sub(8)));
            (lo, hi)
        };
        // Within each 128-bit half: [lo0 lo2 hi0 hi2] (even) / [lo1 lo3 hi1 hi3] (odd); then put
        // the 64-bit quarters in order 0, 2, 1, 3.
        let even = _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi);
        let odd = _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi);
        let order = |v: __m256| {
            _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)))
        };
        (order(even), order(odd))
    }
}

/// The inverse of [`load_pairs`]: stores `[e0, o0, e1, o1, ..]`, its first `count <= 16`
/// floats, to `dst` (holding at least `count`).
#[inline(always)]
pub(crate) unsafe fn store_pairs(dst: &mut [f32], count: usize, even: __m256, odd: __m256) {
    assert!(count <= 16 && dst.len() >= count);
    // SAFETY: full stores only when 16 floats are present; otherwise the masked stores write only
    // lanes below `count`, which are in bounds. AVX2 is enabled by the caller.
    unsafe {
        let lo = _mm256_unpacklo_ps(even, odd); // e0 o0 e1 o1 | e4 o4 e5 o5
        let hi = _mm256_unpackhi_ps(even, odd); // e2 o2 e3 o3 | e6 o6 e7 o7
        let first = _mm256_permute2f128_ps::<0x20>(lo, hi);
        let second = _mm256_permute2f128_ps::<0x31>(lo, hi);
        if count == 16 {
            _mm256_storeu_ps(dst.as_mut_ptr(), first);
            _mm256_storeu_ps(dst.as_mut_ptr().add(8), second);
        } else {
            _mm256_maskstore_ps(dst.as_mut_ptr(), lanes_below(count), first);
            let hi_ptr = dst.as_mut_ptr().wrapping_add(8);
            _mm256_maskstore_ps(hi_ptr, lanes_below(count.saturating_sub(8)), second);
        }
    }
}

/// Loads `count <= 8` floats (lanes past it are 0).
#[inline(always)]
pub(crate) unsafe fn load_f32(src: &[f32], count: usize) -> __m256 {
    assert!(count <= 8 && src.len() >= count);
    // SAFETY: a full load only when 8 floats are present, else a masked load of the lanes below
    // `count`. AVX2 is enabled by the caller.
    unsafe {
        if count == 8 {
            _mm256_loadu_ps(src.as_ptr())
        } else {
            _mm256_maskload_ps(src.as_ptr(), lanes_below(count))
        }
    }
}

/// Stores the first `count <= 8` lanes of `v`.
#[inline(always)]
pub(crate) unsafe fn store_f32(dst: &mut [f32], count: usize, v: __m256) {
    assert!(count <= 8 && dst.len() >= count);
    // SAFETY: as in `load_f32`, for stores.
    unsafe {
        if count == 8 {
            _mm256_storeu_ps(dst.as_mut_ptr(), v);
        } else {
            _mm256_maskstore_ps(dst.as_mut_ptr(), lanes_below(count), v);
        }
    }
}

/// The index vector `[start, start + 2, .., start + 14]` of a chunk's top-left window corners.
#[inline(always)]
unsafe fn corners(start: usize) -> __m256i {
    // SAFETY: AVX2 is enabled by the caller. `start` fits in i32: the plane does (checked).
    unsafe {
        let twice = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
        _mm256_add_epi32(_mm256_set1_epi32(start as i32), twice)
    }
}

/// One step of the scan: `v` (at index `at`) replaces the running maximum where it is greater or
/// NaN (the reference's `takes_over`).
#[inline(always)]
unsafe fn scan(best: &mut __m256, best_at: &mut __m256i, v: __m256, at: __m256i) {
    // SAFETY: AVX2 is enabled by the caller.
    unsafe {
        let greater = _mm256_cmp_ps::<_CMP_GT_OQ>(v, *best);
        let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v);
        let take = _mm256_or_ps(greater, nan);
        *best = _mm256_blendv_ps(*best, v, take);
        *best_at = _mm256_blendv_epi8(*best_at, at, _mm256_castps_si256(take));
    }
}

#[inline(always)]
unsafe fn forward_2x2_stride_2(
    shape: &Pool2dShape,
    input: &[f32],
    output: &mut [f32],
    argmax: &mut [u32],
) {
    let (in_w, ow) = (shape.in_w, shape.out_w());
    let (in_plane, out_plane) = (shape.in_h * in_w, shape.out_h() * ow);
    for_each_chunk(shape, |p, oy, ox0, valid| {
        let x = &input[p * in_plane..][..in_plane];
        let start = 2 * oy * in_w + 2 * ox0;
        let o = p * out_plane + oy * ow + ox0;
        // SAFETY: AVX2 is enabled by the caller; the window rows 2oy and 2oy+1 exist and hold
        // the 2 * valid columns read; the output chunk holds `valid` elements.
        unsafe {
            let (top_even, top_odd) = load_pairs(&x[start..], 2 * valid);
            let (bottom_even, bottom_odd) = load_pairs(&x[start + in_w..], 2 * valid);
            let at = corners(start);
            let one = _mm256_set1_epi32(1);
            let below = _mm256_set1_epi32(in_w as i32);
            let (mut best, mut best_at) = (top_even, at);
            scan(&mut best, &mut best_at, top_odd, _mm256_add_epi32(at, one));
            let at_below = _mm256_add_epi32(at, below);
            scan(&mut best, &mut best_at, bottom_even, at_below);
            scan(
                &mut best,
                &mut best_at,
                bottom_odd,
                _mm256_add_epi32(at_below, one),
            );
            store_f32(&mut output[o..o + valid], valid, best);
            let idx = &mut argmax[o..o + valid];
            if valid == 8 {
                _mm256_storeu_si256(idx.as_mut_ptr().cast(), best_at);
            } else {
                _mm256_maskstore_epi32(idx.as_mut_ptr().cast(), lanes_below(valid), best_at);
            }
        }
    });
}

#[inline(always)]
unsafe fn backward_2x2_stride_2(
    shape: &Pool2dShape,
    grad_output: &[f32],
    argmax: &[u32],
    grad_input: &mut [f32],
) {
    let (in_w, ow) = (shape.in_w, shape.out_w());
    let (in_plane, out_plane) = (shape.in_h * in_w, shape.out_h() * ow);
    // Every window element is written below; an odd last row or column is not in any window.
    if shape.in_h % 2 == 1 || in_w % 2 == 1 {
        grad_input.fill(0.0);
    }
    for_each_chunk(shape, |p, oy, ox0, valid| {
        let gi = &mut grad_input[p * in_plane..][..in_plane];
        let start = 2 * oy * in_w + 2 * ox0;
        let o = p * out_plane + oy * ow + ox0;
        let idx = &argmax[o..o + valid];
        // SAFETY: AVX2 is enabled by the caller; the chunk's `valid` outputs and indices, and the
        // 2 * valid columns of rows 2oy and 2oy+1 it writes, are in bounds.
        unsafe {
            let g = load_f32(&grad_output[o..o + valid], valid);
            let a = if valid == 8 {
                _mm256_loadu_si256(idx.as_ptr().cast())
            } else {
                _mm256_maskload_epi32(idx.as_ptr().cast(), lanes_below(valid))
            };
            let at = corners(start);
            let one = _mm256_set1_epi32(1);
            let at_below = _mm256_add_epi32(at, _mm256_set1_epi32(in_w as i32));
            let hits = [
                _mm256_cmpeq_epi32(a, at),
                _mm256_cmpeq_epi32(a, _mm256_add_epi32(at, one)),
                _mm256_cmpeq_epi32(a, at_below),
                _mm256_cmpeq_epi32(a, _mm256_add_epi32(at_below, one)),
            ];
            let any = _mm256_or_si256(
                _mm256_or_si256(hits[0], hits[1]),
                _mm256_or_si256(hits[2], hits[3]),
            );
            let valid_bits = (1u32 << valid) - 1;
            if (_mm256_movemask_ps(_mm256_castsi256_ps(any)) as u32) & valid_bits != valid_bits {
                // Some index is outside its window: let the reference's check name the first.
                for (i, &a) in idx.iter().enumerate() {
                    check_in_window(shape, o + i, a as usize, oy, ox0 + i);
                }
            }
            // 0 + (g or 0), as the reference's zero-then-add (so -0.0 becomes +0.0 there too).
            let zero = _mm256_setzero_ps();
            let put =
                |hit: __m256i| _mm256_add_ps(zero, _mm256_and_ps(g, _mm256_castsi256_ps(hit)));
            store_pairs(&mut gi[start..], 2 * valid, put(hits[0]), put(hits[1]));
            store_pairs(
                &mut gi[start + in_w..],
                2 * valid,
                put(hits[2]),
                put(hits[3]),
            );
        }
    });
}
