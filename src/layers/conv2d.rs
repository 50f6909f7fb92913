//! 2-D convolution, NCHW, as PyTorch's `nn.Conv2d` (groups 1, zero padding).

use super::{check_len, checked_len, init_uniform, Dims};
use crate::backend::Backend;
use crate::rng::Rng;
use crate::{Error, Result};
use simdnet_kernels::conv::Conv2dShape;
use simdnet_kernels::Real;

/// `nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation)` with a bias.
/// The weight is `[out_channels, in_channels, kernel_h, kernel_w]`, the bias `[out_channels]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub name: String,
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel_size: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
}

impl Conv2d {
    /// Stride 1, no padding, dilation 1 (PyTorch's defaults).
    pub fn new(
        name: impl Into<String>,
        in_channels: usize,
        out_channels: usize,
        kernel_size: (usize, usize),
    ) -> Conv2d {
        Conv2d {
            name: name.into(),
            in_channels,
            out_channels,
            kernel_size,
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
        }
    }

    pub fn with_padding(mut self, h: usize, w: usize) -> Conv2d {
        self.padding = (h, w);
        self
    }

    pub fn with_stride(mut self, h: usize, w: usize) -> Conv2d {
        self.stride = (h, w);
        self
    }

    pub fn with_dilation(mut self, h: usize, w: usize) -> Conv2d {
        self.dilation = (h, w);
        self
    }

