//! [`Direct`]: the geometry the direct and channel paths share (a stride-1, dilation-1 shape
//! and its zero-padded input planes), the lengths of their workspaces, the checks their
//! `unsafe` bodies rely on, and the copies into and out of their layouts.
//!
//! A padded plane is `(in_h + 2 pad_h) x (in_w + 2 pad_w)`, which at stride 1 and dilation 1
//! is `(out_h + kernel_h - 1) x (out_w + kernel_w - 1)`: every output position reads a whole
//! `kernel_h x kernel_w` window of it without a bounds test. The planes are followed by
//! [`DIRECT_SLACK`] zeroed floats, so a row's last vector may load past the row's end without
//! leaving the buffer (those lanes are never stored). The buffer is zeroed once per call and
//! each image only overwrites the planes' interiors, so the borders and the slack stay zero.
//!
//! The channel path keeps the weight as `[group][K][16]` and one image's output (or output
//! gradient) channels-last as `[group][pixel][16]`, a group being 16 output channels (zero
//! past `out_channels`).
//!
//! The input gradient of a stride-1 convolution is the transposed convolution
//! ([`Direct::transposed`]): the forward of the output gradient padded by `kernel - 1 - pad`
//! with the weight's channels swapped and its taps flipped ([`Direct::flip_weight`]).
//!
//! The `assert_*_invariants` methods are the release-build checks run before every `unsafe`
//! call into an ISA body: they restate, from the geometry alone, what the body's `SAFETY`
//! comments rely on, so a geometry built wrongly panics instead of reading out of bounds.

use super::plan::{CHANNEL_MAX_KERNEL, CHANNEL_MAX_OUT_W, CHANNEL_MIN_OUT_CHANNELS};
use super::unfold::{move_segments, Segments};
use super::Conv2dShape;
use crate::{checked_product, checked_sum, ShapeError};

/// Output channels per group of the channel path: one AVX-512 vector of f32 (two AVX2 ones).
pub(crate) const CHANNEL_GROUP: usize = 16;

/// The widest vector any ISA's direct path loads, in f32: the padded planes are followed by
/// this much zeroed slack.
pub(crate) const DIRECT_SLACK: usize = 16;

/// Where a forward block of the direct path lies: output channels from `co0`, row `y`, columns
/// `x0..x0 + cols` (`1 <= cols <=` the ISA's block width, its vectors times its lanes).
#[derive(Clone, Copy)]
pub(crate) struct Block {
    pub co0: usize,
    pub y: usize,
    pub x0: usize,
    pub cols: usize,
}

/// Which weights a gradient block of the direct path accumulates: input channel `ci`, kernel
/// row `ky`, output channels from `co0`, kernel columns from `kx0`.
#[derive(Clone, Copy)]
pub(crate) struct Taps {
    pub ci: usize,
    pub ky: usize,
    pub co0: usize,
    pub kx0: usize,
}

/// The geometry of the direct path: a shape with stride 1, dilation 1 and `1 <= K <=`
/// [`DIRECT_MAX_K`](super::plan::DIRECT_MAX_K), and the sizes of its zero-padded planes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Direct {
    pub(crate) shape: Conv2dShape,
    pub(crate) out_h: usize,
    pub(crate) out_w: usize,
    /// A padded plane is `padded_h x padded_w`: `in + 2 * pad` per axis, which is
    /// `out + kernel - 1` at stride 1 and dilation 1.
    pub(crate) padded_h: usize,
    pub(crate) padded_w: usize,
}

impl Direct {
    /// The padded-plane geometry of any stride-1, dilation-1 shape with `K >= 1` (the direct
    /// path's and the channel path's).
    pub(crate) fn try_unit(shape: &Conv2dShape) -> Result<Option<Direct>, ShapeError> {
        let s = shape;
        let unit = s.stride_h == 1 && s.stride_w == 1 && s.dilation_h == 1 && s.dilation_w == 1;
        if !unit || s.try_col_rows()? == 0 {
            return Ok(None);
        }
        Ok(Some(Direct {
            shape: *s,
            out_h: s.try_out_h()?,
            out_w: s.try_out_w()?,
            padded_h: s.padded_in("h", s.in_h, s.pad_h)?,
            padded_w: s.padded_in("w", s.in_w, s.pad_w)?,
        }))
    }

    crate::or_panic_fns! {
        pub(crate) fn channels_padded = try_channels_padded -> usize;
        pub(crate) fn channel_passes_len = try_channel_passes_len -> usize;
        pub(crate) fn channel_workspace_len = try_channel_workspace_len -> usize;
        /// Elements of one padded plane.
        pub(crate) fn plane_len = try_plane_len -> usize;
        /// Elements of one output plane, `out_h * out_w`.
        pub(crate) fn out_plane_len = try_out_plane_len -> usize;
        /// Elements of the padded image buffer: every input channel's padded plane and the
        /// slack.
        pub(crate) fn padded_len = try_padded_len -> usize;
        /// Elements of the weight gradient's vector partial sums: [`DIRECT_SLACK`] lanes per
        /// weight.
        pub(crate) fn partials_len = try_partials_len -> usize;
    }

