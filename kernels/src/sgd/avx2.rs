//! The SGD step on AVX2 and FMA: the body of `vector.rs` on `__m256`.

use super::{vector, Coefficients};

crate::simd::isa_fns! { "avx2,fma", core::arch::x86_64::__m256;
    fn step(c: &Coefficients, p: &mut [f32], g: &[f32], b: Option<&mut [f32]>, first: bool) {
        vector::step::<V>(c, p, g, b, first)
    }
}