    /// `[out_channels, in_channels, kernel_h, kernel_w]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.out_channels,
            self.in_channels,
            self.kernel_size.0,
            self.kernel_size.1,
        ]
    }

    /// Elements of the weight.
    ///
    /// # Panics
    /// If the product overflows `usize` (the layer's methods return that as an error instead).
    pub fn weight_len(&self) -> usize {
        match self.try_weight_len() {
            Ok(n) => n,
            Err(e) => panic!("{e}"),
        }
    }

    /// Elements of the weight, or an error when the product overflows `usize`.
    pub fn try_weight_len(&self) -> Result<usize> {
        checked_len(&self.name, "weight", &self.weight_shape())
    }

    pub fn bias_len(&self) -> usize {
        self.out_channels
    }

    /// `in_channels * kernel_h * kernel_w`, the fan-in of PyTorch's initialisation, or an error
    /// when it overflows `usize`.
    pub fn fan_in(&self) -> Result<usize> {
        let (kh, kw) = self.kernel_size;
        checked_len(&self.name, "fan-in", &[self.in_channels, kh, kw])
    }

    /// PyTorch's default initialisation: weight and bias `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`.
    pub fn init<T: Real>(&self, rng: &mut Rng, weight: &mut [T], bias: &mut [T]) -> Result<()> {
        self.check_params(weight.len(), bias.len())?;
        let fan_in = self.fan_in()?;
        init_uniform(rng, fan_in, weight);
        init_uniform(rng, fan_in, bias);
        Ok(())
    }

    /// The kernel shape for `batch` samples of `input`, or an error naming what does not fit.
    pub fn shape(&self, batch: usize, input: Dims) -> Result<Conv2dShape> {
        let name = &self.name;
        if input.channels != self.in_channels {
            return Err(Error::new(format!(
                "{name}: expected input with {} channels, got {input}",
                self.in_channels
            )));
        }
        if self.stride.0 == 0 || self.stride.1 == 0 {
            return Err(Error::new(format!(
                "{name}: stride must be positive, got {:?}",
                self.stride
            )));
        }
        if self.dilation.0 == 0
            || self.dilation.1 == 0
            || self.kernel_size.0 == 0
            || self.kernel_size.1 == 0
        {
            return Err(Error::new(format!(
                "{name}: kernel size {:?} and dilation {:?} must be positive",
                self.kernel_size, self.dilation
            )));
        }
        let shape = Conv2dShape::new(
            batch,
            self.in_channels,
            self.out_channels,
            (input.height, input.width),
            self.kernel_size,
        )
        .with_stride(self.stride.0, self.stride.1)
        .with_padding(self.padding.0, self.padding.1)
        .with_dilation(self.dilation.0, self.dilation.1);
        // In checked arithmetic: where these overflow, `check` below names the quantity.
        let reach = |k: usize, d: usize| d.checked_mul(k - 1).and_then(|v| v.checked_add(1));
        let padded = |i: usize, p: usize| p.checked_mul(2).and_then(|v| v.checked_add(i));
        let sizes = (
            padded(input.height, self.padding.0),
            padded(input.width, self.padding.1),
            reach(self.kernel_size.0, self.dilation.0),
            reach(self.kernel_size.1, self.dilation.1),
        );
        if let (Some(padded_h), Some(padded_w), Some(reach_h), Some(reach_w)) = sizes {
            if reach_h > padded_h || reach_w > padded_w {
                // PyTorch: "Kernel size can't be greater than actual input size".
                return Err(Error::new(format!(
                    "{name}: kernel size can't be greater than actual input size: padded input {padded_h}x{padded_w}, dilated kernel {reach_h}x{reach_w}"
                )));
            }
        }
        // Every length the kernels compute for this shape (input, weight, output, columns,
        // workspace), in checked arithmetic: an overflow is an error here, never a panic there.
        shape
            .check()
            .map_err(|e| Error::new(format!("{name}: {e}")))?;
        Ok(shape)
    }

    /// The shape of one output sample.
    pub fn output_dims(&self, input: Dims) -> Result<Dims> {
        let s = self.shape(1, input)?;
        Ok(Dims::new(self.out_channels, s.out_h(), s.out_w()))
    }

    /// Workspace elements forward and backward need for `batch` samples of `input` (a longer
    /// workspace is accepted, so one buffer can serve several layers).
    pub fn workspace_len<T: Real, B: Backend<T>>(
        &self,
        backend: &B,
        batch: usize,
        input: Dims,
    ) -> Result<usize> {
        Ok(backend.conv2d_workspace_len(&self.shape(batch, input)?))
    }

    pub(super) fn check_params(&self, weight: usize, bias: usize) -> Result<()> {
        check_len(&self.name, "weight", self.try_weight_len()?, weight, || {
            format!("{:?}", self.weight_shape())
        })?;
        check_len(&self.name, "bias", self.bias_len(), bias, || {
            format!("[{}]", self.out_channels)
        })
    }

    pub(super) fn check_io(
        &self,
        s: &Conv2dShape,
        what_in: &str,
        input: usize,
        what_out: &str,
        output: usize,
    ) -> Result<()> {
        let dims_in = || format!("[{}, {}, {}, {}]", s.batch, s.in_channels, s.in_h, s.in_w);
        let dims_out = || {
            format!(
                "[{}, {}, {}, {}]",
                s.batch,
                s.out_channels,
                s.out_h(),
                s.out_w()
            )
        };
        check_len(&self.name, what_in, s.input_len(), input, dims_in)?;
        check_len(&self.name, what_out, s.output_len(), output, dims_out)
    }

    pub(super) fn workspace<'w, T>(
        &self,
        needed: usize,
        workspace: &'w mut [T],
    ) -> Result<&'w mut [T]> {
        if workspace.len() < needed {
            return Err(Error::new(format!(
                "{}: workspace has {} elements, needs at least {needed}",
                self.name,
                workspace.len()
            )));
        }
        Ok(&mut workspace[..needed])
    }

    /// `output = conv(input, weight) + bias` for `batch` samples of `input_dims`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward<T: Real, B: Backend<T>>(
        &self,
        backend: &B,
        batch: usize,
        input_dims: Dims,
        input: &[T],
        weight: &[T],
        bias: &[T],
        output: &mut [T],
        workspace: &mut [T],
    ) -> Result<()> {
        let s = self.shape(batch, input_dims)?;
        self.check_params(weight.len(), bias.len())?;
        self.check_io(&s, "input", input.len(), "output", output.len())?;
        let ws = self.workspace(backend.conv2d_workspace_len(&s), workspace)?;
        backend.conv2d_forward(&s, input, weight, Some(bias), output, ws);
        Ok(())
    }

    /// The gradients of the loss with respect to the weight and the bias (overwritten) and, when
    /// `grad_input` is given, the input (a first layer, whose input is the image, skips it).
    #[allow(clippy::too_many_arguments)]
    pub fn backward<T: Real, B: Backend<T>>(
        &self,
        backend: &B,
        batch: usize,
        input_dims: Dims,
        input: &[T],
        weight: &[T],
        grad_output: &[T],
        grad_input: Option<&mut [T]>,
        grad_weight: &mut [T],
        grad_bias: &mut [T],
        workspace: &mut [T],
    ) -> Result<()> {
        let s = self.shape(batch, input_dims)?;
        check_len(
            &self.name,
            "weight",
            self.try_weight_len()?,
            weight.len(),
            || format!("{:?}", self.weight_shape()),
        )?;
        check_len(
            &self.name,
            "weight gradient",
            self.try_weight_len()?,
            grad_weight.len(),
            || format!("{:?}", self.weight_shape()),
        )?;
        check_len(
            &self.name,
            "bias gradient",
            self.bias_len(),
            grad_bias.len(),
            || format!("[{}]", self.out_channels),
        )?;
        self.check_io(
            &s,
            "input",
            input.len(),
            "output gradient",
            grad_output.len(),
        )?;
        if let Some(gi) = &grad_input {
            check_len(
                &self.name,
                "input gradient",
                s.input_len(),
                gi.len(),
                || format!("[{}, {}, {}, {}]", s.batch, s.in_channels, s.in_h, s.in_w),
            )?;
        }
        let ws = self.workspace(backend.conv2d_workspace_len(&s), workspace)?;
        backend.conv2d_backward(
            &s,
            input,
            weight,
            grad_output,
            grad_input,
            grad_weight,
            Some(grad_bias),
            ws,
        );
        Ok(())
    }
}
