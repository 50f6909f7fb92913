//! Max pooling on NEON: `vector.rs` on `float32x4_t`.

use super::{vector, Pool2dShape};

crate::simd::isa_fns! { "neon", core::arch::aarch64::float32x4_t;
    fn forward(shape: &Pool2dShape, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
        vector::forward::<V, false>(shape, x, y, argmax)
    }
    fn backward(shape: &Pool2dShape, g: &[f32], argmax: &[u32], gi: &mut [f32]) {
        vector::backward::<V, false>(shape, g, argmax, &[], gi)
    }
    fn relu_forward(shape: &Pool2dShape, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
        vector::forward::<V, true>(shape, x, y, argmax)
    }
    fn relu_backward(shape: &Pool2dShape, g: &[f32], argmax: &[u32], y: &[f32], gi: &mut [f32]) {
        vector::backward::<V, true>(shape, g, argmax, y, gi)
    }
}
