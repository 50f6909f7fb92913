//! `exp` and `ln` on NEON: the bodies of `vector.rs` on `float32x4_t`.

use super::vector::{map, Exp, Ln};

crate::simd::isa_fns! { "neon", core::arch::aarch64::float32x4_t;
    fn exp(x: &[f32], y: &mut [f32]) { map::<V, Exp>(x, y) }
    fn ln(x: &[f32], y: &mut [f32]) { map::<V, Ln>(x, y) }
}
