//! `exp` and `ln` on AVX2 and FMA: the bodies of `vector.rs` on `__m256`.

use super::vector::{map, Exp, Ln};

crate::simd::isa_fns! { "avx2,fma", core::arch::x86_64::__m256;
    fn exp(x: &[f32], y: &mut [f32]) { map::<V, Exp>(x, y) }
    fn ln(x: &[f32], y: &mut [f32]) { map::<V, Ln>(x, y) }
}
