//! The max-pooling reference, generic over `f32` and `f64`.

use super::Pool2dShape;
use crate::{check_len, Real};

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
    let (oh, ow) = (shape.out_h(), shape.out_w());
    check_len("maxpool forward: input", shape.input_len(), input.len());
    check_len("maxpool forward: output", shape.output_len(), output.len());
    check_len("maxpool forward: argmax", shape.output_len(), argmax.len());
    let (in_plane, out_plane) = (shape.in_h * shape.in_w, oh * ow);
    for p in 0..shape.batch * shape.channels {
        let x = &input[p * in_plane..][..in_plane];
        for oy in 0..oh {
            for ox in 0..ow {
                let first = oy * shape.stride_h * shape.in_w + ox * shape.stride_w;
                let (mut best, mut best_at) = (x[first], first);
                for ky in 0..shape.kernel_h {
                    for kx in 0..shape.kernel_w {
                        let at = first + ky * shape.in_w + kx;
                        if takes_over(x[at], best) {
                            best = x[at];
                            best_at = at;
                        }
                    }
                }
                let o = p * out_plane + oy * ow + ox;
                output[o] = best;
                argmax[o] = best_at as u32;
            }
        }
    }
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
    let (oh, ow) = (shape.out_h(), shape.out_w());
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
    let (in_plane, out_plane) = (shape.in_h * shape.in_w, oh * ow);
    for p in 0..shape.batch * shape.channels {
        let gi = &mut grad_input[p * in_plane..][..in_plane];
        for oy in 0..oh {
            for ox in 0..ow {
                let o = p * out_plane + oy * ow + ox;
                let at = argmax[o] as usize;
                check_in_window(shape, o, at, oy, ox);
                gi[at] += grad_output[o];
            }
        }
    }
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
