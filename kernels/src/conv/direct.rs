//! The direct path, written once over the SIMD vocabulary: vectors along output rows, no
//! unfolding. The ISA files instantiate it with their vector type and block sizes.
//!
//! - Forward: a block of up to `FWD_CHANNELS` output channels x `NV` vectors of one output
//!   row, the accumulators starting at the bias; each kernel tap loads `NV` input vectors and
//!   broadcasts one weight per channel. The loads may run past the row into the padded
//!   buffer's slack; the last vector's store keeps only the row's columns (`store_first`).
//!   With `UNROLL_KW` the common kernel widths 3 and 5 are compile-time constants.
//! - Weight gradient: a block of up to `DC` output channels x [`DW_TAPS`] kernel columns, its
//!   accumulators held over every row of an image and added into per-weight vectors of partial
//!   sums, reduced once at the end. The row's last vector loads both operands with
//!   `load_first`, so no lane outside the row is read (an infinity past a row cannot make
//!   `0 * inf = NaN`). With a bias gradient, each image's output-gradient planes are summed
//!   just before its blocks read them (the batch's output gradient then leaves memory once).
//! - `VECTOR_PAD`: each image is copied into the padded planes a row at a time as vectors
//!   instead of by [`Direct::pad_image`]'s segment copies.
//!
//! Safety: every body requires the CPU to support `V`'s ISA (the wrappers enable it), the
//! lengths of the arguments to match `d.shape`, and the geometry and workspace checked by
//! [`Direct::assert_direct_invariants`]; each block's `SAFETY` comment derives its accesses
//! from those.

use super::args::{Forward, WeightGradient};
use super::geometry::{Block, Direct, Taps};
use crate::simd::F32x;

/// Output channels of a forward block.
const FWD_CHANNELS: usize = 6;
/// Kernel columns of a weight-gradient block.
const DW_TAPS: usize = 5;

/// Overwrites `output` with the direct convolution of `input` (plus the bias).
///
/// # Safety
/// See the module docs; `workspace` holds at least `d.padded_len()` f32.
#[inline(always)]
pub(super) unsafe fn forward<
    V: F32x,
    const NV: usize,
    const UNROLL_KW: bool,
    const VECTOR_PAD: bool,
>(
    d: &Direct,
    args: Forward<'_>,
) {
    let (input, weight) = (args.input, args.weight);
    let (bias, output, workspace) = (args.bias, args.output, args.workspace);
    let s = &d.shape;
    let padded = &mut workspace[..d.padded_len()];
    d.clear_padded(padded);
    let image_len = s.image_len();
    let out_image = s.out_channels * d.out_h * d.out_w;
    let block_cols = NV * V::LANES;
    for b in 0..s.batch {
        let image = &input[b * image_len..][..image_len];
        // SAFETY: `padded` holds `d.padded_len()` f32 and `image` one image of the shape.
        unsafe { pad::<V, VECTOR_PAD>(d, image, padded) };
        let out = &mut output[b * out_image..][..out_image];
        for co0 in (0..s.out_channels).step_by(FWD_CHANNELS) {
            let channels = FWD_CHANNELS.min(s.out_channels - co0);
            for y in 0..d.out_h {
                for x0 in (0..d.out_w).step_by(block_cols) {
                    let cols = block_cols.min(d.out_w - x0);
                    let at = Block { co0, y, x0, cols };
                    // SAFETY: the block lies inside the output (channels co0.., columns
                    // x0..x0 + cols of row y) and `padded` holds `d.padded_len()` f32.
                    unsafe {
                        forward_channels::<V, NV, UNROLL_KW>(
                            channels, d, padded, weight, bias, out, at,
                        )
                    };
                }
            }
        }
    }
}

/// Copies one image into the padded planes: by vectors, or by [`Direct::pad_image`].
///
/// # Safety
/// `V`'s ISA is enabled; `image` holds one image of `d.shape`, `padded` `d.padded_len()` f32.
#[inline(always)]
unsafe fn pad<V: F32x, const VECTOR_PAD: bool>(d: &Direct, image: &[f32], padded: &mut [f32]) {
    if !VECTOR_PAD {
        d.pad_image(image, padded);
        return;
    }
    let s = &d.shape;
    let (width, plane, lanes) = (s.in_w, d.plane_len(), V::LANES);
    assert!(image.len() == s.image_len() && padded.len() >= d.padded_len());
    for c in 0..s.in_channels {
        for y in 0..s.in_h {
            // SAFETY: source: row y of channel c, columns 0..in_w; destination: row pad_h + y
            // < padded_h of plane c, columns pad_w..pad_w + in_w <= padded_w. The last vector
            // reads and writes only the columns below in_w.
            unsafe {
                let src = image.as_ptr().add((c * s.in_h + y) * width);
                let dst = padded
                    .as_mut_ptr()
                    .add(c * plane + (s.pad_h + y) * d.padded_w + s.pad_w);
                let mut x = 0;
                while x + lanes <= width {
                    V::load(src.add(x)).store(dst.add(x));
                    x += lanes;
                }
                if x < width {
                    V::load_first(src.add(x), width - x).store_first(dst.add(x), width - x);
                }
            }
        }
    }
}

