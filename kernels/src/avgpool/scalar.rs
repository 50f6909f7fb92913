//! The average-pooling reference, generic over `f32` and `f64`.

use super::Pool2dShape;
use crate::maxpool::scalar::for_each_window;
use crate::{check_len, Real};

/// Average pooling forward; see
/// [`Kernels::avgpool2d_forward`](crate::Kernels::avgpool2d_forward).
///
/// # Panics
/// If a length disagrees with `shape`, or the shape is invalid.
pub fn forward<T: Real>(shape: &Pool2dShape, input: &[T], output: &mut [T]) {
    check_len("avgpool forward: input", shape.input_len(), input.len());
    check_len("avgpool forward: output", shape.output_len(), output.len());
    let divisor = T::from_usize(shape.kernel_h * shape.kernel_w);
    for_each_window(shape, |w| {
        let x = &input[w.plane];
        let mut sum = T::ZERO;
        for ky in 0..shape.kernel_h {
            for kx in 0..shape.kernel_w {
                sum += x[w.first + ky * shape.in_w + kx];
            }
        }
        output[w.out] = sum / divisor;
    });
}

/// Average pooling backward; see
/// [`Kernels::avgpool2d_backward`](crate::Kernels::avgpool2d_backward).
///
/// # Panics
/// If a length disagrees with `shape`, or the shape is invalid.
pub fn backward<T: Real>(shape: &Pool2dShape, grad_output: &[T], grad_input: &mut [T]) {
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
    for_each_window(shape, |w| {
        let share = grad_output[w.out] / divisor;
        let gi = &mut grad_input[w.plane.start + w.first..];
        for ky in 0..shape.kernel_h {
            for kx in 0..shape.kernel_w {
                gi[ky * shape.in_w + kx] += share;
            }
        }
    });
}
