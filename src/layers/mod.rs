//! Layers on the kernels: [`Conv2d`], [`Linear`], [`MaxPool2d`], [`AvgPool2d`], [`ReLU`],
//! [`Flatten`], each with a forward and a backward pass on any [`Backend`](crate::backend::Backend).
//!
//! A layer holds its hyperparameters only. Parameters, activations, gradients and workspaces are
//! slices the caller owns (LeNet-5 keeps its parameters in one flat vector, and every training
//! thread its own activations), so a training step allocates nothing. Tensors are NCHW, row-major,
//! `batch` samples of `[channels, height, width]` each ([`Dims`]).
//!
//! Every method checks the length of every slice against the shapes before a kernel runs and
//! returns an [`Error`] naming the layer, the argument, the expected and the actual length.

mod avgpool2d;
mod conv2d;
mod conv_relu_pool;
mod flatten;
mod linear;
mod maxpool2d;
mod relu;

pub use avgpool2d::AvgPool2d;
pub use conv2d::Conv2d;
pub use flatten::Flatten;
pub use linear::Linear;
pub use maxpool2d::MaxPool2d;
pub use relu::ReLU;

use crate::rng::Rng;
use crate::{Error, Result};
use simdnet_kernels::Real;

/// The shape of one sample: `[channels, height, width]` (a flat feature vector of `n` values is
/// `[n, 1, 1]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl Dims {
    pub const fn new(channels: usize, height: usize, width: usize) -> Dims {
        Dims {
            channels,
            height,
            width,
        }
    }

    /// A flat vector of `features` values.
    pub const fn flat(features: usize) -> Dims {
        Dims::new(features, 1, 1)
    }

    /// Elements of one sample.
    pub const fn numel(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Elements of one sample, or an error naming the layer when the product overflows.
    pub fn checked_numel(&self, layer: &str) -> Result<usize> {
        let what = format!("a sample of {self}");
        checked_len(layer, &what, &[self.channels, self.height, self.width])
    }

    /// Elements of `batch` samples, or an error on overflow.
    pub fn batch_len(&self, layer: &str, batch: usize) -> Result<usize> {
        let what = format!("batch {batch} of {self}");
        checked_len(layer, &what, &[batch, self.checked_numel(layer)?])
    }
}

impl std::fmt::Display for Dims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {}, {}]", self.channels, self.height, self.width)
    }
}

/// The product of `factors` (0 when one is 0), or an error `"{layer}: {what} overflows: ..."`
/// when it does not fit in `usize`: every length a layer derives from its hyperparameters and
/// the input's dimensions goes through here before it is compared with a slice.
pub(crate) fn checked_len(layer: &str, what: &str, factors: &[usize]) -> Result<usize> {
    if factors.contains(&0) {
        return Ok(0);
    }
    factors
        .iter()
        .try_fold(1usize, |p, &f| p.checked_mul(f))
        .ok_or_else(|| Error::new(format!("{layer}: {what} overflows: {factors:?}")))
}

/// An error unless `actual == expected`: `"{layer}: {what} has {actual} elements, expected
/// {expected} ({detail})"`.
pub(crate) fn check_len(
    layer: &str,
    what: &str,
    expected: usize,
    actual: usize,
    detail: impl FnOnce() -> String,
) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::new(format!(
            "{layer}: {what} has {actual} elements, expected {expected} ({})",
            detail()
        )))
    }
}

