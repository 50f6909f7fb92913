//! [`Conv2dShape`]: a convolution's dimensions, its output size (PyTorch's formula) and every
//! length derived from them.
//!
//! Every length is computed in checked arithmetic. A shape whose output size is undefined (a
//! zero stride, dilation or kernel size, a dilated kernel larger than the padded input) or
//! whose lengths or intermediate sizes overflow `usize` is impossible: the `try_` functions
//! return a [`ShapeError`] naming the shape and the quantity, [`Conv2dShape::check`] returns the
//! first one of any length a convolution call computes, and the plain methods panic with it.
//! A length that wrapped would pass the slice-length checks with a small value while the
//! kernels loop over the real dimensions, which is why the rule exists. Each length includes
//! the ones it is built from (the input's includes one image's, even when `batch` is 0).

use super::plan::{channel_geometry, direct_geometry, TILE_BUDGET, TILE_COLUMNS};
use crate::{checked_product, checked_sum, ShapeError};

/// The shape of a 2-D convolution. Build it with [`Conv2dShape::new`] and the `with_*` methods.
///
/// The output size and the lengths are computed on demand; they panic (see
/// [`Conv2dShape::out_h`] and [`Conv2dShape::check`]) when the shape is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dShape {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_h: usize,
    pub pad_w: usize,
    pub dilation_h: usize,
    pub dilation_w: usize,
}

/// PyTorch's output size along one axis, or why there is none.
fn out_dim(
    shape: &Conv2dShape,
    axis: &str,
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
) -> Result<usize, ShapeError> {
    let invalid = |what: &str| Err(ShapeError::new(format!("conv2d: {what} in {shape:?}")));
    if stride == 0 {
        return invalid(&format!("stride_{axis} must be positive, got 0"));
    }
    if dilation == 0 {
        return invalid(&format!("dilation_{axis} must be positive, got 0"));
    }
    if kernel == 0 {
        return invalid(&format!("kernel_{axis} must be positive, got 0"));
    }
    let q = if axis == "h" {
        "conv2d: the dilated kernel h (dilation_h * (kernel_h - 1) + 1)"
    } else {
        "conv2d: the dilated kernel w (dilation_w * (kernel_w - 1) + 1)"
    };
    let span = checked_sum(
        shape,
        q,
        &[checked_product(shape, q, &[dilation, kernel - 1])?, 1],
    )?;
    let padded = shape.padded_in(axis, input, pad)?;
    if padded < span {
        return invalid(&format!(
            "empty output: the padded input {axis} {padded} (in_{axis} {input} + 2 * pad_{axis} \
             {pad}) is smaller than the dilated kernel {span} (kernel_{axis} {kernel}, \
             dilation_{axis} {dilation})"
        ));
    }
    Ok((padded - span) / stride + 1)
}

impl Conv2dShape {
    /// A convolution with stride 1, no padding and dilation 1.
    pub fn new(
        batch: usize,
        in_channels: usize,
        out_channels: usize,
        (in_h, in_w): (usize, usize),
        (kernel_h, kernel_w): (usize, usize),
    ) -> Self {
        Conv2dShape {
            batch,
            in_channels,
            out_channels,
            in_h,
            in_w,
            kernel_h,
            kernel_w,
            stride_h: 1,
            stride_w: 1,
            pad_h: 0,
            pad_w: 0,
            dilation_h: 1,
            dilation_w: 1,
        }
    }

    pub fn with_stride(self, h: usize, w: usize) -> Self {
        Conv2dShape {
            stride_h: h,
            stride_w: w,
            ..self
        }
    }

    /// Zero padding on each side (PyTorch's `padding=(h, w)`).
    pub fn with_padding(self, h: usize, w: usize) -> Self {
        Conv2dShape {
            pad_h: h,
            pad_w: w,
            ..self
        }
    }

    pub fn with_dilation(self, h: usize, w: usize) -> Self {
        Conv2dShape {
            dilation_h: h,
            dilation_w: w,
            ..self
        }
    }

    /// `Ok` when every length a convolution call on this shape computes (the output size, the
    /// input, weight, output, column and workspace lengths, the tile size and the paths'
    /// internal sizes) is defined and fits in `usize`; otherwise the first [`ShapeError`] (the
    /// one the kernels would panic with). Callers that take shapes from users check here first.
    pub fn check(&self) -> Result<(), ShapeError> {
        // In the order the entry points compute them.
        self.try_out_plane_len()?;
        self.try_input_len()?;
        self.try_weight_len()?;
        self.try_output_len()?;
        self.try_col_len()?;
        self.try_workspace_len()?;
        Ok(())
    }

