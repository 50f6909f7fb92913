//! SGD with momentum, in place: one pass over parameter, gradient and momentum buffer, in
//! PyTorch's order of operations and with its roundings.
//!
//! # What one step does (PyTorch's `torch.optim.SGD`)
//!
//! ```text
//! g = -grad if maximize else grad
//! if weight_decay != 0:  g = g + weight_decay * p                  (one rounding: fused)
//! if momentum != 0:
//!     first step:        buf = g                                  (no dampening)
//!     later steps:       buf = (momentum * buf) + (1 - dampening) * g   (product rounded, then fused)
//!     g = g + momentum * buf  if nesterov  else  buf               (fused)
//! p = p + (-lr) * g                                                (fused)
//! ```
//!
//! PyTorch 2.15 on the CPU runs this with `Tensor.add(other, alpha=a)` and `mul_`; its CPU
//! `add` with `alpha` evaluates `self + alpha * other` with a single rounding (a fused
//! multiply-add, measured bit for bit against f64-emulated fused and unfused forms: fused
//! matches every element, unfused about 90%), and `mul_` by a scalar rounds once. The
//! hyperparameters are Python floats (f64) that PyTorch rounds to f32 when it uses them:
//! `weight_decay`, `momentum`, `1 - dampening` (computed in f64, then rounded) and `-lr` (the
//! same). The kernel does exactly those operations, so it agrees with PyTorch's default path
//! within 2 ulp per step (the golden-fixture tests observe 0 ulp). On the CPU PyTorch's default
//! is the per-tensor loop (`foreach` defaults to off off-GPU); its `foreach` path performs the
//! same operations and gives the same bits.
//!
//! # The textbook form
//!
//! Tutorials teach `v = momentum * v + lr * g; p = p - v`. With a constant learning rate it is
//! PyTorch's form scaled: `v = lr * buf`, so the two follow the same trajectory in exact
//! arithmetic; in f32 they differ only by rounding (the `sgd` tests observe a largest relative
//! parameter difference of 2e-7 over 200 steps of momentum 0.9 on a quadratic, and assert
//! below 1e-5). When the learning rate changes mid-run they part: PyTorch's buffer holds
//! gradients and the new rate applies to all of it at once, while the textbook velocity still
//! carries the old rate's steps and decays them over about `1 / (1 - momentum)` steps (the
//! same test, lr 0.05 dropped to 0.005 at step 20: a relative gap of 0.7 within the next 20
//! steps, asserted above 1e-2).

//!
//! # Kernels
//!
//! Scalar (the reference) and one body over the SIMD vocabulary (`vector.rs`), instantiated
//! for AVX2+FMA (8 lanes), AVX-512 (16 lanes) and NEON (4 lanes): the same operations per
//! element, so every ISA gives the reference's bits. The body first peels the lanes before
//! `p`'s vector-size boundary with a first-`n` vector, so the main loop never splits a cache
//! line when `g` and the buffer share `p`'s offset (as `simdnet::optim::Sgd` arranges; split
//! accesses cost the step a large share of its cache-resident rate, `benches/README.md`); the
//! tail goes the same way. The step moves 20 bytes per parameter, so it runs at the speed of
//! the cache or memory holding the buffers.

pub mod scalar;
mod vector;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;

use crate::{check_len, kernel_table, Kernels};
use core::fmt;

/// PyTorch's `SGD` hyperparameters, as Python floats (f64).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdOptions {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub maximize: bool,
}

impl SgdOptions {
    /// Plain SGD with learning rate `lr`: no momentum, dampening, weight decay, Nesterov or
    /// maximize.
    pub fn new(lr: f64) -> Self {
        SgdOptions {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }
    }

    /// PyTorch's checks, in its order.
    ///
    /// # Errors
    /// `lr < 0`, `momentum < 0`, `weight_decay < 0`, or Nesterov without a positive momentum
    /// and zero dampening. (NaN passes, as in PyTorch.)
    pub fn validate(&self) -> Result<(), SgdError> {
        if self.lr < 0.0 {
            return Err(SgdError::LearningRate(self.lr));
        }
        if self.momentum < 0.0 {
            return Err(SgdError::Momentum(self.momentum));
        }
        if self.weight_decay < 0.0 {
            return Err(SgdError::WeightDecay(self.weight_decay));
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(SgdError::Nesterov);
        }
        Ok(())
    }

