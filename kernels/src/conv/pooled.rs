//! Convolution + bias + ReLU + max pooling forward in one pass per tile of images: the chain
//! `F.max_pool2d(F.relu(F.conv2d(x, w, b)), ..., return_indices=True)` (LeNet-5's blocks)
//! that writes the pooled output and its argmax and never the convolution's full output.
//!
//! # Method
//!
//! The batch is cut into tiles of images. Each tile's convolution runs on the path the
//! table's plan chooses for the whole batch (the same kernel, on the same images, with the
//! same tiling where the path tiles), into a tile buffer in the workspace that stays in cache;
//! then [`Kernels::maxpool2d_relu_forward`] pools `relu` of it. The result is bit-identical to
//! [`Kernels::conv2d_forward`], [`Kernels::relu_forward_in_place`] and
//! [`Kernels::maxpool2d_forward`] on the same table, `argmax` included: every output is
//! computed by the same operations in the same order, only fewer of them leave the cache.
//!
//! Tiles: the unfolded path's own column tiles (balanced, so each GEMM is the one the whole
//! batch runs), else as many images as keep a tile's convolution output within 65,536 floats
//! (the direct and channel paths compute each image on its own). A tile stays in a core's L2
//! for the pooling; smaller tiles, down to L1's size, repeat the paths' per-call setup more
//! often than the cache saves (benches/README.md).
//!
//! The backward needs no activation: [`Kernels::maxpool2d_relu_backward`] gives the
//! convolution's output gradient from the pooled output and argmax (the ReLU's mask at an
//! argmax is the pooled value's sign), and [`Kernels::conv2d_backward`] takes it from there,
//! its bias gradient included.
//!
//! # Invariants
//!
//! Safe code over the convolution's table entries: every slice is checked against the shape
//! first; each tile's slices are cut to exactly the tile's shape's lengths, and its geometry's
//! invariants are asserted before its kernel runs, as the convolution's entry points do.

use super::args::Forward;
use super::geometry::Direct;
use super::plan::{Path, Plan};
use super::unfolded::tiles;
use super::Conv2dShape;
use crate::maxpool::Pool2dShape;
use crate::{check_len, checked_product, checked_sum, Kernels, ShapeError};

/// The most f32 of convolution output a tile of the direct and channel paths holds (256 KiB,
/// within a core's L2), at least one image.
pub(crate) const TILE_FLOATS: usize = 64 * 1024;

/// A convolution followed by ReLU and max pooling of its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PooledConv2dShape {
    pub conv: Conv2dShape,
    /// The pooling of the convolution's output: `batch`, `channels` and the input size are
    /// the convolution's.
    pub pool: Pool2dShape,
}

impl PooledConv2dShape {
    /// `conv` pooled by `kernel` windows with `stride`, or the shape error of either.
    pub fn try_new(
        conv: Conv2dShape,
        kernel: (usize, usize),
        stride: (usize, usize),
    ) -> Result<Self, ShapeError> {
        conv.check()?;
        let size = (conv.try_out_h()?, conv.try_out_w()?);
        let pool = Pool2dShape::new(conv.batch, conv.out_channels, size, kernel, stride);
        pool.check()?;
        Ok(PooledConv2dShape { conv, pool })
    }

    /// As [`PooledConv2dShape::try_new`], panicking with its error.
    #[track_caller]
    pub fn new(conv: Conv2dShape, kernel: (usize, usize), stride: (usize, usize)) -> Self {
        crate::or_panic(Self::try_new(conv, kernel, stride))
    }

    /// `Ok` when both shapes are valid, agree, and every length the fused call computes fits
    /// in `usize`.
    pub fn check(&self) -> Result<(), ShapeError> {
        let (c, p) = (&self.conv, &self.pool);
        c.check()?;
        p.check()?;
        let conv_out = (c.batch, c.out_channels, c.try_out_h()?, c.try_out_w()?);
        if conv_out != (p.batch, p.channels, p.in_h, p.in_w) {
            return Err(ShapeError::new(format!(
                "conv2d_relu_maxpool2d: the pooling's input [{}, {}, {}, {}] is not the \
                 convolution's output {conv_out:?}: {self:?}",
                p.batch, p.channels, p.in_h, p.in_w
            )));
        }
        self.try_workspace_len().map(|_| ())
    }

    /// Images per tile for the direct and channel paths.
    fn try_images_per_buffer(&self) -> Result<usize, ShapeError> {
        let image = self.conv.try_output_image_len()?;
        Ok((TILE_FLOATS / image.max(1)).clamp(1, self.conv.batch.max(1)))
    }

    /// The most images a tile has on any table.
    fn try_max_tile(&self) -> Result<usize, ShapeError> {
        let unfolded = self.conv.try_images_per_tile()?;
        Ok(unfolded.max(self.try_images_per_buffer()?))
    }

    /// Elements of the workspace [`Kernels::conv2d_relu_maxpool2d_forward`] needs: a tile's
    /// convolution output and the convolution's workspace for a tile. From the shape alone,
    /// in checked arithmetic; a workspace for a batch serves every smaller one (pass its
    /// first `workspace_len` elements).
    pub fn try_workspace_len(&self) -> Result<usize, ShapeError> {
        let tile = self.try_max_tile()?;
        let q = "conv2d_relu_maxpool2d: the workspace (a tile's output + its convolution's)";
        let buffer = checked_product(self, q, &[tile, self.conv.try_output_image_len()?])?;
        let conv = self.tile_conv(tile).try_workspace_len()?;
        checked_sum(self, q, &[buffer, conv])
    }

