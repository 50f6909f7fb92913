//! 2-D max pooling (NCHW, no padding, floor mode) with the argmax PyTorch returns.
//!
//! ## Semantics (PyTorch's `F.max_pool2d(..., return_indices=True)` on CPU)
//!
//! - `out = (in - kernel) / stride + 1` per axis; window `(oy, ox)` covers input rows
//!   `oy * stride_h .. + kernel_h` and columns `ox * stride_w .. + kernel_w`.
//! - The window is scanned row by row; a value replaces the running maximum when it is greater
//!   or when it is NaN. So ties keep the FIRST maximum, and a NaN always wins: the output is NaN
//!   and the argmax is the LAST NaN in scan order (what PyTorch returns; checked against
//!   torch 2.x: a 2x2 window `[1, NaN; NaN, 3]` gives index 2).
//! - `argmax` is the flat index `h * in_w + w` within the input plane.
//! - backward: `grad_input` is zeroed, then each output's gradient is added at its argmax
//!   (adds, so overlapping windows accumulate).
//!
//! ## SIMD
//!
//! The 2x2 stride-2 case (LeNet-5's pooling, on 28x28 and 10x10 planes) has a vector path on
//! each ISA: 16 (AVX-512), 8 (AVX2) or 4 (NEON) outputs at a time, de-interleaving even and odd
//! input columns, with masked (x86) or staged (NEON) loads and stores for the last, partial chunk
//! of each row.
//! It is bit-identical to the reference, argmax included, because it applies the same update
//! rule in the same scan order. Other kernel sizes and strides run the reference loop.
//!
//! [`Pool2dShape`] is shared with average pooling.

pub mod scalar;
pub(crate) mod vector;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;

use crate::{check_len, checked_product, kernel_table, Kernels, ShapeError};

/// The shape of a 2-D pooling: no padding, no dilation, floor mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dShape {
    pub batch: usize,
    pub channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
}

/// The output size along one axis, or why there is none.
fn pool_out_dim(
    shape: &Pool2dShape,
    axis: &str,
    input: usize,
    kernel: usize,
    stride: usize,
) -> Result<usize, ShapeError> {
    let invalid = |what: String| Err(ShapeError::new(format!("pool2d: {what} in {shape:?}")));
    if stride == 0 {
        return invalid(format!("stride_{axis} must be positive, got 0"));
    }
    if kernel == 0 {
        return invalid(format!("kernel_{axis} must be positive, got 0"));
    }
    if input < kernel {
        return invalid(format!(
            "empty output: in_{axis} {input} is smaller than kernel_{axis} {kernel}"
        ));
    }
    Ok((input - kernel) / stride + 1)
}

impl Pool2dShape {
    pub fn new(
        batch: usize,
        channels: usize,
        (in_h, in_w): (usize, usize),
        (kernel_h, kernel_w): (usize, usize),
        (stride_h, stride_w): (usize, usize),
    ) -> Self {
        Pool2dShape {
            batch,
            channels,
            in_h,
            in_w,
            kernel_h,
            kernel_w,
            stride_h,
            stride_w,
        }
    }

    /// `Ok` when the output size is defined and the input and output lengths fit in `usize`
    /// (in checked arithmetic); otherwise the [`ShapeError`] the kernels would panic with.
    pub fn check(&self) -> Result<(), ShapeError> {
        self.try_input_len()?;
        self.try_output_len()?;
        Ok(())
    }

    crate::or_panic_fns! {
        /// `(in_h - kernel_h) / stride_h + 1`.
        ///
        /// # Panics
        /// If `stride_h` or `kernel_h` is 0, or `in_h < kernel_h` (an empty output): programmer
        /// errors.
        pub fn out_h = try_out_h -> usize;
        /// `(in_w - kernel_w) / stride_w + 1`.
        ///
        /// # Panics
        /// As [`Pool2dShape::out_h`], for the width.
        pub fn out_w = try_out_w -> usize;
        /// `batch * channels * in_h * in_w`.
        ///
        /// # Panics
        /// If it, [`Pool2dShape::planes`] or one plane (`in_h * in_w`, even with no planes)
        /// overflows `usize` (the message names the shape and the quantity).
        pub fn input_len = try_input_len -> usize;
        /// Planes of the input and of the output: `batch * channels`.
        ///
        /// # Panics
        /// If it overflows `usize` (the message names the shape and the quantity).
        pub fn planes = try_planes -> usize;
        /// `batch * channels * out_h * out_w`.
        ///
        /// # Panics
        /// As [`Pool2dShape::out_h`], or if it, [`Pool2dShape::planes`] or one plane (`out_h *
        /// out_w`) overflows `usize`.
        pub fn output_len = try_output_len -> usize;
    }

