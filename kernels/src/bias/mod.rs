//! Bias add and its backward pass over a `[batch, channels, spatial]` tensor (NCHW with the
//! plane flattened; a Linear layer's `[N, F]` output is `batch = N`, `spatial = 1`).
//!
//! - add: `x[n][c][s] += bias[c]`, in place.
//! - backward: `grad_bias[c] = sum over n and s of grad_output[n][c][s]` (overwrites).
//!
//! The SIMD add is exact (one rounding per element, as the reference). The SIMD backward sums
//! in a different order from the reference (several vector accumulators, then a horizontal
//! sum), so it agrees to within the usual summation bound, not bit for bit.

pub mod scalar;
mod vector;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "aarch64")]
mod neon;

use crate::{check_len, checked_product, kernel_table, Kernels};

kernel_table! {
    /// Per-ISA bias entry points (lengths checked by the caller).
    pub(crate) struct Table {
        add: unsafe fn(&mut [f32], &[f32], usize, usize),
        backward: unsafe fn(&[f32], &mut [f32], usize, usize),
    }
}

/// Safety: the scalar reference is safe for any checked arguments.
unsafe fn scalar_add(x: &mut [f32], bias: &[f32], batch: usize, spatial: usize) {
    scalar::add(x, bias, batch, spatial);
}

/// Safety: the scalar reference is safe for any checked arguments.
unsafe fn scalar_backward(
    grad_output: &[f32],
    grad_bias: &mut [f32],
    batch: usize,
    spatial: usize,
) {
    scalar::backward(grad_output, grad_bias, batch, spatial);
}

crate::simd::isa_table! {
    Table { add: scalar_add, backward: scalar_backward },
    avx2: avx2, avx512: avx2, neon: neon
}

impl Kernels {
    /// `x[n][c][s] += bias[c]` for `x` of shape `[batch, bias.len(), spatial]`.
    ///
    /// # Panics
    /// If `batch * bias.len() * spatial` overflows `usize` (the message names the shape and the
    /// quantity), or if `x.len()` differs from it.
    #[track_caller]
    pub fn bias_add(&self, x: &mut [f32], bias: &[f32], batch: usize, spatial: usize) {
        check_len(
            "bias_add: x",
            bias_len("bias_add", batch, bias.len(), spatial),
            x.len(),
        );
        if x.is_empty() {
            return; // an empty batch, channel list or plane: nothing to add to
        }
        // SAFETY: `self` was built by `Kernels::for_isa`, which checked the CPU supports the
        // table's ISA, and the length was checked above (its product in checked arithmetic).
        unsafe { (self.bias.add)(x, bias, batch, spatial) }
    }

    /// `grad_bias[c] = sum over n, s of grad_output[n][c][s]` for `grad_output` of shape
    /// `[batch, grad_bias.len(), spatial]`; overwrites `grad_bias` (zeros when the batch or the
    /// plane is empty).
    ///
    /// # Panics
    /// If `batch * grad_bias.len() * spatial` overflows `usize` (the message names the shape and
    /// the quantity), or if `grad_output.len()` differs from it.
    #[track_caller]
    pub fn bias_backward(
        &self,
        grad_output: &[f32],
        grad_bias: &mut [f32],
        batch: usize,
        spatial: usize,
    ) {
        check_len(
            "bias_backward: grad_output",
            bias_len("bias_backward", batch, grad_bias.len(), spatial),
            grad_output.len(),
        );
        if grad_output.is_empty() {
            grad_bias.fill(0.0); // an empty sum per channel
            return;
        }
        // SAFETY: as in `bias_add`.
        unsafe { (self.bias.backward)(grad_output, grad_bias, batch, spatial) }
    }
}

/// `batch * channels * spatial` in checked arithmetic: a panic naming the shape on overflow.
#[track_caller]
pub(crate) fn bias_len(what: &str, batch: usize, channels: usize, spatial: usize) -> usize {
    crate::or_panic(checked_product(
        &format_args!("{what} [batch {batch}, channels {channels}, spatial {spatial}]"),
        "bias: length (batch * channels * spatial)",
        &[batch, channels, spatial],
    ))
}
