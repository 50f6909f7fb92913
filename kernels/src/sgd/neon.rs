//! The SGD step on NEON: the body of `vector.rs` on `float32x4_t`.

use super::{vector, Coefficients};

crate::simd::isa_fns! { "neon", core::arch::aarch64::float32x4_t;
    fn step(c: &Coefficients, p: &mut [f32], g: &[f32], b: Option<&mut [f32]>, first: bool) {
        vector::step::<V>(c, p, g, b, first)
    }
}
