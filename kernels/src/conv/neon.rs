//! The direct convolution on NEON (4 f32 lanes, 32 q registers, no lane masks).
//!
//! - Forward: a block of up to 6 output channels x 4 vectors (16 columns) of one output row,
//!   24 accumulators starting at the bias; each kernel tap loads 4 input vectors and
//!   broadcasts one weight per channel. The loads may run past the row into the padded
//!   buffer's slack; a partial last vector goes through a stack array, of which only the
//!   row's columns are copied out.
//! - Weight gradient: a block of up to 3 output channels x 5 kernel columns, 15 accumulators
//!   over every row of an image (3 output-gradient and 5 input loads per 15 FMAs), added into
//!   the workspace's partial sums, which are reduced once at the end. The row's last columns
//!   are copied into zeroed stack arrays (both operands), so no lane outside the row is read.

use super::{Block, Direct, Taps};
use core::arch::aarch64::*;

/// f32 lanes per q vector.
const LANES: usize = 4;
/// Output channels and vectors of a forward block.
const FWD_CHANNELS: usize = 6;
const FWD_VECS: usize = 4;
/// Output channels and kernel columns of a weight-gradient block.
const DW_CHANNELS: usize = 3;
const DW_TAPS: usize = 5;

/// # Safety
/// The CPU must support NEON; the lengths must match `d.shape` (input,
/// weight, bias `out_channels`, output) and `workspace` must hold at least
/// `d.padded_len()` f32.
#[target_feature(enable = "neon")]
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
/// The CPU must support NEON; the lengths must match `d.shape` (input,
/// grad_output, grad_weight) and `workspace` must hold at least
/// `d.padded_len() + d.partials_len()` f32.
#[target_feature(enable = "neon")]
pub(super) unsafe fn direct_backward_weight(
    d: &Direct,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
    workspace: &mut [f32],
) {
    // SAFETY: the caller guarantees the CPU features and the lengths the body relies on.
    unsafe { backward_weight_body(d, input, grad_output, grad_weight, workspace) }
}

