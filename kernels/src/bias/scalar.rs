//! The bias reference, generic over `f32` and `f64`.

use crate::{check_len, Real};

/// `x[n][c][s] += bias[c]` for `x` of shape `[batch, bias.len(), spatial]`.
///
/// # Panics
/// If `x.len() != batch * bias.len() * spatial`.
pub fn add<T: Real>(x: &mut [T], bias: &[T], batch: usize, spatial: usize) {
    let channels = bias.len();
    check_len("bias add: x", batch * channels * spatial, x.len());
    for n in 0..batch {
        for (c, &b) in bias.iter().enumerate() {
            for v in &mut x[(n * channels + c) * spatial..][..spatial] {
                *v += b;
            }
        }
    }
}

/// `grad_bias[c] = sum over n, s of grad_output[n][c][s]` (overwrites), summed in order of
/// `n` then `s`.
///
/// # Panics
/// If `grad_output.len() != batch * grad_bias.len() * spatial`.
pub fn backward<T: Real>(grad_output: &[T], grad_bias: &mut [T], batch: usize, spatial: usize) {
    let channels = grad_bias.len();
    check_len(
        "bias backward: grad_output",
        batch * channels * spatial,
        grad_output.len(),
    );
    for (c, gb) in grad_bias.iter_mut().enumerate() {
        let mut acc = T::ZERO;
        for n in 0..batch {
            for &g in &grad_output[(n * channels + c) * spatial..][..spatial] {
                acc += g;
            }
        }
        *gb = acc;
    }
}
