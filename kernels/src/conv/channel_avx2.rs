//! The channel path on AVX2 + FMA: output channels in the lanes, a group of 16 as two ymm
//! vectors (see the `conv` module docs). Per ISA because its register blocks are: 16 ymm
//! registers hold 6 pixels x 2 vectors, where AVX-512's 32 zmm hold up to 28 pixels of one
//! vector, indexed by row and column instead of by pixel.
//!
//! - `channels_forward`: blocks of 6 pixels x 2 vectors (8 pixels x 1 vector for a group of
//!   at most 8 channels) across the output plane, the accumulators starting at the bias, each
//!   tap's weight vectors loaded once and multiplied by a broadcast input value per pixel,
//!   stored channels-last and written back as planes by 8 x 8 register transposes.
//! - `channels_backward_weight`: the output gradient transposed channels-last once per image,
//!   then blocks of up to 6 kernel columns x 2 vectors held over every pixel.
//!
//! Safety: the entry points require AVX2 and FMA, the lengths of `d.shape`, and the
//! channel-path rule, geometry and workspace [`Direct::assert_channel_invariants`] checks.

use super::args::{Forward, WeightGradient};
use super::geometry::{Direct, Taps};
use crate::simd::avx2::{tail_mask as lane_mask, transpose8};
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

/// # Safety
/// The CPU must support AVX2 and FMA; `d` must satisfy the channel-path rule (stride 1,
/// dilation 1, `K >= 1`); the lengths must match `d.shape` (input, weight, bias
/// `out_channels`, output) and `workspace` must hold at least `d.channel_workspace_len()` f32.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn channels_forward(d: &Direct, args: Forward<'_>) {
    // SAFETY: the caller guarantees the CPU features and the lengths the body relies on.
    unsafe { channels_forward_body(d, args) }
}

/// # Safety
/// As [`channels_forward`], with grad_output for the output and grad_weight for the weight
/// (overwritten).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn channels_backward_weight(d: &Direct, args: WeightGradient<'_>) {
    // SAFETY: the caller guarantees the CPU features and the lengths the body relies on.
    unsafe { channels_backward_weight_body(d, args) }
}

/// `planes[c * stride + p] = pixels[p * 16 + c]` for `p < n`, `c < channels`: channels-last
/// rows of 16 lanes written as channel planes, 8 x 8 at a time.
///
/// # Safety
/// AVX2 must be enabled; `pixels` holds `n * 16` f32, `planes` `(channels - 1) * stride + n`
/// (`channels <= 16`).
#[inline(always)]
unsafe fn pixels_to_planes(
    pixels: &[f32],
    n: usize,
    planes: &mut [f32],
    stride: usize,
    channels: usize,
) {
    debug_assert!(pixels.len() >= n * GROUP && channels <= GROUP);
    debug_assert!(channels == 0 || planes.len() >= (channels - 1) * stride + n);
    // SAFETY: AVX2 is enabled by the caller; lanes c0..c0 + 8 of rows p0 + i < n of `pixels`
    // are read, and channel c0 + c < channels's columns p0..p0 + count <= n are written
    // (masked when count < 8).
    unsafe {
        for p0 in (0..n).step_by(LANES) {
            let count = LANES.min(n - p0);
            let mask = lane_mask(count);
            for c0 in (0..channels).step_by(LANES) {
                let mut rows = [_mm256_setzero_ps(); LANES];
                for (i, row) in rows.iter_mut().enumerate().take(count) {
                    *row = _mm256_loadu_ps(pixels.as_ptr().add((p0 + i) * GROUP + c0));
                }
                transpose8(&mut rows);
                for (c, row) in rows.iter().enumerate().take(channels - c0) {
                    let dst = planes.as_mut_ptr().add((c0 + c) * stride + p0);
                    if count == LANES {
                        _mm256_storeu_ps(dst, *row);
                    } else {
                        _mm256_maskstore_ps(dst, mask, *row);
                    }
                }
            }
        }
    }
}

/// `pixels[p * 16 + c] = planes[c * stride + p]` for `p < n`, zero for `channels <= c` below
/// the next multiple of 8 (the lanes past that are not written): the inverse of
/// [`pixels_to_planes`].
///
/// # Safety
/// AVX2 must be enabled; `pixels` holds `n * 16` f32, `planes` `(channels - 1) * stride + n`
/// (`channels <= 16`).
#[inline(always)]
unsafe fn planes_to_pixels(
    planes: &[f32],
    stride: usize,
    channels: usize,
    n: usize,
    pixels: &mut [f32],
) {
    debug_assert!(pixels.len() >= n * GROUP && channels <= GROUP);
    debug_assert!(channels == 0 || planes.len() >= (channels - 1) * stride + n);
    // SAFETY: AVX2 is enabled by the caller; channel c0 + c < channels's columns p0..p0 +
    // count <= n are read (masked when count < 8), lanes c0..c0 + 8 of rows p0 + i < n of
    // `pixels` written.
    unsafe {
        for p0 in (0..n).step_by(LANES) {
            let count = LANES.min(n - p0);
            let mask = lane_mask(count);
            for c0 in (0..channels).step_by(LANES) {
                let mut rows = [_mm256_setzero_ps(); LANES];
                for (c, row) in rows.iter_mut().enumerate().take(channels - c0) {
                    let src = planes.as_ptr().add((c0 + c) * stride + p0);
                    *row = if count == LANES {
                        _mm256_loadu_ps(src)
                    } else {
                        _mm256_maskload_ps(src, mask)
                    };
                }
                transpose8(&mut rows);
                for (i, row) in rows.iter().enumerate().take(count) {
                    _mm256_storeu_ps(pixels.as_mut_ptr().add((p0 + i) * GROUP + c0), *row);
                }
            }
        }
    }
}