    crate::or_panic_fns! {
        /// Output height: `(in_h + 2 * pad_h - dilation_h * (kernel_h - 1) - 1) / stride_h + 1`.
        ///
        /// # Panics
        /// If `stride_h`, `dilation_h` or `kernel_h` is 0, if the output would be empty (the
        /// padded input is smaller than the dilated kernel), or if the padded input or the
        /// dilated kernel overflows `usize`. These are programmer errors; the message names
        /// the shape and the quantity.
        pub fn out_h = try_out_h -> usize;
        /// Output width, as [`Conv2dShape::out_h`].
        ///
        /// # Panics
        /// As [`Conv2dShape::out_h`], for the width.
        pub fn out_w = try_out_w -> usize;
        /// Rows of the column matrix: `in_channels * kernel_h * kernel_w`.
        ///
        /// # Panics
        /// If it overflows `usize`.
        pub fn col_rows = try_col_rows -> usize;
        /// Elements of the input: `batch * in_channels * in_h * in_w`.
        ///
        /// # Panics
        /// If it or [`Conv2dShape::image_len`] overflows `usize`.
        pub fn input_len = try_input_len -> usize;
        /// Elements of one image: `in_channels * in_h * in_w`.
        ///
        /// # Panics
        /// If it overflows `usize`.
        pub fn image_len = try_image_len -> usize;
        /// Elements of the weight: `out_channels * in_channels * kernel_h * kernel_w`.
        ///
        /// # Panics
        /// If it or [`Conv2dShape::col_rows`] overflows `usize`.
        pub fn weight_len = try_weight_len -> usize;
        /// Elements of one image's output: `out_channels * out_h * out_w`.
        ///
        /// # Panics
        /// As [`Conv2dShape::out_h`], or if it overflows `usize`.
        pub fn output_image_len = try_output_image_len -> usize;
        /// Elements of the output: `batch * out_channels * out_h * out_w`.
        ///
        /// # Panics
        /// As [`Conv2dShape::output_image_len`], or if it overflows `usize`.
        pub fn output_len = try_output_len -> usize;
        /// Output pixels of one plane, `out_h * out_w` (the GEMM path's `N`).
        pub(crate) fn out_plane_len = try_out_plane_len -> usize;
        /// Elements of one image's column matrix (what [`im2col`](super::im2col) writes):
        /// `in_channels * kernel_h * kernel_w * out_h * out_w`.
        ///
        /// # Panics
        /// As [`Conv2dShape::out_h`], or if it or [`Conv2dShape::col_rows`] overflows `usize`.
        pub fn col_len = try_col_len -> usize;
        /// Elements (f32) of the workspace the convolution needs. On the direct path (stride 1,
        /// dilation 1, `K <= 100`) it does not depend on `batch`: the padded planes of one
        /// image, `in_channels * (in_h + 2 * pad_h) * (in_w + 2 * pad_w) + 16`, and 16 partial
        /// sums per weight; or, if more, the input gradient's: the weight and one image's
        /// output gradient padded by `kernel - 1 - pad`, `out_channels * (out_h + 2 *
        /// (kernel_h - 1 - pad_h)) * (out_w + 2 * (kernel_w - 1 - pad_w)) + 16`, or, where a
        /// padding is not below its kernel size, one image's columns
        /// ([`Conv2dShape::col_len`]). Otherwise a column tile, `images_per_tile * col_len`,
        /// and, when the tile holds several images, the tile's output (or output-gradient)
        /// buffer, `images_per_tile * out_channels * out_h * out_w`. It grows with `batch` up
        /// to about 128 Ki f32 (or one image's columns, if larger), so a workspace sized
        /// for a batch serves every smaller batch: pass its first `workspace_len` elements (the
        /// convolution checks the length exactly).
        ///
        /// The length depends on the shape, not on the table: a shape the channel path fits
        /// (stride 1, dilation 1, kernels up to 7, at least 8 output channels, output rows up
        /// to 16 wide) gets at least that path's workspace too,
        /// one image's padded planes plus `ceil(out_channels / 16) * 16 * (K + out_h *
        /// out_w)`, or the input gradient's as above if more.
        ///
        /// # Panics
        /// As [`Conv2dShape::out_h`], or if any of these sizes overflows `usize` (the message
        /// names the shape and the quantity).
        pub fn workspace_len = try_workspace_len -> usize;
    }

    /// `in + 2 * pad` along one axis, in checked arithmetic.
    pub(crate) fn padded_in(
        &self,
        axis: &str,
        input: usize,
        pad: usize,
    ) -> Result<usize, ShapeError> {
        let q = if axis == "h" {
            "conv2d: the padded input h (in_h + 2 * pad_h)"
        } else {
            "conv2d: the padded input w (in_w + 2 * pad_w)"
        };
        let both = checked_product(self, q, &[2, pad])?;
        checked_sum(self, q, &[input, both])
    }

