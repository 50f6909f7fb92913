//! The unfolded path: [`im2col`](super::im2col) of a tile of images side by side, one GEMM
//! per tile (`out = weight x cols`, the output starting as the bias), and for the backward
//! `grad_weight += dy x cols^T` and `grad_cols = weight^T x dy`, folded back by
//! [`col2im`](super::col2im).
//!
//! A tile is `count` images whose columns sit side by side in `cols[K, count * N]`
//! (`N = out_h * out_w`, image `i` in columns `i * N..`), so each GEMM is `count` times wider
//! than one image's. A tile's output (or output gradient) is gathered into, or scattered
//! from, one `[out_channels, count * N]` matrix after the columns in the workspace; a tile of
//! one image uses the image's own planes. The workspace holds `per_tile` images' columns and,
//! for tiles of more than one image, their output matrix ([`Conv2dShape::workspace_len`]).
//! Every length was checked by the entry point; the code here is safe Rust over slices.

use super::unfold::{col2im_strided, im2col_strided};
use super::Conv2dShape;
use crate::gemm::Transpose;
use crate::Kernels;

/// One tile of images: `first`, `count`, and the GEMM width `ld = count * N`.
#[derive(Clone, Copy)]
pub(super) struct Tile {
    pub(super) first: usize,
    pub(super) count: usize,
    pub(super) ld: usize,
}

/// The batch's images in tiles of at most `per_tile`, as even as possible (sizes differ by at
/// most one).
pub(super) fn tiles(shape: &Conv2dShape, per_tile: usize) -> impl Iterator<Item = Tile> {
    let (batch, n) = (shape.batch, shape.out_plane_len());
    let count = batch.div_ceil(per_tile);
    (0..count).map(move |t| {
        let (start, end) = (t * batch / count, (t + 1) * batch / count);
        Tile {
            first: start,
            count: end - start,
            ld: (end - start) * n,
        }
    })
}

/// Unfolds the tile's images side by side into `cols[K, ld]`.
fn unfold_tile(shape: &Conv2dShape, input: &[f32], tile: Tile, cols: &mut [f32]) {
    let (image_len, n) = (shape.image_len(), shape.out_plane_len());
    for i in 0..tile.count {
        let image = &input[(tile.first + i) * image_len..][..image_len];
        im2col_strided(shape, image, &mut cols[i * n..], tile.ld);
    }
}

/// The tile's output gradient as one matrix `[out_channels, ld]`: the image's own planes for a
/// tile of one, else gathered into `buffer`.
fn tile_matrix<'a>(
    shape: &Conv2dShape,
    images: &'a [f32],
    tile: Tile,
    buffer: &'a mut [f32],
) -> &'a [f32] {
    let (cout, n, out_image) = (
        shape.out_channels,
        shape.out_plane_len(),
        shape.output_image_len(),
    );
    let images = &images[tile.first * out_image..][..tile.count * out_image];
    if tile.count == 1 {
        return images;
    }
    let matrix = &mut buffer[..cout * tile.ld];
    for i in 0..tile.count {
        for c in 0..cout {
            matrix[c * tile.ld + i * n..][..n].copy_from_slice(&images[(i * cout + c) * n..][..n]);
        }
    }
    matrix
}

