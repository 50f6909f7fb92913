//! The reference SGD step: PyTorch's operations one element at a time, generic over `f32` and
//! `f64`.

use super::{check_step, Coefficients, SgdOptions};
use crate::Real;

/// One step (see the [module docs](super)): hyperparameters rounded to `T` as PyTorch rounds
/// them to the tensor's type.
///
/// # Panics
/// As [`Kernels::sgd_step`](crate::Kernels::sgd_step).
pub fn step<T: Real>(
    options: &SgdOptions,
    param: &mut [T],
    grad: &[T],
    momentum_buffer: Option<&mut [T]>,
    first_step: bool,
) {
    check_step(options, param, grad, momentum_buffer.as_deref());
    let neg_lr = T::from_f64(-options.lr);
    let momentum = T::from_f64(options.momentum);
    let one_minus_dampening = T::from_f64(1.0 - options.dampening);
    let weight_decay = T::from_f64(options.weight_decay);
    let mut buffer = momentum_buffer;
    for i in 0..param.len() {
        let mut g = if options.maximize { -grad[i] } else { grad[i] };
        if options.weight_decay != 0.0 {
            g = param[i].mul_add(weight_decay, g);
        }
        if let Some(buf) = buffer.as_deref_mut() {
            buf[i] = if first_step {
                g
            } else {
                g.mul_add(one_minus_dampening, buf[i] * momentum)
            };
            g = if options.nesterov {
                buf[i].mul_add(momentum, g)
            } else {
                buf[i]
            };
        }
        param[i] = g.mul_add(neg_lr, param[i]);
    }
}

/// The scalar table's entry: [`step`] on f32 with precomputed coefficients.
pub(crate) fn step_with(
    c: &Coefficients,
    param: &mut [f32],
    grad: &[f32],
    mut buffer: Option<&mut [f32]>,
    first_step: bool,
) {
    for i in 0..param.len() {
        let mut g = if c.maximize { -grad[i] } else { grad[i] };
        if c.use_weight_decay {
            g = param[i].mul_add(c.weight_decay, g);
        }
        if let Some(buf) = buffer.as_deref_mut() {
            buf[i] = if first_step {
                g
            } else {
                g.mul_add(c.one_minus_dampening, buf[i] * c.momentum)
            };
            g = if c.nesterov {
                buf[i].mul_add(c.momentum, g)
            } else {
                buf[i]
            };
        }
        param[i] = g.mul_add(c.neg_lr, param[i]);
    }
}
