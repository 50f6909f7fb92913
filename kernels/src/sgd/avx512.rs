//! The SGD step on AVX-512F, AVX2 and FMA: the generic body of `vector.rs` on `__m512`.

use super::{vector, Coefficients};
use core::arch::x86_64::__m512;

/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA; `grad` and `buffer` as long as `param`; a buffer exactly
/// when `c.use_momentum`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn step(
    c: &Coefficients,
    param: &mut [f32],
    grad: &[f32],
    buffer: Option<&mut [f32]>,
    first: bool,
) {
    // SAFETY: the features are enabled on this function; lengths are the caller's contract.
    unsafe { vector::step::<__m512>(c, param, grad, buffer, first) }
}
