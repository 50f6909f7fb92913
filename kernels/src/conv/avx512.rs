//! The direct convolution and the channel path on AVX-512 (16 f32 lanes, 32 zmm registers,
//! lane masks).
//!
//! The direct path (vectors along output rows):
//!
//! - Forward: a block of up to 6 output channels x 2 vectors (32 columns) of one output row,
//!   12 accumulators starting at the bias; each kernel tap loads 2 input vectors and
//!   broadcasts one weight per channel (8 loads per 12 FMAs). Each image is copied into the
//!   padded planes a row at a time as vectors (`pad_image`). The loads may run past the row
//!   into the padded buffer's slack; the store of the last vector is masked. Kernel widths 3
//!   and 5 are compile-time constants (the tap loop unrolls).
//! - Weight gradient: a block of up to 3 output channels x 5 kernel columns, 15 accumulators
//!   over every row of an image (3 output-gradient and 5 input loads per 15 FMAs), added into
//!   the workspace's partial sums, which are reduced once at the end. The row's last vector
//!   loads both operands masked, so no lane outside the row is read. With a bias, each
//!   image's output-gradient planes are summed first (`direct_backward_weight_bias`), which
//!   also brings them into L1 for the blocks.
//!
//! The channel path (16 output channels per vector; see the module docs of `conv`):
//! `channels_forward` and `channels_backward_weight` (whole-row pixel blocks, tap blocks, a
//! 16 x 16 register transpose between channels-last and NCHW), `channels_backward_input`
//! (input channels x rows x row vectors, skipping kernel rows that read only padding).

use super::{Block, Direct, Taps};
use crate::simd::avx512::transpose16;
use core::arch::x86_64::*;

/// f32 lanes per zmm vector.
const LANES: usize = 16;
/// Output channels and vectors of a forward block.
const FWD_CHANNELS: usize = 6;
const FWD_VECS: usize = 2;
/// Output channels and kernel columns of a weight-gradient block.
const DW_CHANNELS: usize = 3;
const DW_TAPS: usize = 5;

/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA; the lengths must match `d.shape` (input,
/// weight, bias `out_channels`, output) and `workspace` must hold at least
/// `d.padded_len()` f32.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn direct_forward(
    d: &Direct,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
    workspace: &mut [f32],
) {
    // SAFETY: the caller guarantees the CPU features and the lengths the body relies on.
    unsafe { forward_body(d, input, weight, bias, output, workspace) }
}

/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA; the lengths must match `d.shape` (input,
/// grad_output, grad_weight) and `workspace` must hold at least
/// `d.padded_len() + d.partials_len()` f32.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn direct_backward_weight(
    d: &Direct,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
    workspace: &mut [f32],
) {
    // SAFETY: the caller guarantees the CPU features and the lengths the body relies on.
    unsafe { backward_weight_body(d, input, grad_output, grad_weight, None, workspace) }
}

/// The weight gradient as [`direct_backward_weight`], and the bias gradient in the same pass:
/// each image's output-gradient planes are summed just before its weight-gradient blocks read
/// them, so the batch's output gradient is read from memory once instead of twice.
///
/// # Safety
/// As [`direct_backward_weight`]; `grad_bias` holds `out_channels` f32.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn direct_backward_weight_bias(
    d: &Direct,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
    workspace: &mut [f32],
) {
    // SAFETY: the caller guarantees the CPU features and the lengths the body relies on.
    unsafe {
        backward_weight_body(
            d,
            input,
            grad_output,
            grad_weight,
            Some(grad_bias),
            workspace,
        )
    }
}

/// The lanes of a vector holding `n` valid columns (all 16 when `n >= 16`).
#[inline(always)]
fn lane_mask(n: usize) -> __mmask16 {
    if n >= LANES {
        0xFFFF
    } else {
        (1u16 << n) - 1
    }
}

