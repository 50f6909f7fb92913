//! Max pooling on AVX-512: `vector.rs` on `__m512` (16 outputs per chunk: a 14-wide row in one).

use super::{vector, Pool2dShape};

crate::simd::isa_fns! { "avx512f,avx2,fma", core::arch::x86_64::__m512;
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
