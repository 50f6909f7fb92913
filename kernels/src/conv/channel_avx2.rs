//! The channel path's register blocks on AVX2 + FMA (the passes are `channel.rs`'s): a group
//! of 16 output channels is two ymm vectors.
//!
//! - Forward: blocks of 6 pixels x 2 vectors (12 accumulators, 2 weight vectors and a
//!   broadcast: 15 of the 16 registers), or 8 pixels x 1 vector for a group of at most 8
//!   channels, across the output plane; each tap's weight vectors loaded once and multiplied
//!   by a broadcast input value per pixel.
//! - Weight gradient: blocks of up to 6 kernel columns x 2 vectors held over every pixel of an
//!   image (wider kernels in two blocks).

use super::args::{Forward, WeightGradient};
use super::channel::{self, ChannelBlocks};
use super::geometry::{Direct, Taps};
use crate::simd::avx2::transpose8;
use core::arch::x86_64::*;

/// f32 lanes per ymm vector.
const LANES: usize = 8;
/// Output channels per group of the channel path (`[..][16]` in the workspace): two vectors.
const GROUP: usize = 2 * LANES;
/// Pixels per forward block: 6 x 2 vectors (12 accumulators, 2 weight vectors and a
/// broadcast: 15 of the 16 ymm); a group of at most 8 channels takes one vector per pixel and
/// 8 pixels.
const FWD_PIXELS_2: usize = 6;
const FWD_PIXELS_1: usize = 8;
/// Most kernel columns of a weight-gradient block: 6 x 2 accumulators, 2 output-gradient
/// vectors and a broadcast (wider kernels are split in two blocks).
const DW_MOST_TAPS: usize = 6;

crate::simd::isa_fns! { "avx2,fma", __m256;
    fn channels_forward(d: &Direct, args: Forward<'_>) {
        channel::forward::<V>(d, args)
    }
    fn channels_backward_weight(d: &Direct, args: WeightGradient<'_>) {
        channel::backward_weight::<V>(d, args)
    }
}

// SAFETY (every method): AVX2 and FMA are enabled by the callers (the wrappers above); the
// accesses are those the trait's and the blocks' contracts state.
impl ChannelBlocks for __m256 {
    #[inline(always)]
    unsafe fn transpose(rows: &mut [Self; 16]) {
        let (first, _) = rows.split_first_chunk_mut::<8>().expect("16 rows");
        unsafe { transpose8(first) }
    }