#[inline(always)]
unsafe fn forward_body(
    d: &Direct,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
    workspace: &mut [f32],
) {
    let s = &d.shape;
    let padded = &mut workspace[..d.padded_len()];
    d.clear_padded(padded);
    let image_len = s.image_len();
    let out_image = s.out_channels * d.out_h * d.out_w;
    let block_cols = FWD_VECS * LANES;
    for b in 0..s.batch {
        // SAFETY: AVX-512F is enabled by the caller; `padded` holds `d.padded_len()` f32.
        unsafe { pad_image(d, &input[b * image_len..][..image_len], padded) };
        let out = &mut output[b * out_image..][..out_image];
        for co0 in (0..s.out_channels).step_by(FWD_CHANNELS) {
            let channels = FWD_CHANNELS.min(s.out_channels - co0);
            for y in 0..d.out_h {
                for x0 in (0..d.out_w).step_by(block_cols) {
                    let at = Block {
                        co0,
                        y,
                        x0,
                        cols: block_cols.min(d.out_w - x0),
                    };
                    // SAFETY: AVX-512F is enabled by the caller; the block lies inside the
                    // output (channels co0.., columns x0..x0 + cols of row y) and `padded`
                    // holds `d.padded_len()` f32, as `forward_block` requires.
                    unsafe { forward_channels(channels, d, padded, weight, bias, out, at) };
                }
            }
        }
    }
}

/// [`Direct::pad_image`] with a row as whole vectors and one masked vector: conv1's fwd+bwd
/// ~2% faster side by side (0.339 against 0.346 ms, three runs alike).
///
/// # Safety
/// AVX-512F must be enabled; `image` holds one image of `d.shape`, `padded` at least
/// `d.padded_len()` f32.
#[inline(always)]
unsafe fn pad_image(d: &Direct, image: &[f32], padded: &mut [f32]) {
    let s = &d.shape;
    let (width, plane) = (s.in_w, d.plane_len());
    debug_assert!(image.len() == s.image_len() && padded.len() >= d.padded_len());
    for c in 0..s.in_channels {
        for y in 0..s.in_h {
            // SAFETY: AVX-512F is enabled by the caller. Source: row y of channel c, columns
            // 0..in_w; destination: row pad_h + y < padded_h of plane c, columns pad_w..pad_w
            // + in_w <= padded_w. The last vector is masked to the columns below in_w.
            unsafe {
                let src = image.as_ptr().add((c * s.in_h + y) * width);
                let dst = padded
                    .as_mut_ptr()
                    .add(c * plane + (s.pad_h + y) * d.padded_w + s.pad_w);
                let mut x = 0;
                while x + LANES <= width {
                    _mm512_storeu_ps(dst.add(x), _mm512_loadu_ps(src.add(x)));
                    x += LANES;
                }
                if x < width {
                    let mask = lane_mask(width - x);
                    let v = _mm512_maskz_loadu_ps(mask, src.add(x));
                    _mm512_mask_storeu_ps(dst.add(x), mask, v);
                }
            }
        }
    }
}

/// Runs the forward block instantiated for `channels` output channels and the block's vectors.
///
/// # Safety
/// As [`forward_block`].
#[inline(always)]
unsafe fn forward_channels(
    channels: usize,
    d: &Direct,
    padded: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    at: Block,
) {
    macro_rules! with_vectors {
        ($c:literal) => {
            // SAFETY: forwarded from the caller.
            unsafe {
                // The kernel width a constant where it is a common one, so the tap loop
                // unrolls (measured 6% faster on conv1's forward, side by side).
                match (at.cols > LANES, d.shape.kernel_w) {
                    (true, 3) => forward_block::<$c, 2, 3>(d, padded, weight, bias, out, at),
                    (true, 5) => forward_block::<$c, 2, 5>(d, padded, weight, bias, out, at),
                    (true, _) => forward_block::<$c, 2, 0>(d, padded, weight, bias, out, at),
                    (false, 3) => forward_block::<$c, 1, 3>(d, padded, weight, bias, out, at),
                    (false, 5) => forward_block::<$c, 1, 5>(d, padded, weight, bias, out, at),
                    (false, _) => forward_block::<$c, 1, 0>(d, padded, weight, bias, out, at),
                }
            }
        };
    }
    match channels {
        1 => with_vectors!(1),
        2 => with_vectors!(2),
        3 => with_vectors!(3),
        4 => with_vectors!(4),
        5 => with_vectors!(5),
        _ => with_vectors!(6),
    }
}

