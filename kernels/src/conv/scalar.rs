//! The convolution reference: direct loops over every output and kernel tap (no im2col, no
//! GEMM), generic over `f32` and `f64`. Written for clarity; it is the oracle the im2col + GEMM
//! path is tested against and the code the gradient checks prove.

use super::Conv2dShape;
use crate::{check_len, Real};

/// The input coordinate `o * stride + k * dilation - pad` if it lies in `0..len`.
#[inline]
fn tap(
    o: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    pad: usize,
    len: usize,
) -> Option<usize> {
    (o * stride + k * dilation)
        .checked_sub(pad)
        .filter(|&i| i < len)
}

/// Calls `f(input_index, weight_index, output_index)` for every multiply of the convolution, in
/// the order batch, out channel, output row, output column, in channel, kernel row, kernel column.
fn for_each_tap(shape: &Conv2dShape, mut f: impl FnMut(usize, usize, usize)) {
    let s = shape;
    let (oh, ow) = (s.out_h(), s.out_w());
    for b in 0..s.batch {
        for co in 0..s.out_channels {
            for oy in 0..oh {
                for ox in 0..ow {
                    let o = ((b * s.out_channels + co) * oh + oy) * ow + ox;
                    for ci in 0..s.in_channels {
                        for ki in 0..s.kernel_h {
                            let Some(iy) = tap(oy, ki, s.stride_h, s.dilation_h, s.pad_h, s.in_h)
                            else {
                                continue;
                            };
                            for kj in 0..s.kernel_w {
                                let Some(ix) =
                                    tap(ox, kj, s.stride_w, s.dilation_w, s.pad_w, s.in_w)
                                else {
                                    continue;
                                };
                                let i = ((b * s.in_channels + ci) * s.in_h + iy) * s.in_w + ix;
                                let w =
                                    ((co * s.in_channels + ci) * s.kernel_h + ki) * s.kernel_w + kj;
                                f(i, w, o);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `output = conv2d(input, weight) + bias`, overwriting `output`; see
/// [`Kernels::conv2d_forward`](crate::Kernels::conv2d_forward) (this needs no workspace).
///
/// # Panics
/// If a length disagrees with `shape`, or the shape is invalid.
pub fn forward<T: Real>(
    shape: &Conv2dShape,
    input: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    output: &mut [T],
) {
    check_len("conv forward: input", shape.input_len(), input.len());
    check_len("conv forward: weight", shape.weight_len(), weight.len());
    check_len("conv forward: output", shape.output_len(), output.len());
    let plane = shape.out_h() * shape.out_w();
    match bias {
        Some(bias) => {
            check_len("conv forward: bias", shape.out_channels, bias.len());
            for (o, v) in output.iter_mut().enumerate() {
                *v = bias[(o / plane) % shape.out_channels];
            }
        }
        None => output.fill(T::ZERO),
    }
    for_each_tap(shape, |i, w, o| output[o] += input[i] * weight[w]);
}

/// The gradient with respect to the input, overwriting `grad_input`:
/// `grad_input[i] = sum of grad_output[o] * weight[w]` over the taps that read input `i`.
///
/// # Panics
/// If a length disagrees with `shape`, or the shape is invalid.
pub fn backward_input<T: Real>(
    shape: &Conv2dShape,
    weight: &[T],
    grad_output: &[T],
    grad_input: &mut [T],
) {
    check_len(
        "conv backward_input: weight",
        shape.weight_len(),
        weight.len(),
    );
    check_len(
        "conv backward_input: grad_output",
        shape.output_len(),
        grad_output.len(),
    );
    check_len(
        "conv backward_input: grad_input",
        shape.input_len(),
        grad_input.len(),
    );
    grad_input.fill(T::ZERO);
    for_each_tap(shape, |i, w, o| grad_input[i] += grad_output[o] * weight[w]);
}

/// The gradient with respect to the weight, overwriting `grad_weight`:
/// `grad_weight[w] = sum of grad_output[o] * input[i]` over the taps that use weight `w`.
///
/// # Panics
/// If a length disagrees with `shape`, or the shape is invalid.
pub fn backward_weight<T: Real>(
    shape: &Conv2dShape,
    input: &[T],
    grad_output: &[T],
    grad_weight: &mut [T],
) {
    check_len(
        "conv backward_weight: input",
        shape.input_len(),
        input.len(),
    );
    check_len(
        "conv backward_weight: grad_output",
        shape.output_len(),
        grad_output.len(),
    );
    check_len(
        "conv backward_weight: grad_weight",
        shape.weight_len(),
        grad_weight.len(),
    );
    grad_weight.fill(T::ZERO);
    for_each_tap(shape, |i, w, o| grad_weight[w] += grad_output[o] * input[i]);
}

/// The gradient with respect to the bias, overwriting `grad_bias`: the sum of `grad_output` over
/// the batch and the output plane of each channel.
///
/// # Panics
/// If a length disagrees with `shape`, or the shape is invalid.
pub fn backward_bias<T: Real>(shape: &Conv2dShape, grad_output: &[T], grad_bias: &mut [T]) {
    check_len(
        "conv backward_bias: grad_output",
        shape.output_len(),
        grad_output.len(),
    );
    check_len(
        "conv backward_bias: grad_bias",
        shape.out_channels,
        grad_bias.len(),
    );
    let plane = shape.out_h() * shape.out_w();
    grad_bias.fill(T::ZERO);
    for (o, &g) in grad_output.iter().enumerate() {
        grad_bias[(o / plane) % shape.out_channels] += g;
    }
}