    /// As [`PooledConv2dShape::try_workspace_len`], panicking with its error.
    #[track_caller]
    pub fn workspace_len(&self) -> usize {
        crate::or_panic(self.try_workspace_len())
    }

    fn tile_conv(&self, images: usize) -> Conv2dShape {
        Conv2dShape {
            batch: images,
            ..self.conv
        }
    }
}

impl Kernels {
    /// `argmax`, `pooled` = `F.max_pool2d(F.relu(F.conv2d(input, weight, bias)))` with the
    /// indices, bit-identical to the unfused chain on this table (see the module docs).
    /// Overwrites `pooled` and `argmax` ([`Pool2dShape::output_len`] of `shape.pool` each);
    /// `workspace` is scratch of [`PooledConv2dShape::workspace_len`] f32.
    ///
    /// # Panics
    /// If the shape is invalid or its two halves disagree ([`PooledConv2dShape::check`]), or a
    /// slice's length disagrees with it (the message names the argument, the expected and the
    /// actual length).
    #[allow(clippy::too_many_arguments)]
    #[track_caller]
    pub fn conv2d_relu_maxpool2d_forward(
        &self,
        shape: &PooledConv2dShape,
        input: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        pooled: &mut [f32],
        argmax: &mut [u32],
        workspace: &mut [f32],
    ) {
        crate::or_panic(shape.check()); // every length below, checked
        let (conv, pool) = (&shape.conv, &shape.pool);
        check_len(
            "conv2d_relu_maxpool2d_forward: input",
            conv.input_len(),
            input.len(),
        );
        check_len(
            "conv2d_relu_maxpool2d_forward: weight",
            conv.weight_len(),
            weight.len(),
        );
        if let Some(bias) = bias {
            check_len(
                "conv2d_relu_maxpool2d_forward: bias",
                conv.out_channels,
                bias.len(),
            );
        }
        let out_len = pool.output_len();
        check_len(
            "conv2d_relu_maxpool2d_forward: pooled",
            out_len,
            pooled.len(),
        );
        check_len(
            "conv2d_relu_maxpool2d_forward: argmax",
            out_len,
            argmax.len(),
        );
        check_len(
            "conv2d_relu_maxpool2d_forward: workspace",
            shape.workspace_len(),
            workspace.len(),
        );
        if conv.batch == 0 || out_len == 0 {
            return;
        }
        let plan = Plan::new(conv, &self.conv);
        let (in_image, out_image) = (conv.image_len(), conv.output_image_len());
        let pool_image = out_len / conv.batch;
        let max_tile = crate::or_panic(shape.try_max_tile());
        let (buffer, conv_ws) = workspace.split_at_mut(max_tile * out_image);
        let mut tile = |first: usize, images: usize| {
            let tile = shape.tile_conv(images);
            let args = Forward {
                input: &input[first * in_image..][..images * in_image],
                weight,
                bias,
                output: &mut buffer[..images * out_image],
                workspace: &mut conv_ws[..tile.workspace_len()],
            };
            self.tile_forward(&tile, plan.path, args);
            let tile_pool = Pool2dShape {
                batch: images,
                ..*pool
            };
            let (p, a) = (first * pool_image, images * pool_image);
            self.maxpool2d_relu_forward(
                &tile_pool,
                &buffer[..images * out_image],
                &mut pooled[p..][..a],
                &mut argmax[p..][..a],
            );
        };
        match plan.path {
            // The batch's own tiles, so each tile's GEMM is the one the unfused call runs.
            Path::Unfolded { per_tile } => {
                for t in tiles(conv, per_tile) {
                    tile(t.first, t.count);
                }
            }
            _ => {
                let per_tile = crate::or_panic(shape.try_images_per_buffer());
                for first in (0..conv.batch).step_by(per_tile) {
                    tile(first, per_tile.min(conv.batch - first));
                }
            }
        }
    }

    /// One tile's convolution on the batch plan's path; `args` hold exactly `tile`'s lengths.
    fn tile_forward(&self, tile: &Conv2dShape, path: Path, args: Forward<'_>) {
        let ws_len = args.workspace.len();
        let at = |d: Direct| Direct { shape: *tile, ..d };
        match path {
            Path::Unfolded { .. } => {
                let Forward {
                    input,
                    weight,
                    bias,
                    output,
                    workspace,
                } = args;
                self.unfolded_forward(tile, tile.batch, input, weight, bias, output, workspace);
            }
            Path::Channel(channels) => {
                let channels = at(channels);
                channels.assert_channel_invariants(ws_len);
                let forward = self.conv.channels_forward.expect("a channel plan's kernel");
                // SAFETY: as in `conv2d_forward`: a table built for a CPU checked for its ISA;
                // the tile's slices were cut to its shape's lengths (checked arithmetic in
                // `check`), and its channel geometry's invariants were just asserted.
                unsafe { forward(&channels, args) };
            }
            Path::Direct(direct) => {
                let direct = at(direct);
                direct.assert_direct_invariants(ws_len);
                let forward = self.conv.direct_forward;
                // SAFETY: as for the channel path, with the direct geometry's invariants.
                unsafe { forward(&direct, args) };
            }
        }
    }
}