/// One output row's block: `C` channels x `V` vectors of accumulators, every tap of every input
/// channel, then masked stores of the block's `cols` columns. `KW` is the kernel width, or 0
/// to read it from the shape.
///
/// # Safety
/// AVX-512F must be enabled; `co0 + C <= out_channels`, `x0 + cols <= out_w`, `y < out_h`,
/// `cols > (V - 1) * LANES`, `KW` 0 or `kernel_w`; `padded` holds `d.padded_len()` f32 and `out` one image's output.
#[inline(always)]
unsafe fn forward_block<const C: usize, const V: usize, const KW: usize>(
    d: &Direct,
    padded: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    at: Block,
) {
    let s = &d.shape;
    let (k_len, kh) = (s.col_rows(), s.kernel_h);
    let kw = if KW > 0 { KW } else { s.kernel_w };
    let (plane, out_plane) = (d.plane_len(), d.out_h * d.out_w);
    debug_assert!(at.co0 + C <= s.out_channels && at.x0 + at.cols <= d.out_w);
    debug_assert!(at.cols > (V - 1) * LANES && at.cols <= V * LANES && kw == s.kernel_w);
    // SAFETY: AVX-512F is enabled by the caller. Reads: input channel ci, row y + ky <
    // padded_h, columns x0 + kx + j * LANES .. + LANES, the last of which is below
    // x0 + kx + cols + LANES - 1 <= padded_w + LANES - 1: past the row end by at most
    // LANES - 1, which is inside the next row or the buffer's DIRECT_SLACK (16) zeros at the
    // end. Weights: channel co0 + c < out_channels, tap (ci, ky, kx) < K. Writes: masked to
    // the block's cols columns of row y of channels co0 + c, inside `out`.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); V]; C];
        if let Some(bias) = bias {
            for (c, acc) in acc.iter_mut().enumerate() {
                *acc = [_mm512_set1_ps(bias[at.co0 + c]); V];
            }
        }
        let weights = weight.as_ptr().add(at.co0 * k_len);
        for ci in 0..s.in_channels {
            for ky in 0..kh {
                let row = padded
                    .as_ptr()
                    .add(ci * plane + (at.y + ky) * d.padded_w + at.x0);
                let taps = weights.add((ci * kh + ky) * kw);
                for kx in 0..kw {
                    let mut x = [_mm512_setzero_ps(); V];
                    for (j, x) in x.iter_mut().enumerate() {
                        *x = _mm512_loadu_ps(row.add(kx + j * LANES));
                    }
                    for (c, acc) in acc.iter_mut().enumerate() {
                        let w = _mm512_set1_ps(*taps.add(c * k_len + kx));
                        for (acc, &x) in acc.iter_mut().zip(&x) {
                            *acc = _mm512_fmadd_ps(x, w, *acc);
                        }
                    }
                }
            }
        }
        let dst = out
            .as_mut_ptr()
            .add(at.co0 * out_plane + at.y * d.out_w + at.x0);
        for j in 0..V {
            let mask = lane_mask(at.cols - j * LANES);
            for (c, acc) in acc.iter().enumerate() {
                _mm512_mask_storeu_ps(dst.add(c * out_plane + j * LANES), mask, acc[j]);
            }
        }
    }
}

#[inline(always)]
unsafe fn backward_weight_body(
    d: &Direct,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
    mut grad_bias: Option<&mut [f32]>,
    workspace: &mut [f32],
) {
    let s = &d.shape;
    let (padded, rest) = workspace.split_at_mut(d.padded_len());
    let partials = &mut rest[..d.partials_len()];
    d.clear_padded(padded);
    partials.fill(0.0);
    if let Some(gb) = grad_bias.as_deref_mut() {
        gb.fill(0.0);
    }
    let image_len = s.image_len();
    let out_plane = d.out_h * d.out_w;
    let out_image = s.out_channels * out_plane;
    for b in 0..s.batch {
        // SAFETY: AVX-512F is enabled by the caller; `padded` holds `d.padded_len()` f32.
        unsafe { pad_image(d, &input[b * image_len..][..image_len], padded) };
        let dy = &grad_output[b * out_image..][..out_image];
        if let Some(gb) = grad_bias.as_deref_mut() {
            for (g, plane) in gb.iter_mut().zip(dy.chunks_exact(out_plane)) {
                // SAFETY: AVX-512F is enabled by the caller.
                *g += unsafe { plane_sum(plane) };
            }
        }
        for ci in 0..s.in_channels {
            for ky in 0..s.kernel_h {
                for co0 in (0..s.out_channels).step_by(DW_CHANNELS) {
                    for kx0 in (0..s.kernel_w).step_by(DW_TAPS) {
                        let at = Taps { ci, ky, co0, kx0 };
                        let channels = DW_CHANNELS.min(s.out_channels - co0);
                        let taps = DW_TAPS.min(s.kernel_w - kx0);
                        // SAFETY: AVX-512F is enabled by the caller; the block's channels and
                        // taps lie inside the weight, `padded` and `partials` have the lengths
                        // `dw_block` requires and `dy` is one image's output gradient.
                        unsafe { dw_channels(channels, taps, d, padded, dy, partials, at) };
                    }
                }
            }
        }
    }
    for (g, p) in grad_weight.iter_mut().zip(partials.chunks_exact(LANES)) {
        // SAFETY: AVX-512F is enabled by the caller; the chunk holds exactly 16 f32.
        *g = unsafe { _mm512_reduce_add_ps(_mm512_loadu_ps(p.as_ptr())) };
    }
}

