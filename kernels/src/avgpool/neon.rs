//! Average pooling on NEON: `vector.rs` on `float32x4_t`.

use super::{vector, Pool2dShape};

crate::simd::isa_fns! { "neon", core::arch::aarch64::float32x4_t;
    fn forward(shape: &Pool2dShape, input: &[f32], output: &mut [f32]) {
        vector::forward::<V>(shape, input, output)
    }
    fn backward(shape: &Pool2dShape, grad_output: &[f32], grad_input: &mut [f32]) {
        vector::backward::<V>(shape, grad_output, grad_input)
    }
}