    /// Panics unless what the direct path's ISA bodies rely on holds: stride and dilation 1,
    /// `K >= 1`, padded planes of `out + kernel - 1` per axis (the bodies read `kernel` rows
    /// and columns from every output position), and a workspace holding the padded planes, their
    /// slack and the partial sums. [`Direct::new`] establishes them; this is the release-build
    /// check, run before every `unsafe` call into an ISA body.
    #[track_caller]
    pub(crate) fn assert_direct_invariants(&self, workspace_len: usize) {
        let s = &self.shape;
        let unit = s.stride_h == 1 && s.stride_w == 1 && s.dilation_h == 1 && s.dilation_w == 1;
        assert!(
            unit && s.col_rows() >= 1,
            "conv2d: direct path: stride and dilation 1 and K >= 1 are required: {s:?}"
        );
        let fits = |padded: usize, kernel: usize, out: usize| {
            padded.checked_sub(kernel - 1) == Some(out) && out >= 1
        };
        assert!(
            fits(self.padded_h, s.kernel_h, self.out_h)
                && fits(self.padded_w, s.kernel_w, self.out_w),
            "conv2d: direct path: padded planes {}x{} do not match the output {}x{} and kernel \
             {}x{} of {s:?}",
            self.padded_h,
            self.padded_w,
            self.out_h,
            self.out_w,
            s.kernel_h,
            s.kernel_w
        );
        let q = "conv2d: the direct path's workspace (padded planes + partial sums)";
        let need = crate::or_panic(checked_sum(s, q, &[self.padded_len(), self.partials_len()]));
        assert!(
            workspace_len >= need,
            "conv2d: direct path: workspace of {workspace_len} f32 is shorter than the {need} \
             its passes need for {s:?}"
        );
    }

    /// Panics unless what the channel path's ISA bodies rely on holds: the direct path's
    /// geometry ([`Direct::assert_direct_invariants`], without its partial sums), the rule of
    /// [`Direct::channels`] (kernels of at most [`CHANNEL_MAX_KERNEL`], `out_w <=`
    /// [`CHANNEL_MAX_OUT_W`] and `out_channels >=` [`CHANNEL_MIN_OUT_CHANNELS`]: the register
    /// blocks are sized by them), and a workspace of at least [`Direct::channel_workspace_len`]
    /// (the split into padded planes, taps and pixels, and the input gradient's part).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    #[track_caller]
    pub(crate) fn assert_channel_invariants(&self, workspace_len: usize) {
        let s = &self.shape;
        self.assert_direct_invariants(usize::MAX);
        let kernel = 1..=CHANNEL_MAX_KERNEL;
        assert!(
            kernel.contains(&s.kernel_h)
                && kernel.contains(&s.kernel_w)
                && self.out_w <= CHANNEL_MAX_OUT_W
                && s.out_channels >= CHANNEL_MIN_OUT_CHANNELS,
            "conv2d: channel path: the shape is outside the path's rule: {s:?}"
        );
        let need = self.channel_workspace_len();
        assert!(
            workspace_len >= need,
            "conv2d: channel path: workspace of {workspace_len} f32 is shorter than the {need} \
             it needs for {s:?}"
        );
    }

    /// Panics unless `self`, the transposed convolution of `of` ([`Direct::transposed`]), has
    /// the direct geometry its forward body relies on, swaps `of`'s channels and spatial sizes,
    /// and fits, after the flipped weight, in a workspace of `workspace_len`.
    #[track_caller]
    pub(crate) fn assert_transposed_invariants(&self, of: &Direct, workspace_len: usize) {
        self.assert_direct_invariants(usize::MAX);
        let (s, t) = (&of.shape, &self.shape);
        assert!(
            t.batch == s.batch
                && (t.in_channels, t.out_channels) == (s.out_channels, s.in_channels)
                && (t.in_h, t.in_w) == (of.out_h, of.out_w)
                && (self.out_h, self.out_w) == (s.in_h, s.in_w)
                && (t.kernel_h, t.kernel_w) == (s.kernel_h, s.kernel_w),
            "conv2d: input gradient: {t:?} is not the transposed convolution of {s:?}"
        );
        let q =
            "conv2d: the input gradient's workspace (weight_len + padded output-gradient planes)";
        let need = crate::or_panic(checked_sum(s, q, &[s.weight_len(), self.padded_len()]));
        assert!(
            workspace_len >= need,
            "conv2d: input gradient: workspace of {workspace_len} f32 is shorter than the {need} \
             it needs for {s:?}"
        );
    }

