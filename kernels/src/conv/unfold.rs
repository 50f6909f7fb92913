//! im2col and col2im: a convolution's input unfolded into a column matrix, whose GEMM with
//! the weight is the convolution, and the adjoint that folds a column matrix back into an
//! image (the input gradient of the unfolded path).
//!
//! The matrix is `cols[K, N]`, `K = in_channels * kernel_h * kernel_w` (row
//! `(c * kernel_h + ki) * kernel_w + kj`), `N = out_h * out_w`, with
//! `cols[(c, ki, kj), (oy, ox)] = image[c, oy * stride_h + ki * dilation_h - pad_h,
//! ox * stride_w + kj * dilation_w - pad_w]`, 0 in the padding.
//!
//! Method: for each column row, the output rows and columns whose input lies inside the image
//! form one rectangle ([`valid_range`] per axis); it is copied (or, for col2im, added) as
//! equally spaced row segments, the rest of the row zero-filled. Segment widths up to 32 are
//! compile-time constants, so each copy is a few inline moves rather than a `memcpy` call.
//! Every index is a slice index (no `unsafe`); the public functions check the lengths.

use super::Conv2dShape;
use crate::{check_len, Real};

/// The output positions `o` in `0..out_len` whose input coordinate `o * stride + offset - pad`
/// lies in `0..in_len`: always one contiguous range `lo..hi` (possibly empty).
fn valid_range(
    out_len: usize,
    in_len: usize,
    offset: usize,
    pad: usize,
    stride: usize,
) -> (usize, usize) {
    let lo = if pad > offset {
        (pad - offset).div_ceil(stride)
    } else {
        0
    };
    let hi = if pad + in_len > offset {
        (pad + in_len - offset).div_ceil(stride)
    } else {
        0
    };
    let lo = lo.min(out_len);
    (lo, hi.min(out_len).max(lo))
}

/// One row `(c, ki, kj)` of the column matrix: which output rows and columns read inside the
/// image (the rest read the zero padding), and where.
struct ColRow {
    /// Channel `c`'s plane starts at `c * in_h * in_w` in the image.
    plane: usize,
    /// Output rows `y_lo..y_hi` read image rows `oy * stride_h + y_off - pad_h`.
    y_lo: usize,
    y_hi: usize,
    y_off: usize,
    /// Output columns `x_lo..x_hi` read image columns from `ix0` on, every `stride_w`.
    x_lo: usize,
    x_hi: usize,
    ix0: usize,
}

/// Calls `row(r, geometry)` for every row `r` of the column matrix, in order.
#[inline(always)]
fn for_each_col_row(shape: &Conv2dShape, mut row: impl FnMut(usize, &ColRow)) {
    let (oh, ow) = (shape.out_h(), shape.out_w());
    let mut r = 0;
    for c in 0..shape.in_channels {
        for ki in 0..shape.kernel_h {
            let y_off = ki * shape.dilation_h;
            let (y_lo, y_hi) = valid_range(oh, shape.in_h, y_off, shape.pad_h, shape.stride_h);
            for kj in 0..shape.kernel_w {
                let x_off = kj * shape.dilation_w;
                let (x_lo, x_hi) = valid_range(ow, shape.in_w, x_off, shape.pad_w, shape.stride_w);
                let ix0 = if x_lo < x_hi {
                    x_lo * shape.stride_w + x_off - shape.pad_w
                } else {
                    0
                };
                let geometry = ColRow {
                    plane: c * shape.in_h * shape.in_w,
                    y_lo,
                    y_hi,
                    y_off,
                    x_lo,
                    x_hi,
                    ix0,
                };
                row(r, &geometry);
                r += 1;
            }
        }
    }
}

