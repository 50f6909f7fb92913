//! Bias add and backward on AVX2 and FMA: the bodies of `vector.rs` on `__m256`.

use super::vector;

crate::simd::isa_fns! { "avx2,fma", core::arch::x86_64::__m256;
    fn add(x: &mut [f32], bias: &[f32], batch: usize, spatial: usize) {
        vector::add::<V>(x, bias, batch, spatial)
    }
    fn backward(grad_output: &[f32], grad_bias: &mut [f32], batch: usize, spatial: usize) {
        vector::backward::<V>(grad_output, grad_bias, batch, spatial)
    }
}
