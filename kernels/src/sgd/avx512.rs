//! The SGD step on AVX-512F, AVX2 and FMA: the body of `vector.rs` on `__m512`.

use super::{vector, Coefficients};

crate::simd::isa_fns! { "avx512f,avx2,fma", core::arch::x86_64::__m512;
    fn step(c: &Coefficients, p: &mut [f32], g: &[f32], b: Option<&mut [f32]>, first: bool) {
        vector::step::<V>(c, p, g, b, first)
    }
}
