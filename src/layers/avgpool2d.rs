//! 2-D average pooling, as PyTorch's `nn.AvgPool2d(kernel_size, stride)` (no padding, floor
//! mode).

use super::maxpool2d::{check_pool_io, pool_shape};
use super::Dims;
use crate::backend::Backend;
use crate::Result;
use simdnet_kernels::maxpool::Pool2dShape;
use simdnet_kernels::Real;

/// `nn.AvgPool2d(kernel_size, stride)`; PyTorch's default stride is the kernel size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvgPool2d {
    pub name: String,
    pub kernel_size: (usize, usize),
    pub stride: (usize, usize),
}

impl AvgPool2d {
    /// Stride = kernel size, as PyTorch's default.
    pub fn new(name: impl Into<String>, kernel_size: (usize, usize)) -> AvgPool2d {
        AvgPool2d {
            name: name.into(),
            kernel_size,
            stride: kernel_size,
        }
    }

    pub fn with_stride(mut self, h: usize, w: usize) -> AvgPool2d {
        self.stride = (h, w);
        self
    }

    pub fn shape(&self, batch: usize, input: Dims) -> Result<Pool2dShape> {
        pool_shape(&self.name, self.kernel_size, self.stride, batch, input)
    }

    pub fn output_dims(&self, input: Dims) -> Result<Dims> {
        let s = self.shape(1, input)?;
        Ok(Dims::new(input.channels, s.out_h(), s.out_w()))
    }

    /// `output` = the window means.
    pub fn forward<T: Real, B: Backend<T>>(
        &self,
        backend: &B,
        batch: usize,
        input_dims: Dims,
        input: &[T],
        output: &mut [T],
    ) -> Result<()> {
        let s = self.shape(batch, input_dims)?;
        check_pool_io(&self.name, &s, "input", input.len(), "output", output.len())?;
        backend.avgpool2d_forward(&s, input, output);
        Ok(())
    }

    /// `grad_input` (overwritten): each output's gradient spread evenly over its window.
    pub fn backward<T: Real, B: Backend<T>>(
        &self,
        backend: &B,
        batch: usize,
        input_dims: Dims,
        grad_output: &[T],
        grad_input: &mut [T],
    ) -> Result<()> {
        let s = self.shape(batch, input_dims)?;
        check_pool_io(
            &self.name,
            &s,
            "input gradient",
            grad_input.len(),
            "output gradient",
            grad_output.len(),
        )?;
        backend.avgpool2d_backward(&s, grad_output, grad_input);
        Ok(())
    }
}