    /// Output channels rounded up to whole groups of 16 (one AVX-512 vector each).
    pub(crate) fn try_channels_padded(&self) -> Result<usize, ShapeError> {
        let groups = self.shape.out_channels.div_ceil(CHANNEL_GROUP);
        checked_product(
            &self.shape,
            "conv2d: the channel path's padded output channels (ceil(out_channels / 16) * 16)",
            &[groups, CHANNEL_GROUP],
        )
    }

    /// The channel path's workspace for the forward and weight-gradient passes: one image's
    /// padded planes, the weight (or its gradient's partial sums) as `[group][K][16]`, and one
    /// image's output (or output gradient) channels-last, `[group][pixel][16]`.
    pub(crate) fn try_channel_passes_len(&self) -> Result<usize, ShapeError> {
        let s = &self.shape;
        let q = "conv2d: the channel path's workspace (padded planes + channels_padded * (K + out_h * out_w))";
        let per_channel = checked_sum(s, q, &[s.try_col_rows()?, self.try_out_plane_len()?])?;
        let groups = checked_product(s, q, &[self.try_channels_padded()?, per_channel])?;
        checked_sum(s, q, &[self.try_padded_len()?, groups])
    }

    /// The channel path's workspace: its passes', or the input gradient's if more (as the
    /// direct path's, [`Direct::workspace_len`]).
    pub(crate) fn try_channel_workspace_len(&self) -> Result<usize, ShapeError> {
        Ok(self
            .try_channel_passes_len()?
            .max(self.try_input_gradient_len()?))
    }