/// Unfolds one image `[in_channels, in_h, in_w]` into the column matrix `cols[K, N]`,
/// `K = in_channels * kernel_h * kernel_w` (row `(c * kernel_h + ki) * kernel_w + kj`) and
/// `N = out_h * out_w`: `cols[(c, ki, kj), (oy, ox)] = image[c, oy * stride_h + ki * dilation_h -
/// pad_h, ox * stride_w + kj * dilation_w - pad_w]`, or 0 where that falls in the padding.
/// `shape.batch` is ignored.
///
/// # Panics
/// If `image` is not `in_channels * in_h * in_w` long or `cols` not [`Conv2dShape::col_len`],
/// or if the shape is invalid (see [`Conv2dShape::out_h`]).
#[track_caller]
pub fn im2col<T: Real>(shape: &Conv2dShape, image: &[T], cols: &mut [T]) {
    check_len("im2col: image", shape.image_len(), image.len());
    check_len("im2col: cols", shape.col_len(), cols.len());
    im2col_strided(shape, image, cols, shape.out_plane_len());
}

/// [`im2col`] into a wider matrix: row `r` of the image's columns goes to
/// `cols[r * ld..][..out_h * out_w]` (a column tile holds several images side by side).
pub(super) fn im2col_strided<T: Real>(shape: &Conv2dShape, image: &[T], cols: &mut [T], ld: usize) {
    let (oh, ow) = (shape.out_h(), shape.out_w());
    let (in_w, sh, sw, ph) = (shape.in_w, shape.stride_h, shape.stride_w, shape.pad_h);
    for_each_col_row(shape, |r, g| {
        let dst = &mut cols[r * ld..][..oh * ow];
        // Output rows that read the top or bottom padding.
        dst[..g.y_lo * ow].fill(T::ZERO);
        dst[g.y_hi * ow..].fill(T::ZERO);
        let (x_lo, x_hi, width) = (g.x_lo, g.x_hi, g.x_hi - g.x_lo);
        if width == 0 {
            // Every column reads the left or right padding (or the image has no columns).
            dst.fill(T::ZERO);
            return;
        }
        if g.y_lo == g.y_hi {
            return; // every row reads the top or bottom padding: zeroed above
        }
        // Output row oy reads image row `first_row + (oy - y_lo) * stride_h`, columns from ix0.
        let first_row = g.y_lo * sh + g.y_off - ph;
        let rows = g.y_hi - g.y_lo;
        // Between rows `stride_h` image rows apart; with one row there is no step (and a stride
        // near usize::MAX times the row width would overflow).
        let src_step = if rows > 1 { sh * in_w } else { 0 };
        let src_start = g.plane + first_row * in_w + g.ix0;
        if x_lo > 0 || x_hi < ow {
            // Left or right padding: one fill of the rows beats a short fill per row (the
            // compiler turns those into `memset` calls); the copies then overwrite the inside.
            dst[g.y_lo * ow..g.y_hi * ow].fill(T::ZERO);
        }
        let segments = Segments {
            rows,
            dst_at: g.y_lo * ow + x_lo,
            dst_step: ow,
            src_at: src_start,
            src_step,
        };
        if sw == 1 {
            move_segments::<T, false>(dst, image, width, segments);
        } else {
            let mut src_at = src_start;
            for oy in g.y_lo..g.y_hi {
                let inside = &mut dst[oy * ow + x_lo..][..width];
                for (o, &s) in inside.iter_mut().zip(image[src_at..].iter().step_by(sw)) {
                    *o = s;
                }
                src_at += src_step;
            }
        }
    });
}

/// `rows` equally spaced segments: segment `i` goes from `src[src_at + i * src_step..]` to
/// `dst[dst_at + i * dst_step..]`.
#[derive(Clone, Copy)]
pub(super) struct Segments {
    pub(super) rows: usize,
    pub(super) dst_at: usize,
    pub(super) dst_step: usize,
    pub(super) src_at: usize,
    pub(super) src_step: usize,
}

