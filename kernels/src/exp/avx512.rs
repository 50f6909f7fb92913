//! `exp` and `ln` on AVX-512F, AVX2 and FMA: the bodies of `vector.rs` on `__m512`.

use super::vector::{map, Exp, Ln};

crate::simd::isa_fns! { "avx512f,avx2,fma", core::arch::x86_64::__m512;
    fn exp(x: &[f32], y: &mut [f32]) { map::<V, Exp>(x, y) }
    fn ln(x: &[f32], y: &mut [f32]) { map::<V, Ln>(x, y) }
}
