//! The ReLU reference, generic over `f32` and `f64`.

use crate::{check_len, Real};

/// PyTorch's `relu`: `if x < 0 { 0 } else { x }` (NaN and -0.0 pass through).
#[inline(always)]
pub fn relu<T: Real>(x: T) -> T {
    if x < T::ZERO {
        T::ZERO
    } else {
        x
    }
}

/// PyTorch's `threshold_backward(grad, output, 0)`: `if output <= 0 { 0 } else { grad }`.
#[inline(always)]
pub fn relu_grad<T: Real>(output: T, grad: T) -> T {
    if output <= T::ZERO {
        T::ZERO
    } else {
        grad
    }
}

/// `output[i] = relu(input[i])`.
///
/// # Panics
/// If the lengths differ.
pub fn forward<T: Real>(input: &[T], output: &mut [T]) {
    check_len("relu forward: output", input.len(), output.len());
    for (y, &x) in output.iter_mut().zip(input) {
        *y = relu(x);
    }
}

/// `x[i] = relu(x[i])`.
pub fn forward_in_place<T: Real>(x: &mut [T]) {
    for v in x {
        *v = relu(*v);
    }
}

/// `grad_input[i] = relu_grad(output[i], grad_output[i])`.
///
/// # Panics
/// If the lengths differ.
pub fn backward<T: Real>(output: &[T], grad_output: &[T], grad_input: &mut [T]) {
    check_len(
        "relu backward: grad_output",
        output.len(),
        grad_output.len(),
    );
    check_len("relu backward: grad_input", output.len(), grad_input.len());
    for ((gi, &y), &g) in grad_input.iter_mut().zip(output).zip(grad_output) {
        *gi = relu_grad(y, g);
    }
}
