//! The max-pooling reference, generic over `f32` and `f64`.

use super::Pool2dShape;
use crate::relu::scalar::{relu, relu_grad};
use crate::{check_len, Real};
use core::ops::Range;

/// One output of a pooling and its window.
pub(crate) struct Window {
    /// The input plane, as a range of the input.
    pub plane: Range<usize>,
    /// The output's index in the output.
    pub out: usize,
    /// The window's top-left element within the plane.
    pub first: usize,
    pub oy: usize,
    pub ox: usize,
}

/// Calls `f` for every output of the pooling, in output order.
#[inline(always)]
pub(crate) fn for_each_window(shape: &Pool2dShape, mut f: impl FnMut(Window)) {
    let (oh, ow) = (shape.out_h(), shape.out_w());
    let in_plane = shape.in_h * shape.in_w;
    for p in 0..shape.batch * shape.channels {
        for oy in 0..oh {
            for ox in 0..ow {
                f(Window {
                    plane: p * in_plane..(p + 1) * in_plane,
                    out: (p * oh + oy) * ow + ox,
                    first: oy * shape.stride_h * shape.in_w + ox * shape.stride_w,
                    oy,
                    ox,
                });
            }
        }
    }
}

/// Whether `v` replaces the running maximum `best`: PyTorch's `v > best || isnan(v)`.
#[inline(always)]
pub fn takes_over<T: Real>(v: T, best: T) -> bool {
    v > best || v.is_nan()
}

/// Max pooling forward; see [`Kernels::maxpool2d_forward`](crate::Kernels::maxpool2d_forward).
///
/// # Panics
/// If a length disagrees with `shape`, or the shape is invalid.
pub fn forward<T: Real>(shape: &Pool2dShape, input: &[T], output: &mut [T], argmax: &mut [u32]) {
    forward_of(shape, input, output, argmax, |x| x);
}

/// Max pooling of `relu(input)` without the ReLU's output in memory; see
/// [`Kernels::maxpool2d_relu_forward`](crate::Kernels::maxpool2d_relu_forward).
///
/// # Panics
/// As [`forward`].
pub fn relu_forward<T: Real>(
    shape: &Pool2dShape,
    input: &[T],
    output: &mut [T],
    argmax: &mut [u32],
) {
    forward_of(shape, input, output, argmax, relu);
}

/// Max pooling of `f(input)`.
#[inline(always)]
fn forward_of<T: Real>(
    shape: &Pool2dShape,
    input: &[T],
    output: &mut [T],
    argmax: &mut [u32],
    f: impl Fn(T) -> T,
) {
    check_len("maxpool forward: input", shape.input_len(), input.len());
    check_len("maxpool forward: output", shape.output_len(), output.len());
    check_len("maxpool forward: argmax", shape.output_len(), argmax.len());
    for_each_window(shape, |w| {
        let x = &input[w.plane];
        let (mut best, mut best_at) = (f(x[w.first]), w.first);
        for ky in 0..shape.kernel_h {
            for kx in 0..shape.kernel_w {
                let at = w.first + ky * shape.in_w + kx;
                if takes_over(f(x[at]), best) {
                    best = f(x[at]);
                    best_at = at;
                }
            }
        }
        output[w.out] = best;
        argmax[w.out] = best_at as u32;
    });
}

/// Max pooling backward; see
/// [`Kernels::maxpool2d_backward`](crate::Kernels::maxpool2d_backward).
///
/// # Panics
/// If a length disagrees with `shape`, the shape is invalid, or an argmax lies outside its
/// window.
pub fn backward<T: Real>(
    shape: &Pool2dShape,
    grad_output: &[T],
    argmax: &[u32],
    grad_input: &mut [T],
) {
    backward_of(shape, grad_output, argmax, grad_input, |_, g| g);
}

/// The gradient of max pooling of `relu(input)` with respect to `input`, from the forward's
/// `pooled` output; see
/// [`Kernels::maxpool2d_relu_backward`](crate::Kernels::maxpool2d_relu_backward).
///
/// # Panics
/// As [`backward`], or if `pooled` is not as long as `grad_output`.
pub fn relu_backward<T: Real>(
    shape: &Pool2dShape,
    grad_output: &[T],
    argmax: &[u32],
    pooled: &[T],
    grad_input: &mut [T],
) {
    check_len(
        "maxpool relu backward: pooled",
        shape.output_len(),
        pooled.len(),
    );
    backward_of(shape, grad_output, argmax, grad_input, |o, g| {
        relu_grad(pooled[o], g)
    });
}

/// Max pooling backward with output `o`'s gradient `g` replaced by `f(o, g)`.
#[inline(always)]
fn backward_of<T: Real>(
    shape: &Pool2dShape,
    grad_output: &[T],
    argmax: &[u32],
    grad_input: &mut [T],
    f: impl Fn(usize, T) -> T,
) {
    check_len(
        "maxpool backward: grad_output",
        shape.output_len(),
        grad_output.len(),
    );
    check_len("maxpool backward: argmax", shape.output_len(), argmax.len());
    check_len(
        "maxpool backward: grad_input",
        shape.input_len(),
        grad_input.len(),
    );
    grad_input.fill(T::ZERO);
    for_each_window(shape, |w| {
        let at = argmax[w.out] as usize;
        check_in_window(shape, w.out, at, w.oy, w.ox);
        grad_input[w.plane][at] += f(w.out, grad_output[w.out]);
    });
}

/// Panics unless input index `at` (within the plane) lies in the window of output `(oy, ox)`.
#[inline(always)]
#[track_caller]
pub(crate) fn check_in_window(shape: &Pool2dShape, o: usize, at: usize, oy: usize, ox: usize) {
    let (h, w) = (at / shape.in_w, at % shape.in_w);
    let (y0, x0) = (oy * shape.stride_h, ox * shape.stride_w);
    let inside = h >= y0 && h < y0 + shape.kernel_h && w >= x0 && w < x0 + shape.kernel_w;
    assert!(
        inside,
        "maxpool2d_backward: argmax[{o}] = {at} is outside its pooling window (rows {y0}..{}, \
         columns {x0}..{})",
        y0 + shape.kernel_h,
        x0 + shape.kernel_w
    );
}