    pub fn try_out_h(&self) -> Result<usize, ShapeError> {
        pool_out_dim(self, "h", self.in_h, self.kernel_h, self.stride_h)
    }

    pub fn try_out_w(&self) -> Result<usize, ShapeError> {
        pool_out_dim(self, "w", self.in_w, self.kernel_w, self.stride_w)
    }

    pub fn try_planes(&self) -> Result<usize, ShapeError> {
        let q = "pool2d: planes (batch * channels)";
        checked_product(self, q, &[self.batch, self.channels])
    }

    /// One input plane, `in_h * in_w` (checked even when there are no planes).
    pub fn try_in_plane_len(&self) -> Result<usize, ShapeError> {
        let q = "pool2d: an input plane (in_h * in_w)";
        checked_product(self, q, &[self.in_h, self.in_w])
    }

    /// One output plane, `out_h * out_w`.
    pub fn try_out_plane_len(&self) -> Result<usize, ShapeError> {
        let q = "pool2d: an output plane (out_h * out_w)";
        checked_product(self, q, &[self.try_out_h()?, self.try_out_w()?])
    }

    pub fn try_input_len(&self) -> Result<usize, ShapeError> {
        let q = "pool2d: input_len (batch * channels * in_h * in_w)";
        checked_product(self, q, &[self.try_planes()?, self.try_in_plane_len()?])
    }

    pub fn try_output_len(&self) -> Result<usize, ShapeError> {
        let q = "pool2d: output_len (batch * channels * out_h * out_w)";
        checked_product(self, q, &[self.try_planes()?, self.try_out_plane_len()?])
    }

    /// Whether this is the 2x2, stride-2 pooling the SIMD paths specialise.
    pub(crate) fn is_2x2_stride_2(&self) -> bool {
        (self.kernel_h, self.kernel_w, self.stride_h, self.stride_w) == (2, 2, 2, 2)
    }
}

kernel_table! {
    /// Per-ISA max-pooling entry points (lengths checked by the caller).
    pub(crate) struct Table {
        forward: unsafe fn(&Pool2dShape, &[f32], &mut [f32], &mut [u32]),
        backward: unsafe fn(&Pool2dShape, &[f32], &[u32], &mut [f32]),
        relu_forward: unsafe fn(&Pool2dShape, &[f32], &mut [f32], &mut [u32]),
        relu_backward: unsafe fn(&Pool2dShape, &[f32], &[u32], &[f32], &mut [f32]),
    }
}

crate::simd::isa_table! {
    Table {
        // The references are safe fns: they coerce to the table's `unsafe fn` pointers.
        forward: scalar::forward::<f32>,
        backward: scalar::backward::<f32>,
        relu_forward: scalar::relu_forward::<f32>,
        relu_backward: scalar::relu_backward::<f32>,
    },
    avx2: avx2, avx512: avx512, neon: neon
}

/// Which of a shape's lengths an argument must have.
#[derive(Clone, Copy)]
enum Side {
    In,
    Out,
}
use Side::{In, Out};

/// An entry point's checks, in order: the shape (every length, in checked arithmetic, before
/// any is used), each `(side, argument, length)` in the order given, and the plane's size.
/// Messages name `what: argument`, formatted only when a check fails.
#[track_caller]
fn check_call(what: &str, shape: &Pool2dShape, lens: &[(Side, &str, usize)]) {
    crate::or_panic(shape.check());
    let (input, output) = (shape.input_len(), shape.output_len());
    for &(side, name, got) in lens {
        let want = if let In = side { input } else { output };
        if want != got {
            check_len(&format!("{what}: {name}"), want, got);
        }
    }
    check_plane(what, shape);
}

/// Checks the plane fits the u32 argmax (and the i32 lanes the SIMD paths compute it in).
#[track_caller]
fn check_plane(what: &str, shape: &Pool2dShape) {
    let plane = shape.in_h.checked_mul(shape.in_w);
    assert!(
        plane.is_some_and(|p| p <= i32::MAX as usize),
        "{what}: an input plane of {}x{} is too large for a u32 argmax",
        shape.in_h,
        shape.in_w
    );
}

