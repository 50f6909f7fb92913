//! The bias reference, generic over `f32` and `f64`.

use super::bias_len;
use crate::{check_len, Real};

/// `x[n][c][s] += bias[c]` for `x` of shape `[batch, bias.len(), spatial]`.
///
/// # Panics
/// If `batch * bias.len() * spatial` overflows `usize` or `x.len()` differs from it.
pub fn add<T: Real>(x: &mut [T], bias: &[T], batch: usize, spatial: usize) {
    let channels = bias.len();
    check_len(
        "bias add: x",
        bias_len("bias add", batch, channels, spatial),
        x.len(),
    );
    if x.is_empty() {
        return; // nothing to add to (and no loop over a batch of empty rows)
    }
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
/// If `batch * grad_bias.len() * spatial` overflows `usize` or `grad_output.len()` differs
/// from it.
pub fn backward<T: Real>(grad_output: &[T], grad_bias: &mut [T], batch: usize, spatial: usize) {
    let channels = grad_bias.len();
    check_len(
        "bias backward: grad_output",
        bias_len("bias backward", batch, channels, spatial),
        grad_output.len(),
    );
    if grad_output.is_empty() {
        grad_bias.fill(T::ZERO); // empty sums
        return;
    }
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
