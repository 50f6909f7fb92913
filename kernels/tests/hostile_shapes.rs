//! Shapes a hostile caller might pass, on every table this CPU has: products that wrap, paddings,
//! strides and dilations near `usize::MAX`, zero dimensions, kernels larger than the input, and
//! slices one short or one long. Each case asserts its precise outcome: a panic whose message
//! contains the expected words (caught with `catch_unwind`), or the scalar reference's result.
//!
//! Slices passed with a wrapping shape have the lengths the shape would report if its products
//! wrapped (`wrapping_mul`), which is what a length check computed in plain arithmetic accepts.

mod common;
mod hostile;

use hostile::*;
use simdnet_kernels::conv::Conv2dShape;
use simdnet_kernels::maxpool::Pool2dShape;

/// 2^63 + 1: times an even number it wraps to that number.
const HUGE_ODD: usize = (1 << 63) + 1;

#[test]
fn miri_conv_in_channels_wrapping_to_one_is_refused() {
    // The AVX2 and AVX-512 channel paths used to run `for ci in 0..in_channels` through raw
    // pointers on this shape: the lengths of in_channels = 1 passed every check.
    let s = Conv2dShape::new(1, HUGE_ODD, 8, (4, 4), (2, 2));
    let one = Conv2dShape {
        in_channels: 1,
        ..s
    };
    for k in tables() {
        conv_refused(
            &k,
            &s,
            &one,
            "image_len (in_channels * in_h * in_w) overflows usize",
        );
    }
}

#[test]
fn miri_conv_padding_two_to_the_63_is_refused() {
    // `2 * pad` wrapped to 0.
    let s = Conv2dShape::new(1, 1, 1, (3, 3), (1, 1)).with_padding(1 << 63, 0);
    let small = Conv2dShape { pad_h: 0, ..s };
    for k in tables() {
        conv_refused(
            &k,
            &s,
            &small,
            "the padded input h (in_h + 2 * pad_h) overflows usize",
        );
    }
}

#[test]
fn miri_conv_dilation_usize_max_is_refused() {
    // `dilation * (kernel - 1) + 1` wrapped to 0 for a kernel of 2.
    let s = Conv2dShape::new(1, 1, 1, (3, 3), (2, 2)).with_dilation(1, usize::MAX);
    let small = Conv2dShape { dilation_w: 1, ..s };
    for k in tables() {
        conv_refused(
            &k,
            &s,
            &small,
            "the dilated kernel w (dilation_w * (kernel_w - 1) + 1) overflows usize",
        );
    }
}

#[test]
fn miri_pool_batch_wrapping_is_refused() {
    // batch * channels wrapped to 2.
    let s = Pool2dShape::new(HUGE_ODD, 2, (4, 4), (2, 2), (2, 2));
    let small = Pool2dShape { batch: 1, ..s };
    for k in tables() {
        pool_refused(&k, &s, &small, "planes (batch * channels) overflows usize");
    }
}

#[test]
fn miri_bias_batch_wrapping_is_refused() {
    // batch * channels * spatial wrapped to 2 * spatial.
    for k in tables() {
        let (channels, spatial) = (2, 3);
        let mut x = vec![0.0; channels * spatial];
        let bias = vec![1.0; channels];
        expect_panic(
            "bias_add",
            "bias: length (batch * channels * spatial) overflows usize",
            || k.bias_add(&mut x, &bias, HUGE_ODD, spatial),
        );
        let mut gb = vec![0.0; channels];
        expect_panic(
            "bias_backward",
            "bias: length (batch * channels * spatial) overflows usize",
            || k.bias_backward(&x, &mut gb, HUGE_ODD, spatial),
        );
    }
}
