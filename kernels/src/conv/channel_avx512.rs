//! The channel path's register blocks on AVX-512 (the passes are `channel.rs`'s): a group of
//! 16 output channels is one zmm vector.
//!
//! - Forward: blocks of whole output rows (`out_w` pixels, as many rows as keep 28
//!   accumulators), each tap's weight vector loaded once and multiplied by a broadcast input
//!   value per pixel.
//! - Weight gradient: blocks of kernel rows x the whole kernel width held over every pixel of
//!   an image.

use super::args::{Forward, WeightGradient};
use super::channel::{self, ChannelBlocks};
use super::geometry::Direct;
use crate::simd::avx512::transpose16;
use core::arch::x86_64::*;

/// f32 lanes per zmm vector.
const LANES: usize = 16;

/// Most vector accumulators a channel-path block holds: of the 32 zmm, the rest hold the
/// weight (or output-gradient) vector and what the compiler needs besides.
const CHANNEL_ACCS: usize = 28;

crate::simd::isa_fns! { "avx512f,avx2,fma", __m512;
    fn channels_forward(d: &Direct, args: Forward<'_>) {
        channel::forward::<V>(d, args)
    }
    fn channels_backward_weight(d: &Direct, args: WeightGradient<'_>) {
        channel::backward_weight::<V>(d, args)
    }
}

// SAFETY (every method): AVX-512F is enabled by the callers (the wrappers above); the accesses
// are those the trait's and the blocks' contracts state.
impl ChannelBlocks for __m512 {
    #[inline(always)]
    unsafe fn transpose(rows: &mut [Self; 16]) {
        unsafe { transpose16(rows) }
    }

    #[inline(always)]
    unsafe fn forward_group(
        d: &Direct,
        planes: &[f32],
        taps: &[f32],
        start: &[Self],
        pixels: &mut [f32],
        _channels: usize,
    ) {
        // The rule bounds out_w by 16, as `forward_width` requires.
        unsafe { forward_width(d, planes, taps, start[0], pixels) }
    }

    #[inline(always)]
    unsafe fn backward_weight_group(
        d: &Direct,
        planes: &[f32],
        grads: &[f32],
        sums: &mut [f32],
        _channels: usize,
    ) {
        for ci in 0..d.shape.in_channels {
            // ci < in_channels, and the rule bounds the kernel by 7.
            unsafe { dw_kernel_width(d, planes, grads, sums, ci) };
        }
    }
}

/// Runs the forward blocks of one group of 16 output channels over an image, with the block
/// width the row's (`out_w` columns, 1..=16) and as many rows as keep `rows * out_w <=`
/// [`CHANNEL_ACCS`] (at most 8).
///
/// # Safety
/// As [`forward_rows`].
#[inline(always)]
unsafe fn forward_width(
    d: &Direct,
    padded: &[f32],
    taps: &[f32],
    start: __m512,
    pixels: &mut [f32],
) {
    macro_rules! by_width {
        ($($c:literal)*) => {
            match d.out_w {
                $($c => {
                    const R: usize = if CHANNEL_ACCS / $c > 8 { 8 } else { CHANNEL_ACCS / $c };
                    for y0 in (0..d.out_h).step_by(R) {
                        // SAFETY: forwarded from the caller.
                        unsafe { forward_rows::<R, $c>(d, padded, taps, start, pixels, y0) };
                    }
                })*
                _ => unreachable!("the channel path's rows are 1..=16 wide"),
            }
        };
    }
    by_width!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
}

/// Output rows `y0..y0 + R` (those below `out_h`) of one group of 16 output channels:
/// `R x C` pixel accumulators (`C = out_w`) starting at `start` (the bias), each tap's weight
/// vector loaded once and multiplied by a broadcast input value per pixel; stored to
/// `pixels[(y * out_w + x) * 16..]`. Rows past `out_h` repeat the last row's inputs and are not
/// stored.
///
/// # Safety
/// AVX-512F must be enabled; `C == d.out_w`, `y0 < out_h`; `padded` holds one image's padded
/// planes (`in_channels * padded_h * padded_w` f32, no slack needed), `taps` the group's
/// `K * 16` weights, `pixels` `out_h * out_w * 16` f32.
#[inline(always)]
unsafe fn forward_rows<const R: usize, const C: usize>(
    d: &Direct,
    padded: &[f32],
    taps: &[f32],
    start: __m512,
    pixels: &mut [f32],
    y0: usize,
) {
    let s = &d.shape;
    let (kh, kw, width, plane) = (s.kernel_h, s.kernel_w, d.padded_w, d.plane_len());
    let rows = R.min(d.out_h - y0);
    debug_assert!(C == d.out_w && rows > 0 && taps.len() >= s.col_rows() * LANES);
    debug_assert!(padded.len() >= s.in_channels * plane);
    // SAFETY: AVX-512F is enabled by the caller. Reads: padded row y0 + min(r, rows - 1) + ky
    // < out_h + kernel_h - 1 = padded_h of channel ci, columns x + kx < out_w + kernel_w - 1 =
    // padded_w; weight vector (ci, ky, kx) < K of `taps`. Writes: pixels (y0 + r) * C + x <
    // out_h * out_w, 16 lanes each.
    unsafe {
        let mut acc = [[start; C]; R];
        let base = padded.as_ptr();
        let src: [*const f32; R] =
            core::array::from_fn(|r| base.add((y0 + r.min(rows - 1)) * width));
        let mut w = taps.as_ptr();
        for ci in 0..s.in_channels {
            for ky in 0..kh {
                let at = ci * plane + ky * width;
                for kx in 0..kw {
                    let wv = _mm512_loadu_ps(w);
                    w = w.add(LANES);
                    for (acc, src) in acc.iter_mut().zip(&src) {
                        let x = src.add(at + kx);
                        for (c, acc) in acc.iter_mut().enumerate() {
                            *acc = _mm512_fmadd_ps(_mm512_set1_ps(*x.add(c)), wv, *acc);
                        }
                    }
                }
            }
        }
        let dst = pixels.as_mut_ptr().add(y0 * C * LANES);
        for (r, acc) in acc.iter().enumerate() {
            if r < rows {
                for (c, acc) in acc.iter().enumerate() {
                    _mm512_storeu_ps(dst.add((r * C + c) * LANES), *acc);
                }
            }
        }
    }
}

