//! Bias add and backward on NEON: the bodies of `vector.rs` on `float32x4_t`.

use super::vector;

crate::simd::isa_fns! { "neon", core::arch::aarch64::float32x4_t;
    fn add(x: &mut [f32], bias: &[f32], batch: usize, spatial: usize) {
        vector::add::<V>(x, bias, batch, spatial)
    }
    fn backward(grad_output: &[f32], grad_bias: &mut [f32], batch: usize, spatial: usize) {
        vector::backward::<V>(grad_output, grad_bias, batch, spatial)
    }
}
