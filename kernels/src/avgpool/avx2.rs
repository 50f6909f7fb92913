//! Average pooling on AVX2 and FMA: `vector.rs` on `__m256`.

use super::{vector, Pool2dShape};

crate::simd::isa_fns! { "avx2,fma", core::arch::x86_64::__m256;
    fn forward(shape: &Pool2dShape, input: &[f32], output: &mut [f32]) {
        vector::forward::<V>(shape, input, output)
    }
    fn backward(shape: &Pool2dShape, grad_output: &[f32], grad_input: &mut [f32]) {
        vector::backward::<V>(shape, grad_output, grad_input)
    }
}