    /// The channel path's workspace in its three parts: padded planes, weight taps
    /// `[group][K][16]`, pixels `[group][pixel][16]` (see [`Direct::channel_passes_len`]).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn channel_split<'a>(
        &self,
        workspace: &'a mut [f32],
    ) -> (&'a mut [f32], &'a mut [f32], &'a mut [f32]) {
        let cp = self.channels_padded();
        assert!(
            workspace.len() >= self.channel_passes_len(),
            "conv2d: channel path: workspace of {} f32 is shorter than its passes' {} for {:?}",
            workspace.len(),
            self.channel_passes_len(),
            self.shape
        );
        let (padded, rest) = workspace.split_at_mut(self.padded_len());
        let (taps, rest) = rest.split_at_mut(cp * self.shape.col_rows());
        (padded, taps, &mut rest[..cp * self.out_plane_len()])
    }

    /// One image's planes as the channel path's forward and weight gradient read them: the
    /// image itself when there is no padding (its planes are then the padded planes, and those
    /// passes read nothing past a plane's end), else its copy into `padded`.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn channel_planes<'a>(&self, image: &'a [f32], padded: &'a mut [f32]) -> &'a [f32] {
        if self.shape.pad_h == 0 && self.shape.pad_w == 0 {
            image
        } else {
            self.pad_image(image, padded);
            padded
        }
    }

    /// The weight as the channel path reads it: `taps[g][k][c] = weight[g * 16 + c][k]`, zero
    /// for channels past `out_channels`.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn channel_weights(&self, weight: &[f32], taps: &mut [f32]) {
        let (k_len, cout) = (self.shape.col_rows(), self.shape.out_channels);
        for (g, group) in taps.chunks_exact_mut(k_len * CHANNEL_GROUP).enumerate() {
            for (k, lanes) in group.chunks_exact_mut(CHANNEL_GROUP).enumerate() {
                for (c, t) in lanes.iter_mut().enumerate() {
                    let co = g * CHANNEL_GROUP + c;
                    *t = if co < cout {
                        weight[co * k_len + k]
                    } else {
                        0.0
                    };
                }
            }
        }
    }

    pub(crate) fn try_plane_len(&self) -> Result<usize, ShapeError> {
        let q = "conv2d: a padded plane ((in_h + 2 * pad_h) * (in_w + 2 * pad_w))";
        checked_product(&self.shape, q, &[self.padded_h, self.padded_w])
    }

    pub(crate) fn try_out_plane_len(&self) -> Result<usize, ShapeError> {
        let q = "conv2d: an output plane (out_h * out_w)";
        checked_product(&self.shape, q, &[self.out_h, self.out_w])
    }

    pub(crate) fn try_padded_len(&self) -> Result<usize, ShapeError> {
        let q = "conv2d: the padded planes (in_channels * padded plane + 16)";
        let planes = [self.shape.in_channels, self.try_plane_len()?];
        let planes = checked_product(&self.shape, q, &planes)?;
        checked_sum(&self.shape, q, &[planes, DIRECT_SLACK])
    }

    pub(crate) fn try_partials_len(&self) -> Result<usize, ShapeError> {
        let q = "conv2d: the direct path's partial sums (weight_len * 16)";
        checked_product(
            &self.shape,
            q,
            &[self.shape.try_weight_len()?, DIRECT_SLACK],
        )
    }

    /// The workspace the direct path uses: the padded planes and the partial sums for the
    /// forward and weight-gradient passes, or, if more, what the input gradient needs after
    /// them: the flipped weight and the padded output-gradient planes (see
    /// [`Direct::transposed`]), else one image's columns for GEMM and col2im.
    pub(crate) fn try_workspace_len(&self) -> Result<usize, ShapeError> {
        let q = "conv2d: the direct path's workspace (padded planes + partial sums)";
        let passes = [self.try_padded_len()?, self.try_partials_len()?];
        let passes = checked_sum(&self.shape, q, &passes)?;
        Ok(passes.max(self.try_input_gradient_len()?))
    }

    /// The workspace the input gradient needs (after the other passes, so it reuses theirs):
    /// the flipped weight and the padded output-gradient planes, or one image's columns.
    pub(crate) fn try_input_gradient_len(&self) -> Result<usize, ShapeError> {
        match self.try_transposed()? {
            Some(t) => checked_sum(
                &self.shape,
                "conv2d: the input gradient's workspace (weight_len + padded output-gradient planes)",
                &[self.shape.try_weight_len()?, t.try_padded_len()?],
            ),
            None => self.shape.try_col_len(),
        }
    }

    /// The input gradient as a direct convolution: at stride 1 and dilation 1,
    /// `grad_input[ci][y][x] = sum over co, ky, kx of dy[co][y + pad_h - ky][x + pad_w - kx] *
    /// w[co][ci][ky][kx]` (zero outside `dy`), which is the forward convolution of `dy` padded
    /// by `kernel - 1 - pad` with the weight's channels swapped and its taps flipped
    /// ([`Direct::flip_weight`]). `None` when a padding is not below its kernel size (the
    /// padding would be negative) or the input plane is empty.
    pub(crate) fn try_transposed(&self) -> Result<Option<Direct>, ShapeError> {
        let s = &self.shape;
        if s.pad_h >= s.kernel_h || s.pad_w >= s.kernel_w || s.in_h == 0 || s.in_w == 0 {
            return Ok(None);
        }
        let (pad_h, pad_w) = (s.kernel_h - 1 - s.pad_h, s.kernel_w - 1 - s.pad_w);
        let shape = Conv2dShape::new(
            s.batch,
            s.out_channels,
            s.in_channels,
            (self.out_h, self.out_w),
            (s.kernel_h, s.kernel_w),
        )
        .with_padding(pad_h, pad_w);
        Ok(Some(Direct {
            shape,
            out_h: s.in_h,
            out_w: s.in_w,
            padded_h: shape.padded_in("h", self.out_h, pad_h)?,
            padded_w: shape.padded_in("w", self.out_w, pad_w)?,
        }))
    }

    /// `flipped[ci][co][ky][kx] = weight[co][ci][kernel_h - 1 - ky][kernel_w - 1 - kx]`: the
    /// weight of [`Direct::transposed`].
    pub(crate) fn flip_weight(&self, weight: &[f32], flipped: &mut [f32]) {
        let s = &self.shape;
        let (cin, cout, kh, kw) = (s.in_channels, s.out_channels, s.kernel_h, s.kernel_w);
        for co in 0..cout {
            for ci in 0..cin {
                let from = &weight[(co * cin + ci) * kh * kw..][..kh * kw];
                let to = &mut flipped[(ci * cout + co) * kh * kw..][..kh * kw];
                for (t, f) in to.iter_mut().zip(from.iter().rev()) {
                    *t = *f;
                }
            }
        }
    }

    /// Zeroes the padded buffer (the borders and the slack stay zero from then on: each image
    /// only overwrites the planes' interiors).
    pub(crate) fn clear_padded(&self, padded: &mut [f32]) {
        padded[..self.padded_len()].fill(0.0);
    }

    /// Copies one image `[in_channels, in_h, in_w]` into the interiors of the padded planes.
    pub(crate) fn pad_image(&self, image: &[f32], padded: &mut [f32]) {
        let s = &self.shape;
        let plane = self.plane_len();
        for c in 0..s.in_channels {
            let segments = Segments {
                rows: s.in_h,
                dst_at: c * plane + s.pad_h * self.padded_w + s.pad_w,
                dst_step: self.padded_w,
                src_at: c * s.in_h * s.in_w,
                src_step: s.in_w,
            };
            move_segments::<f32, false>(padded, image, s.in_w, segments);
        }
    }
}
