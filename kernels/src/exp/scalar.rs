//! The references: `std`'s `exp` and `ln` with the edge rules of the SIMD kernels.

use super::{EXP_MAX_INPUT, EXP_MIN_INPUT};
use crate::Real;

/// `exp(x)` with the kernel's edges: below [`EXP_MIN_INPUT`] 0, above [`EXP_MAX_INPUT`] `+inf`.
#[inline]
pub fn exp_one<T: Real>(x: T) -> T {
    if x < T::from_f64(EXP_MIN_INPUT as f64) {
        T::ZERO
    } else if x > T::from_f64(EXP_MAX_INPUT as f64) {
        T::INFINITY
    } else {
        x.exp()
    }
}

/// `y[i] = exp(x[i])` (see [`exp_one`]).
///
/// # Panics
/// If the lengths differ.
pub fn exp<T: Real>(x: &[T], y: &mut [T]) {
    assert_eq!(x.len(), y.len(), "exp: x and y lengths differ");
    for (y, &x) in y.iter_mut().zip(x) {
        *y = exp_one(x);
    }
}

/// `y[i] = ln(x[i])`.
///
/// # Panics
/// If the lengths differ.
pub fn ln<T: Real>(x: &[T], y: &mut [T]) {
    assert_eq!(x.len(), y.len(), "ln: x and y lengths differ");
    for (y, &x) in y.iter_mut().zip(x) {
        *y = x.ln();
    }
}
