//! 2-D max pooling, as PyTorch's `nn.MaxPool2d(kernel_size, stride)` (no padding, floor mode).

use super::{check_len, Dims};
use crate::backend::Backend;
use crate::{Error, Result};
use simdnet_kernels::maxpool::Pool2dShape;
use simdnet_kernels::Real;

/// `nn.MaxPool2d(kernel_size, stride)`; PyTorch's default stride is the kernel size. The forward
/// pass records, per output, the index of its maximum within the input plane (ties: the first
/// maximum; NaN wins), which the backward pass routes the gradient to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaxPool2d {
    pub name: String,
    pub kernel_size: (usize, usize),
    pub stride: (usize, usize),
}

/// The kernel shape of a pooling layer, with PyTorch's checks as errors.
pub(crate) fn pool_shape(
    name: &str,
    kernel_size: (usize, usize),
    stride: (usize, usize),
    batch: usize,
    input: Dims,
) -> Result<Pool2dShape> {
    if kernel_size.0 == 0 || kernel_size.1 == 0 || stride.0 == 0 || stride.1 == 0 {
        return Err(Error::new(format!(
            "{name}: kernel size {kernel_size:?} and stride {stride:?} must be positive"
        )));
    }
    if kernel_size.0 > input.height || kernel_size.1 > input.width {
        return Err(Error::new(format!(
            "{name}: output size is too small: input {input} with kernel {}x{}",
            kernel_size.0, kernel_size.1
        )));
    }
    let shape = Pool2dShape::new(
        batch,
        input.channels,
        (input.height, input.width),
        kernel_size,
        stride,
    );
    // The input and output lengths in checked arithmetic: an overflow is an error here, never a
    // panic in the kernel.
    shape
        .check()
        .map_err(|e| Error::new(format!("{name}: {e}")))?;
    Ok(shape)
}

pub(crate) fn check_pool_io(
    name: &str,
    s: &Pool2dShape,
    what_in: &str,
    input: usize,
    what_out: &str,
    output: usize,
) -> Result<()> {
    check_len(name, what_in, s.input_len(), input, || {
        format!("[{}, {}, {}, {}]", s.batch, s.channels, s.in_h, s.in_w)
    })?;
    check_len(name, what_out, s.output_len(), output, || {
        format!(
            "[{}, {}, {}, {}]",
            s.batch,
            s.channels,
            s.out_h(),
            s.out_w()
        )
    })
}

impl MaxPool2d {
    /// Stride = kernel size, as PyTorch's default.
    pub fn new(name: impl Into<String>, kernel_size: (usize, usize)) -> MaxPool2d {
        MaxPool2d {
            name: name.into(),
            kernel_size,
            stride: kernel_size,
        }
    }

    pub fn with_stride(mut self, h: usize, w: usize) -> MaxPool2d {
        self.stride = (h, w);
        self
    }

    /// The kernel shape, or an error naming what does not fit; an input plane must also index
    /// with the kernel's `u32` argmax (at most `i32::MAX` elements).
    pub fn shape(&self, batch: usize, input: Dims) -> Result<Pool2dShape> {
        let s = pool_shape(&self.name, self.kernel_size, self.stride, batch, input)?;
        let plane = s.in_h.checked_mul(s.in_w);
        if plane.is_none_or(|p| p > i32::MAX as usize) {
            return Err(Error::new(format!(
                "{}: an input plane of {}x{} is too large for a u32 argmax",
                self.name, s.in_h, s.in_w
            )));
        }
        Ok(s)
    }

    pub fn output_dims(&self, input: Dims) -> Result<Dims> {
        let s = self.shape(1, input)?;
        Ok(Dims::new(input.channels, s.out_h(), s.out_w()))
    }

    /// `output` = the window maxima; `argmax` (one per output) records where each came from.
    pub fn forward<T: Real, B: Backend<T>>(
        &self,
        backend: &B,
        batch: usize,
        input_dims: Dims,
        input: &[T],
        output: &mut [T],
        argmax: &mut [u32],
    ) -> Result<()> {
        let s = self.shape(batch, input_dims)?;
        check_pool_io(&self.name, &s, "input", input.len(), "output", output.len())?;
        check_len(&self.name, "argmax", s.output_len(), argmax.len(), || {
            "one per output".into()
        })?;
        backend.maxpool2d_forward(&s, input, output, argmax);
        Ok(())
    }

    /// `grad_input` (overwritten) gets each output's gradient at its argmax, zero elsewhere.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<T: Real, B: Backend<T>>(
        &self,
        backend: &B,
        batch: usize,
        input_dims: Dims,
        grad_output: &[T],
        argmax: &[u32],
        grad_input: &mut [T],
    ) -> Result<()> {
        let s = self.shape(batch, input_dims)?;
        self.check_backward(&s, grad_output, argmax, grad_input)?;
        backend.maxpool2d_backward(&s, grad_output, argmax, grad_input);
        Ok(())
    }

    /// The backward's checks: the gradients' lengths, and every argmax inside its plane.
    pub(super) fn check_backward<T>(
        &self,
        s: &Pool2dShape,
        grad_output: &[T],
        argmax: &[u32],
        grad_input: &[T],
    ) -> Result<()> {
        check_pool_io(
            &self.name,
            s,
            "input gradient",
            grad_input.len(),
            "output gradient",
            grad_output.len(),
        )?;
        check_len(&self.name, "argmax", s.output_len(), argmax.len(), || {
            "one per output".into()
        })?;
        let plane = (s.in_h * s.in_w) as u64; // at most i32::MAX (`shape`)
                                              // The maximum first (a reduction the compiler vectorises), the culprit only if needed.
        let largest = argmax.iter().copied().max().map_or(0, u64::from);
        if largest < plane {
            return Ok(());
        }
        if let Some(bad) = argmax.iter().find(|&&i| u64::from(i) >= plane) {
            return Err(Error::new(format!(
                "{}: argmax {bad} is outside the {}x{} input plane",
                self.name, s.in_h, s.in_w
            )));
        }
        Ok(())
    }
}