    pub fn try_out_h(&self) -> Result<usize, ShapeError> {
        let s = self;
        out_dim(
            s,
            "h",
            s.in_h,
            s.kernel_h,
            s.stride_h,
            s.pad_h,
            s.dilation_h,
        )
    }

    pub fn try_out_w(&self) -> Result<usize, ShapeError> {
        let s = self;
        out_dim(
            s,
            "w",
            s.in_w,
            s.kernel_w,
            s.stride_w,
            s.pad_w,
            s.dilation_w,
        )
    }

    pub fn try_col_rows(&self) -> Result<usize, ShapeError> {
        let q = "conv2d: K (in_channels * kernel_h * kernel_w)";
        checked_product(self, q, &[self.in_channels, self.kernel_h, self.kernel_w])
    }

    pub fn try_input_len(&self) -> Result<usize, ShapeError> {
        let q = "conv2d: input_len (batch * in_channels * in_h * in_w)";
        checked_product(self, q, &[self.batch, self.try_image_len()?])
    }

    pub fn try_image_len(&self) -> Result<usize, ShapeError> {
        let q = "conv2d: image_len (in_channels * in_h * in_w)";
        checked_product(self, q, &[self.in_channels, self.in_h, self.in_w])
    }

    pub fn try_weight_len(&self) -> Result<usize, ShapeError> {
        let q = "conv2d: weight_len (out_channels * in_channels * kernel_h * kernel_w)";
        checked_product(self, q, &[self.out_channels, self.try_col_rows()?])
    }

    pub fn try_output_image_len(&self) -> Result<usize, ShapeError> {
        let q = "conv2d: one image's output (out_channels * out_h * out_w)";
        checked_product(self, q, &[self.out_channels, self.try_out_plane_len()?])
    }

    pub fn try_output_len(&self) -> Result<usize, ShapeError> {
        let q = "conv2d: output_len (batch * out_channels * out_h * out_w)";
        checked_product(self, q, &[self.batch, self.try_output_image_len()?])
    }

    fn try_out_plane_len(&self) -> Result<usize, ShapeError> {
        let q = "conv2d: an output plane (out_h * out_w)";
        checked_product(self, q, &[self.try_out_h()?, self.try_out_w()?])
    }

    pub fn try_col_len(&self) -> Result<usize, ShapeError> {
        let q = "conv2d: col_len (in_channels * kernel_h * kernel_w * out_h * out_w)";
        checked_product(self, q, &[self.try_col_rows()?, self.try_out_plane_len()?])
    }

    /// Images the convolution unfolds together into one column tile (so each GEMM covers
    /// them all): enough for the GEMMs' `tile * out_h * out_w` to reach [`TILE_COLUMNS`],
    /// but no more than keep a tile's columns and its `[out_channels, tile * out_h *
    /// out_w]` output buffer within [`TILE_BUDGET`] f32; at least 1, at most `batch`, and 1
    /// when an image has no columns. LeNet-5 at batch 64: 1 for conv1 (784 output pixels),
    /// 6 for conv2 (100).
    ///
    /// An error as [`Conv2dShape::col_len`]'s, or if one image's share of a tile,
    /// `(K + out_channels) * out_h * out_w`, overflows `usize`.
    pub(crate) fn try_images_per_tile(&self) -> Result<usize, ShapeError> {
        let n = self.try_out_plane_len()?;
        let q = "conv2d: one image's share of a column tile ((K + out_channels) * out_h * out_w)";
        let rows = checked_sum(self, q, &[self.try_col_rows()?, self.out_channels])?;
        let per_image = checked_product(self, q, &[rows, n])?;
        if self.try_col_len()? == 0 {
            return Ok(1);
        }
        let for_width = TILE_COLUMNS.div_ceil(n);
        Ok((TILE_BUDGET / per_image)
            .min(for_width)
            .clamp(1, self.batch.max(1)))
    }

    pub fn try_workspace_len(&self) -> Result<usize, ShapeError> {
        let other = self.try_unfolded_or_direct_workspace_len()?;
        Ok(match channel_geometry(self)? {
            Some(channels) => other.max(channels.try_channel_workspace_len()?),
            None => other,
        })
    }

    /// The workspace of the direct or the GEMM path.
    fn try_unfolded_or_direct_workspace_len(&self) -> Result<usize, ShapeError> {
        if let Some(direct) = direct_geometry(self)? {
            return direct.try_workspace_len();
        }
        let tile = self.try_images_per_tile()?;
        let q = "conv2d: the GEMM path's workspace (images_per_tile * (col_len + out_channels * out_h * out_w))";
        let gather = if tile > 1 {
            checked_product(self, q, &[tile, self.try_output_image_len()?])?
        } else {
            0
        };
        let cols = checked_product(self, q, &[tile, self.try_col_len()?])?;
        checked_sum(self, q, &[cols, gather])
    }
}
