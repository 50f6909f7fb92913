//! The average-pooling reference, generic over `f32` and `f64`.

use super::Pool2dShape;
use crate::{check_len, Real};

/// Average pooling forward; see
/// [`Kernels::avgpool2d_forward`](crate::Kernels::avgpool2d_forward).
///
/// # Panics
/// If a length disagrees with `shape`, or the shape is invalid.
pub fn forward<T: Real>(shape: &Pool2dShape, input: &[T], output: &mut [T]) {
    let (oh, ow) = (shape.out_h(), shape.out_w());
    check_len("avgpool forward: input", shape.input_len(), input.len());
    check_len("avgpool forward: output", shape.output_len(), output.len());
    let divisor = T::from_usize(shape.kernel_h * shape.kernel_w);
    let (in_plane, out_plane) = (shape.in_h * shape.in_w, oh * ow);
    for p in 0..shape.batch * shape.channels {
        let x = &input[p * in_plane..][..in_plane];
        for oy in 0..oh {
            for ox in 0..ow {
                let first = oy * shape.stride_h * shape.in_w + ox * shape.stride_w;
                let mut sum = T::ZERO;
                for ky in 0..shape.kernel_h {
                    for kx in 0..shape.kernel_w {
                        sum += x[first + ky * shape.in_w + kx];
                    }
                }
                output[p * out_plane + oy * ow + ox] = sum / divisor;
            }
        }
    }
}

/// Average pooling backward; see
/// [`Kernels::avgpool2d_backward`](crate::Kernels::avgpool2d_backward).
///
/// # Panics
/// If a length disagrees with `shape`, or the shape is invalid.
pub fn backward<T: Real>(shape: &Pool2dShape, grad_output: &[T], grad_input: &mut [T]) {
    let (oh, ow) = (shape.out_h(), shape.out_w());
    check_len(
        "avgpool backward: grad_output",
        shape.output_len(),
        grad_output.len(),
    );
    check_len(
        "avgpool backward: grad_input",
        shape.input_len(),
        grad_input.len(),
    );
    grad_input.fill(T::ZERO);
    let divisor = T::from_usize(shape.kernel_h * shape.kernel_w);
    let (in_plane, out_plane) = (shape.in_h * shape.in_w, oh * ow);
    for p in 0..shape.batch * shape.channels {
        let gi = &mut grad_input[p * in_plane..][..in_plane];
        for oy in 0..oh {
            for ox in 0..ow {
                let share = grad_output[p * out_plane + oy * ow + ox] / divisor;
                let first = oy * shape.stride_h * shape.in_w + ox * shape.stride_w;
                for ky in 0..shape.kernel_h {
                    for kx in 0..shape.kernel_w {
                        gi[first + ky * shape.in_w + kx] += share;
                    }
                }
            }
        }
    }
}