#[inline(always)]
unsafe fn channels_forward_body(d: &Direct, args: Forward<'_>) {
    let (input, weight) = (args.input, args.weight);
    let (bias, output, workspace) = (args.bias, args.output, args.workspace);
    let s = &d.shape;
    let (k_len, n, cout) = (s.col_rows(), d.out_h * d.out_w, s.out_channels);
    let (padded, taps, pixels) = d.channel_split(workspace);
    d.clear_padded(padded);
    d.channel_weights(weight, taps);
    let image_len = s.image_len();
    let out_image = cout * n;
    for b in 0..s.batch {
        let planes = d.channel_planes(&input[b * image_len..][..image_len], padded);
        let out = &mut output[b * out_image..][..out_image];
        for (g, taps) in taps.chunks_exact(k_len * GROUP).enumerate() {
            let channels = GROUP.min(cout - g * GROUP);
            // SAFETY: AVX2 is enabled by the caller; the bias has `cout` elements, of which
            // the masks read `channels` from g * 16; `pixels` holds n * 16 f32 (channel_split)
            // and `out` this group's `channels` planes of n from (g * 16) * n; each block
            // starts below n.
            unsafe {
                let start = match bias {
                    Some(bias) => {
                        let at = bias.as_ptr().add(g * GROUP);
                        let high = if channels > LANES {
                            _mm256_maskload_ps(at.add(LANES), lane_mask(channels - LANES))
                        } else {
                            _mm256_setzero_ps()
                        };
                        [_mm256_maskload_ps(at, lane_mask(channels)), high]
                    }
                    None => [_mm256_setzero_ps(); 2],
                };
                if channels > LANES {
                    for p0 in (0..n).step_by(FWD_PIXELS_2) {
                        forward_pixels::<FWD_PIXELS_2, 2>(d, planes, taps, start, pixels, p0);
                    }
                } else {
                    for p0 in (0..n).step_by(FWD_PIXELS_1) {
                        forward_pixels::<FWD_PIXELS_1, 1>(d, planes, taps, start, pixels, p0);
                    }
                }
                pixels_to_planes(pixels, n, &mut out[g * GROUP * n..], n, channels);
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

#[inline(always)]
unsafe fn channels_backward_weight_body(d: &Direct, args: WeightGradient<'_>) {
    let (input, grad_output) = (args.input, args.grad_output);
    let (grad_weight, workspace) = (args.grad_weight, args.workspace);
    let s = &d.shape;
    let (k_len, n, cout) = (s.col_rows(), d.out_h * d.out_w, s.out_channels);
    let (kh, kw) = (s.kernel_h, s.kernel_w);
    let (padded, sums, grads) = d.channel_split(workspace);
    d.clear_padded(padded);
    sums.fill(0.0);
    let image_len = s.image_len();
    let out_image = cout * n;
    for b in 0..s.batch {
        let planes = d.channel_planes(&input[b * image_len..][..image_len], padded);
        let dy = &grad_output[b * out_image..][..out_image];
        for (g, grads) in grads.chunks_exact_mut(n * GROUP).enumerate() {
            let channels = GROUP.min(cout - g * GROUP);
            // SAFETY: AVX2 is enabled by the caller; `dy` holds this group's `channels`
            // planes of n from (g * 16) * n and `grads` n * 16 f32.
            unsafe { planes_to_pixels(&dy[g * GROUP * n..], n, channels, n, grads) };
        }
        let groups = sums
            .chunks_exact_mut(k_len * GROUP)
            .zip(grads.chunks_exact(n * GROUP));
        for (g, (sums, grads)) in groups.enumerate() {
            let wide = cout - g * GROUP > LANES;
            // Kernel columns in at most two blocks of at most DW_MOST_TAPS (the rule bounds
            // the kernel width by 7 <= 2 * DW_MOST_TAPS).
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
                        // SAFETY: AVX2 and FMA are enabled by the caller; `sums` holds the
                        // group's K * 16 partial sums, `grads` its n * 16 output gradients,
                        // `planes` the image's padded planes; ci < in_channels, ky <
                        // kernel_h, kx0 + taps <= kernel_w.
                        unsafe { dw_taps_dispatch(d, planes, grads, sums, at, taps, wide) };
                    }
                }
            }
        }
    }
    for (g, sums) in sums.chunks_exact(k_len * GROUP).enumerate() {
        let channels = GROUP.min(cout - g * GROUP);
        // SAFETY: AVX2 is enabled by the caller; `sums` holds K rows of 16, and the weight
        // gradient `channels` rows of K from (g * 16) * K.
        unsafe {
            pixels_to_planes(
                sums,
                k_len,
                &mut grad_weight[g * GROUP * k_len..],
                k_len,
                channels,
            )
        };
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