impl Kernels {
    /// The unfolded forward, tiles of `per_tile` images.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn unfolded_forward(
        &self,
        shape: &Conv2dShape,
        per_tile: usize,
        input: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        output: &mut [f32],
        workspace: &mut [f32],
    ) {
        let (k, cout, n) = (shape.col_rows(), shape.out_channels, shape.out_plane_len());
        let out_image = shape.output_image_len();
        let (cols, tile_out) = workspace.split_at_mut(per_tile * shape.col_len());
        for tile in tiles(shape, per_tile) {
            let (ld, count) = (tile.ld, tile.count);
            let cols = &mut cols[..k * ld];
            unfold_tile(shape, input, tile, cols);
            // One image writes its output in place; a tile's goes through the buffer.
            let out = if count == 1 {
                &mut output[tile.first * out_image..][..out_image]
            } else {
                &mut tile_out[..cout * ld]
            };
            let beta = match bias {
                Some(bias) => {
                    for (row, &v) in out.chunks_exact_mut(ld).zip(bias) {
                        row.fill(v);
                    }
                    1.0
                }
                None => 0.0,
            };
            let no = Transpose::No;
            self.sgemm(no, no, cout, ld, k, 1.0, weight, k, cols, ld, beta, out, ld);
            if count > 1 {
                let images = &mut output[tile.first * out_image..][..count * out_image];
                for i in 0..count {
                    for c in 0..cout {
                        images[(i * cout + c) * n..][..n]
                            .copy_from_slice(&tile_out[c * ld + i * n..][..n]);
                    }
                }
            }
        }
    }

    /// The unfolded weight gradient (overwritten) and, where `grad_input` is given, the input
    /// gradient (overwritten), from one unfolding per tile.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn unfolded_backward(
        &self,
        shape: &Conv2dShape,
        per_tile: usize,
        input: &[f32],
        weight: &[f32],
        grad_output: &[f32],
        mut grad_input: Option<&mut [f32]>,
        grad_weight: &mut [f32],
        workspace: &mut [f32],
    ) {
        let (k, cout) = (shape.col_rows(), shape.out_channels);
        if let Some(gi) = grad_input.as_deref_mut() {
            gi.fill(0.0); // col2im adds into it
        }
        let (cols, buffer) = workspace.split_at_mut(per_tile * shape.col_len());
        for tile in tiles(shape, per_tile) {
            let ld = tile.ld;
            let cols = &mut cols[..k * ld];
            unfold_tile(shape, input, tile, cols);
            let dy = tile_matrix(shape, grad_output, tile, buffer);
            // grad_weight[Cout, K] (+)= dy[Cout, ld] x cols[K, ld]^T
            let beta = if tile.first == 0 { 0.0 } else { 1.0 };
            let (no, yes) = (Transpose::No, Transpose::Yes);
            self.sgemm(
                no,
                yes,
                cout,
                k,
                ld,
                1.0,
                dy,
                ld,
                cols,
                ld,
                beta,
                grad_weight,
                k,
            );
            if let Some(gi) = grad_input.as_deref_mut() {
                self.fold_input_gradient(shape, weight, dy, tile, cols, gi);
            }
        }
    }

    /// The input gradient alone on the unfolded path (overwritten), tiles of `per_tile`
    /// images; the workspace holds at least the unfolded path's for that tile size.
    pub(super) fn unfolded_backward_input(
        &self,
        shape: &Conv2dShape,
        per_tile: usize,
        weight: &[f32],
        grad_output: &[f32],
        grad_input: &mut [f32],
        workspace: &mut [f32],
    ) {
        grad_input.fill(0.0);
        let (cols, buffer) = workspace.split_at_mut(per_tile * shape.col_len());
        for tile in tiles(shape, per_tile) {
            let dy = tile_matrix(shape, grad_output, tile, buffer);
            let cols = &mut cols[..shape.col_rows() * tile.ld];
            self.fold_input_gradient(shape, weight, dy, tile, cols, grad_input);
        }
    }

    /// `grad_cols[K, ld] = weight[Cout, K]^T x dy[Cout, ld]`, folded into the tile's images of
    /// `grad_input` (which it adds to).
    fn fold_input_gradient(
        &self,
        shape: &Conv2dShape,
        weight: &[f32],
        dy: &[f32],
        tile: Tile,
        cols: &mut [f32],
        grad_input: &mut [f32],
    ) {
        let (k, cout, ld) = (shape.col_rows(), shape.out_channels, tile.ld);
        let (image_len, n) = (shape.image_len(), shape.out_plane_len());
        let (no, yes) = (Transpose::No, Transpose::Yes);
        self.sgemm(yes, no, k, ld, cout, 1.0, weight, k, dy, ld, 0.0, cols, ld);
        for i in 0..tile.count {
            let image = &mut grad_input[(tile.first + i) * image_len..][..image_len];
            col2im_strided(shape, &cols[i * n..], ld, image);
        }
    }
}
