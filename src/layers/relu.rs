//! The rectifier, as PyTorch's `nn.ReLU`.

use super::check_len;
use crate::backend::Backend;
use crate::Result;
use simdnet_kernels::Real;

/// `nn.ReLU()`: `max(x, 0)`. The backward pass needs only the output: the gradient passes where
/// the output is positive (PyTorch's `threshold_backward`; zero at exactly 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReLU {
    pub name: String,
}

impl ReLU {
    pub fn new(name: impl Into<String>) -> ReLU {
        ReLU { name: name.into() }
    }

    pub fn forward<T: Real, B: Backend<T>>(
        &self,
        backend: &B,
        input: &[T],
        output: &mut [T],
    ) -> Result<()> {
        check_len(&self.name, "output", input.len(), output.len(), || {
            "same as the input".into()
        })?;
        backend.relu_forward(input, output);
        Ok(())
    }

    /// The forward pass over its own input (`inplace=True`).
    pub fn forward_in_place<T: Real, B: Backend<T>>(&self, backend: &B, x: &mut [T]) {
        backend.relu_forward_in_place(x);
    }

    /// `grad_input` (overwritten) = `grad_output` where `output > 0`, else 0.
    pub fn backward<T: Real, B: Backend<T>>(
        &self,
        backend: &B,
        output: &[T],
        grad_output: &[T],
        grad_input: &mut [T],
    ) -> Result<()> {
        check_len(
            &self.name,
            "output gradient",
            output.len(),
            grad_output.len(),
            || "same as the output".into(),
        )?;
        check_len(
            &self.name,
            "input gradient",
            output.len(),
            grad_input.len(),
            || "same as the output".into(),
        )?;
        backend.relu_backward(output, grad_output, grad_input);
        Ok(())
    }
}
