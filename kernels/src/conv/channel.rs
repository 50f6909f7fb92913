//! The channel path, its passes written once: output channels in the lanes, 16 per group
//! (`16 / LANES` vectors), nothing unfolded. Narrow output rows fill a vector badly along the
//! row; channels fill it fully.
//!
//! - Forward: the weight is rearranged once per call as `taps[group][K][16]`; per image and
//!   group, the ISA's register blocks ([`ChannelBlocks::forward_group`]) write the group's
//!   outputs channels-last, `pixels[pixel][16]`, starting from the bias, and in-register
//!   transposes write them back as NCHW planes.
//! - Weight gradient: per image, each group's output gradient is transposed channels-last
//!   once; the ISA's blocks ([`ChannelBlocks::backward_weight_group`]) add into the group's
//!   `[K][16]` partial sums, transposed into the weight gradient at the end.
//!
//! The register blocks are per ISA because their layouts are: AVX2's 16 registers hold 6
//! pixels x 2 vectors, AVX-512's 32 hold up to 28 pixels of one vector as whole rows.
//!
//! Safety: the bodies require the CPU to support `V`'s ISA (the wrappers enable it), the
//! lengths of `d.shape`, and the channel-path rule, geometry and workspace that
//! [`Direct::assert_channel_invariants`] checks.

use super::args::{Forward, WeightGradient};
use super::geometry::{Direct, CHANNEL_GROUP};
use crate::simd::F32x;

/// The per-ISA part of the channel path.
#[allow(clippy::missing_safety_doc)]
pub(super) trait ChannelBlocks: F32x {
    /// Transposes the `LANES x LANES` block in `rows[..LANES]` in registers.
    unsafe fn transpose(rows: &mut [Self; 16]);

    /// One image's outputs of one group of `channels <= 16` output channels, channels-last in
    /// `pixels[p * 16..]` (lanes past `channels` need not be written), each starting at
    /// `start` (the group's bias, `16 / LANES` vectors). `planes` holds the image's padded
    /// planes, `taps` the group's `K * 16` weights, `pixels` `out_h * out_w * 16` f32.
    unsafe fn forward_group(
        d: &Direct,
        planes: &[f32],
        taps: &[f32],
        start: &[Self],
        pixels: &mut [f32],
        channels: usize,
    );

    /// Adds one image's weight-gradient terms of one group of `channels` output channels into
    /// its partial sums `sums[K][16]`: `grads` is the group's output gradient channels-last
    /// (`out_h * out_w * 16` f32, lanes past `channels` rounded up to a vector zero), `planes`
    /// the image's padded planes.
    unsafe fn backward_weight_group(
        d: &Direct,
        planes: &[f32],
        grads: &[f32],
        sums: &mut [f32],
        channels: usize,
    );
}

/// Overwrites the output with the convolution of the input (plus the bias).
///
/// # Safety
/// See the module docs.
#[inline(always)]
pub(super) unsafe fn forward<V: ChannelBlocks>(d: &Direct, args: Forward<'_>) {
    let (input, weight) = (args.input, args.weight);
    let (bias, output, workspace) = (args.bias, args.output, args.workspace);
    let s = &d.shape;
    let (k_len, n, cout, lanes) = (s.col_rows(), d.out_h * d.out_w, s.out_channels, V::LANES);
    let vectors = CHANNEL_GROUP / lanes;
    let (padded, taps, pixels) = d.channel_split(workspace);
    d.clear_padded(padded);
    d.channel_weights(weight, taps);
    let image_len = s.image_len();
    let out_image = cout * n;
    for b in 0..s.batch {
        let planes = d.channel_planes(&input[b * image_len..][..image_len], padded);
        let out = &mut output[b * out_image..][..out_image];
        for (g, taps) in taps.chunks_exact(k_len * CHANNEL_GROUP).enumerate() {
            let channels = CHANNEL_GROUP.min(cout - g * CHANNEL_GROUP);
            // SAFETY: the bias has `cout` elements, of which the loads read `channels` from
            // g * 16; `pixels` holds n * 16 f32 (channel_split) and `out` this group's
            // `channels` planes of n from (g * 16) * n.
            unsafe {
                let mut start = [V::zero(); 4];
                if let Some(bias) = bias {
                    for (v, start) in start.iter_mut().enumerate().take(vectors) {
                        let first = (v * lanes).min(channels);
                        let at = bias.as_ptr().add(g * CHANNEL_GROUP + first);
                        *start = V::load_first(at, lanes.min(channels - first));
                    }
                }
                V::forward_group(d, planes, taps, &start[..vectors], pixels, channels);
                let group_planes = &mut out[g * CHANNEL_GROUP * n..];
                pixels_to_planes::<V>(pixels, n, group_planes, n, channels);
            }
        }
    }
}

