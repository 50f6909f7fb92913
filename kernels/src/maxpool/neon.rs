//! Max pooling on NEON: `vector.rs` on `float32x4_t`.

use super::{vector, Pool2dShape};

crate::simd::isa_fns! { "neon", core::arch::aarch64::float32x4_t;
    fn forward(shape: &Pool2dShape, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
        vector::forward::<V>(shape, x, y, argmax)
    }
    fn backward(shape: &Pool2dShape, g: &[f32], argmax: &[u32], gi: &mut [f32]) {
        vector::backward::<V>(shape, g, argmax, gi)
    }
}