/// The sum of a plane's values (four vectors of partial sums, so the adds do not wait on each
/// other; a masked load for the tail).
///
/// # Safety
/// AVX-512F must be enabled.
#[inline(always)]
unsafe fn plane_sum(plane: &[f32]) -> f32 {
    let mut chunks = plane.chunks_exact(4 * LANES);
    let tail = chunks.remainder();
    // SAFETY: AVX-512F is enabled by the caller; each chunk holds 64 f32, so its four loads
    // are in bounds, and the tail's loads are masked to its length.
    unsafe {
        let mut acc = [_mm512_setzero_ps(); 4];
        for c in &mut chunks {
            for (j, acc) in acc.iter_mut().enumerate() {
                *acc = _mm512_add_ps(*acc, _mm512_loadu_ps(c.as_ptr().add(j * LANES)));
            }
        }
        for (j, acc) in acc.iter_mut().enumerate() {
            let n = tail.len().saturating_sub(j * LANES);
            if n > 0 {
                let v = _mm512_maskz_loadu_ps(lane_mask(n), tail.as_ptr().add(j * LANES));
                *acc = _mm512_add_ps(*acc, v);
            }
        }
        let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        _mm512_reduce_add_ps(sum)
    }
}

/// Runs the gradient block instantiated for `channels` x `taps`.
///
/// # Safety
/// As [`dw_block`].
#[inline(always)]
unsafe fn dw_channels(
    channels: usize,
    taps: usize,
    d: &Direct,
    padded: &[f32],
    dy: &[f32],
    partials: &mut [f32],
    at: Taps,
) {
    macro_rules! with_taps {
        ($c:literal) => {
            // SAFETY: forwarded from the caller.
            unsafe {
                match taps {
                    1 => dw_block::<$c, 1>(d, padded, dy, partials, at),
                    2 => dw_block::<$c, 2>(d, padded, dy, partials, at),
                    3 => dw_block::<$c, 3>(d, padded, dy, partials, at),
                    4 => dw_block::<$c, 4>(d, padded, dy, partials, at),
                    _ => dw_block::<$c, 5>(d, padded, dy, partials, at),
                }
            }
        };
    }
    match channels {
        1 => with_taps!(1),
        2 => with_taps!(2),
        _ => with_taps!(3),
    }
}

