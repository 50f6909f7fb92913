//! Max pooling on AVX2 and FMA: `vector.rs` on `__m256`.

use super::{vector, Pool2dShape};

crate::simd::isa_fns! { "avx2,fma", core::arch::x86_64::__m256;
    fn forward(shape: &Pool2dShape, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
        vector::forward::<V>(shape, x, y, argmax)
    }
    fn backward(shape: &Pool2dShape, g: &[f32], argmax: &[u32], gi: &mut [f32]) {
        vector::backward::<V>(shape, g, argmax, gi)
    }
}