/// Runs the forward block instantiated for `channels` output channels, the block's vectors
/// and, with `UNROLL_KW`, the kernel width.
///
/// # Safety
/// As [`forward_block`].
#[inline(always)]
unsafe fn forward_channels<V: F32x, const NV: usize, const UNROLL_KW: bool>(
    channels: usize,
    d: &Direct,
    padded: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    at: Block,
) {
    let args = (d, padded, weight, bias);
    macro_rules! by_width {
        ($c:literal, $v:tt) => {
            // SAFETY: forwarded from the caller.
            unsafe {
                match d.shape.kernel_w {
                    3 if UNROLL_KW => forward_block::<V, $c, $v, 3>(args, out, at),
                    5 if UNROLL_KW => forward_block::<V, $c, $v, 5>(args, out, at),
                    _ => forward_block::<V, $c, $v, 0>(args, out, at),
                }
            }
        };
    }
    macro_rules! with_vectors {
        ($c:literal) => {
            // One instantiation per vector count a row block can need (1..=NV).
            match at.cols.div_ceil(V::LANES) {
                v if v == NV => by_width!($c, NV),
                1 => by_width!($c, 1),
                2 if NV > 2 => by_width!($c, 2),
                3 if NV > 3 => by_width!($c, 3),
                _ => unreachable!("a row block has 1..=NV vectors"),
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

/// One output row's block: `C` channels x `NV` vectors of accumulators, every tap of every
/// input channel, then the stores of the block's `cols` columns. `KW` is the kernel width, or
/// 0 to read it from the shape.
///
/// # Safety
/// `V`'s ISA is enabled; `co0 + C <= out_channels`, `x0 + cols <= out_w`, `y < out_h`,
/// `(NV - 1) * LANES < cols <= NV * LANES`, `KW` 0 or `kernel_w`; `padded` holds `d.padded_len()` f32 and `out`
/// one image's output.
#[inline(always)]
unsafe fn forward_block<V: F32x, const C: usize, const NV: usize, const KW: usize>(
    (d, padded, weight, bias): (&Direct, &[f32], &[f32], Option<&[f32]>),
    out: &mut [f32],
    at: Block,
) {
    let s = &d.shape;
    let (k_len, kh, lanes) = (s.col_rows(), s.kernel_h, V::LANES);
    let kw = if KW > 0 { KW } else { s.kernel_w };
    let (plane, out_plane) = (d.plane_len(), d.out_h * d.out_w);
    debug_assert!(at.co0 + C <= s.out_channels && at.x0 + at.cols <= d.out_w);
    debug_assert!(at.cols > (NV - 1) * lanes && at.cols <= NV * lanes && kw == s.kernel_w);
    // SAFETY: the ISA is enabled by the caller. Reads: input channel ci, row y + ky <
    // padded_h, columns x0 + kx + j * LANES .. + LANES for j < NV, the last of which is below
    // x0 + kx + cols + LANES - 1 <= padded_w + LANES - 1 (as cols > (NV - 1) * LANES): past
    // the row end by at most LANES - 1 <= 15, inside the next row or the buffer's
    // DIRECT_SLACK (16) zeros. Weights: channel co0 + c < out_channels,
    // tap (ci, ky, kx) < K. Writes: whole vectors or, for a partial one, its first lanes, all
    // in the block's cols columns of row y of channels co0 + c, inside `out`.
    unsafe {
        let mut acc = [[V::zero(); NV]; C];
        if let Some(bias) = bias {
            for (c, acc) in acc.iter_mut().enumerate() {
                *acc = [V::splat(bias[at.co0 + c]); NV];
            }
        }
        // One pointer per channel into its taps, moved on a kernel row at a time.
        let mut taps: [*const f32; C] =
            core::array::from_fn(|c| weight.as_ptr().add((at.co0 + c) * k_len));
        for ci in 0..s.in_channels {
            for ky in 0..kh {
                let row = padded
                    .as_ptr()
                    .add(ci * plane + (at.y + ky) * d.padded_w + at.x0);
                for kx in 0..kw {
                    let x: [V; NV] = core::array::from_fn(|j| V::load(row.add(kx + j * lanes)));
                    for (acc, taps) in acc.iter_mut().zip(&taps) {
                        let w = V::splat(*taps.add(kx));
                        for (acc, &x) in acc.iter_mut().zip(&x) {
                            *acc = x.mul_add(w, *acc);
                        }
                    }
                }
                for taps in &mut taps {
                    *taps = taps.add(kw);
                }
            }
        }
        let dst = out
            .as_mut_ptr()
            .add(at.co0 * out_plane + at.y * d.out_w + at.x0);
        for j in 0..NV {
            let cols = at.cols - j * lanes;
            for (c, acc) in acc.iter().enumerate() {
                let to = dst.add(c * out_plane + j * lanes);
                if cols >= lanes {
                    acc[j].store(to);
                } else {
                    acc[j].store_first(to, cols);
                }
            }
        }
    }
}

/// Overwrites `grad_weight` (and `grad_bias` where given) with the direct path's gradients.
///
/// # Safety
/// See the module docs; `workspace` holds at least `d.padded_len() + d.partials_len()` f32
/// and `grad_bias`, where given, `out_channels`.
#[inline(always)]
pub(super) unsafe fn backward_weight<V: F32x, const DC: usize, const VECTOR_PAD: bool>(
    d: &Direct,
    args: WeightGradient<'_>,
) {
    let (input, grad_output) = (args.input, args.grad_output);
    let (grad_weight, workspace) = (args.grad_weight, args.workspace);
    let mut grad_bias = args.grad_bias;
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
        let image = &input[b * image_len..][..image_len];
        // SAFETY: `padded` holds `d.padded_len()` f32 and `image` one image of the shape.
        unsafe { pad::<V, VECTOR_PAD>(d, image, padded) };
        let dy = &grad_output[b * out_image..][..out_image];
        if let Some(gb) = grad_bias.as_deref_mut() {
            for (g, plane) in gb.iter_mut().zip(dy.chunks_exact(out_plane)) {
                // SAFETY: the ISA is enabled by the caller.
                *g += unsafe { plane_sum::<V>(plane) };
            }
        }
        for ci in 0..s.in_channels {
            for ky in 0..s.kernel_h {
                for co0 in (0..s.out_channels).step_by(DC) {
                    for kx0 in (0..s.kernel_w).step_by(DW_TAPS) {
                        let at = Taps { ci, ky, co0, kx0 };
                        let channels = DC.min(s.out_channels - co0);
                        let taps = DW_TAPS.min(s.kernel_w - kx0);
                        // SAFETY: the block's channels and taps lie inside the weight,
                        // `padded` and `partials` have the lengths `dw_block` requires and
                        // `dy` is one image's output gradient.
                        unsafe {
                            dw_channels::<V, DC>(channels, taps, (d, padded, dy), partials, at)
                        };
                    }
                }
            }
        }
    }
    for (g, p) in grad_weight.iter_mut().zip(partials.chunks_exact(V::LANES)) {
        // SAFETY: the chunk holds LANES f32.
        *g = unsafe { V::load(p.as_ptr()).sum() };
    }
}

/// The sum of a plane's values (four vectors of partial sums, so the adds do not wait on each
/// other; `load_first` for the tail).
///
/// # Safety
/// `V`'s ISA is enabled.
#[inline(always)]
unsafe fn plane_sum<V: F32x>(plane: &[f32]) -> f32 {
    let lanes = V::LANES;
    let mut chunks = plane.chunks_exact(4 * lanes);
    let tail = chunks.remainder();
    // SAFETY: each chunk holds 4 LANES f32, so its four loads are in bounds, and the tail's
    // loads read only its length.
    unsafe {
        let mut acc = [V::zero(); 4];
        for c in &mut chunks {
            for (j, acc) in acc.iter_mut().enumerate() {
                *acc = acc.add(V::load(c.as_ptr().add(j * lanes)));
            }
        }
        for (j, acc) in acc.iter_mut().enumerate() {
            let n = tail.len().saturating_sub(j * lanes).min(lanes);
            if n > 0 {
                *acc = acc.add(V::load_first(tail.as_ptr().add(j * lanes), n));
            }
        }
        acc[0].add(acc[1]).add(acc[2].add(acc[3])).sum()
    }
}

/// Runs the gradient block instantiated for `channels` x `taps`.
///
/// # Safety
/// As [`dw_block`].
#[inline(always)]
unsafe fn dw_channels<V: F32x, const DC: usize>(
    channels: usize,
    taps: usize,
    args: (&Direct, &[f32], &[f32]),
    partials: &mut [f32],
    at: Taps,
) {
    macro_rules! with_taps {
        ($c:literal) => {
            // SAFETY: forwarded from the caller.
            unsafe {
                match taps {
                    1 => dw_block::<V, $c, 1>(args, partials, at),
                    2 => dw_block::<V, $c, 2>(args, partials, at),
                    3 => dw_block::<V, $c, 3>(args, partials, at),
                    4 => dw_block::<V, $c, 4>(args, partials, at),
                    _ => dw_block::<V, $c, 5>(args, partials, at),
                }
            }
        };
    }
    match channels {
        1 => with_taps!(1),
        2 if DC >= 2 => with_taps!(2),
        _ if DC >= 3 => with_taps!(3),
        _ => with_taps!(2),
    }
}

/// `partials[(co, ci, ky, kx)] += sum over y, x of dy[co][y][x] * padded[ci][y + ky][x + kx]`
/// (vectors of LANES partial sums) for `C` output channels from `co0` and `T` kernel columns
/// from `kx0`, over one image.
///
/// # Safety
/// `V`'s ISA is enabled; `co0 + C <= out_channels`, `kx0 + T <= kernel_w`,
/// `ci < in_channels`, `ky < kernel_h`; `padded` holds one image's padded planes, `dy` one
/// image's output gradient, `partials` `d.partials_len()` f32.
#[inline(always)]
unsafe fn dw_block<V: F32x, const C: usize, const T: usize>(
    (d, padded, dy): (&Direct, &[f32], &[f32]),
    partials: &mut [f32],
    at: Taps,
) {
    let s = &d.shape;
    let (k_len, kh, kw, lanes) = (s.col_rows(), s.kernel_h, s.kernel_w, V::LANES);
    let (plane, out_plane) = (d.plane_len(), d.out_h * d.out_w);
    debug_assert!(at.co0 + C <= s.out_channels && at.kx0 + T <= kw);
    let (full, tail) = (d.out_w / lanes, d.out_w % lanes);
    // SAFETY: the ISA is enabled by the caller. Partial sums: weight (co0 + c, ci, ky, kx0 + t)
    // < weight_len, LANES each (of the 16 per weight `partials_len` provides). Full vectors read columns x..x + LANES <= out_w of
    // dy's row y of channel co0 + c, and columns kx0 + t + x.. + LANES <= kernel_w - 1 + out_w
    // = padded_w of padded row y + ky < padded_h of channel ci; the tail's loads read only the
    // columns below out_w (and kx0 + t + out_w <= padded_w), so nothing outside either row is
    // read.
    unsafe {
        let sums = partials
            .as_mut_ptr()
            .add((at.co0 * k_len + (at.ci * kh + at.ky) * kw + at.kx0) * lanes);
        let mut acc = [[V::zero(); T]; C];
        for (c, acc) in acc.iter_mut().enumerate() {
            for (t, acc) in acc.iter_mut().enumerate() {
                *acc = V::load(sums.add((c * k_len + t) * lanes));
            }
        }
        let rows = padded
            .as_ptr()
            .add(at.ci * plane + at.ky * d.padded_w + at.kx0);
        let grads = dy.as_ptr().add(at.co0 * out_plane);
        // Column by column, each down all the rows: the rows are the long loop (a row holds
        // only a few vectors).
        let column = (rows, grads, out_plane);
        for v in 0..full {
            dw_column::<V, C, T, false>(d, &mut acc, column, v * lanes, lanes);
        }
        if tail > 0 {
            dw_column::<V, C, T, true>(d, &mut acc, column, full * lanes, tail);
        }
        for (c, acc) in acc.iter().enumerate() {
            for (t, &acc) in acc.iter().enumerate() {
                acc.store(sums.add((c * k_len + t) * lanes));
            }
        }
    }
}

/// Adds one column of vectors (`n` lanes from column `x`, `PARTIAL` when `n < LANES`) of every
/// row into a weight-gradient block's accumulators.
///
/// # Safety
/// As [`dw_block`], whose pointers and column range this continues.
#[inline(always)]
unsafe fn dw_column<V: F32x, const C: usize, const T: usize, const PARTIAL: bool>(
    d: &Direct,
    acc: &mut [[V; T]; C],
    (rows, grads, out_plane): (*const f32, *const f32, usize),
    x: usize,
    n: usize,
) {
    // SAFETY: forwarded from `dw_block`; partial columns read only their `n` lanes.
    unsafe {
        // The tail's lanes, made once for the whole column.
        let tail = V::tail(n);
        let load = |p: *const f32| {
            if PARTIAL {
                V::load_tail(p, tail)
            } else {
                V::load(p)
            }
        };
        for y in 0..d.out_h {
            let row = rows.add(y * d.padded_w + x);
            let grad = grads.add(y * d.out_w + x);
            let g: [V; C] = core::array::from_fn(|c| load(grad.add(c * out_plane)));
            for t in 0..T {
                let input = load(row.add(t));
                for (acc, &g) in acc.iter_mut().zip(&g) {
                    acc[t] = g.mul_add(input, acc[t]);
                }
            }
        }
    }
}