    #[inline(always)]
    unsafe fn forward_group(
        d: &Direct,
        planes: &[f32],
        taps: &[f32],
        start: &[Self],
        pixels: &mut [f32],
        channels: usize,
    ) {
        let n = d.out_h * d.out_w;
        let start = [start[0], start[1]];
        unsafe {
            if channels > LANES {
                for p0 in (0..n).step_by(FWD_PIXELS_2) {
                    forward_pixels::<FWD_PIXELS_2, 2>(d, planes, taps, start, pixels, p0);
                }
            } else {
                for p0 in (0..n).step_by(FWD_PIXELS_1) {
                    forward_pixels::<FWD_PIXELS_1, 1>(d, planes, taps, start, pixels, p0);
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn backward_weight_group(
        d: &Direct,
        planes: &[f32],
        grads: &[f32],
        sums: &mut [f32],
        channels: usize,
    ) {
        let s = &d.shape;
        let (kh, kw, wide) = (s.kernel_h, s.kernel_w, channels > LANES);
        // Kernel columns in at most two blocks of at most DW_MOST_TAPS (the rule bounds the
        // kernel width by 7 <= 2 * DW_MOST_TAPS).
        let first = if kw > DW_MOST_TAPS {
            kw.div_ceil(2)
        } else {
            kw
        };
        for ci in 0..s.in_channels {
            for ky in 0..kh {
                for (kx0, taps) in [(0, first), (first, kw - first)] {
                    let at = Taps {
                        ci,
                        ky,
                        co0: 0,
                        kx0,
                    };
                    // ci < in_channels, ky < kernel_h, kx0 + taps <= kernel_w.
                    unsafe { dw_taps_dispatch(d, planes, grads, sums, at, taps, wide) };
                }
            }
        }
    }
}

/// Output pixels `p0..p0 + P` (row-major over the output plane, those below `out_h * out_w`)
/// of one group of output channels, `V` vectors of 8 channels each: `P x V` accumulators
/// starting at `start` (the bias), each tap's `V` weight vectors loaded once and multiplied by
/// a broadcast input value per pixel; stored to `pixels[p * 16..]`. Pixels past the plane
/// repeat the last one's inputs and are not stored.
///
/// # Safety
/// AVX2 and FMA must be enabled; `p0 < out_h * out_w`, `V <= 2`; `padded` holds one image's
/// padded planes (`in_channels * padded_h * padded_w` f32, no slack needed), `taps` the
/// group's `K * 16` weights, `pixels` `out_h * out_w * 16` f32.
#[inline(always)]
unsafe fn forward_pixels<const P: usize, const V: usize>(
    d: &Direct,
    padded: &[f32],
    taps: &[f32],
    start: [__m256; 2],
    pixels: &mut [f32],
    p0: usize,
) {
    let s = &d.shape;
    let (kh, kw, width, plane) = (s.kernel_h, s.kernel_w, d.padded_w, d.plane_len());
    let n = d.out_h * d.out_w;
    let count = P.min(n - p0);
    debug_assert!(V <= 2 && count > 0 && taps.len() >= s.col_rows() * GROUP);
    debug_assert!(padded.len() >= s.in_channels * plane);
    // SAFETY: AVX2 and FMA are enabled by the caller. Reads: for pixel (y, x) below out_h x
    // out_w, padded row y + ky < out_h + kernel_h - 1 = padded_h of channel ci, column x + kx
    // < out_w + kernel_w - 1 = padded_w; weight vectors (ci, ky, kx) < K of `taps`, lanes
    // below 8 V <= 16. Writes: pixels p0 + i < n, lanes below 8 V.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); V]; P];
        for acc in acc.iter_mut() {
            for (v, acc) in acc.iter_mut().enumerate() {
                *acc = start[v];
            }
        }
        let base = padded.as_ptr();
        let src: [*const f32; P] = core::array::from_fn(|i| {
            let p = p0 + i.min(count - 1);
            base.add((p / d.out_w) * width + p % d.out_w)
        });
        let mut w = taps.as_ptr();
        for ci in 0..s.in_channels {
            for ky in 0..kh {
                let at = ci * plane + ky * width;
                for kx in 0..kw {
                    let wv: [__m256; V] =
                        core::array::from_fn(|v| _mm256_loadu_ps(w.add(v * LANES)));
                    w = w.add(GROUP);
                    for (acc, src) in acc.iter_mut().zip(&src) {
                        let x = _mm256_broadcast_ss(&*src.add(at + kx));
                        for (acc, &wv) in acc.iter_mut().zip(&wv) {
                            *acc = _mm256_fmadd_ps(x, wv, *acc);
                        }
                    }
                }
            }
        }
        let dst = pixels.as_mut_ptr().add(p0 * GROUP);
        for (i, acc) in acc.iter().enumerate().take(count) {
            for (v, acc) in acc.iter().enumerate() {
                _mm256_storeu_ps(dst.add(i * GROUP + v * LANES), *acc);
            }
        }
    }
}

/// Runs [`dw_taps`] instantiated for `taps` kernel columns (0 runs nothing) and two vectors
/// per pixel when `wide` (the group has more than 8 channels), else one.
///
/// # Safety
/// As [`dw_taps`].
#[inline(always)]
unsafe fn dw_taps_dispatch(
    d: &Direct,
    padded: &[f32],
    grads: &[f32],
    sums: &mut [f32],
    at: Taps,
    taps: usize,
    wide: bool,
) {
    macro_rules! by_taps {
        ($($t:literal)*) => {
            match (taps, wide) {
                (0, _) => {}
                // SAFETY: forwarded from the caller.
                $(($t, true) => unsafe { dw_taps::<$t, 2>(d, padded, grads, sums, at) },
                ($t, false) => unsafe { dw_taps::<$t, 1>(d, padded, grads, sums, at) },)*
                _ => unreachable!("weight-gradient blocks are 1..=6 kernel columns"),
            }
        };
    }
    by_taps!(1 2 3 4 5 6)
}

/// `sums[(ci, ky, kx0 + t)] += sum over pixels (y, x) of padded[ci][y + ky][x + kx0 + t] *
/// grads[y * out_w + x]` (8 output channels per vector, `V` vectors) for `T` kernel columns:
/// `T x V` accumulators held over the whole image, `V` output-gradient vectors loaded per
/// pixel and multiplied by a broadcast input value per tap.
///
/// # Safety
/// AVX2 and FMA must be enabled; `at.ci < in_channels`, `at.ky < kernel_h`, `at.kx0 + T <=
/// kernel_w`, `V <= 2`; `padded` holds one image's padded planes (no slack needed), `grads`
/// `out_h * out_w * 16` f32 and `sums` the group's `K * 16` partial sums.
#[inline(always)]
unsafe fn dw_taps<const T: usize, const V: usize>(
    d: &Direct,
    padded: &[f32],
    grads: &[f32],
    sums: &mut [f32],
    at: Taps,
) {
    let s = &d.shape;
    let (kh, kw, width) = (s.kernel_h, s.kernel_w, d.padded_w);
    debug_assert!(V <= 2 && at.ci < s.in_channels && at.ky < kh && at.kx0 + T <= kw);
    debug_assert!(padded.len() >= s.in_channels * d.plane_len());
    debug_assert!(grads.len() >= d.out_h * d.out_w * GROUP && sums.len() >= s.col_rows() * GROUP);
    // SAFETY: AVX2 and FMA are enabled by the caller. Sums: taps (ci, ky, kx0 + t) < K, lanes
    // below 8 V <= 16 each. Reads: padded row y + ky < out_h + kernel_h - 1 = padded_h of
    // channel ci, columns x + kx0 + t < out_w + kernel_w - 1 = padded_w; pixel y * out_w + x
    // of `grads`, lanes below 8 V.
    unsafe {
        let sums = sums
            .as_mut_ptr()
            .add(((at.ci * kh + at.ky) * kw + at.kx0) * GROUP);
        let mut acc = [[_mm256_setzero_ps(); V]; T];
        for (t, acc) in acc.iter_mut().enumerate() {
            for (v, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_loadu_ps(sums.add(t * GROUP + v * LANES));
            }
        }
        let src = padded
            .as_ptr()
            .add(at.ci * d.plane_len() + at.ky * width + at.kx0);
        let mut grad = grads.as_ptr();
        for y in 0..d.out_h {
            let row = src.add(y * width);
            for x in 0..d.out_w {
                let g: [__m256; V] = core::array::from_fn(|v| _mm256_loadu_ps(grad.add(v * LANES)));
                grad = grad.add(GROUP);
                for (t, acc) in acc.iter_mut().enumerate() {
                    let input = _mm256_broadcast_ss(&*row.add(x + t));
                    for (acc, &g) in acc.iter_mut().zip(&g) {
                        *acc = _mm256_fmadd_ps(input, g, *acc);
                    }
                }
            }
        }
        for (t, acc) in acc.iter().enumerate() {
            for (v, acc) in acc.iter().enumerate() {
                _mm256_storeu_ps(sums.add(t * GROUP + v * LANES), *acc);
            }
        }
    }
}