    /// The f32 values PyTorch computes with.
    pub(crate) fn coefficients(&self) -> Coefficients {
        Coefficients {
            neg_lr: (-self.lr) as f32,
            momentum: self.momentum as f32,
            one_minus_dampening: (1.0 - self.dampening) as f32,
            weight_decay: self.weight_decay as f32,
            use_weight_decay: self.weight_decay != 0.0,
            use_momentum: self.momentum != 0.0,
            nesterov: self.nesterov,
            maximize: self.maximize,
        }
    }
}

/// An invalid hyperparameter, in PyTorch's words.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SgdError {
    LearningRate(f64),
    Momentum(f64),
    WeightDecay(f64),
    Nesterov,
}

impl fmt::Display for SgdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SgdError::LearningRate(v) => write!(f, "Invalid learning rate: {v}"),
            SgdError::Momentum(v) => write!(f, "Invalid momentum value: {v}"),
            SgdError::WeightDecay(v) => write!(f, "Invalid weight_decay value: {v}"),
            SgdError::Nesterov => {
                write!(
                    f,
                    "Nesterov momentum requires a momentum and zero dampening"
                )
            }
        }
    }
}

impl std::error::Error for SgdError {}

/// A step's f32 constants and switches (PyTorch's roundings of the f64 options).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Coefficients {
    pub neg_lr: f32,
    pub momentum: f32,
    pub one_minus_dampening: f32,
    pub weight_decay: f32,
    pub use_weight_decay: bool,
    pub use_momentum: bool,
    pub nesterov: bool,
    pub maximize: bool,
}

kernel_table! {
    /// Per-ISA SGD step.
    pub(crate) struct Table {
        step: unsafe fn(&Coefficients, &mut [f32], &[f32], Option<&mut [f32]>, bool),
    }
}

/// Safety: the scalar reference is safe for any checked arguments.
unsafe fn scalar_step(
    c: &Coefficients,
    param: &mut [f32],
    grad: &[f32],
    buffer: Option<&mut [f32]>,
    first: bool,
) {
    scalar::step_with(c, param, grad, buffer, first);
}

crate::simd::isa_table! {
    Table { step: scalar_step },
    avx2: avx2, avx512: avx512, neon: neon
}

/// Checks a step's lengths and that a buffer is given exactly when momentum is used.
#[track_caller]
pub(crate) fn check_step<T>(options: &SgdOptions, param: &[T], grad: &[T], buffer: Option<&[T]>) {
    check_len("sgd_step: grad", param.len(), grad.len());
    match (options.momentum != 0.0, buffer) {
        (true, Some(b)) => check_len("sgd_step: momentum_buffer", param.len(), b.len()),
        (true, None) => panic!(
            "sgd_step: momentum {} needs a momentum buffer",
            options.momentum
        ),
        (false, Some(_)) => panic!("sgd_step: a momentum buffer was given but momentum is 0"),
        (false, None) => {}
    }
}

impl Kernels {
    /// One SGD step for one tensor, in place (see the [module docs](crate::sgd) for the exact
    /// operations). `momentum_buffer` is `None` exactly when `momentum == 0`; `first_step`
    /// makes the buffer a copy of the (decayed, maybe negated) gradient, as PyTorch does when
    /// it has no buffer yet. The options are not validated here: call
    /// [`SgdOptions::validate`] once when they are set.
    ///
    /// # Panics
    /// If `grad` or `momentum_buffer` is not as long as `param`, or a buffer is given without
    /// momentum or missing with it.
    pub fn sgd_step(
        &self,
        options: &SgdOptions,
        param: &mut [f32],
        grad: &[f32],
        momentum_buffer: Option<&mut [f32]>,
        first_step: bool,
    ) {
        check_step(options, param, grad, momentum_buffer.as_deref());
        let c = options.coefficients();
        // SAFETY: `self` was built by `Kernels::for_isa` (the CPU has the ISA); all lengths
        // were checked above.
        unsafe { (self.sgd.step)(&c, param, grad, momentum_buffer, first_step) }
    }
}
