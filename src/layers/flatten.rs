//! Flattening, as PyTorch's `nn.Flatten()` / `x.flatten(1)`.

use super::{check_len, Dims};
use crate::Result;

/// `x.flatten(1)`: `[N, C, H, W]` to `[N, C*H*W]`. NCHW tensors are contiguous, so the data do
/// not move: LeNet-5 reads the pooled activations as the first linear layer's input in place.
/// `forward` and `backward` copy, for when the caller keeps separate buffers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flatten {
    pub name: String,
}

impl Flatten {
    pub fn new(name: impl Into<String>) -> Flatten {
        Flatten { name: name.into() }
    }

    /// `[channels * height * width, 1, 1]`, or an error when that product overflows `usize`.
    pub fn output_dims(&self, input: Dims) -> Result<Dims> {
        Ok(Dims::flat(input.checked_numel(&self.name)?))
    }

    pub fn forward<T: Copy>(
        &self,
        batch: usize,
        input_dims: Dims,
        input: &[T],
        output: &mut [T],
    ) -> Result<()> {
        let n = input_dims.batch_len(&self.name, batch)?;
        check_len(&self.name, "input", n, input.len(), || {
            format!("{batch} x {input_dims}")
        })?;
        check_len(&self.name, "output", n, output.len(), || {
            format!("[{batch}, {}]", input_dims.numel())
        })?;
        output.copy_from_slice(input);
        Ok(())
    }

    pub fn backward<T: Copy>(
        &self,
        batch: usize,
        input_dims: Dims,
        grad_output: &[T],
        grad_input: &mut [T],
    ) -> Result<()> {
        let n = input_dims.batch_len(&self.name, batch)?;
        check_len(&self.name, "output gradient", n, grad_output.len(), || {
            format!("[{batch}, {}]", input_dims.numel())
        })?;
        check_len(&self.name, "input gradient", n, grad_input.len(), || {
            format!("{batch} x {input_dims}")
        })?;
        grad_input.copy_from_slice(grad_output);
        Ok(())
    }
}
