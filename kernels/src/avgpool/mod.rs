//! 2-D average pooling (NCHW, no padding, floor mode), PyTorch's `F.avg_pool2d` with
//! `padding=0`: each output is the sum of its `kernel_h x kernel_w` window, in scan order, divided
//! by `kernel_h * kernel_w`. The backward pass overwrites `grad_input` with zeros, then adds
//! `grad_output / (kernel_h * kernel_w)` to every element of each window (overlapping windows
//! accumulate). The shape is [`Pool2dShape`], shared with max pooling.
//!
//! ## SIMD
//!
//! The 2x2 stride-2 case (LeNet-5's) has a vector path on each ISA (8 or 4 outputs at a time,
//! even and odd columns de-interleaved); it adds in the reference's order and divides, so it is
//! bit-identical to the reference. Other kernel sizes and strides run the reference loop.

pub mod scalar;
mod vector;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "aarch64")]
mod neon;

pub use crate::maxpool::Pool2dShape;
use crate::{check_len, kernel_table, Kernels};

kernel_table! {
    /// Per-ISA average-pooling entry points (lengths checked by the caller).
    pub(crate) struct Table {
        forward: unsafe fn(&Pool2dShape, &[f32], &mut [f32]),
        backward: unsafe fn(&Pool2dShape, &[f32], &mut [f32]),
    }
}

/// Safety: the scalar reference is safe for any arguments.
unsafe fn scalar_forward(shape: &Pool2dShape, input: &[f32], output: &mut [f32]) {
    scalar::forward(shape, input, output);
}

/// Safety: the scalar reference is safe for any arguments.
unsafe fn scalar_backward(shape: &Pool2dShape, grad_output: &[f32], grad_input: &mut [f32]) {
    scalar::backward(shape, grad_output, grad_input);
}

crate::simd::isa_table! {
    Table { forward: scalar_forward, backward: scalar_backward },
    avx2: avx2, avx512: avx2, neon: neon
}

impl Kernels {
    /// Average pooling forward: overwrites `output` with each window's mean.
    ///
    /// # Panics
    /// If `input` is not [`Pool2dShape::input_len`] long or `output` not
    /// [`Pool2dShape::output_len`] (the message names the argument, the expected and the actual
    /// length), or if a stride or kernel size is 0 or the output would be empty.
    #[track_caller]
    pub fn avgpool2d_forward(&self, shape: &Pool2dShape, input: &[f32], output: &mut [f32]) {
        crate::or_panic(shape.check()); // every length, checked, before any is used
        check_len("avgpool2d_forward: input", shape.input_len(), input.len());
        check_len(
            "avgpool2d_forward: output",
            shape.output_len(),
            output.len(),
        );
        // SAFETY: `self` was built by `Kernels::for_isa`, which checked the CPU supports the
        // table's ISA, and the lengths were checked against the shape above.
        unsafe { (self.avgpool.forward)(shape, input, output) }
    }

    /// Average pooling backward: overwrites `grad_input`.
    ///
    /// # Panics
    /// If `grad_output` is not [`Pool2dShape::output_len`] long or `grad_input` not
    /// [`Pool2dShape::input_len`], or if the shape is invalid (as for the forward).
    #[track_caller]
    pub fn avgpool2d_backward(
        &self,
        shape: &Pool2dShape,
        grad_output: &[f32],
        grad_input: &mut [f32],
    ) {
        crate::or_panic(shape.check()); // every length, checked, before any is used
        check_len(
            "avgpool2d_backward: grad_output",
            shape.output_len(),
            grad_output.len(),
        );
        check_len(
            "avgpool2d_backward: grad_input",
            shape.input_len(),
            grad_input.len(),
        );
        // SAFETY: as in `avgpool2d_forward`.
        unsafe { (self.avgpool.backward)(shape, grad_output, grad_input) }
    }
}