/// Loads the `n < 4` values at `from` into the low lanes of a vector, zeros above them, without
/// reading past `from + n`.
///
/// # Safety
/// NEON must be enabled; `from..from + n` must be readable.
#[inline(always)]
unsafe fn load_partial(from: *const f32, n: usize) -> float32x4_t {
    let mut lanes = [0.0f32; LANES];
    // SAFETY: the caller guarantees `n` readable values at `from`, and `n < LANES` fit in the
    // stack array; NEON is enabled by the caller.
    unsafe {
        core::ptr::copy_nonoverlapping(from, lanes.as_mut_ptr(), n);
        vld1q_f32(lanes.as_ptr())
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
        d.pad_image(&input[b * image_len..][..image_len], padded);
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
                    // SAFETY: NEON is enabled by the caller; the block lies inside the
                    // output (channels co0.., columns x0..x0 + cols of row y) and `padded`
                    // holds `d.padded_len()` f32, as `forward_block` requires.
                    unsafe { forward_channels(channels, d, padded, weight, bias, out, at) };
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
                if at.cols > LANES {
                    match at.cols.div_ceil(LANES) {
                        2 => forward_block::<$c, 2>(d, padded, weight, bias, out, at),
                        3 => forward_block::<$c, 3>(d, padded, weight, bias, out, at),
                        _ => forward_block::<$c, 4>(d, padded, weight, bias, out, at),
                    }
                } else {
                    forward_block::<$c, 1>(d, padded, weight, bias, out, at)
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
/// channel, then masked stores of the block's `cols` columns.
///
/// # Safety
/// NEON must be enabled; `co0 + C <= out_channels`, `x0 + cols <= out_w`, `y < out_h`,
/// `cols > (V - 1) * LANES`; `padded` holds `d.padded_len()` f32 and `out` one image's output.
#[inline(always)]
unsafe fn forward_block<const C: usize, const V: usize>(
    d: &Direct,
    padded: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    at: Block,
) {
    let s = &d.shape;
    let (k_len, kh, kw) = (s.col_rows(), s.kernel_h, s.kernel_w);
    let (plane, out_plane) = (d.plane_len(), d.out_h * d.out_w);
    debug_assert!(at.co0 + C <= s.out_channels && at.x0 + at.cols <= d.out_w);
    debug_assert!(at.cols > (V - 1) * LANES && at.cols <= V * LANES);
    // SAFETY: NEON is enabled by the caller. Reads: input channel ci, row y + ky <
    // padded_h, columns x0 + kx + j * LANES .. + LANES, the last of which is below
    // x0 + kx + cols + LANES - 1 <= padded_w + LANES - 1: past the row end by at most
    // LANES - 1, which is inside the next row or the buffer's DIRECT_SLACK (16) zeros at the
    // end. Weights: channel co0 + c < out_channels, tap (ci, ky, kx) < K. Writes: whole vectors
    // or, for a partial one, `cols` values copied from the stack, all in the block's cols
    // columns of row y of channels co0 + c, inside `out`.
    unsafe {
        let mut acc = [[vdupq_n_f32(0.0); V]; C];
        if let Some(bias) = bias {
            for (c, acc) in acc.iter_mut().enumerate() {
                *acc = [vdupq_n_f32(bias[at.co0 + c]); V];
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
                    let mut x = [vdupq_n_f32(0.0); V];
                    for (j, x) in x.iter_mut().enumerate() {
                        *x = vld1q_f32(row.add(kx + j * LANES));
                    }
                    for (c, acc) in acc.iter_mut().enumerate() {
                        let w = vdupq_n_f32(*taps.add(c * k_len + kx));
                        for (acc, &x) in acc.iter_mut().zip(&x) {
                            *acc = vfmaq_f32(*acc, x, w);
                        }
                    }
                }
            }
        }
        let dst = out
            .as_mut_ptr()
            .add(at.co0 * out_plane + at.y * d.out_w + at.x0);
        for j in 0..V {
            let cols = at.cols - j * LANES;
            for (c, acc) in acc.iter().enumerate() {
                let to = dst.add(c * out_plane + j * LANES);
                if cols >= LANES {
                    vst1q_f32(to, acc[j]);
                } else {
                    let mut lanes = [0.0f32; LANES];
                    vst1q_f32(lanes.as_mut_ptr(), acc[j]);
                    core::ptr::copy_nonoverlapping(lanes.as_ptr(), to, cols);
                }
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
    workspace: &mut [f32],
) {
    let s = &d.shape;
    let (padded, rest) = workspace.split_at_mut(d.padded_len());
    let partials = &mut rest[..d.partials_len()];
    d.clear_padded(padded);
    partials.fill(0.0);
    let image_len = s.image_len();
    let out_image = s.out_channels * d.out_h * d.out_w;
    for b in 0..s.batch {
        d.pad_image(&input[b * image_len..][..image_len], padded);
        let dy = &grad_output[b * out_image..][..out_image];
        for ci in 0..s.in_channels {
            for ky in 0..s.kernel_h {
                for co0 in (0..s.out_channels).step_by(DW_CHANNELS) {
                    for kx0 in (0..s.kernel_w).step_by(DW_TAPS) {
                        let at = Taps { ci, ky, co0, kx0 };
                        let channels = DW_CHANNELS.min(s.out_channels - co0);
                        let taps = DW_TAPS.min(s.kernel_w - kx0);
                        // SAFETY: NEON is enabled by the caller; the block's channels and
                        // taps lie inside the weight, `padded` and `partials` have the lengths
                        // `dw_block` requires and `dy` is one image's output gradient.
                        unsafe { dw_channels(channels, taps, d, padded, dy, partials, at) };
                    }
                }
            }
        }
    }
    for (g, p) in grad_weight.iter_mut().zip(partials.chunks_exact(LANES)) {
        // SAFETY: NEON is enabled by the caller; the chunk holds exactly 4 f32.
        *g = unsafe { vaddvq_f32(vld1q_f32(p.as_ptr())) };
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
/// (vectors of 4 partial sums) for `C` output channels from `co0` and `T` kernel columns from
/// `kx0`, over one image.
///
/// # Safety
/// NEON must be enabled; `co0 + C <= out_channels`, `kx0 + T <= kernel_w`,
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
    // SAFETY: NEON is enabled by the caller. Partial sums: weight (co0 + c, ci, ky, kx0 + t)
    // < weight_len, 4 each (a quarter of the 16 per weight `partials_len` provides). Full
    // vectors read columns x..x + 4 <= out_w of dy's row y of
    // channel co0 + c, and columns kx0 + t + x.. + 4 <= kernel_w - 1 + out_w = padded_w of
    // padded row y + ky < padded_h of channel ci; the tail copies only the columns
    // below out_w (and kx0 + t + out_w <= padded_w), so nothing outside either row is read.
    unsafe {
        let sums = partials
            .as_mut_ptr()
            .add((at.co0 * k_len + (at.ci * kh + at.ky) * kw + at.kx0) * LANES);
        let mut acc = [[vdupq_n_f32(0.0); T]; C];
        for (c, acc) in acc.iter_mut().enumerate() {
            for (t, acc) in acc.iter_mut().enumerate() {
                *acc = vld1q_f32(sums.add((c * k_len + t) * LANES));
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
                let mut g = [vdupq_n_f32(0.0); C];
                for (c, g) in g.iter_mut().enumerate() {
                    *g = vld1q_f32(grad.add(c * out_plane + x));
                }
                for t in 0..T {
                    let input = vld1q_f32(row.add(x + t));
                    for (acc, &g) in acc.iter_mut().zip(&g) {
                        acc[t] = vfmaq_f32(acc[t], g, input);
                    }
                }
            }
        }
        if tail > 0 {
            let x = full * LANES;
            for y in 0..d.out_h {
                let row = rows.add(y * d.padded_w);
                let grad = grads.add(y * d.out_w);
                let mut g = [vdupq_n_f32(0.0); C];
                for (c, g) in g.iter_mut().enumerate() {
                    *g = load_partial(grad.add(c * out_plane + x), tail);
                }
                for t in 0..T {
                    let input = load_partial(row.add(x + t), tail);
                    for (acc, &g) in acc.iter_mut().zip(&g) {
                        acc[t] = vfmaq_f32(acc[t], g, input);
                    }
                }
            }
        }
        for (c, acc) in acc.iter().enumerate() {
            for (t, &acc) in acc.iter().enumerate() {
                vst1q_f32(sums.add((c * k_len + t) * LANES), acc);
            }
        }
    }
}
