//! ReLU forward and backward, with PyTorch's exact semantics:
//!
//! - forward: `y = if x < 0 { 0 } else { x }`, so `relu(NaN) = NaN` and `relu(-0.0) = -0.0`
//!   (what `torch.relu` returns), and negative values give `+0.0`.
//! - backward: `grad_input = if output <= 0 { 0 } else { grad_output }` (PyTorch's
//!   `threshold_backward(grad, output, 0)`): the gradient passes where the output is positive,
//!   and also where it is NaN, as in PyTorch.
//!
//! Every ISA gives the same bits as the reference: the operations are selections, not
//! arithmetic. The body is written once over the SIMD vocabulary (`vector.rs`); the ISA files
//! fix the vector type. There is no AVX-512 file: the AVX-512 table runs the AVX2 one.

pub mod scalar;
pub(crate) mod vector;

/// The ReLU of one vector, for kernels that apply it as they store (the GEMM epilogue).
pub(crate) use vector::relu_lanes;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "aarch64")]
mod neon;

use crate::{check_len, kernel_table, Kernels};

kernel_table! {
    /// Per-ISA ReLU entry points (lengths checked by the caller).
    pub(crate) struct Table {
        forward: unsafe fn(&[f32], &mut [f32]),
        forward_in_place: unsafe fn(&mut [f32]),
        backward: unsafe fn(&[f32], &[f32], &mut [f32]),
    }
}

/// Safety: the scalar reference is safe for any arguments of equal lengths.
unsafe fn scalar_forward(input: &[f32], output: &mut [f32]) {
    scalar::forward(input, output);
}

/// Safety: the scalar reference is safe for any arguments.
unsafe fn scalar_forward_in_place(x: &mut [f32]) {
    scalar::forward_in_place(x);
}

/// Safety: the scalar reference is safe for any arguments of equal lengths.
unsafe fn scalar_backward(output: &[f32], grad_output: &[f32], grad_input: &mut [f32]) {
    scalar::backward(output, grad_output, grad_input);
}

crate::simd::isa_table! {
    Table {
        forward: scalar_forward,
        forward_in_place: scalar_forward_in_place,
        backward: scalar_backward
    },
    avx2: avx2, avx512: avx2, neon: neon
}

impl Kernels {
    /// `output[i] = relu(input[i])` (see the module docs for NaN and -0.0).
    ///
    /// # Panics
    /// If `output.len() != input.len()`.
    #[track_caller]
    pub fn relu_forward(&self, input: &[f32], output: &mut [f32]) {
        check_len("relu_forward: output", input.len(), output.len());
        // SAFETY: `self` was built by `Kernels::for_isa`, which checked the CPU supports the
        // table's ISA, and the lengths were checked above.
        unsafe { (self.relu.forward)(input, output) }
    }

    /// `x[i] = relu(x[i])`.
    pub fn relu_forward_in_place(&self, x: &mut [f32]) {
        // SAFETY: `self` was built by `Kernels::for_isa`, which checked the CPU supports the
        // table's ISA.
        unsafe { (self.relu.forward_in_place)(x) }
    }

    /// `grad_input[i] = if output[i] <= 0 { 0 } else { grad_output[i] }`, from the forward's
    /// `output` (the gradient passes where it is positive or NaN, as in PyTorch). Overwrites
    /// `grad_input`; it may not alias the others (use a copy for an in-place update).
    ///
    /// # Panics
    /// If `grad_output` or `grad_input` is not `output.len()` long.
    #[track_caller]
    pub fn relu_backward(&self, output: &[f32], grad_output: &[f32], grad_input: &mut [f32]) {
        check_len(
            "relu_backward: grad_output",
            output.len(),
            grad_output.len(),
        );
        check_len("relu_backward: grad_input", output.len(), grad_input.len());
        // SAFETY: as in `relu_forward`.
        unsafe { (self.relu.backward)(output, grad_output, grad_input) }
    }
}
