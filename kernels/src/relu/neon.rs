//! ReLU on NEON: the bodies of `vector.rs` on `float32x4_t`.

use super::vector;

crate::simd::isa_fns! { "neon", core::arch::aarch64::float32x4_t;
    fn forward(input: &[f32], output: &mut [f32]) { vector::forward::<V>(input, output) }
    fn forward_in_place(x: &mut [f32]) { vector::forward_in_place::<V>(x) }
    fn backward(output: &[f32], grad_output: &[f32], grad_input: &mut [f32]) {
        vector::backward::<V>(output, grad_output, grad_input)
    }
}