impl Kernels {
    /// Max pooling forward: overwrites `output` with each window's maximum and `argmax` with its
    /// index `h * in_w + w` within the input plane (see the module docs: ties take the first
    /// maximum, NaN wins).
    ///
    /// # Panics
    /// If `input` is not [`Pool2dShape::input_len`] long or `output` / `argmax` not
    /// [`Pool2dShape::output_len`] (the message names the argument, the expected and the actual
    /// length); if a stride or kernel size is 0 or the output would be empty; if an input plane
    /// has more than `i32::MAX` elements.
    #[track_caller]
    pub fn maxpool2d_forward(
        &self,
        shape: &Pool2dShape,
        input: &[f32],
        output: &mut [f32],
        argmax: &mut [u32],
    ) {
        let lens = [
            (In, "input", input.len()),
            (Out, "output", output.len()),
            (Out, "argmax", argmax.len()),
        ];
        check_call("maxpool2d_forward", shape, &lens);
        // SAFETY: `self` was built by `Kernels::for_isa`, which checked the CPU supports the
        // table's ISA, and every length was checked against the shape above.
        unsafe { (self.maxpool.forward)(shape, input, output, argmax) }
    }

    /// Max pooling backward: overwrites `grad_input` with zeros, then adds each output's
    /// gradient at its `argmax` (from [`Kernels::maxpool2d_forward`] with the same shape).
    ///
    /// # Panics
    /// If `grad_output` / `argmax` are not [`Pool2dShape::output_len`] long or `grad_input` not
    /// [`Pool2dShape::input_len`]; if the shape is invalid (as for the forward); if an argmax
    /// index lies outside its own pooling window (it did not come from the forward pass).
    #[track_caller]
    pub fn maxpool2d_backward(
        &self,
        shape: &Pool2dShape,
        grad_output: &[f32],
        argmax: &[u32],
        grad_input: &mut [f32],
    ) {
        let lens = [
            (Out, "grad_output", grad_output.len()),
            (Out, "argmax", argmax.len()),
            (In, "grad_input", grad_input.len()),
        ];
        check_call("maxpool2d_backward", shape, &lens);
        // SAFETY: as in `maxpool2d_forward`.
        unsafe { (self.maxpool.backward)(shape, grad_output, argmax, grad_input) }
    }

    /// Max pooling of `relu(input)`, the chain `F.max_pool2d(F.relu(x), ..., return_indices=True)`
    /// without the ReLU's output in memory: bit-identical to [`Kernels::relu_forward`] followed
    /// by [`Kernels::maxpool2d_forward`] on the same table, `argmax` included (the raw window's
    /// scan, corrected where the window holds no positive element and no NaN: the ReLU's
    /// window is then all zeros, whose scan keeps its first element).
    ///
    /// # Panics
    /// As [`Kernels::maxpool2d_forward`].
    #[track_caller]
    pub fn maxpool2d_relu_forward(
        &self,
        shape: &Pool2dShape,
        input: &[f32],
        output: &mut [f32],
        argmax: &mut [u32],
    ) {
        let lens = [
            (In, "input", input.len()),
            (Out, "output", output.len()),
            (Out, "argmax", argmax.len()),
        ];
        check_call("maxpool2d_relu_forward", shape, &lens);
        // SAFETY: as in `maxpool2d_forward`.
        unsafe { (self.maxpool.relu_forward)(shape, input, output, argmax) }
    }

    /// The backward of [`Kernels::maxpool2d_relu_forward`]: overwrites `grad_input`, the
    /// gradient with respect to the ReLU's input, with zeros, then adds each output's gradient
    /// at its `argmax` where the forward's `output` there is above 0 (or NaN), the ReLU
    /// backward's mask. Bit-identical to [`Kernels::maxpool2d_backward`] followed by
    /// [`Kernels::relu_backward`] with the ReLU's output, which it never reads: the ReLU's
    /// output at an argmax is the pooled output, and elsewhere the gradient is 0 either way.
    ///
    /// # Panics
    /// As [`Kernels::maxpool2d_backward`], or if `output` is not [`Pool2dShape::output_len`]
    /// long.
    #[track_caller]
    pub fn maxpool2d_relu_backward(
        &self,
        shape: &Pool2dShape,
        grad_output: &[f32],
        argmax: &[u32],
        output: &[f32],
        grad_input: &mut [f32],
    ) {
        let lens = [
            (Out, "grad_output", grad_output.len()),
            (Out, "argmax", argmax.len()),
            (Out, "output", output.len()),
            (In, "grad_input", grad_input.len()),
        ];
        check_call("maxpool2d_relu_backward", shape, &lens);
        // SAFETY: as in `maxpool2d_forward`; `output` is as long as `grad_output` (checked).
        unsafe { (self.maxpool.relu_backward)(shape, grad_output, argmax, output, grad_input) }
    }
}
