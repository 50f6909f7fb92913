//! A convolution block, `MaxPool2d(ReLU(Conv2d(x)))` (LeNet-5's two), run fused: the forward
//! writes the pooled output and its argmax, never the convolution's output; the backward gets
//! the convolution's output gradient from them in one pass (ReLU and max-pool backward), then
//! runs the convolution's backward. Bit-identical to the three layers one after the other on
//! the same backend (`simdnet-kernels`' fused kernels are tested against the chain).

use super::{check_len, Conv2d, Dims, MaxPool2d};
use crate::backend::Backend;
use crate::{Error, Result};
use simdnet_kernels::conv::PooledConv2dShape;
use simdnet_kernels::Real;

impl Conv2d {
    /// The fused block's kernel shape for `batch` samples of `input`, or an error naming what
    /// does not fit (the convolution's or the pooling's).
    pub fn pooled_shape(
        &self,
        pool: &MaxPool2d,
        batch: usize,
        input: Dims,
    ) -> Result<PooledConv2dShape> {
        let conv = self.shape(batch, input)?;
        let out = Dims::new(self.out_channels, conv.out_h(), conv.out_w());
        let p = pool.shape(batch, out)?;
        PooledConv2dShape::try_new(conv, (p.kernel_h, p.kernel_w), (p.stride_h, p.stride_w))
            .map_err(|e| Error::new(format!("{}: {e}", self.name)))
    }

    /// Workspace elements [`Conv2d::forward_relu_pool`] needs for `batch` samples of `input`.
    pub fn relu_pool_workspace_len<T: Real, B: Backend<T>>(
        &self,
        backend: &B,
        pool: &MaxPool2d,
        batch: usize,
        input: Dims,
    ) -> Result<usize> {
        let s = self.pooled_shape(pool, batch, input)?;
        Ok(backend.conv2d_relu_maxpool2d_workspace_len(&s))
    }

    /// `pooled`, `argmax` = `pool(relu(conv(input, weight) + bias))` for `batch` samples of
    /// `input_dims`, with the pooling's argmax (as [`MaxPool2d::forward`] records it).
    #[allow(clippy::too_many_arguments)]
    pub fn forward_relu_pool<T: Real, B: Backend<T>>(
        &self,
        backend: &B,
        pool: &MaxPool2d,
        batch: usize,
        input_dims: Dims,
        (input, weight, bias): (&[T], &[T], &[T]),
        pooled: &mut [T],
        argmax: &mut [u32],
        workspace: &mut [T],
    ) -> Result<()> {
        let s = self.pooled_shape(pool, batch, input_dims)?;
        self.check_params(weight.len(), bias.len())?;
        let c = &s.conv;
        let (name, p) = (&self.name, &s.pool);
        let dims = || {
            format!(
                "[{}, {}, {}, {}]",
                p.batch,
                p.channels,
                p.out_h(),
                p.out_w()
            )
        };
        check_len(name, "input", c.input_len(), input.len(), || {
            format!("[{}, {}, {}, {}]", c.batch, c.in_channels, c.in_h, c.in_w)
        })?;
        check_len(name, "pooled output", p.output_len(), pooled.len(), dims)?;
        check_len(name, "argmax", p.output_len(), argmax.len(), || {
            "one per pooled output".into()
        })?;
        let ws = self.workspace(backend.conv2d_relu_maxpool2d_workspace_len(&s), workspace)?;
        backend.conv2d_relu_maxpool2d_forward(&s, input, weight, Some(bias), pooled, argmax, ws);
        Ok(())
    }
}

impl MaxPool2d {
    /// The backward of the pooling of a ReLU's output: `grad_input` (overwritten), the
    /// gradient with respect to the ReLU's input, gets each output's gradient at its argmax
    /// where the pooled `output` is positive, zero elsewhere.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_relu<T: Real, B: Backend<T>>(
        &self,
        backend: &B,
        batch: usize,
        input_dims: Dims,
        (grad_output, argmax, output): (&[T], &[u32], &[T]),
        grad_input: &mut [T],
    ) -> Result<()> {
        let s = self.shape(batch, input_dims)?;
        self.check_backward(&s, grad_output, argmax, grad_input)?;
        check_len(&self.name, "output", s.output_len(), output.len(), || {
            "one per output".into()
        })?;
        backend.maxpool2d_relu_backward(&s, grad_output, argmax, output, grad_input);
        Ok(())
    }
}