/// PyTorch's default initialisation of `Conv2d` and `Linear`: the weights are kaiming-uniform
/// with `a = sqrt(5)`, which is `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`, and the biases the same
/// bound. Values are drawn in f64 and rounded to `T`.
pub(crate) fn init_uniform<T: Real>(rng: &mut Rng, fan_in: usize, values: &mut [T]) {
    let bound = if fan_in == 0 {
        0.0
    } else {
        1.0 / (fan_in as f64).sqrt()
    };
    for v in values {
        *v = T::from_f64(rng.uniform(-bound, bound));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Reference;
    use simdnet_kernels::Kernels;

    fn err(r: Result<()>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn conv2d_refuses_bad_shapes_with_errors_naming_the_layer() {
        let k = Kernels::get();
        let conv = Conv2d::new("conv1", 1, 6, (5, 5)).with_padding(2, 2);
        let dims = Dims::new(1, 28, 28);
        let (w, b) = (vec![0.0f32; 150], vec![0.0f32; 6]);
        let mut out = vec![0.0f32; 2 * 6 * 28 * 28];
        let mut ws = vec![0.0f32; conv.workspace_len(k, 2, dims).unwrap()];
        // Input one element short.
        let short = vec![0.0f32; 2 * 784 - 1];
        let e = err(conv.forward(k, 2, dims, &short, &w, &b, &mut out, &mut ws));
        assert!(
            e.starts_with("conv1: input has 1567 elements, expected 1568"),
            "{e}"
        );
        // Wrong channel count.
        let x = vec![0.0f32; 2 * 784];
        let e = err(conv.forward(k, 2, Dims::new(3, 28, 28), &x, &w, &b, &mut out, &mut ws));
        assert!(e.contains("expected input with 1 channels"), "{e}");
        // Weight of the wrong size.
        let e = err(conv.forward(k, 2, dims, &x, &w[..149], &b, &mut out, &mut ws));
        assert!(e.contains("weight has 149 elements, expected 150"), "{e}");
        // Kernel larger than the padded input.
        let big = Conv2d::new("big", 1, 1, (9, 9));
        assert!(big
            .output_dims(Dims::new(1, 4, 4))
            .unwrap_err()
            .to_string()
            .contains("kernel size"));
        // Workspace too small.
        let e = err(conv.forward(k, 2, dims, &x, &w, &b, &mut out, &mut ws[..10]));
        assert!(e.contains("workspace"), "{e}");
        // And the good call works.
        conv.forward(k, 2, dims, &x, &w, &b, &mut out, &mut ws)
            .unwrap();
    }

    #[test]
    fn linear_pool_relu_flatten_refuse_bad_lengths() {
        let k = Kernels::get();
        let fc = Linear::new("fc2", 120, 84);
        let (w, b) = (vec![0.0f32; 120 * 84], vec![0.0f32; 84]);
        let mut y = vec![0.0f32; 3 * 84];
        let e = err(fc.forward(k, 3, &[0.0; 3 * 120 + 1], &w, &b, &mut y));
        assert!(
            e.starts_with("fc2: input has 361 elements, expected 360"),
            "{e}"
        );
        let mut gw = vec![0.0f32; 10];
        let e = err(fc.backward(k, 3, &[0.0; 360], &w, &y, None, &mut gw, &mut vec![0.0; 84]));
        assert!(e.contains("weight gradient"), "{e}");

        let pool = MaxPool2d::new("pool", (2, 2));
        let dims = Dims::new(2, 4, 4);
        let (mut out, mut am) = (vec![0.0f32; 8], vec![0u32; 8]);
        let e = err(pool.forward(k, 1, dims, &[0.0; 31], &mut out, &mut am));
        assert!(e.contains("input has 31 elements"), "{e}");
        // An argmax outside the plane is refused before the kernel scatters with it.
        let e = err(pool.backward(k, 1, dims, &[0.0; 8], &[16; 8], &mut [0.0; 32]));
        assert!(e.contains("argmax 16"), "{e}");
        assert!(MaxPool2d::new("p", (5, 5)).output_dims(dims).is_err());
        assert!(AvgPool2d::new("p", (0, 2)).output_dims(dims).is_err());

        let relu = ReLU::new("relu");
        assert!(relu.forward(k, &[1.0f32; 4], &mut [0.0; 3]).is_err());
        let flatten = Flatten::new("flatten");
        assert!(flatten
            .forward(1, dims, &[0.0f32; 32], &mut [0.0; 31])
            .is_err());
    }

    /// PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases.
    #[test]
    fn init_is_uniform_within_pytorchs_bound() {
        let conv = Conv2d::new("conv2", 6, 16, (5, 5));
        let mut rng = Rng::new(11);
        let (mut w, mut b) = (vec![0.0f64; conv.weight_len()], vec![0.0f64; 16]);
        conv.init(&mut rng, &mut w, &mut b).unwrap();
        let bound = 1.0 / 150f64.sqrt();
        assert!(w.iter().chain(&b).all(|v| v.abs() <= bound));
        // 2,400 uniform draws: the extremes come close to the bound, the mean near 0 and the
        // variance near bound^2 / 3 (5 standard errors).
        let max = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(max > 0.99 * bound);
        let n = w.len() as f64;
        let mean = w.iter().sum::<f64>() / n;
        let var = w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 5.0 * bound / (3.0 * n).sqrt(), "mean {mean}");
        assert!(
            (var / (bound * bound / 3.0) - 1.0).abs() < 0.1,
            "variance {var}"
        );
        // The reference backend takes the same layers in f64.
        let mut out = vec![0.0f64; 16 * 6 * 6];
        conv.forward(
            &Reference,
            1,
            Dims::new(6, 10, 10),
            &[0.5; 600],
            &w,
            &b,
            &mut out,
            &mut [],
        )
        .unwrap();
    }
}