/// Runs the weight-gradient blocks of input channel `ci` for one group of 16 output channels
/// over an image: kernel rows in blocks of `G` (the kernel's height when `G * kernel_w <=`
/// [`CHANNEL_ACCS`], else as many as fit) by the whole kernel width.
///
/// # Safety
/// As [`dw_rows`].
#[inline(always)]
unsafe fn dw_kernel_width(d: &Direct, padded: &[f32], grads: &[f32], sums: &mut [f32], ci: usize) {
    let kh = d.shape.kernel_h;
    macro_rules! by_kernel {
        ($($kw:literal: $($g:literal)*;)*) => {
            match d.shape.kernel_w {
                $($kw => {
                    const MOST: usize = if CHANNEL_ACCS / $kw > 7 { 7 } else { CHANNEL_ACCS / $kw };
                    for ky0 in (0..kh).step_by(MOST) {
                        match MOST.min(kh - ky0) {
                            // SAFETY: forwarded from the caller.
                            $($g => unsafe {
                                dw_rows::<$g, $kw>(d, padded, grads, sums, ci, ky0)
                            },)*
                            _ => unreachable!("kernel rows per block are 1..=7"),
                        }
                    }
                })*
                _ => unreachable!("the channel path's kernels are 1..=7 wide"),
            }
        };
    }
    by_kernel! {
        1: 1 2 3 4 5 6 7;
        2: 1 2 3 4 5 6 7;
        3: 1 2 3 4 5 6 7;
        4: 1 2 3 4 5 6 7;
        5: 1 2 3 4 5;
        6: 1 2 3 4;
        7: 1 2 3 4;
    }
}

/// `sums[(ci, ky0 + gy, kx)] += sum over pixels (y, x) of padded[ci][y + ky0 + gy][x + kx] *
/// grads[y * out_w + x]` (16 output channels per vector) for `G` kernel rows from `ky0` and
/// every kernel column `kx < KW`: `G x KW` accumulators held over the whole image, one
/// output-gradient vector loaded per pixel and multiplied by a broadcast input value per tap.
///
/// # Safety
/// AVX-512F must be enabled; `KW == kernel_w`, `ky0 + G <= kernel_h`, `ci < in_channels`;
/// `padded` holds one image's padded planes (no slack needed), `grads` `out_h * out_w * 16`
/// f32 and `sums` the
/// group's `K * 16` partial sums.
#[inline(always)]
unsafe fn dw_rows<const G: usize, const KW: usize>(
    d: &Direct,
    padded: &[f32],
    grads: &[f32],
    sums: &mut [f32],
    ci: usize,
    ky0: usize,
) {
    let s = &d.shape;
    let (kh, width) = (s.kernel_h, d.padded_w);
    debug_assert!(KW == s.kernel_w && ky0 + G <= kh && ci < s.in_channels);
    debug_assert!(padded.len() >= s.in_channels * d.plane_len());
    debug_assert!(grads.len() >= d.out_h * d.out_w * LANES && sums.len() >= s.col_rows() * LANES);
    // SAFETY: AVX-512F is enabled by the caller. Sums: taps (ci, ky0 + gy, kx) < K, 16 lanes
    // each. Reads: padded row y + ky0 + gy < out_h + kernel_h - 1 = padded_h of channel ci,
    // columns x + kx < out_w + kernel_w - 1 = padded_w; pixel y * out_w + x of `grads`.
    unsafe {
        let sums = sums.as_mut_ptr().add((ci * kh + ky0) * KW * LANES);
        let mut acc = [[_mm512_setzero_ps(); KW]; G];
        for (gy, acc) in acc.iter_mut().enumerate() {
            for (kx, acc) in acc.iter_mut().enumerate() {
                *acc = _mm512_loadu_ps(sums.add((gy * KW + kx) * LANES));
            }
        }
        let base = padded.as_ptr().add(ci * d.plane_len() + ky0 * width);
        let src: [*const f32; G] = core::array::from_fn(|gy| base.add(gy * width));
        let mut grad = grads.as_ptr();
        for y in 0..d.out_h {
            for x in 0..d.out_w {
                let g = _mm512_loadu_ps(grad);
                grad = grad.add(LANES);
                let at = y * width + x;
                for (acc, src) in acc.iter_mut().zip(&src) {
                    let row = src.add(at);
                    for (kx, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm512_fmadd_ps(_mm512_set1_ps(*row.add(kx)), g, *acc);
                    }
                }
            }
        }
        for (gy, acc) in acc.iter().enumerate() {
            for (kx, acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(sums.add((gy * KW + kx) * LANES), *acc);
            }
        }
    }
}
