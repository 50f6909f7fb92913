//! The scalar table's direct path: the SIMD bodies' padded planes and loop order in plain Rust
//! (each tap adds one weight times a shifted input row into a row of outputs). About as fast
//! as the scalar im2col + GEMM path, where the reference loops of `scalar.rs` are several
//! times slower. Plain slice indexing: nothing here is `unsafe` but the table's signature.

use super::args::{Forward, WeightGradient};
use super::geometry::Direct;

/// Overwrites `output` with the direct convolution of `input` (plus the bias).
///
/// Safety: safe for arguments the caller checked (plain slice indexing).
pub(super) unsafe fn direct_forward(d: &Direct, args: Forward<'_>) {
    let (input, weight) = (args.input, args.weight);
    let (bias, output, workspace) = (args.bias, args.output, args.workspace);
    let s = &d.shape;
    let padded = &mut workspace[..d.padded_len()];
    d.clear_padded(padded);
    let (image_len, out_plane, k_len) = (s.image_len(), d.out_h * d.out_w, s.col_rows());
    let out_image = s.out_channels * out_plane;
    for b in 0..s.batch {
        d.pad_image(&input[b * image_len..][..image_len], padded);
        let out = &mut output[b * out_image..][..out_image];
        for (co, plane) in out.chunks_exact_mut(out_plane).enumerate() {
            plane.fill(bias.map_or(0.0, |bias| bias[co]));
            let taps = &weight[co * k_len..][..k_len];
            for (y, row) in plane.chunks_exact_mut(d.out_w).enumerate() {
                for ci in 0..s.in_channels {
                    for ky in 0..s.kernel_h {
                        let at = ci * d.plane_len() + (y + ky) * d.padded_w;
                        let src = &padded[at..][..d.padded_w];
                        for kx in 0..s.kernel_w {
                            let w = taps[(ci * s.kernel_h + ky) * s.kernel_w + kx];
                            for (o, &x) in row.iter_mut().zip(&src[kx..]) {
                                *o += w * x;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Overwrites `grad_weight`: per image and weight, a sum of row dot products
/// of the output gradient with a shifted padded input row.
///
/// Safety: safe for arguments the caller checked (plain slice indexing).
pub(super) unsafe fn direct_backward_weight(d: &Direct, args: WeightGradient<'_>) {
    let (input, grad_output) = (args.input, args.grad_output);
    let (grad_weight, workspace) = (args.grad_weight, args.workspace);
    let s = &d.shape;
    let padded = &mut workspace[..d.padded_len()];
    d.clear_padded(padded);
    grad_weight.fill(0.0);
    let (image_len, out_plane, k_len) = (s.image_len(), d.out_h * d.out_w, s.col_rows());
    let out_image = s.out_channels * out_plane;
    for b in 0..s.batch {
        d.pad_image(&input[b * image_len..][..image_len], padded);
        let dy = &grad_output[b * out_image..][..out_image];
        for (co, grads) in dy.chunks_exact(out_plane).enumerate() {
            for ci in 0..s.in_channels {
                for ky in 0..s.kernel_h {
                    for kx in 0..s.kernel_w {
                        let mut sum = 0.0;
                        for (y, g) in grads.chunks_exact(d.out_w).enumerate() {
                            let at = ci * d.plane_len() + (y + ky) * d.padded_w + kx;
                            let x = &padded[at..][..d.out_w];
                            sum += g.iter().zip(x).map(|(g, x)| g * x).sum::<f32>();
                        }
                        grad_weight[co * k_len + (ci * s.kernel_h + ky) * s.kernel_w + kx] += sum;
                    }
                }
            }
        }
    }
}
