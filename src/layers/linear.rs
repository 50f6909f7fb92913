//! Fully connected layer, as PyTorch's `nn.Linear`: `y = x W^T + b`.

use super::{check_len, checked_len, init_uniform};
use crate::backend::Backend;
use crate::rng::Rng;
use crate::Result;
use simdnet_kernels::gemm::Transpose;
use simdnet_kernels::Real;

/// `nn.Linear(in_features, out_features)` with a bias. The weight is `[out_features,
/// in_features]`, the bias `[out_features]`; input `[batch, in_features]`, output `[batch,
/// out_features]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Linear {
    pub name: String,
    pub in_features: usize,
    pub out_features: usize,
}

impl Linear {
    pub fn new(name: impl Into<String>, in_features: usize, out_features: usize) -> Linear {
        Linear {
            name: name.into(),
            in_features,
            out_features,
        }
    }

    /// `[out_features, in_features]`.
    pub fn weight_shape(&self) -> [usize; 2] {
        [self.out_features, self.in_features]
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
        self.out_features
    }

    /// PyTorch's default initialisation: weight and bias `U(-1/sqrt(in), 1/sqrt(in))`.
    pub fn init<T: Real>(&self, rng: &mut Rng, weight: &mut [T], bias: &mut [T]) -> Result<()> {
        self.check_param("weight", weight.len(), "bias", bias.len())?;
        init_uniform(rng, self.in_features, weight);
        init_uniform(rng, self.in_features, bias);
        Ok(())
    }

    fn check_param(&self, what_w: &str, weight: usize, what_b: &str, bias: usize) -> Result<()> {
        check_len(&self.name, what_w, self.try_weight_len()?, weight, || {
            format!("{:?}", self.weight_shape())
        })?;
        check_len(&self.name, what_b, self.bias_len(), bias, || {
            format!("[{}]", self.out_features)
        })
    }

    fn check_rows(&self, what: &str, features: usize, batch: usize, actual: usize) -> Result<()> {
        let expected = checked_len(&self.name, what, &[batch, features])?;
        check_len(&self.name, what, expected, actual, || {
            format!("[{batch}, {features}]")
        })
    }

    /// `output = input W^T + bias` for `batch` rows (the bias added as the GEMM stores each
    /// element).
    #[allow(clippy::too_many_arguments)]
    pub fn forward<T: Real, B: Backend<T>>(
        &self,
        backend: &B,
        batch: usize,
        input: &[T],
        weight: &[T],
        bias: &[T],
        output: &mut [T],
    ) -> Result<()> {
        self.forward_with(backend, batch, input, weight, bias, output, false)
    }

    /// `output = relu(input W^T + bias)`: this layer followed by `nn.ReLU`, fused (the bias
    /// and the ReLU applied as the GEMM stores each element; the same bits as
    /// [`forward`](Linear::forward) then [`ReLU::forward_in_place`](super::ReLU::forward_in_place)).
    /// The ReLU's backward reads this output, as after the unfused pair.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_relu<T: Real, B: Backend<T>>(
        &self,
        backend: &B,
        batch: usize,
        input: &[T],
        weight: &[T],
        bias: &[T],
        output: &mut [T],
    ) -> Result<()> {
        self.forward_with(backend, batch, input, weight, bias, output, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn forward_with<T: Real, B: Backend<T>>(
        &self,
        backend: &B,
        batch: usize,
        input: &[T],
        weight: &[T],
        bias: &[T],
        output: &mut [T],
        relu: bool,
    ) -> Result<()> {
        self.check_param("weight", weight.len(), "bias", bias.len())?;
        self.check_rows("input", self.in_features, batch, input.len())?;
        self.check_rows("output", self.out_features, batch, output.len())?;
        let (n, i, o) = (batch, self.in_features, self.out_features);
        backend.gemm_bias_relu(
            Transpose::No,
            Transpose::Yes,
            n,
            o,
            i,
            input,
            i,
            weight,
            i,
            output,
            o,
            bias,
            relu,
        );
        Ok(())
    }

    /// `grad_weight = grad_output^T input`, `grad_bias = sum of grad_output's rows` (both
    /// overwritten) and, when given, `grad_input = grad_output W`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<T: Real, B: Backend<T>>(
        &self,
        backend: &B,
        batch: usize,
        input: &[T],
        weight: &[T],
        grad_output: &[T],
        grad_input: Option<&mut [T]>,
        grad_weight: &mut [T],
        grad_bias: &mut [T],
    ) -> Result<()> {
        self.check_param("weight", weight.len(), "bias gradient", grad_bias.len())?;
        check_len(
            &self.name,
            "weight gradient",
            self.try_weight_len()?,
            grad_weight.len(),
            || format!("{:?}", self.weight_shape()),
        )?;
        self.check_rows("input", self.in_features, batch, input.len())?;
        self.check_rows(
            "output gradient",
            self.out_features,
            batch,
            grad_output.len(),
        )?;
        if let Some(gi) = &grad_input {
            self.check_rows("input gradient", self.in_features, batch, gi.len())?;
        }
        let (n, i, o) = (batch, self.in_features, self.out_features);
        if let Some(gi) = grad_input {
            backend.gemm(
                Transpose::No,
                Transpose::No,
                n,
                i,
                o,
                T::ONE,
                grad_output,
                o,
                weight,
                i,
                T::ZERO,
                gi,
                i,
            );
        }
        backend.gemm(
            Transpose::Yes,
            Transpose::No,
            o,
            i,
            n,
            T::ONE,
            grad_output,
            o,
            input,
            i,
            T::ZERO,
            grad_weight,
            i,
        );
        backend.bias_backward(grad_output, grad_bias, n, 1);
        Ok(())
    }
}
