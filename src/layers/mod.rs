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

    /// Elements of `batch` samples, or an error on overflow.
    pub fn batch_len(&self, layer: &str, batch: usize) -> Result<usize> {
        self.numel()
            .checked_mul(batch)
            .ok_or_else(|| Error::new(format!("{layer}: batch {batch} of {self} overflows")))
    }
}

impl std::fmt::Display for Dims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {}, {}]", self.channels, self.height, self.width)
    }
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
