//! ReLU on AVX2 and FMA: the bodies of `vector.rs` on `__m256`.

use super::vector;

crate::simd::isa_fns! { "avx2,fma", core::arch::x86_64::__m256;
    fn forward(input: &[f32], output: &mut [f32]) { vector::forward::<V>(input, output) }
    fn forward_in_place(x: &mut [f32]) { vector::forward_in_place::<V>(x) }
    fn backward(output: &[f32], grad_output: &[f32], grad_input: &mut [f32]) {
        vector::backward::<V>(output, grad_output, grad_input)
    }
}