/// Overwrites the weight gradient.
///
/// # Safety
/// See the module docs.
#[inline(always)]
pub(super) unsafe fn backward_weight<V: ChannelBlocks>(d: &Direct, args: WeightGradient<'_>) {
    let (input, grad_output) = (args.input, args.grad_output);
    let (grad_weight, workspace) = (args.grad_weight, args.workspace);
    let s = &d.shape;
    let (k_len, n, cout) = (s.col_rows(), d.out_h * d.out_w, s.out_channels);
    let (padded, sums, grads) = d.channel_split(workspace);
    d.clear_padded(padded);
    sums.fill(0.0);
    let image_len = s.image_len();
    let out_image = cout * n;
    let group = |g: usize| CHANNEL_GROUP.min(cout - g * CHANNEL_GROUP);
    for b in 0..s.batch {
        let planes = d.channel_planes(&input[b * image_len..][..image_len], padded);
        let dy = &grad_output[b * out_image..][..out_image];
        for (g, grads) in grads.chunks_exact_mut(n * CHANNEL_GROUP).enumerate() {
            let dy = &dy[g * CHANNEL_GROUP * n..];
            // SAFETY: `dy` holds this group's channels' planes of n, `grads` n * 16 f32.
            unsafe { planes_to_pixels::<V>(dy, n, group(g), n, grads) };
        }
        let groups = sums
            .chunks_exact_mut(k_len * CHANNEL_GROUP)
            .zip(grads.chunks_exact(n * CHANNEL_GROUP));
        for (g, (sums, grads)) in groups.enumerate() {
            // SAFETY: `sums` holds the group's K * 16 partial sums, `grads` its n * 16 output
            // gradients (transposed just above), `planes` the image's padded planes.
            unsafe { V::backward_weight_group(d, planes, grads, sums, group(g)) };
        }
    }
    for (g, sums) in sums.chunks_exact(k_len * CHANNEL_GROUP).enumerate() {
        let gw = &mut grad_weight[g * CHANNEL_GROUP * k_len..];
        // SAFETY: `sums` holds K rows of 16, and the weight gradient `group(g)` rows of K
        // from (g * 16) * K.
        unsafe { pixels_to_planes::<V>(sums, k_len, gw, k_len, group(g)) };
    }
}

/// `planes[c * stride + p] = pixels[p * 16 + c]` for `p < n`, `c < channels`: channels-last
/// rows of 16 lanes written as channel planes.
///
/// # Safety
/// `V`'s ISA is enabled; `pixels` holds `n * 16` f32, `planes` `(channels - 1) * stride + n`
/// (`channels <= 16`).
#[inline(always)]
unsafe fn pixels_to_planes<V: ChannelBlocks>(
    pixels: &[f32],
    n: usize,
    planes: &mut [f32],
    stride: usize,
    channels: usize,
) {
    debug_assert!(pixels.len() >= n * CHANNEL_GROUP && channels <= CHANNEL_GROUP);
    debug_assert!(channels == 0 || planes.len() >= (channels - 1) * stride + n);
    // SAFETY: the caller guarantees the lengths `transpose_tiles` requires.
    unsafe { transpose_tiles::<V, true>(pixels.as_ptr(), planes.as_mut_ptr(), n, stride, channels) }
}

/// `pixels[p * 16 + c] = planes[c * stride + p]` for `p < n`, zero for `channels <= c` below
/// the next multiple of `LANES` (the lanes past that are not written): the inverse of
/// [`pixels_to_planes`].
///
/// # Safety
/// As [`pixels_to_planes`].
#[inline(always)]
unsafe fn planes_to_pixels<V: ChannelBlocks>(
    planes: &[f32],
    stride: usize,
    channels: usize,
    n: usize,
    pixels: &mut [f32],
) {
    debug_assert!(pixels.len() >= n * CHANNEL_GROUP && channels <= CHANNEL_GROUP);
    debug_assert!(channels == 0 || planes.len() >= (channels - 1) * stride + n);
    // SAFETY: the caller guarantees the lengths `transpose_tiles` requires.
    unsafe {
        transpose_tiles::<V, false>(planes.as_ptr(), pixels.as_mut_ptr(), n, stride, channels)
    }
}

/// The two directions of the channels-last transpose, `LANES x LANES` tiles at a time:
/// `TO_PLANES` reads `src` as pixels (`[p][16]`) and writes `dst` as planes (`[c][stride]`),
/// otherwise the reverse.
///
/// # Safety
/// `V`'s ISA is enabled; the pixels side holds `n * 16` f32, the planes side
/// `(channels - 1) * stride + n` (`channels <= 16`). Reads and writes: lanes c0..c0 + LANES
/// <= 16 of pixels p0 + i < n, and columns p0..p0 + count <= n (the first `count` lanes) of
/// channels c0 + c < channels.
#[inline(always)]
unsafe fn transpose_tiles<V: ChannelBlocks, const TO_PLANES: bool>(
    src: *const f32,
    dst: *mut f32,
    n: usize,
    stride: usize,
    channels: usize,
) {
    let lanes = V::LANES;
    let pixel = |p: usize, c0: usize| p * CHANNEL_GROUP + c0;
    let plane = |c: usize, p0: usize| c * stride + p0;
    // SAFETY: the offsets below are those the contract bounds.
    unsafe {
        for p0 in (0..n).step_by(lanes) {
            let count = lanes.min(n - p0);
            for c0 in (0..channels).step_by(lanes) {
                let planes = lanes.min(channels - c0);
                let mut rows = [V::zero(); 16];
                if TO_PLANES {
                    for (i, row) in rows.iter_mut().enumerate().take(count) {
                        *row = V::load(src.add(pixel(p0 + i, c0)));
                    }
                } else {
                    for (c, row) in rows.iter_mut().enumerate().take(planes) {
                        let at = src.add(plane(c0 + c, p0));
                        *row = if count == lanes {
                            V::load(at)
                        } else {
                            V::load_first(at, count)
                        };
                    }
                }
                V::transpose(&mut rows);
                if TO_PLANES {
                    for (c, row) in rows.iter().enumerate().take(planes) {
                        let at = dst.add(plane(c0 + c, p0));
                        if count == lanes {
                            row.store(at);
                        } else {
                            row.store_first(at, count);
                        }
                    }
                } else {
                    for (i, row) in rows.iter().enumerate().take(count) {
                        row.store(dst.add(pixel(p0 + i, c0)));
                    }
                }
            }
        }
    }
}
