//! The input gradient of the channel path by row blocks, written once over the SIMD
//! vocabulary: the transposed convolution `t` ([`Direct::transposed`]) of the output gradient
//! with the flipped weight, as blocks of `C` input channels x `R` rows x `NV` vectors (a whole
//! row: the channel path's rows are at most 22 wide), each tap's `C` weights broadcast once
//! and multiplied by `R x NV` output-gradient vectors. Kernel rows that read only the zero
//! padding above or below the output gradient for every row of a block are skipped: with
//! LeNet's conv2 (5 x 5 kernel, 10 x 10 output gradient padded by 4) that is a third of the
//! taps.
//!
//! Safety: the bodies require the CPU to support `V`'s ISA (the wrappers enable it), `t` to be
//! the transposed convolution of a channel-path shape with the geometry and workspace
//! [`Direct::assert_transposed_invariants`] checks, `grad_output` `t`'s input, `flipped` its
//! weight and `grad_input` its output, with the lengths `t.shape` gives them.

use super::args::Forward;
use super::geometry::Direct;
use crate::simd::F32x;

/// Overwrites the input gradient (`args.output`) with the transposed convolution of the
/// output gradient (`args.input`) and the flipped weight (`args.weight`); no bias.
///
/// # Safety
/// See the module docs; `(NV - 1) * LANES < t.out_w <= NV * LANES`.
#[inline(always)]
pub(super) unsafe fn backward_input<V: F32x, const C: usize, const R: usize, const NV: usize>(
    t: &Direct,
    args: Forward<'_>,
) {
    let (grad_output, flipped) = (args.input, args.weight);
    let (grad_input, workspace) = (args.output, args.workspace);
    let s = &t.shape;
    assert!((NV - 1) * V::LANES < t.out_w && t.out_w <= NV * V::LANES);
    let padded = &mut workspace[..t.padded_len()];
    t.clear_padded(padded);
    let (dy_image, gi_image) = (s.image_len(), s.out_channels * t.out_h * t.out_w);
    for b in 0..s.batch {
        t.pad_image(&grad_output[b * dy_image..][..dy_image], padded);
        let gi = &mut grad_input[b * gi_image..][..gi_image];
        for ci0 in (0..s.out_channels).step_by(C) {
            for y0 in (0..t.out_h).step_by(R) {
                // SAFETY: `padded` holds the image's padded output-gradient planes and slack,
                // `flipped` t's weight, `gi` one image's input gradient; ci0 < t's output
                // channels, y0 < its output rows, and a row takes NV vectors (asserted).
                unsafe { block::<V, C, R, NV>(t, padded, flipped, gi, ci0, y0) };
            }
        }
    }
}

/// Input-gradient rows `y0..y0 + R` of input channels `ci0..ci0 + C` (those that exist; the
/// others repeat the last row or channel and are not stored), each row `NV` vectors wide.
///
/// # Safety
/// `V`'s ISA is enabled; `ci0 < t.shape.out_channels`, `y0 < t.out_h`,
/// `(NV - 1) * LANES < t.out_w <= NV * LANES`; `padded` holds `t.padded_len()` f32, `flipped`
/// `t.shape.weight_len()`, `gi` one image's input gradient (`t`'s output).
#[inline(always)]
unsafe fn block<V: F32x, const C: usize, const R: usize, const NV: usize>(
    t: &Direct,
    padded: &[f32],
    flipped: &[f32],
    gi: &mut [f32],
    ci0: usize,
    y0: usize,
) {
    let s = &t.shape;
    let (kh, kw, width, plane) = (s.kernel_h, s.kernel_w, t.padded_w, t.plane_len());
    let (k_len, lanes) = (s.col_rows(), V::LANES);
    let channels = C.min(s.out_channels - ci0);
    let rows = R.min(t.out_h - y0);
    debug_assert!((NV - 1) * lanes < t.out_w && t.out_w <= NV * lanes);
    // SAFETY: the ISA is enabled by the caller. Weights: channel ci0 + min(c, channels - 1) <
    // out_channels, tap (co, ky, kx) < K. Reads: plane co < in_channels, row y0 + min(r, rows
    // - 1) + ky < out_h + kernel_h - 1 = padded_h, columns kx + LANES j .. + LANES with the
    // last below kernel_w - 1 + out_w + LANES - 1 = padded_w + LANES - 1: past the row's end
    // by at most 15, inside the next row or the DIRECT_SLACK (16) zeros after the last plane.
    // Writes: the first out_w columns of rows y0 + r < out_h of channels ci0 + c <
    // out_channels.
    unsafe {
        let mut acc = [[[V::zero(); NV]; R]; C];
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
                    let wv: [V; C] = core::array::from_fn(|c| V::splat(*w[c].add(tap + kx)));
                    for (r, src) in src.iter().enumerate() {
                        let x: [V; NV] =
                            core::array::from_fn(|j| V::load(src.add(at + kx + j * lanes)));
                        for (acc, &w) in acc.iter_mut().zip(&wv) {
                            for (acc, &x) in acc[r].iter_mut().zip(&x) {
                                *acc = x.mul_add(w, *acc);
                            }
                        }
                    }
                }
            }
        }
        let out_plane = t.out_h * t.out_w;
        for (c, acc) in acc.iter().enumerate().take(channels) {
            for (r, acc) in acc.iter().enumerate().take(rows) {
                let dst = gi
                    .as_mut_ptr()
                    .add((ci0 + c) * out_plane + (y0 + r) * t.out_w);
                for (j, acc) in acc.iter().enumerate() {
                    let n = t.out_w - j * lanes;
                    if n >= lanes {
                        acc.store(dst.add(j * lanes));
                    } else {
                        acc.store_first(dst.add(j * lanes), n);
                    }
                }
            }
        }
    }
}