/// Copies (`ADD` false) or adds (`ADD` true) the segments of `src` into those of `dst`,
/// `width` elements each. Widths up to 32 (LeNet's are 10 and 26 to 28) get a loop with the
/// width a constant, so each segment is a few inline moves: a `memcpy` call costs more than
/// the copy at these lengths.
#[inline(always)]
pub(super) fn move_segments<T: Real, const ADD: bool>(
    dst: &mut [T],
    src: &[T],
    width: usize,
    seg: Segments,
) {
    macro_rules! by_width {
        ($($w:literal)*) => {
            match width {
                $($w => move_segments_of::<T, $w, ADD>(dst, src, seg),)*
                _ => {
                    for i in 0..seg.rows {
                        let (d, s) = (seg.dst_at + i * seg.dst_step, seg.src_at + i * seg.src_step);
                        let (to, from) = (&mut dst[d..d + width], &src[s..s + width]);
                        if ADD {
                            for (t, &f) in to.iter_mut().zip(from) {
                                *t += f;
                            }
                        } else {
                            to.copy_from_slice(from);
                        }
                    }
                }
            }
        };
    }
    by_width!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32)
}

#[inline(always)]
fn move_segments_of<T: Real, const W: usize, const ADD: bool>(
    dst: &mut [T],
    src: &[T],
    seg: Segments,
) {
    for i in 0..seg.rows {
        let (d, s) = (seg.dst_at + i * seg.dst_step, seg.src_at + i * seg.src_step);
        let from: &[T; W] = src[s..s + W].try_into().expect("W elements");
        let to: &mut [T; W] = (&mut dst[d..d + W]).try_into().expect("W elements");
        if ADD {
            for (t, &f) in to.iter_mut().zip(from) {
                *t += f;
            }
        } else {
            *to = *from;
        }
    }
}

/// The adjoint of [`im2col`]: adds every column-matrix entry into the image element it was read
/// from (entries in the padding are dropped). Accumulates: zero `image` first for a plain fold.
/// `shape.batch` is ignored.
///
/// # Panics
/// If `cols` is not [`Conv2dShape::col_len`] long or `image` not `in_channels * in_h * in_w`,
/// or if the shape is invalid (see [`Conv2dShape::out_h`]).
#[track_caller]
pub fn col2im<T: Real>(shape: &Conv2dShape, cols: &[T], image: &mut [T]) {
    check_len("col2im: cols", shape.col_len(), cols.len());
    check_len("col2im: image", shape.image_len(), image.len());
    col2im_strided(shape, cols, shape.out_plane_len(), image);
}

/// [`col2im`] from a wider matrix: row `r` of the image's columns is
/// `cols[r * ld..][..out_h * out_w]`.
pub(super) fn col2im_strided<T: Real>(shape: &Conv2dShape, cols: &[T], ld: usize, image: &mut [T]) {
    let (oh, ow) = (shape.out_h(), shape.out_w());
    let (in_w, sh, sw, ph) = (shape.in_w, shape.stride_h, shape.stride_w, shape.pad_h);
    for_each_col_row(shape, |r, g| {
        let (x_lo, width) = (g.x_lo, g.x_hi - g.x_lo);
        if g.y_lo == g.y_hi || width == 0 {
            return; // nothing reads inside the image
        }
        let src_row = &cols[r * ld..][..oh * ow];
        let first_row = g.y_lo * sh + g.y_off - ph;
        // As in `im2col_strided`: no step for a single row.
        let dst_step = if g.y_hi - g.y_lo > 1 { sh * in_w } else { 0 };
        let dst_start = g.plane + first_row * in_w + g.ix0;
        if sw == 1 {
            let segments = Segments {
                rows: g.y_hi - g.y_lo,
                dst_at: dst_start,
                dst_step,
                src_at: g.y_lo * ow + x_lo,
                src_step: ow,
            };
            move_segments::<T, true>(image, src_row, width, segments);
        } else {
            let mut dst_at = dst_start;
            for oy in g.y_lo..g.y_hi {
                let src = &src_row[oy * ow + x_lo..][..width];
                for (d, &s) in image[dst_at..].iter_mut().step_by(sw).zip(src) {
                    *d += s;
                }
                dst_at += dst_step;
            }
        }
    });
}