/// `partials[(co, ci, ky, kx)] += sum over y, x of dy[co][y][x] * padded[ci][y + ky][x + kx]`
/// (vectors of 16 partial sums) for `C` output channels from `co0` and `T` kernel columns from
/// `kx0`, over one image.
///
/// # Safety
/// AVX-512F must be enabled; `co0 + C <= out_channels`, `kx0 + T <= kernel_w`,
/// `ci < in_channels`, `ky < kernel_h`; `padded` holds one image's padded planes, `dy` one
/// image's output gradient, `partials` `d.partials_len()` f32.
#[inline(always)]
unsafe fn dw_block<const C: usize, const T: usize>(
    d: &Direct,
    padded: &[f32],
    dy: &[f32],
    partials: &mut [f32],
    at: Taps,
) {
    let s = &d.shape;
    let (k_len, kh, kw) = (s.col_rows(), s.kernel_h, s.kernel_w);
    let (plane, out_plane) = (d.plane_len(), d.out_h * d.out_w);
    debug_assert!(at.co0 + C <= s.out_channels && at.kx0 + T <= kw);
    let full = d.out_w / LANES;
    let tail = d.out_w % LANES;
    // SAFETY: AVX-512F is enabled by the caller. Partial sums: weight (co0 + c, ci, ky, kx0 + t)
    // < weight_len, 16 each. Full vectors read columns x..x + 16 <= out_w of dy's row y of
    // channel co0 + c, and columns kx0 + t + x.. + 16 <= kernel_w - 1 + out_w = padded_w of
    // padded row y + ky < padded_h of channel ci; the tail's loads are masked to the columns
    // below out_w (and kx0 + t + out_w <= padded_w), so nothing outside either row is read.
    unsafe {
        let sums = partials
            .as_mut_ptr()
            .add((at.co0 * k_len + (at.ci * kh + at.ky) * kw + at.kx0) * LANES);
        let mut acc = [[_mm512_setzero_ps(); T]; C];
        for (c, acc) in acc.iter_mut().enumerate() {
            for (t, acc) in acc.iter_mut().enumerate() {
                *acc = _mm512_loadu_ps(sums.add((c * k_len + t) * LANES));
            }
        }
        let rows = padded
            .as_ptr()
            .add(at.ci * plane + at.ky * d.padded_w + at.kx0);
        let grads = dy.as_ptr().add(at.co0 * out_plane);
        // Column by column, each down all the rows: the rows are the long loop (a row holds
        // only a few vectors).
        for v in 0..full {
            let x = v * LANES;
            for y in 0..d.out_h {
                let row = rows.add(y * d.padded_w);
                let grad = grads.add(y * d.out_w);
                let mut g = [_mm512_setzero_ps(); C];
                for (c, g) in g.iter_mut().enumerate() {
                    *g = _mm512_loadu_ps(grad.add(c * out_plane + x));
                }
                for t in 0..T {
                    let input = _mm512_loadu_ps(row.add(x + t));
                    for (acc, &g) in acc.iter_mut().zip(&g) {
                        acc[t] = _mm512_fmadd_ps(g, input, acc[t]);
                    }
                }
            }
        }
        if tail > 0 {
            let (x, mask) = (full * LANES, lane_mask(tail));
            for y in 0..d.out_h {
                let row = rows.add(y * d.padded_w);
                let grad = grads.add(y * d.out_w);
                let mut g = [_mm512_setzero_ps(); C];
                for (c, g) in g.iter_mut().enumerate() {
                    *g = _mm512_maskz_loadu_ps(mask, grad.add(c * out_plane + x));
                }
                for t in 0..T {
                    let input = _mm512_maskz_loadu_ps(mask, row.add(x + t));
                    for (acc, &g) in acc.iter_mut().zip(&g) {
                        acc[t] = _mm512_fmadd_ps(g, input, acc[t]);
                    }
                }
            }
        }
        for (c, acc) in acc.iter().enumerate() {
            for (t, &acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(sums.add((c * k_len + t) * LANES), acc);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The channel path: 16 output channels per zmm (see `Conv2dShape::takes_channel_path`).
// ---------------------------------------------------------------------------------------------

/// Most vector accumulators a channel-path block holds: of the 32 zmm, the rest hold the
/// weight (or output-gradient) vector and what the compiler needs besides.
const CHANNEL_ACCS: usize = 28;

/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA; `d` must satisfy the channel-path rule
/// (`1 <= out_w <= 16`, kernels at most 7); the lengths must match `d.shape` (input, weight,
/// bias `out_channels`, output) and `workspace` must hold at least `d.channel_workspace_len()`
/// f32.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn channels_forward(
    d: &Direct,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
    workspace: &mut [f32],
) {
    // SAFETY: the caller guarantees the CPU features and the lengths the body relies on.
    unsafe { channels_forward_body(d, input, weight, bias, output, workspace) }
}

/// # Safety
/// As [`channels_forward`], with grad_output for the output and grad_weight for the weight
/// (overwritten).
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn channels_backward_weight(
    d: &Direct,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
    workspace: &mut [f32],
) {
    // SAFETY: the caller guarantees the CPU features and the lengths the body relies on.
    unsafe { channels_backward_weight_body(d, input, grad_output, grad_weight, workspace) }
}

/// `planes[c * stride + p] = pixels[p * 16 + c]` for `p < n`, `c < channels`: channels-last
/// rows of 16 lanes written as channel planes, 16 x 16 at a time.
///
/// # Safety
/// AVX-512F must be enabled; `pixels` holds `n * 16` f32, `planes` `(channels - 1) * stride +
/// n` (`channels <= 16`).
#[inline(always)]
unsafe fn pixels_to_planes(
    pixels: &[f32],
    n: usize,
    planes: &mut [f32],
    stride: usize,
    channels: usize,
) {
    debug_assert!(pixels.len() >= n * LANES && channels <= LANES);
    debug_assert!(channels == 0 || planes.len() >= (channels - 1) * stride + n);
    // SAFETY: AVX-512F is enabled by the caller; rows p0 + i < n of `pixels` are read whole,
    // and channel c < channels's columns p0.. p0 + count <= n are written (masked).
    unsafe {
        for p0 in (0..n).step_by(LANES) {
            let count = LANES.min(n - p0);
            let mut rows = [_mm512_setzero_ps(); LANES];
            for (i, row) in rows.iter_mut().enumerate() {
                if i < count {
                    *row = _mm512_loadu_ps(pixels.as_ptr().add((p0 + i) * LANES));
                }
            }
            transpose16(&mut rows);
            let mask = lane_mask(count);
            for (c, row) in rows.iter().enumerate() {
                if c < channels {
                    _mm512_mask_storeu_ps(planes.as_mut_ptr().add(c * stride + p0), mask, *row);
                }
            }
        }
    }
}

/// `pixels[p * 16 + c] = planes[c * stride + p]` for `p < n`, zero for `c >= channels`: the
/// inverse of [`pixels_to_planes`].
///
/// # Safety
/// AVX-512F must be enabled; `pixels` holds `n * 16` f32, `planes` `(channels - 1) * stride +
/// n` (`channels <= 16`).
#[inline(always)]
unsafe fn planes_to_pixels(
    planes: &[f32],
    stride: usize,
    channels: usize,
    n: usize,
    pixels: &mut [f32],
) {
    debug_assert!(pixels.len() >= n * LANES && channels <= LANES);
    debug_assert!(channels == 0 || planes.len() >= (channels - 1) * stride + n);
    // SAFETY: AVX-512F is enabled by the caller; channel c < channels's columns p0..p0 + count
    // <= n are read (masked), rows p0 + i < n of `pixels` written whole.
    unsafe {
        for p0 in (0..n).step_by(LANES) {
            let count = LANES.min(n - p0);
            let mask = lane_mask(count);
            let mut rows = [_mm512_setzero_ps(); LANES];
            for (c, row) in rows.iter_mut().enumerate() {
                if c < channels {
                    *row = _mm512_maskz_loadu_ps(mask, planes.as_ptr().add(c * stride + p0));
                }
            }
            transpose16(&mut rows);
            for (i, row) in rows.iter().enumerate() {
                if i < count {
                    _mm512_storeu_ps(pixels.as_mut_ptr().add((p0 + i) * LANES), *row);
                }
            }
        }
    }
}

#[inline(always)]
unsafe fn channels_forward_body(
    d: &Direct,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
    workspace: &mut [f32],
) {
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
        for (g, taps) in taps.chunks_exact(k_len * LANES).enumerate() {
            let channels = LANES.min(cout - g * LANES);
            // SAFETY: AVX-512F is enabled by the caller; the bias has `cout` elements, of which
            // the mask reads `channels` from g * 16; `pixels` holds n * 16 f32 (channel_split)
            // and `out` holds this group's `channels` planes of n from (g * 16) * n;
            // `forward_rows` gets what it requires (the rule bounds out_w by 16).
            unsafe {
                let start = match bias {
                    Some(bias) => {
                        _mm512_maskz_loadu_ps(lane_mask(channels), bias.as_ptr().add(g * LANES))
                    }
                    None => _mm512_setzero_ps(),
                };
                forward_width(d, planes, taps, start, pixels);
                pixels_to_planes(pixels, n, &mut out[g * LANES * n..], n, channels);
            }
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

#[inline(always)]
unsafe fn channels_backward_weight_body(
    d: &Direct,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
    workspace: &mut [f32],
) {
    let s = &d.shape;
    let (k_len, n, cout) = (s.col_rows(), d.out_h * d.out_w, s.out_channels);
    let (padded, sums, grads) = d.channel_split(workspace);
    d.clear_padded(padded);
    sums.fill(0.0);
    let image_len = s.image_len();
    let out_image = cout * n;
    for b in 0..s.batch {
        let planes = d.channel_planes(&input[b * image_len..][..image_len], padded);
        let dy = &grad_output[b * out_image..][..out_image];
        for (g, grads) in grads.chunks_exact_mut(n * LANES).enumerate() {
            let channels = LANES.min(cout - g * LANES);
            // SAFETY: AVX-512F is enabled by the caller; `dy` holds this group's `channels`
            // planes of n from (g * 16) * n and `grads` n * 16 f32.
            unsafe { planes_to_pixels(&dy[g * LANES * n..], n, channels, n, grads) };
        }
        let groups = sums
            .chunks_exact_mut(k_len * LANES)
            .zip(grads.chunks_exact(n * LANES));
        for (sums, grads) in groups {
            for ci in 0..s.in_channels {
                // SAFETY: AVX-512F is enabled by the caller; `sums` holds the group's K * 16
                // partial sums, `grads` its n * 16 output gradients, `planes` the image's
                // padded planes, and ci < in_channels (the rule bounds the kernel by 7).
                unsafe { dw_kernel_width(d, planes, grads, sums, ci) };
            }
        }
    }
    for (g, sums) in sums.chunks_exact(k_len * LANES).enumerate() {
        let channels = LANES.min(cout - g * LANES);
        // SAFETY: AVX-512F is enabled by the caller; `sums` holds K rows of 16, and the
        // weight gradient `channels` rows of K from (g * 16) * K.
        unsafe {
            pixels_to_planes(
                sums,
                k_len,
                &mut grad_weight[g * LANES * k_len..],
                k_len,
                channels,
            )
        };
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

/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA; `t` must be the transposed convolution
/// ([`Direct::transposed`]) of a shape satisfying the channel-path rule (so `t.out_w`, the
/// input width, is at most 16 + 6 = 22); `grad_output` is `t`'s input, `flipped` its weight
/// ([`Direct::flip_weight`]), `grad_input` its output (overwritten), and `workspace` holds at
/// least `t.padded_len()` f32.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn channels_backward_input(
    t: &Direct,
    grad_output: &[f32],
    flipped: &[f32],
    grad_input: &mut [f32],
    workspace: &mut [f32],
) {
    // SAFETY: the caller guarantees the CPU features and the lengths the body relies on.
    unsafe { backward_input_body(t, grad_output, flipped, grad_input, workspace) }
}

#[inline(always)]
unsafe fn backward_input_body(
    t: &Direct,
    grad_output: &[f32],
    flipped: &[f32],
    grad_input: &mut [f32],
    workspace: &mut [f32],
) {
    let s = &t.shape;
    let padded = &mut workspace[..t.padded_len()];
    t.clear_padded(padded);
    let (dy_image, gi_image) = (s.image_len(), s.out_channels * t.out_h * t.out_w);
    for b in 0..s.batch {
        t.pad_image(&grad_output[b * dy_image..][..dy_image], padded);
        let gi = &mut grad_input[b * gi_image..][..gi_image];
        macro_rules! blocks {
            ($v:literal, $c:literal, $r:literal) => {
                for ci0 in (0..s.out_channels).step_by($c) {
                    for y0 in (0..t.out_h).step_by($r) {
                        // SAFETY: AVX-512F is enabled by the caller; `padded` holds the image's
                        // padded output-gradient planes and slack, `flipped` t's weight, `gi`
                        // one image's input gradient; ci0 < in channels, y0 < in_h, and the
                        // row takes $v vectors.
                        unsafe {
                            dx_block::<$c, $r, $v>(t, padded, flipped, gi, ci0, y0);
                        }
                    }
                }
            };
        }
        if t.out_w <= LANES {
            blocks!(1, 6, 2);
        } else {
            blocks!(2, 3, 2);
        }
    }
}

/// Input-gradient rows `y0..y0 + R` of input channels `ci0..ci0 + C` (those that exist; the
/// others repeat the last row or channel and are not stored), each row `V` vectors wide: the
/// correlation of the padded output gradient with the flipped weight, whose `C` weights per
/// tap are broadcast once and multiply `R x V` output-gradient vectors.
///
/// # Safety
/// AVX-512F must be enabled; `ci0 < t.shape.out_channels`, `y0 < t.out_h`,
/// `(V - 1) * 16 < t.out_w <= V * 16`; `padded` holds `t.padded_len()` f32, `flipped`
/// `t.shape.weight_len()`, `gi` one image's input gradient (`t`'s output).
#[inline(always)]
unsafe fn dx_block<const C: usize, const R: usize, const V: usize>(
    t: &Direct,
    padded: &[f32],
    flipped: &[f32],
    gi: &mut [f32],
    ci0: usize,
    y0: usize,
) {
    let s = &t.shape;
    let (kh, kw, width, plane, k_len) = (
        s.kernel_h,
        s.kernel_w,
        t.padded_w,
        t.plane_len(),
        s.col_rows(),
    );
    let channels = C.min(s.out_channels - ci0);
    let rows = R.min(t.out_h - y0);
    debug_assert!((V - 1) * LANES < t.out_w && t.out_w <= V * LANES);
    // SAFETY: AVX-512F is enabled by the caller. Weights: channel ci0 + min(c, channels - 1) <
    // out_channels, tap (co, ky, kx) < K. Reads: plane co < in_channels, row y0 + min(r, rows
    // - 1) + ky < out_h + kernel_h - 1 = padded_h, columns kx + 16 j .. + 16 with the last
    // below kernel_w - 1 + out_w + 15 = padded_w + 15: past the row's end by at most 15, inside
    // the next row or the DIRECT_SLACK (16) zeros after the last plane. Writes: masked to the
    // out_w columns of rows y0 + r < out_h of channels ci0 + c < out_channels.
    unsafe {
        let mut acc = [[[_mm512_setzero_ps(); V]; R]; C];
        let w: [*const f32; C] =
            core::array::from_fn(|c| flipped.as_ptr().add((ci0 + c.min(channels - 1)) * k_len));
        let base = padded.as_ptr();
        let src: [*const f32; R] =
            core::array::from_fn(|r| base.add((y0 + r.min(rows - 1)) * width));
        // Only the kernel rows that reach a row of the output gradient for some row of the
        // block (the others read the zero padding above or below it).
        let real = s.pad_h..s.pad_h + s.in_h;
        let ky_lo = real.start.saturating_sub(y0 + rows - 1);
        let ky_hi = kh.min(real.end.saturating_sub(y0));
        for co in 0..s.in_channels {
            for ky in ky_lo..ky_hi {
                let at = co * plane + ky * width;
                let tap = (co * kh + ky) * kw;
                for kx in 0..kw {
                    let wv: [__m512; C] =
                        core::array::from_fn(|c| _mm512_set1_ps(*w[c].add(tap + kx)));
                    for (r, src) in src.iter().enumerate() {
                        let x: [__m512; V] =
                            core::array::from_fn(|j| _mm512_loadu_ps(src.add(at + kx + j * LANES)));
                        for (acc, &w) in acc.iter_mut().zip(&wv) {
                            for (acc, &x) in acc[r].iter_mut().zip(&x) {
                                *acc = _mm512_fmadd_ps(x, w, *acc);
                            }
                        }
                    }
                }
            }
        }
        let out_plane = t.out_h * t.out_w;
        for (c, acc) in acc.iter().enumerate() {
            if c < channels {
                for (r, acc) in acc.iter().enumerate() {
                    if r < rows {
                        let dst = gi
                            .as_mut_ptr()
                            .add((ci0 + c) * out_plane + (y0 + r) * t.out_w);
                        for (j, acc) in acc.iter().enumerate() {
                            let mask = lane_mask(t.out_w - j * LANES);
                            _mm512_mask_storeu_ps(dst.add(j * LANES), mask, *acc);
                        }
                    }
                }
            }
        }
    }
}
